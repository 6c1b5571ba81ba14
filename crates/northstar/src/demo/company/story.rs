//! One customer's story, simulated from its own random stream: who they
//! are, their team, their trial, and every invoice of their subscriptions
//! (renewals, upgrades, seats, discounts, downgrades, churn, reactivation).

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use northstar_db::billing::{
    customers::CustomerInput,
    invoices::{InvoiceInput, LineInput, LineKind},
};
use rand::Rng;
use serde_json::json;

use super::{
    Account, CHURN_SEASON, Company, DemoRng, MIN_SCALE_SEATS, Member, Plan, TRIAL_DAYS, Tier,
    lognormal_duration, nice_price, pareto, pick, pick_country, seconds, stripe_id,
    words::{self, Country, Currency},
    working_minute,
};

/// What simulating one customer produces.
pub(super) struct Story {
    pub account: Account,
    pub customer: CustomerInput,
    pub invoices: Vec<InvoiceInput>,
}

/// The state of one customer's simulation.
pub(super) struct Simulation<'a> {
    company: &'a Company,
    rng: DemoRng,
    invoices: Vec<InvoiceInput>,
    plans: Vec<(DateTime<Utc>, &'static str)>,
}

/// A paid subscription while it runs.
struct Subscription {
    id: String,
    plan: Plan,
    seats: u32,
    /// Members of the account when the seats were last counted.
    team: u32,
    /// Periods left at 20 % off.
    discounted_periods: u32,
}

impl<'a> Simulation<'a> {
    pub(super) fn new(company: &'a Company, rng: DemoRng) -> Self {
        Simulation {
            company,
            rng,
            invoices: Vec::new(),
            plans: Vec::new(),
        }
    }

    pub(super) fn run(mut self, signup_day: NaiveDate) -> Story {
        let shape = &self.company.shape;
        let (start, end) = (shape.start(), shape.end);
        let country = pick_country(&mut self.rng, shape.market);
        let signup = self.signup_time(signup_day, country);
        let before_signup = if self.rng.gen_bool(0.35) {
            Duration::minutes(self.rng.gen_range(3..40))
        } else {
            Duration::minutes(self.rng.gen_range(60..60 * 24 * 20))
        };
        let lead_at = (signup - before_signup).max(start);
        let word = pick(&mut self.rng, words::COMPANY_WORDS);
        let kind = pick(&mut self.rng, words::COMPANY_KINDS);
        let company = format!("{word} {kind} {}", country.legal_suffix);
        let domain = format!(
            "{}{}.{}",
            word.to_lowercase(),
            kind.to_lowercase(),
            country.tld
        );
        let industry = pick(&mut self.rng, words::INDUSTRIES);
        let employees = pareto(&mut self.rng, 1.1, 2.0).min(5000.0) as u32;
        let external_id = stripe_id(&mut self.rng, "cus_", 14);
        let engagement: f64 = self.rng.r#gen();
        // Team sizes follow a power law: most accounts are one person.
        let size = (pareto(&mut self.rng, 1.5, 1.0) as u32).clamp(1, 40);
        let trial = self.rng.gen_bool(0.88);
        let tier = self.first_tier(size);
        let annual = self.rng.gen_bool(match tier {
            Tier::Starter => 0.15,
            Tier::Growth => 0.25,
            Tier::Scale => 0.35,
        });
        let convert_chance =
            (0.15 + 0.5 * engagement + 0.025 * f64::from(size.min(5) - 1)).min(0.95);
        let converts = !trial || self.rng.gen_bool(convert_chance);
        let boost = if converts { 1.0 } else { 0.75 };

        let mut members = self.team(size, &domain, signup, boost);
        let joined: Vec<DateTime<Utc>> = members.iter().map(|m| m.joined).collect();

        let first_subscription = stripe_id(&mut self.rng, "sub_", 14);
        let mut windows = Vec::new();
        if trial {
            self.plans.push((signup, "trial"));
            let trial_end = signup + Duration::days(TRIAL_DAYS);
            let subscription = Subscription {
                id: first_subscription.clone(),
                plan: Plan {
                    tier,
                    annual: false,
                },
                seats: tier.seats(1),
                team: 1,
                discounted_periods: 0,
            };
            let mut line = self.line(&subscription, 0, (signup, trial_end), 1.0, country);
            line.amount_in_cents = 0;
            line.discount_amount_in_cents = 0;
            line.tax_amount_in_cents = 0;
            line.description = Some(format!("Free trial of {}", tier.name()));
            self.invoice(signup, country.currency, vec![line]);
            windows.push((signup, Some(trial_end)));
        }
        if converts {
            let paid_from = if !trial {
                signup + Duration::minutes(self.rng.gen_range(10..2 * 24 * 60))
            } else if self.rng.gen_bool(0.25) {
                signup + Duration::hours(self.rng.gen_range(48..TRIAL_DAYS * 24))
            } else {
                signup + Duration::days(TRIAL_DAYS)
            };
            let subscription = Subscription {
                id: first_subscription,
                plan: Plan { tier, annual },
                seats: 1,
                team: 1,
                discounted_periods: if !annual && self.rng.gen_bool(0.15) {
                    3
                } else {
                    0
                },
            };
            self.stints(
                paid_from,
                subscription,
                country,
                engagement,
                &joined,
                &mut windows,
            );
        }
        let windows = merge_windows(windows);

        // Teammates join only while the account uses the product, and
        // nobody does an onboarding step after it stopped.
        let in_window = |at: DateTime<Utc>| {
            windows
                .iter()
                .any(|(s, e)| *s <= at && e.is_none_or(|e| at < e))
        };
        let mut kept = vec![true];
        kept.extend(
            members[1..]
                .iter()
                .map(|m| m.joined <= end && in_window(m.joined)),
        );
        let mut kept = kept.into_iter();
        members.retain(|_| kept.next().unwrap_or(false));
        let limit = windows
            .last()
            .and_then(|(_, e)| *e)
            .map_or(end, |e| e.min(end));
        for member in &mut members {
            let mut reached = true;
            for step in &mut member.onboarding {
                reached = reached && step.is_some_and(|at| at <= limit);
                if !reached {
                    *step = None;
                }
            }
        }

        let owner = &members[0];
        let attributes = json!({
            "industry": industry,
            "employees": employees,
            "seats": members.len(),
            "acquisition": if trial { "self_serve_trial" } else { "sales_assisted" },
        });
        let customer = CustomerInput {
            external_id: external_id.clone(),
            name: Some(format!("{} {}", owner.first_name, owner.last_name)),
            email: Some(owner.email.clone()),
            company: Some(company.clone()),
            country: Some(country.code.into()),
            user_id: Some(owner.user_id.clone()),
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            lead_created_at: Some(lead_at),
            free_trial_started_at: trial.then_some(signup),
        };
        for invoice in &mut self.invoices {
            invoice.customer_external_id.clone_from(&external_id);
        }
        let ticket_rate = pareto(&mut self.rng, 2.5, 0.6).min(4.0);
        Story {
            account: Account {
                external_id,
                company,
                domain,
                industry,
                employees,
                country,
                lead_at,
                signup,
                trial,
                members,
                windows,
                plans: self.plans,
                ticket_rate,
            },
            customer,
            invoices: self.invoices,
        }
    }

    /// The owner, whose third onboarding step invites the first teammate,
    /// then `size - 1` teammates: most invited in the following days, the
    /// rest over the following months; each joins a little after their
    /// invitation. Teammates are in the order they join.
    fn team(&mut self, size: u32, domain: &str, signup: DateTime<Utc>, boost: f64) -> Vec<Member> {
        let mut members = vec![self.member(domain, signup, None)];
        members[0].activity = self.rng.gen_range(0.45..0.9);
        let forced = if size > 1 { 3 } else { 0 };
        members[0].onboarding = onboarding(&mut self.rng, signup, boost, forced);
        let first_invite = members[0].onboarding[2].unwrap_or(signup);
        for teammate in 1..size {
            let invited = if teammate == 1 {
                first_invite
            } else if self.rng.gen_bool(0.7) {
                first_invite + Duration::seconds(self.rng.gen_range(60..5 * 86_400))
            } else {
                (signup + Duration::days(self.rng.gen_range(15..300)))
                    .max(first_invite + Duration::minutes(1))
            };
            let joined = invited + lognormal_duration(&mut self.rng, 2.0 * 3600.0, 1.2);
            let mut member = self.member(domain, joined, Some(invited));
            member.onboarding = onboarding(&mut self.rng, joined, boost, 0);
            members.push(member);
        }
        members[1..].sort_by_key(|m| m.joined);
        members
    }

    /// A sign-up during the working day of `country`, on `day` (UTC), no
    /// later than ten minutes before the end.
    fn signup_time(&mut self, day: NaiveDate, country: &Country) -> DateTime<Utc> {
        let local_minute = working_minute(&mut self.rng);
        let minute = (local_minute - country.utc_offset_minutes).rem_euclid(24 * 60);
        let midnight = day.and_time(chrono::NaiveTime::MIN).and_utc();
        let at =
            midnight + Duration::minutes(minute) + Duration::seconds(self.rng.gen_range(0..60));
        let latest = self.company.shape.end - Duration::minutes(10);
        if at <= latest {
            at
        } else {
            let room = (latest - midnight).num_seconds().max(1);
            midnight + Duration::seconds(self.rng.gen_range(0..room))
        }
    }

    fn member(
        &mut self,
        domain: &str,
        joined: DateTime<Utc>,
        invited_at: Option<DateTime<Utc>>,
    ) -> Member {
        let first_name = pick(&mut self.rng, words::FIRST_NAMES);
        let last_name = pick(&mut self.rng, words::LAST_NAMES);
        let local_part: String = format!("{first_name}.{last_name}")
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        Member {
            user_id: stripe_id(&mut self.rng, "usr_", 16),
            anonymous_id: uuid::Builder::from_random_bytes(self.rng.r#gen())
                .into_uuid()
                .to_string(),
            first_name,
            last_name,
            email: format!("{local_part}@{domain}"),
            title: pick(&mut self.rng, words::JOB_TITLES),
            joined,
            invited_at,
            onboarding: [None; 4],
            activity: self.rng.gen_range(0.1..0.75),
            intensity: pareto(&mut self.rng, 2.0, 0.5).min(12.0),
            features: 2 + (pareto(&mut self.rng, 1.3, 1.0) as usize).min(words::FEATURES.len() - 2),
            browser: self.rng.gen_range(0..words::WEB_USER_AGENTS.len()),
        }
    }

    fn first_tier(&mut self, size: u32) -> Tier {
        let (starter, growth) = match size {
            8.. => (0.1, 0.3),
            3.. => (0.35, 0.5),
            _ => (0.68, 0.27),
        };
        let draw: f64 = self.rng.r#gen();
        if draw < starter {
            Tier::Starter
        } else if draw < starter + growth {
            Tier::Growth
        } else {
            Tier::Scale
        }
    }

    /// Paid stints from `from`: each runs until it churns; some churned
    /// customers come back a few months later on a new subscription.
    fn stints(
        &mut self,
        mut from: DateTime<Utc>,
        mut subscription: Subscription,
        country: &'static Country,
        engagement: f64,
        joined: &[DateTime<Utc>],
        windows: &mut Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    ) {
        let end = self.company.shape.end;
        let members_at = |at: DateTime<Utc>| joined.iter().filter(|j| **j <= at).count() as u32;
        let mut first_stint = true;
        loop {
            subscription.team = members_at(from);
            subscription.seats = subscription.plan.tier.seats(subscription.team);
            let stint = StintContext {
                from,
                country,
                engagement,
                first_stint,
                members_at: &members_at,
            };
            let churned = self.stint(&stint, &mut subscription);
            windows.push((from, churned));
            let Some(churned) = churned else { return };
            self.plans.push((churned, "cancelled"));
            if !self.rng.gen_bool(0.15) {
                return;
            }
            from = churned + Duration::days(self.rng.gen_range(45..200));
            if from > end {
                return;
            }
            let tier = if self.rng.gen_bool(0.7) {
                subscription.plan.tier
            } else {
                subscription.plan.tier.down().unwrap_or(Tier::Starter)
            };
            subscription = Subscription {
                id: stripe_id(&mut self.rng, "sub_", 14),
                plan: Plan {
                    tier,
                    annual: false,
                },
                seats: 1,
                team: 1,
                discounted_periods: 0,
            };
            first_stint = false;
        }
    }

    /// One stint of `subscription`: an invoice per period, mid-period
    /// upgrades and seats, and at each renewal churn, a downgrade or fewer
    /// seats. Returns when its revenue ended, or `None` if it runs past the end.
    fn stint(
        &mut self,
        stint: &StintContext<'_>,
        subscription: &mut Subscription,
    ) -> Option<DateTime<Utc>> {
        let end = self.company.shape.end;
        let country = stint.country;
        let members_at = stint.members_at;
        let mut months = 0_u32;
        loop {
            let plan = subscription.plan;
            // Renewals fall on the anchor's day of the month, at most the
            // 28th, so that every later period is a whole calendar month.
            let anchor =
                stint.from - Duration::days(i64::from(stint.from.day().saturating_sub(28)));
            let start = if months == 0 {
                stint.from
            } else {
                anchor.checked_add_months(Months::new(months))?
            };
            let period_end = anchor.checked_add_months(Months::new(months + plan.months()))?;
            if start > end {
                return None;
            }
            if self
                .plans
                .last()
                .is_none_or(|(_, label)| *label != plan.tier.label())
            {
                self.plans.push((start, plan.tier.label()));
            }
            let discount = if subscription.discounted_periods > 0 {
                subscription.discounted_periods -= 1;
                20
            } else {
                0
            };
            let mut lines =
                vec![self.line(subscription, discount, (start, period_end), 1.0, country)];
            if months == 0 && stint.first_stint && self.rng.gen_bool(0.06) {
                lines.push(self.one_time(country, "Onboarding package", 49_900));
            } else if plan.tier != Tier::Starter
                && self.rng.gen_bool(0.015 * f64::from(plan.months()))
            {
                lines.push(self.one_time(country, "Additional data volume (overage)", 9_900));
            }
            self.invoice(start, country.currency, lines);
            self.mid_period_change(stint, subscription, discount, (start, period_end));

            if period_end > end {
                return None;
            }
            // At the period's end: churn, a downgrade, seats, or a plain renewal.
            let tenure = match months {
                0..3 => 1.5,
                3..6 => 1.15,
                _ => 1.0,
            };
            let monthly = (subscription.plan.tier.base_churn()
                * CHURN_SEASON[period_end.month0() as usize]
                * tenure
                * (1.4 - 0.8 * stint.engagement))
                .min(0.5);
            let churn = if subscription.plan.annual {
                (1.0 - (1.0 - monthly).powi(12)) * 0.8
            } else {
                monthly
            };
            if self.rng.gen_bool(churn) {
                return Some(period_end);
            }
            let downgrade = 0.015 * f64::from(subscription.plan.months()).min(6.0);
            if self.rng.gen_bool(downgrade)
                && let Some(lower) = subscription.plan.tier.down()
            {
                subscription.plan.tier = lower;
            }
            let team = members_at(period_end);
            subscription.seats = match subscription.plan.tier {
                Tier::Scale => {
                    let mut seats = subscription.seats + team.saturating_sub(subscription.team);
                    if self.rng.gen_bool(0.04) {
                        // Someone left: their seat is dropped at renewal.
                        seats = seats.saturating_sub(1).max(MIN_SCALE_SEATS);
                    }
                    seats.max(MIN_SCALE_SEATS)
                }
                Tier::Starter | Tier::Growth => 1,
            };
            subscription.team = team;
            months += subscription.plan.months();
        }
    }

    /// An upgrade during `period`, or seats for teammates who joined: a
    /// prorated line for the rest of the period and a credit for the unused
    /// time of the old one, as Stripe invoices them.
    fn mid_period_change(
        &mut self,
        stint: &StintContext<'_>,
        subscription: &mut Subscription,
        discount: i64,
        period: (DateTime<Utc>, DateTime<Utc>),
    ) {
        let (start, period_end) = period;
        let plan = subscription.plan;
        let members_at = stint.members_at;
        let upgrade_chance = match (plan.tier, plan.annual) {
            (Tier::Scale, _) => 0.0,
            (_, false) => 0.012 + 0.03 * stint.engagement,
            (_, true) => 0.2,
        };
        let length = seconds(period_end - start);
        let change = if self.rng.gen_bool(upgrade_chance) {
            let at = start + Duration::seconds((length * self.rng.gen_range(0.1..0.9)) as i64);
            plan.tier.up().map(|tier| {
                let team = members_at(at);
                (at, tier, tier.seats(team), team)
            })
        } else if plan.tier == Tier::Scale {
            first_join_after(members_at, start, period_end, subscription.team).map(|at| {
                let team = members_at(at);
                (
                    at,
                    Tier::Scale,
                    subscription.seats + team - subscription.team,
                    team,
                )
            })
        } else {
            None
        };
        let Some((wanted, tier, seats, team)) = change else {
            return;
        };
        // Prorated against the interval ending where the period ends, as
        // revenue normalises it, for a remaining time that makes the
        // prorated price whole: the upgrade line's MRR is then exactly the
        // new plan's, not a cent off, and its renewal no movement at all.
        let Some(full_start) = period_end.checked_sub_months(Months::new(plan.months())) else {
            return;
        };
        let full = (period_end - full_start).num_seconds();
        let new_plan = Plan {
            tier,
            annual: plan.annual,
        };
        let list = self.list_price(new_plan, seats, stint.country);
        let Some(remaining) =
            whole_proration(list, discount, full, (period_end - wanted).num_seconds())
        else {
            return;
        };
        let at = period_end - Duration::seconds(remaining);
        if at <= start || at > self.company.shape.end {
            return;
        }
        let fraction = remaining as f64 / full as f64;
        let day = at.format("%-d %b %Y");
        let old = self.line(
            subscription,
            discount,
            (at, period_end),
            fraction,
            stint.country,
        );
        let credit = LineInput {
            amount_in_cents: -old.amount_in_cents,
            discount_amount_in_cents: 0,
            tax_amount_in_cents: 0,
            description: Some(format!(
                "Unused time on {} × {} after {day}",
                subscription.seats,
                plan.tier.name()
            )),
            ..old
        };
        subscription.plan.tier = tier;
        subscription.seats = seats;
        subscription.team = team;
        let mut new = self.line(
            subscription,
            discount,
            (at, period_end),
            fraction,
            stint.country,
        );
        new.description = Some(format!(
            "Remaining time on {seats} × {} after {day}",
            tier.name()
        ));
        self.invoice(at, stint.country.currency, vec![credit, new]);
        if tier != plan.tier {
            self.plans.push((at, tier.label()));
        }
    }

    /// A subscription line for `fraction` of a period of `subscription`,
    /// after a discount of `discount_percent`, with the country's VAT.
    fn line(
        &self,
        subscription: &Subscription,
        discount_percent: i64,
        period: (DateTime<Utc>, DateTime<Utc>),
        fraction: f64,
        country: &Country,
    ) -> LineInput {
        let plan = subscription.plan;
        let full = self.list_price(plan, subscription.seats, country);
        let list = (full as f64 * fraction).round() as i64;
        let discount = list * discount_percent / 100;
        let net = list - discount;
        let tax = vat(net, country);
        LineInput {
            external_id: None,
            kind: LineKind::Subscription,
            subscription_external_id: Some(subscription.id.clone()),
            plan_external_id: Some(plan.external_id()),
            service_period_start: Some(period.0),
            service_period_end: Some(period.1),
            quantity: subscription.seats as i32,
            amount_in_cents: net + tax,
            discount_amount_in_cents: discount,
            tax_amount_in_cents: tax,
            prorated: fraction < 1.0,
            description: (discount_percent > 0)
                .then(|| "WELCOME20: 20 % off for 3 months".to_owned()),
        }
    }

    /// The list price of `seats` of `plan` for one interval (a year is ten
    /// months' price), in minor units of the country's currency.
    fn list_price(&self, plan: Plan, seats: u32, country: &Country) -> i64 {
        let monthly = self.company.prices[plan.tier as usize][country.currency.index()];
        let per_interval = if plan.annual { monthly * 10 } else { monthly };
        per_interval * i64::from(seats)
    }

    /// A one-off charge of about `usd_minor`, in the customer's currency.
    fn one_time(&self, country: &Country, description: &str, usd_minor: i64) -> LineInput {
        let net = nice_price(match country.currency {
            Currency::Usd => usd_minor,
            Currency::Eur => usd_minor * 92 / 100,
            Currency::Gbp => usd_minor * 79 / 100,
        });
        let tax = vat(net, country);
        LineInput {
            external_id: None,
            kind: LineKind::OneTime,
            subscription_external_id: None,
            plan_external_id: None,
            service_period_start: None,
            service_period_end: None,
            quantity: 1,
            amount_in_cents: net + tax,
            discount_amount_in_cents: 0,
            tax_amount_in_cents: tax,
            prorated: false,
            description: Some(description.into()),
        }
    }

    fn invoice(&mut self, date: DateTime<Utc>, currency: Currency, line_items: Vec<LineInput>) {
        let external_id = stripe_id(&mut self.rng, "in_", 16);
        self.invoices.push(InvoiceInput {
            external_id,
            customer_external_id: String::new(),
            date,
            currency: currency.code().into(),
            line_items,
        });
    }
}

/// What a stint's periods share.
struct StintContext<'a> {
    from: DateTime<Utc>,
    country: &'static Country,
    engagement: f64,
    first_stint: bool,
    /// Members of the account who had joined by an instant.
    members_at: &'a dyn Fn(DateTime<Utc>) -> u32,
}

/// The VAT on `net` in `country`, rounded to the minor unit.
fn vat(net: i64, country: &Country) -> i64 {
    (net * country.vat_basis_points + 5_000) / 10_000
}

/// The longest remaining time, up to `wanted` seconds of a `full`-second
/// interval, for which the prorated `list` price is a whole number of minor
/// units, divisible by 100 / `discount_percent` so that the discount is too.
fn whole_proration(list: i64, discount_percent: i64, full: i64, wanted: i64) -> Option<i64> {
    let whole = if discount_percent > 0 {
        100 / gcd(100, discount_percent)
    } else {
        1
    };
    let modulus = full * whole;
    let step = modulus / gcd(list, modulus).max(1);
    let remaining = wanted / step * step;
    (remaining > 0 && remaining < full).then_some(remaining)
}

fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// When a teammate first took the member count above `seats` during
/// `[start, end)`, by bisection over `members_at`.
fn first_join_after(
    members_at: &dyn Fn(DateTime<Utc>) -> u32,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    seats: u32,
) -> Option<DateTime<Utc>> {
    if members_at(end) <= seats {
        return None;
    }
    let (mut low, mut high) = (start, end);
    while high - low > Duration::seconds(1) {
        let middle = low + (high - low) / 2;
        if members_at(middle) > seats {
            high = middle;
        } else {
            low = middle;
        }
    }
    Some(high + Duration::minutes(5))
}

/// Merges touching or overlapping activity windows (a trial and the paid
/// stint that converts it).
fn merge_windows(
    mut windows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    windows.sort_by_key(|(start, _)| *start);
    let mut merged: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::with_capacity(windows.len());
    for (start, end) in windows {
        match merged.last_mut() {
            Some((_, last_end)) if last_end.is_none_or(|e| start <= e) => {
                *last_end = match (*last_end, end) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// When a new user does each onboarding step: each with a lower chance
/// than the one before, minutes to days apart. `forced` steps always happen.
fn onboarding(
    rng: &mut DemoRng,
    joined: DateTime<Utc>,
    boost: f64,
    forced: usize,
) -> [Option<DateTime<Utc>>; 4] {
    const CHANCE: [f64; 4] = [0.86, 0.76, 0.62, 0.55];
    const MEDIAN_GAP_SECONDS: [f64; 4] = [25.0 * 60.0, 3.0 * 3600.0, 8.0 * 3600.0, 30.0 * 3600.0];
    let mut steps = [None; 4];
    let mut at = joined;
    for step in 0..4 {
        if step >= forced && !rng.gen_bool((CHANCE[step] * boost).min(0.98)) {
            break;
        }
        at += lognormal_duration(rng, MEDIAN_GAP_SECONDS[step], 1.0);
        steps[step] = Some(at);
    }
    steps
}
