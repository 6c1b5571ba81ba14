//! A seeded generator of one believable SaaS company: its plans, customers,
//! invoices, exchange rates, and the product events of its users.
//!
//! Pure: nothing here touches the database or the clock, and the same seed
//! and [`CompanyShape`] give byte-identical output. Each customer's story is
//! drawn from a random stream of its own (seeded from the company's seed and
//! the customer's index), so a customer's invoices can be produced again on
//! demand ([`Company::billing`]) instead of being held for the whole load.
//!
//! The story of a customer: an anonymous visit to the marketing site, a
//! sign-up that starts a 14-day trial on a plan (most customers) or a direct
//! purchase; about 45 % of trials convert. Paid subscriptions renew monthly
//! or yearly, upgrade mid-period (prorated, with a Stripe-style credit for
//! the unused time), add seats as teammates join (the Scale plan is priced
//! per seat), downgrade at renewal, sometimes start with 20 % off for three
//! months, and churn with a monthly seasonality (more in January and in the
//! summer, more in the first months); some churned customers come back a
//! few months later. EU customers pay VAT. The product events
//! ([`Company::events`]) follow the same story.

mod events;
mod json;
mod render;
mod rng;
mod story;
mod words;

pub use render::Events;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use northstar_db::billing::{
    customers::CustomerInput, exchange_rates::ExchangeRate, invoices::InvoiceInput,
    plans::PlanInput,
};
use rand::{Rng, SeedableRng, seq::SliceRandom};

use rng::{DemoRng, splitmix};
use story::{Simulation, Story};
use words::{COUNTRIES, Country, Currency};

/// The track event every user sends when they sign up.
pub const SIGNUP_EVENT: &str = "Signed Up";

/// The onboarding steps, as track events, in the order the product asks for them.
pub const ONBOARDING_STEPS: [&str; 4] = [
    "Project Created",
    "Data Source Connected",
    "Teammate Invited",
    "Dashboard Shared",
];

/// Where the company is based: its customers' countries, the currency it
/// reports revenue in and its time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Market {
    /// Mostly North American customers; reports in USD from New York.
    NorthAmerica,
    /// Mostly European customers; reports in EUR from Berlin.
    Europe,
}

impl Market {
    /// The tenant's reporting currency (ISO 4217).
    pub fn reporting_currency(self) -> &'static str {
        match self {
            Market::NorthAmerica => "USD",
            Market::Europe => "EUR",
        }
    }

    /// The tenant's time zone (IANA).
    pub fn time_zone(self) -> &'static str {
        match self {
            Market::NorthAmerica => "America/New_York",
            Market::Europe => "Europe/Berlin",
        }
    }
}

/// What company to generate: its size, its span and where it is based.
#[derive(Debug, Clone)]
pub struct CompanyShape {
    /// Customers who sign up over the span (each one a billing customer,
    /// trial or paying).
    pub customers: u32,
    /// Days of history: from midnight UTC `days - 1` days before `end`'s
    /// date up to `end`.
    pub days: u32,
    /// When the history ends (`northstar demo` passes the current time, so
    /// that the demo opens on today's data); nothing happens after it.
    pub end: DateTime<Utc>,
    /// Where the company is based.
    pub market: Market,
    /// Mean product events a user sends on a day they are active: scales
    /// the event stream without changing the billing.
    pub events_per_user_day: f64,
}

impl CompanyShape {
    /// Default for [`CompanyShape::events_per_user_day`].
    pub const DEFAULT_EVENTS_PER_USER_DAY: f64 = 3.0;

    /// The first instant of the history.
    pub fn start(&self) -> DateTime<Utc> {
        let first = self.end.date_naive() - Duration::days(i64::from(self.days.max(1)) - 1);
        first.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    /// The UTC days of the history, first and last.
    fn dates(&self) -> (NaiveDate, NaiveDate) {
        (self.start().date_naive(), self.end.date_naive())
    }
}

/// A product tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Starter,
    Growth,
    Scale,
}

impl Tier {
    const ALL: [Tier; 3] = [Tier::Starter, Tier::Growth, Tier::Scale];

    fn name(self) -> &'static str {
        match self {
            Tier::Starter => "Starter",
            Tier::Growth => "Growth",
            Tier::Scale => "Scale",
        }
    }

    /// The label of the plan in users' and accounts' traits.
    fn label(self) -> &'static str {
        match self {
            Tier::Starter => "starter",
            Tier::Growth => "growth",
            Tier::Scale => "scale",
        }
    }

    fn up(self) -> Option<Tier> {
        match self {
            Tier::Starter => Some(Tier::Growth),
            Tier::Growth => Some(Tier::Scale),
            Tier::Scale => None,
        }
    }

    fn down(self) -> Option<Tier> {
        match self {
            Tier::Starter => None,
            Tier::Growth => Some(Tier::Starter),
            Tier::Scale => Some(Tier::Growth),
        }
    }

    /// Monthly churn before seasonality, tenure and engagement.
    fn base_churn(self) -> f64 {
        match self {
            Tier::Starter => 0.042,
            Tier::Growth => 0.028,
            Tier::Scale => 0.018,
        }
    }

    /// Seats billed at least on a per-seat plan.
    fn seats(self, members: u32) -> u32 {
        match self {
            Tier::Scale => members.max(MIN_SCALE_SEATS),
            Tier::Starter | Tier::Growth => 1,
        }
    }
}

/// Seats billed at least on the Scale plan.
const MIN_SCALE_SEATS: u32 = 3;

/// A plan: a tier billed monthly or yearly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    tier: Tier,
    annual: bool,
}

impl Plan {
    fn external_id(self) -> String {
        let interval = if self.annual { "annual" } else { "monthly" };
        format!("{}_{interval}", self.tier.label())
    }

    fn months(self) -> u32 {
        if self.annual { 12 } else { 1 }
    }
}

/// Monthly churn multiplier by calendar month (January first): budgets are
/// cut in January, and summer holidays leave tools unused.
const CHURN_SEASON: [f64; 12] = [
    1.6, 1.1, 0.9, 0.85, 0.9, 1.0, 1.3, 1.4, 0.9, 0.8, 0.85, 1.15,
];

/// List prices in minor units per month (per seat on Scale), by tier and
/// currency (USD, EUR, GBP), before the company's price factor.
const BASE_PRICES: [[i64; 3]; 3] = [
    [4900, 4500, 3900],
    [14900, 13900, 11900],
    [2900, 2700, 2300],
];

/// Trial length.
const TRIAL_DAYS: i64 = 14;

/// One customer's story, as the event stream needs it.
struct Account {
    external_id: String,
    company: String,
    domain: String,
    industry: &'static str,
    employees: u32,
    country: &'static Country,
    /// When the owner first visited the marketing site.
    lead_at: DateTime<Utc>,
    /// The owner's sign-up: the trial's start (or the direct purchase's eve).
    signup: DateTime<Utc>,
    trial: bool,
    /// The owner first, then teammates by join time.
    members: Vec<Member>,
    /// When the account uses the product: trial and paid stints, merged,
    /// in order; `None`: still a customer at the end.
    windows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// The plan label from each instant on (`trial`, `starter`, …, `cancelled`).
    plans: Vec<(DateTime<Utc>, &'static str)>,
    /// Support tickets opened per month while active, relative to the norm.
    ticket_rate: f64,
}

/// A user of a customer's account.
struct Member {
    user_id: String,
    anonymous_id: String,
    first_name: &'static str,
    last_name: &'static str,
    email: String,
    title: &'static str,
    joined: DateTime<Utc>,
    /// Teammates: when the owner invited them.
    invited_at: Option<DateTime<Utc>>,
    /// When each onboarding step was first done, while the steps before it were.
    onboarding: [Option<DateTime<Utc>>; 4],
    /// Chance of using the product on a working day, when the account is active.
    activity: f64,
    /// Events per active day relative to the company's mean (power law, mean ≈ 1).
    intensity: f64,
    /// How many of the features (most used first) the user ever touches.
    features: usize,
    /// Index into the browser list.
    browser: usize,
}

impl Account {
    /// The plan label in force at `at`.
    fn plan_at(&self, at: DateTime<Utc>) -> &'static str {
        self.plans
            .iter()
            .take_while(|(from, _)| *from <= at)
            .last()
            .map_or("trial", |(_, label)| label)
    }

    /// How much the account uses the product at `at`, from 0 to 1: fully
    /// while a customer, fading in the weeks before a churn, and decaying to
    /// nothing within three weeks after it.
    fn activity_at(&self, at: DateTime<Utc>) -> f64 {
        let mut level = 0.0;
        for (start, end) in &self.windows {
            if at < *start {
                break;
            }
            level = match end {
                None => 1.0,
                Some(end) if at < *end => {
                    let ramp = ((*end - *start) / 2).min(Duration::days(30));
                    let left = *end - at;
                    if left < ramp {
                        0.35 + 0.65 * seconds(left) / seconds(ramp)
                    } else {
                        1.0
                    }
                }
                Some(end) => {
                    let after = seconds(at - *end) / 86_400.0;
                    if after < 21.0 {
                        0.35 * 0.5_f64.powf(after / 5.0)
                    } else {
                        0.0
                    }
                }
            };
        }
        level
    }

    /// Whether the account is a trialist or a paying customer at `at`.
    fn is_customer_at(&self, at: DateTime<Utc>) -> bool {
        self.windows
            .iter()
            .any(|(start, end)| *start <= at && end.is_none_or(|end| at < end))
    }
}

fn seconds(duration: Duration) -> f64 {
    duration.num_milliseconds() as f64 / 1000.0
}

/// One customer's billing: the customer record and its invoices.
#[derive(Debug, Clone)]
pub struct CustomerBilling {
    /// The customer.
    pub customer: CustomerInput,
    /// Its invoices, oldest first.
    pub invoices: Vec<InvoiceInput>,
}

/// A generated company. Generating one decides every customer's story;
/// billing and events are produced from it on demand.
pub struct Company {
    shape: CompanyShape,
    seed: u64,
    product: &'static str,
    /// Monthly list prices by tier and currency, in minor units.
    prices: [[i64; 3]; 3],
    accounts: Vec<Account>,
}

/// Random streams of a company, told apart when seeding.
#[derive(Clone, Copy)]
enum Stream {
    Company = 1,
    Customer = 2,
    ExchangeRates = 3,
    EventPlan = 4,
    EventRender = 5,
    MessageIds = 6,
}

/// A seed for stream `stream`, item `index` of the company seeded with `seed`.
fn sub_seed(seed: u64, stream: Stream, index: u64) -> u64 {
    splitmix(splitmix(seed ^ (stream as u64).wrapping_mul(0xa076_1d64_78bd_642f)) ^ index)
}

impl Company {
    /// Generates the company `shape` describes from `seed`.
    pub fn generate(shape: &CompanyShape, seed: u64) -> Company {
        let mut rng = DemoRng::seed_from_u64(sub_seed(seed, Stream::Company, 0));
        let product = *words::PRODUCTS.choose(&mut rng).unwrap_or(&"Beacon");
        let factor = *[80, 100, 100, 120, 150].choose(&mut rng).unwrap_or(&100);
        let prices = BASE_PRICES.map(|row| row.map(|minor| nice_price(minor * factor / 100)));
        let signup_days = signup_days(&mut rng, shape);
        let mut company = Company {
            shape: shape.clone(),
            seed,
            product,
            prices,
            accounts: Vec::with_capacity(signup_days.len()),
        };
        for (index, day) in signup_days.into_iter().enumerate() {
            let story = company.story(index, day);
            company.accounts.push(story.account);
        }
        company
    }

    /// The shape the company was generated with.
    pub fn shape(&self) -> &CompanyShape {
        &self.shape
    }

    /// The product the company sells (a name for the demo's URLs and titles).
    pub fn product(&self) -> &'static str {
        self.product
    }

    /// The number of billing customers.
    pub fn customer_count(&self) -> usize {
        self.accounts.len()
    }

    /// The plans: Starter, Growth and Scale (per seat), monthly and annual.
    pub fn plans(&self) -> Vec<PlanInput> {
        Tier::ALL
            .into_iter()
            .flat_map(|tier| {
                [false, true].map(|annual| {
                    let plan = Plan { tier, annual };
                    PlanInput {
                        external_id: plan.external_id(),
                        name: format!(
                            "{} ({})",
                            tier.name(),
                            if annual { "annual" } else { "monthly" }
                        ),
                        interval_unit: if annual { "year" } else { "month" }.into(),
                        interval_count: 1,
                    }
                })
            })
            .collect()
    }

    /// Customer `index` (in sign-up order) and its invoices.
    pub fn billing(&self, index: usize) -> Option<CustomerBilling> {
        let day = self.accounts.get(index)?.signup.date_naive();
        let story = self.story(index, day);
        Some(CustomerBilling {
            customer: story.customer,
            invoices: story.invoices,
        })
    }

    /// Daily rates of the currencies invoices are in, into the market's
    /// reporting currency, over the history: a random walk around
    /// EUR 1.08 and GBP 1.27 US dollars.
    pub fn exchange_rates(&self) -> Vec<ExchangeRate> {
        let mut rng = DemoRng::seed_from_u64(sub_seed(self.seed, Stream::ExchangeRates, 0));
        let reporting = self.shape.market.reporting_currency();
        let (first, last) = self.shape.dates();
        let (mut eur, mut gbp) = (1.08_f64.ln(), 1.27_f64.ln());
        let mut rates = Vec::new();
        for day in first.iter_days().take_while(|day| *day <= last) {
            // Mean-reverting daily moves of about 0.4 %.
            eur += 0.02 * (1.08_f64.ln() - eur) + rng.gen_range(-0.007..0.007);
            gbp += 0.02 * (1.27_f64.ln() - gbp) + rng.gen_range(-0.007..0.007);
            let in_usd = |currency: Currency| match currency {
                Currency::Usd => 1.0,
                Currency::Eur => eur.exp(),
                Currency::Gbp => gbp.exp(),
            };
            let base = Currency::ALL
                .into_iter()
                .find(|c| c.code() == reporting)
                .map_or(1.0, in_usd);
            for currency in Currency::ALL {
                if currency.code() != reporting {
                    rates.push(ExchangeRate {
                        currency: currency.code().into(),
                        day,
                        rate: (in_usd(currency) / base * 1e6).round() / 1e6,
                    });
                }
            }
        }
        rates
    }

    /// The product events, in time order, generated as they are consumed.
    pub fn events(&self, tenant_id: uuid::Uuid) -> Events<'_> {
        Events::new(self, tenant_id)
    }

    /// How many events [`Company::events`] yields, without rendering them.
    pub fn event_count(&self) -> u64 {
        events::Planner::new(self).count() as u64
    }

    /// Customer `index`'s story, drawn from its own random stream.
    fn story(&self, index: usize, signup_day: NaiveDate) -> Story {
        let rng = DemoRng::seed_from_u64(sub_seed(self.seed, Stream::Customer, index as u64));
        Simulation::new(self, rng).run(signup_day)
    }
}

/// The nearest price ending in 9 whole units (at least 9).
fn nice_price(minor: i64) -> i64 {
    let units = (minor as f64 / 100.0 + 1.0) / 10.0;
    ((units.round() as i64 * 10 - 1).max(9)) * 100
}

/// The sign-up day of every customer, in order, drawn with
/// [`signup_density`].
fn signup_days(rng: &mut DemoRng, shape: &CompanyShape) -> Vec<NaiveDate> {
    let (first, last) = shape.dates();
    let span = (last - first).num_days() + 1;
    let mut days = Vec::with_capacity(shape.customers as usize);
    while days.len() < shape.customers as usize {
        let day = first + Duration::days(rng.gen_range(0..span));
        if rng.r#gen::<f64>() < signup_density(shape, day) {
            days.push(day);
        }
    }
    days.sort_unstable();
    days
}

/// How likely sign-ups (and visits to the marketing site) are on `day`,
/// from 0 to 1: growing about 3.7 times over the history as the company
/// grows, lower at weekends, in August and in December.
fn signup_density(shape: &CompanyShape, day: NaiveDate) -> f64 {
    const GROWTH: f64 = 1.3;
    let (first, last) = shape.dates();
    let span = ((last - first).num_days() + 1) as f64;
    let elapsed = (day - first).num_days() as f64 / span;
    let weekday = match day.weekday() {
        chrono::Weekday::Sat => 0.45,
        chrono::Weekday::Sun => 0.5,
        _ => 1.0,
    };
    let month = match day.month() {
        8 => 0.85,
        12 => 0.8,
        _ => 1.0,
    };
    (GROWTH * (elapsed - 1.0)).exp() * weekday * month
}

/// A working-hours minute of a local day: mostly 8:00–19:00, peaking late morning.
fn working_minute(rng: &mut DemoRng) -> i64 {
    if rng.gen_bool(0.9) {
        let hour =
            8.0 + (rng.r#gen::<f64>() + rng.r#gen::<f64>() + rng.r#gen::<f64>()) / 3.0 * 11.0;
        (hour * 60.0) as i64
    } else {
        rng.gen_range(0..24 * 60)
    }
}

fn pick_country(rng: &mut DemoRng, market: Market) -> &'static Country {
    let weight = |c: &Country| match market {
        Market::NorthAmerica => c.weight_americas,
        Market::Europe => c.weight_europe,
    };
    COUNTRIES
        .choose_weighted(rng, weight)
        .unwrap_or(&COUNTRIES[0])
}

fn pick<T: Copy>(rng: &mut DemoRng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

/// A Pareto draw with shape `alpha` and minimum `min`: a power law.
fn pareto(rng: &mut DemoRng, alpha: f64, min: f64) -> f64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    min / u.powf(1.0 / alpha)
}

/// A log-normal duration with median `median_seconds` and spread `sigma`.
fn lognormal_duration(rng: &mut DemoRng, median_seconds: f64, sigma: f64) -> Duration {
    // The sum of three uniforms is close enough to a normal draw here.
    let normal = (rng.r#gen::<f64>() + rng.r#gen::<f64>() + rng.r#gen::<f64>() - 1.5) * 2.0;
    let seconds = median_seconds * (sigma * normal).exp();
    Duration::seconds(seconds.clamp(30.0, 30.0 * 86_400.0) as i64)
}

/// An id in Stripe's style: `prefix` and `len` base-62 characters.
fn stripe_id(rng: &mut DemoRng, prefix: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    for _ in 0..len {
        id.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
    }
    id
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use chrono::TimeZone;
    use northstar_db::{billing::invoices::LineKind, ingest::MessageType};
    use serde_json::Value;
    use uuid::Uuid;

    use super::*;

    fn shape(customers: u32, days: u32) -> CompanyShape {
        CompanyShape {
            customers,
            days,
            end: Utc
                .with_ymd_and_hms(2026, 3, 15, 15, 30, 0)
                .single()
                .expect("a time"),
            market: Market::NorthAmerica,
            events_per_user_day: CompanyShape::DEFAULT_EVENTS_PER_USER_DAY,
        }
    }

    /// Everything billing-related, as text: equal text, equal data.
    fn billing_text(company: &Company) -> String {
        let customers: Vec<CustomerBilling> = (0..company.customer_count())
            .filter_map(|i| company.billing(i))
            .collect();
        format!(
            "{:?}\n{:?}\n{:?}",
            company.plans(),
            customers,
            company.exchange_rates()
        )
    }

    fn first_events(company: &Company, n: usize) -> Vec<String> {
        company
            .events(Uuid::nil())
            .take(n)
            .map(|row| format!("{row:?}"))
            .collect()
    }

    #[test]
    fn the_same_seed_and_shape_give_the_same_company() {
        let shape = shape(80, 120);
        let (a, b) = (Company::generate(&shape, 42), Company::generate(&shape, 42));
        assert_eq!(billing_text(&a), billing_text(&b));
        assert_eq!(first_events(&a, 3_000), first_events(&b, 3_000));
        assert_eq!(a.event_count(), b.event_count());
    }

    #[test]
    fn another_seed_gives_another_company() {
        let shape = shape(80, 120);
        let (a, b) = (Company::generate(&shape, 42), Company::generate(&shape, 43));
        assert_ne!(billing_text(&a), billing_text(&b));
        assert_ne!(first_events(&a, 100), first_events(&b, 100));
    }

    #[test]
    fn invoices_are_well_formed() {
        let company = Company::generate(&shape(300, 730), 7);
        let plans: HashSet<String> = company.plans().into_iter().map(|p| p.external_id).collect();
        let end = company.shape().end;
        let mut seen = HashSet::new();
        let mut lines = 0;
        for index in 0..company.customer_count() {
            let billing = company.billing(index).expect("a customer");
            for invoice in &billing.invoices {
                assert_eq!(invoice.customer_external_id, billing.customer.external_id);
                assert!(["USD", "EUR", "GBP"].contains(&invoice.currency.as_str()));
                assert!(invoice.date <= end, "{invoice:?}");
                assert!((1..=500).contains(&invoice.line_items.len()));
                assert!(
                    seen.insert(invoice.external_id.clone()),
                    "a repeated invoice id"
                );
                for line in &invoice.line_items {
                    lines += 1;
                    assert!(line.amount_in_cents.abs() <= 100_000_000_000);
                    assert!(line.discount_amount_in_cents >= 0);
                    assert!(line.tax_amount_in_cents >= 0);
                    assert!(line.quantity >= 1);
                    if line.amount_in_cents > 0 {
                        assert!(line.tax_amount_in_cents <= line.amount_in_cents);
                    }
                    if line.kind == LineKind::Subscription {
                        let (Some(start), Some(period_end)) =
                            (line.service_period_start, line.service_period_end)
                        else {
                            panic!("a subscription line without a period: {line:?}");
                        };
                        assert!(period_end > start, "{line:?}");
                        assert!(period_end <= start + Duration::days(366), "{line:?}");
                        assert!(line.subscription_external_id.is_some());
                        let plan = line.plan_external_id.as_deref().unwrap_or_default();
                        assert!(plans.contains(plan), "{plan}");
                        // Only a proration's credit is negative, and a
                        // full-price monthly seat costs less than €/$/£ 2,000.
                        assert!(line.amount_in_cents >= 0 || line.prorated, "{line:?}");
                        if line.prorated && line.amount_in_cents > 0 {
                            // Whole: the line's MRR is exactly the new plan's.
                            let months = if plan.ends_with("_annual") { 12 } else { 1 };
                            let full_start = period_end
                                .checked_sub_months(chrono::Months::new(months))
                                .expect("a date");
                            let full = (period_end - full_start).num_seconds();
                            let part = (period_end - start).num_seconds();
                            let net = line.amount_in_cents - line.tax_amount_in_cents;
                            let list = net + line.discount_amount_in_cents;
                            assert_eq!(list * full % part, 0, "{line:?}");
                            assert_eq!(net * full % part, 0, "{line:?}");
                        }
                        assert!(line.amount_in_cents <= 200_000 * 12 * 60, "{line:?}");
                    }
                }
            }
        }
        assert!(lines > 1_000, "{lines}");
    }

    #[test]
    fn the_billing_tells_the_stories_the_dashboards_need() {
        let company = Company::generate(&shape(600, 730), 11);
        let customers: Vec<CustomerBilling> = (0..company.customer_count())
            .filter_map(|i| company.billing(i))
            .collect();
        let lines = || {
            customers
                .iter()
                .flat_map(|c| c.invoices.iter())
                .flat_map(|i| i.line_items.iter())
        };
        let trials = customers
            .iter()
            .filter(|c| c.customer.free_trial_started_at.is_some())
            .collect::<Vec<_>>();
        let converted = trials
            .iter()
            .filter(|c| {
                c.invoices
                    .iter()
                    .any(|i| i.line_items.iter().any(|l| l.amount_in_cents > 0))
            })
            .count();
        let rate = converted as f64 / trials.len() as f64;
        assert!((0.35..0.55).contains(&rate), "trial conversion {rate}");
        assert!(lines().any(|l| l.amount_in_cents < 0), "a proration credit");
        assert!(
            lines().any(|l| l.prorated && l.amount_in_cents > 0),
            "an upgrade"
        );
        assert!(
            lines().any(|l| l.discount_amount_in_cents > 0),
            "a discount"
        );
        assert!(
            lines().any(|l| l.kind == LineKind::OneTime),
            "a one-time charge"
        );
        assert!(lines().any(|l| l.tax_amount_in_cents > 0), "VAT");
        assert!(lines().any(|l| l.quantity > 3), "seats");
        assert!(
            lines().any(|l| l.plan_external_id.as_deref() == Some("growth_annual")),
            "an annual plan"
        );
        let currencies: HashSet<&str> = customers
            .iter()
            .flat_map(|c| c.invoices.iter().map(|i| i.currency.as_str()))
            .collect();
        assert_eq!(currencies.len(), 3, "{currencies:?}");
        // Reactivated customers start a second subscription after a gap.
        assert!(customers.iter().any(|c| {
            let subscriptions: HashSet<_> = c
                .invoices
                .iter()
                .flat_map(|i| {
                    i.line_items
                        .iter()
                        .filter_map(|l| l.subscription_external_id.clone())
                })
                .collect();
            subscriptions.len() > 1
        }));
    }

    #[test]
    fn churn_peaks_in_january_and_summer() {
        let company = Company::generate(&shape(3_000, 730), 5);
        let mut churns = [0_u32; 12];
        for account in &company.accounts {
            for (_, end) in &account.windows {
                if let Some(end) = end
                    && account
                        .plans
                        .iter()
                        .any(|(at, label)| at == end && *label == "cancelled")
                {
                    churns[end.month0() as usize] += 1;
                }
            }
        }
        let (january, august, october) = (churns[0], churns[7], churns[9]);
        assert!(january > october && august > october, "{churns:?}");
    }

    #[test]
    fn exchange_rates_cover_every_day_in_the_reporting_currency() {
        for (market, currencies) in [
            (Market::NorthAmerica, ["EUR", "GBP"]),
            (Market::Europe, ["GBP", "USD"]),
        ] {
            let shape = CompanyShape {
                market,
                ..shape(10, 90)
            };
            let rates = Company::generate(&shape, 1).exchange_rates();
            assert_eq!(rates.len(), 2 * 90);
            for currency in currencies {
                let of: Vec<_> = rates.iter().filter(|r| r.currency == currency).collect();
                assert_eq!(of.len(), 90, "{currency}");
                assert!(
                    of.iter().all(|r| (0.5..2.0).contains(&r.rate)),
                    "{currency}"
                );
            }
        }
    }

    #[test]
    fn the_event_stream_is_ordered_sized_and_consistent() {
        let company = Company::generate(&shape(120, 180), 3);
        let (start, end) = (company.shape().start(), company.shape().end);
        let owners: HashMap<String, String> = (0..company.customer_count())
            .filter_map(|i| company.billing(i))
            .filter_map(|c| Some((c.customer.user_id?, c.customer.external_id)))
            .collect();
        let mut previous = start;
        let mut ids = HashSet::new();
        let mut signed_up = HashSet::new();
        // User id → (anonymous id, email) from identify calls.
        let mut identified: HashMap<String, (String, String)> = HashMap::new();
        let mut invited = HashSet::new();
        let mut teammates = 0;
        let mut tickets = HashSet::new();
        let mut steps: HashMap<String, Vec<usize>> = HashMap::new();
        let mut count = 0;
        for row in company.events(Uuid::nil()) {
            count += 1;
            assert!(row.time >= previous, "out of order at {row:?}");
            assert!(row.time <= end);
            previous = row.time;
            assert!(ids.insert(row.message_id.clone()), "a repeated message id");
            let properties: Value =
                serde_json::from_str(row.properties.as_deref().unwrap_or("")).expect("JSON");
            let context: Value =
                serde_json::from_str(row.context.as_deref().unwrap_or("")).expect("JSON");
            assert!(context["userAgent"].is_string() && context["ip"].is_string());
            let size = row.properties.as_ref().map_or(0, String::len)
                + row.context.as_ref().map_or(0, String::len);
            assert!((350..1_900).contains(&size), "{size} bytes: {row:?}");
            assert!(row.anonymous_id.is_some());
            let user = row.user_id.clone().unwrap_or_default();
            let event = row.event.as_deref().unwrap_or("");
            match row.kind {
                MessageType::Identify => {
                    let anonymous = row.anonymous_id.clone().unwrap_or_default();
                    let email = properties["email"].as_str().unwrap_or("").to_owned();
                    assert!(!email.is_empty() && properties["plan"].is_string());
                    identified.insert(user.clone(), (anonymous, email));
                }
                MessageType::Group => {
                    let group = row.group_id.clone().unwrap_or_default();
                    assert!(owners.values().any(|id| *id == group), "{group}");
                    assert!(signed_up.contains(&user) || identified.contains_key(&user));
                }
                MessageType::Track if event == SIGNUP_EVENT => {
                    assert!(identified.contains_key(&user), "signed up before identify");
                    assert!(properties["account_id"].is_string());
                    if properties["method"] == "invite" {
                        // A teammate signs up once invited.
                        assert!(
                            !owners.contains_key(&user),
                            "an owner signed up by invitation"
                        );
                        let email = identified.get(&user).map(|(_, email)| email.clone());
                        assert!(
                            invited.contains(&email.unwrap_or_default()),
                            "uninvited {user}"
                        );
                        teammates += 1;
                    }
                    signed_up.insert(user.clone());
                }
                MessageType::Track if event.starts_with("Ticket ") => {
                    let ticket = properties["ticket_id"].as_str().unwrap_or("").to_owned();
                    if event == "Ticket Created" {
                        assert!(tickets.insert(ticket), "a ticket created twice");
                    } else {
                        assert!(tickets.contains(&ticket), "{event} before its creation");
                    }
                    if event == "Ticket Replied" {
                        assert!(
                            ["agent", "customer"]
                                .contains(&properties["author_type"].as_str().unwrap_or(""))
                        );
                    }
                }
                MessageType::Track => {
                    assert!(
                        signed_up.contains(&user),
                        "{event} by a user who never signed up"
                    );
                    if let Some(step) = ONBOARDING_STEPS.iter().position(|s| *s == event) {
                        let done = steps.entry(user.clone()).or_default();
                        if !done.contains(&step) {
                            assert_eq!(done.len(), step, "{user} did {event} after {done:?}");
                            done.push(step);
                        }
                        if step == 2 {
                            invited.insert(
                                properties["invitee_email"]
                                    .as_str()
                                    .unwrap_or("")
                                    .to_owned(),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!(count, company.event_count());
        for (user, customer) in &owners {
            assert!(
                signed_up.contains(user),
                "customer {customer}'s owner never signed up"
            );
            let anonymous = identified
                .get(user)
                .map(|(anonymous, _)| anonymous.as_str());
            assert!(
                anonymous.is_some_and(|a| !a.is_empty()),
                "{user} linked to no visitor"
            );
        }
        assert_eq!(teammates + owners.len(), signed_up.len());
        assert!(teammates > 0 && !tickets.is_empty());
    }
}
