//! The product events of a generated company, produced lazily in time order.
//!
//! A [`Planner`] walks the history one UTC day at a time. Planning a day
//! decides what happens from that day on (visits, sign-ups and what they set
//! in motion, sessions of product use, support tickets and their replies)
//! and queues it; nothing planned on a day happens before that day starts,
//! so once a day is planned everything queued before its end can be emitted
//! in order. Only the queue (a day of events, plus follow-ups such as ticket
//! replies and teammates' invitations) is held in memory, never the stream.
//!
//! [`super::Events`] renders what is planned, from a random stream of its
//! own, so counting the plan ([`super::Company::event_count`]) gives the
//! number of events without rendering them.

use std::{cmp::Reverse, collections::BinaryHeap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use rand::{Rng, SeedableRng};

use super::{
    Account, Company, DemoRng, Member, Stream, lognormal_duration, signup_density, sub_seed, words,
    working_minute,
};

/// Anonymous visitors of the marketing site per customer who signs up.
const VISITORS_PER_CUSTOMER: f64 = 15.0;
/// Support tickets per customer per month, on average.
const TICKETS_PER_CUSTOMER_MONTH: f64 = 0.2;
/// Relative frequency of the features, most used first: a power law.
const FEATURE_WEIGHTS: [f64; 9] = [1.0, 0.52, 0.35, 0.26, 0.21, 0.17, 0.14, 0.12, 0.11];

/// Something that happens, to be rendered as one event.
#[derive(Debug, Clone, Copy)]
pub(super) enum Happening {
    /// An anonymous visitor views a marketing page.
    Visit {
        visitor: u64,
        page: u8,
        referrer: u8,
    },
    /// A future customer's owner views a marketing page before signing up.
    LeadVisit { account: u32, page: u8 },
    /// A user is identified (traits, and the anonymous id linked).
    Identify { account: u32, member: u16 },
    /// A user signs up.
    SignedUp { account: u32, member: u16 },
    /// A user is tied to their account.
    Group { account: u32, member: u16 },
    /// A user does an onboarding step.
    Onboarding { account: u32, member: u16, step: u8 },
    /// The owner invites a teammate (who joins later).
    Invite { account: u32, invitee: u16 },
    /// A user uses a feature.
    Feature {
        account: u32,
        member: u16,
        feature: u8,
    },
    /// A user views a page of the app.
    AppPage { account: u32, member: u16, page: u8 },
    /// A step of a support ticket a user opened.
    Ticket {
        account: u32,
        member: u16,
        ticket: u32,
        stage: TicketStage,
    },
}

/// The steps of a support ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TicketStage {
    Created,
    AgentReply,
    CustomerReply,
    Resolved,
}

/// A happening queued for its time; `seq` orders equal times as planned.
#[derive(Debug)]
pub(super) struct Planned {
    pub time: DateTime<Utc>,
    seq: u64,
    pub what: Happening,
}

impl PartialEq for Planned {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl Eq for Planned {}

impl PartialOrd for Planned {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Planned {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// Someone arriving: a lead's first visit, or a user's sign-up.
struct Arrival {
    time: DateTime<Utc>,
    account: u32,
    /// `None` for the lead's visit.
    member: Option<u16>,
}

/// Decides what happens, day by day, and yields it in time order.
pub(super) struct Planner<'a> {
    company: &'a Company,
    rng: DemoRng,
    queue: BinaryHeap<Reverse<Planned>>,
    arrivals: Vec<Arrival>,
    next_arrival: usize,
    /// The next day to plan, and the last one.
    day: NaiveDate,
    last_day: NaiveDate,
    /// Everything before this instant is queued.
    planned_until: DateTime<Utc>,
    /// Each account's last instant of any activity, for skipping the idle.
    active_until: Vec<Option<DateTime<Utc>>>,
    visitors_per_density: f64,
    seq: u64,
    visitors: u64,
    tickets: u32,
}

impl<'a> Planner<'a> {
    pub(super) fn new(company: &'a Company) -> Self {
        let shape = &company.shape;
        let (first, last) = shape.dates();
        let mut arrivals = Vec::new();
        for (index, account) in company.accounts.iter().enumerate() {
            let account_index = index as u32;
            arrivals.push(Arrival {
                time: account.lead_at,
                account: account_index,
                member: None,
            });
            for (member, m) in account.members.iter().enumerate() {
                arrivals.push(Arrival {
                    time: m.joined,
                    account: account_index,
                    member: Some(member as u16),
                });
            }
        }
        arrivals.sort_by_key(|a| (a.time, a.account, a.member));
        let active_until = company
            .accounts
            .iter()
            .map(|a| match a.windows.last() {
                Some((_, Some(end))) => Some(*end + Duration::days(21)),
                _ => None,
            })
            .collect();
        let total_density: f64 = first
            .iter_days()
            .take_while(|d| *d <= last)
            .map(|d| signup_density(shape, d))
            .sum();
        Planner {
            company,
            rng: DemoRng::seed_from_u64(sub_seed(company.seed, Stream::EventPlan, 0)),
            queue: BinaryHeap::new(),
            arrivals,
            next_arrival: 0,
            day: first,
            last_day: last,
            planned_until: shape.start(),
            active_until,
            visitors_per_density: VISITORS_PER_CUSTOMER * company.accounts.len() as f64
                / total_density.max(f64::MIN_POSITIVE),
            seq: 0,
            visitors: 0,
            tickets: 0,
        }
    }

    fn push(&mut self, time: DateTime<Utc>, what: Happening) {
        self.seq += 1;
        self.queue.push(Reverse(Planned {
            time,
            seq: self.seq,
            what,
        }));
    }

    /// Queues everything that starts on the next day.
    fn plan_day(&mut self) {
        let day = self.day;
        let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
        let end = start + Duration::days(1);
        while let Some(arrival) = self.arrivals.get(self.next_arrival)
            && arrival.time < end
        {
            let (time, account, member) = (arrival.time, arrival.account, arrival.member);
            self.next_arrival += 1;
            match member {
                None => self.lead_visit(time, account),
                Some(member) => self.sign_up(time, start, account, member),
            }
        }
        self.marketing_traffic(day, start);
        for account in 0..self.company.accounts.len() {
            self.account_day(account, start);
        }
        self.day = day.succ_opt().unwrap_or(day);
        self.planned_until = end;
    }

    /// Anonymous visitors of the marketing site, more as the company grows.
    fn marketing_traffic(&mut self, day: NaiveDate, start: DateTime<Utc>) {
        let expected = self.visitors_per_density * signup_density(&self.company.shape, day);
        let visitors = poisson(&mut self.rng, expected);
        let offset = match self.company.shape.market {
            super::Market::NorthAmerica => -360,
            super::Market::Europe => 60,
        };
        for _ in 0..visitors {
            self.visitors += 1;
            let visitor = self.visitors;
            let referrer = self.rng.gen_range(0..words::REFERRERS.len()) as u8;
            let minute = (working_minute(&mut self.rng) - offset + self.rng.gen_range(-120..120))
                .rem_euclid(24 * 60);
            let mut at = start + Duration::minutes(minute) + millis(&mut self.rng, 60_000);
            let pages = 1 + geometric(&mut self.rng, 0.45).min(5);
            for view in 0..pages {
                let page = if view == 0 && self.rng.gen_bool(0.5) {
                    0
                } else {
                    marketing_page(&mut self.rng)
                };
                self.push(
                    at,
                    Happening::Visit {
                        visitor,
                        page,
                        referrer,
                    },
                );
                at += lognormal_duration(&mut self.rng, 45.0, 0.8) + millis(&mut self.rng, 1000);
            }
        }
    }

    /// The future owner's first look at the marketing site.
    fn lead_visit(&mut self, at: DateTime<Utc>, account: u32) {
        let mut at = at;
        for _ in 0..self.rng.gen_range(1..=3) {
            let page = marketing_page(&mut self.rng);
            self.push(at, Happening::LeadVisit { account, page });
            at += lognormal_duration(&mut self.rng, 50.0, 0.8) + millis(&mut self.rng, 1000);
        }
    }

    /// A user signs up: (for the owner, a last look at pricing,) identify,
    /// `Signed Up` and group, then their onboarding steps; the owner's
    /// invitations of teammates are queued too.
    fn sign_up(&mut self, at: DateTime<Utc>, day_start: DateTime<Utc>, account: u32, member: u16) {
        let company = self.company;
        let a = &company.accounts[account as usize];
        let m = &a.members[member as usize];
        if member == 0 {
            let before = (at - Duration::minutes(self.rng.gen_range(2..8))).max(day_start);
            if before > a.lead_at {
                self.push(before, Happening::LeadVisit { account, page: 1 });
            }
        }
        self.push(at, Happening::Identify { account, member });
        self.push(
            at + Duration::milliseconds(1_500),
            Happening::SignedUp { account, member },
        );
        self.push(
            at + Duration::milliseconds(3_200),
            Happening::Group { account, member },
        );
        for (step, time) in m.onboarding.iter().enumerate() {
            if let Some(time) = time {
                self.push(
                    *time,
                    Happening::Onboarding {
                        account,
                        member,
                        step: step as u8,
                    },
                );
            }
        }
        if member == 0 {
            let first_invite = m.onboarding[2];
            for (invitee, teammate) in a.members.iter().enumerate().skip(1) {
                if let Some(invited) = teammate.invited_at
                    && Some(invited) != first_invite
                {
                    self.push(
                        invited,
                        Happening::Invite {
                            account,
                            invitee: invitee as u16,
                        },
                    );
                }
            }
        }
    }

    /// A day of one account: its users' sessions and its support tickets.
    fn account_day(&mut self, index: usize, start: DateTime<Utc>) {
        let company = self.company;
        let account = &company.accounts[index];
        let end = start + Duration::days(1);
        if account.signup >= end || self.active_until[index].is_some_and(|until| until < start) {
            return;
        }
        let noon = start + Duration::hours(12);
        let level = account.activity_at(noon);
        if level <= 0.0 {
            return;
        }
        let weekday = match start.weekday() {
            Weekday::Sat => 0.2,
            Weekday::Sun => 0.16,
            _ => 1.0,
        };
        let offset = account.country.utc_offset_minutes;
        let per_day = company.shape.events_per_user_day;
        for (member_index, member) in account.members.iter().enumerate() {
            if member.joined >= end
                || !self
                    .rng
                    .gen_bool((level * weekday * member.activity).min(1.0))
            {
                continue;
            }
            let events = 1 + poisson(&mut self.rng, (per_day * member.intensity - 1.0).max(0.0));
            let sessions = 1 + (events / 8).min(2);
            for session in 0..sessions {
                let count = events / sessions + u64::from(session < events % sessions);
                let at = self
                    .local_time(start, offset)
                    .max(member.joined + Duration::seconds(60));
                self.session(index as u32, member_index as u16, member, at, count);
            }
        }
        // Fewer tickets at weekends, as many per month.
        let ticket_weekday = if weekday < 1.0 { 0.4 } else { 1.0 } / ((5.0 + 2.0 * 0.4) / 7.0);
        if account.is_customer_at(noon)
            && level > 0.3
            && self.rng.gen_bool(
                (TICKETS_PER_CUSTOMER_MONTH / 30.44 * account.ticket_rate * ticket_weekday)
                    .min(1.0),
            )
        {
            self.ticket(index as u32, account, start);
        }
    }

    /// A moment of the working day of a user `offset` minutes from UTC,
    /// placed on the UTC day starting at `start`.
    fn local_time(&mut self, start: DateTime<Utc>, offset: i64) -> DateTime<Utc> {
        let minute = (working_minute(&mut self.rng) - offset).rem_euclid(24 * 60);
        start + Duration::minutes(minute) + millis(&mut self.rng, 60_000)
    }

    /// A session of `count` events: an app page, then features and pages.
    fn session(
        &mut self,
        account: u32,
        member: u16,
        m: &Member,
        mut at: DateTime<Utc>,
        count: u64,
    ) {
        for event in 0..count {
            let what = if event == 0 || self.rng.gen_bool(0.2) {
                Happening::AppPage {
                    account,
                    member,
                    page: if event == 0 {
                        self.rng.gen_range(0..2)
                    } else {
                        self.rng.gen_range(0..words::APP_PAGES.len()) as u8
                    },
                }
            } else {
                let weights = &FEATURE_WEIGHTS[..m.features.min(FEATURE_WEIGHTS.len())];
                Happening::Feature {
                    account,
                    member,
                    feature: weighted_index(&mut self.rng, weights) as u8,
                }
            };
            self.push(at, what);
            at += lognormal_duration(&mut self.rng, 40.0, 1.0) + millis(&mut self.rng, 1000);
        }
    }

    /// A ticket opened by a user of `account`, its replies and (usually)
    /// its resolution.
    fn ticket(&mut self, account_index: u32, account: &Account, start: DateTime<Utc>) {
        let created = self.local_time(start, account.country.utc_offset_minutes);
        let requesters: Vec<usize> = (0..account.members.len())
            .filter(|m| account.members[*m].joined < created)
            .collect();
        if requesters.is_empty() {
            return;
        }
        let member = requesters[self.rng.gen_range(0..requesters.len())] as u16;
        self.tickets += 1;
        let ticket = self.tickets;
        let push = |planner: &mut Self, at, stage| {
            planner.push(
                at,
                Happening::Ticket {
                    account: account_index,
                    member,
                    ticket,
                    stage,
                },
            );
        };
        push(self, created, TicketStage::Created);
        let mut at = created + lognormal_duration(&mut self.rng, 2.0 * 3600.0, 1.0);
        push(self, at, TicketStage::AgentReply);
        if self.rng.gen_bool(0.35) {
            at += lognormal_duration(&mut self.rng, 3.0 * 3600.0, 1.0);
            push(self, at, TicketStage::CustomerReply);
            if self.rng.gen_bool(0.7) {
                at += lognormal_duration(&mut self.rng, 1.5 * 3600.0, 1.0);
                push(self, at, TicketStage::AgentReply);
            }
        }
        if self.rng.gen_bool(0.93) {
            at += lognormal_duration(&mut self.rng, 8.0 * 3600.0, 1.2);
            push(self, at, TicketStage::Resolved);
        }
    }
}

impl Iterator for Planner<'_> {
    type Item = Planned;

    fn next(&mut self) -> Option<Planned> {
        loop {
            if self
                .queue
                .peek()
                .is_some_and(|Reverse(top)| top.time < self.planned_until)
            {
                let Reverse(next) = self.queue.pop()?;
                if next.time > self.company.shape.end {
                    // Everything still queued is later: the history is over.
                    self.queue.clear();
                    self.day = self.last_day.succ_opt().unwrap_or(self.last_day);
                    return None;
                }
                return Some(next);
            }
            if self.day > self.last_day {
                return None;
            }
            self.plan_day();
        }
    }
}

/// A marketing page index, weighted.
fn marketing_page(rng: &mut DemoRng) -> u8 {
    let total: u32 = words::MARKETING_PAGES.iter().map(|(_, _, w)| w).sum();
    let mut draw = rng.gen_range(0..total);
    for (index, (_, _, weight)) in words::MARKETING_PAGES.iter().enumerate() {
        if draw < *weight {
            return index as u8;
        }
        draw -= weight;
    }
    0
}

/// An index drawn with the given relative weights.
fn weighted_index(rng: &mut DemoRng, weights: &[f64]) -> usize {
    let mut draw = rng.r#gen::<f64>() * weights.iter().sum::<f64>();
    for (index, weight) in weights.iter().enumerate() {
        if draw < *weight {
            return index;
        }
        draw -= weight;
    }
    0
}

/// Up to `max` milliseconds, so that times are not whole seconds.
pub(super) fn millis(rng: &mut DemoRng, max: i64) -> Duration {
    Duration::milliseconds(rng.gen_range(0..max))
}

/// A Poisson draw (normal approximation for large means).
fn poisson(rng: &mut DemoRng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        let normal: f64 = (0..12).map(|_| rng.r#gen::<f64>()).sum::<f64>() - 6.0;
        return (mean + normal * mean.sqrt()).round().max(0.0) as u64;
    }
    let limit = (-mean).exp();
    let mut product: f64 = rng.r#gen();
    let mut count = 0;
    while product > limit {
        product *= rng.r#gen::<f64>();
        count += 1;
    }
    count
}

/// Failures before the first success of chance `p`.
fn geometric(rng: &mut DemoRng, p: f64) -> u64 {
    let mut count = 0;
    while !rng.gen_bool(p) && count < 50 {
        count += 1;
    }
    count
}
