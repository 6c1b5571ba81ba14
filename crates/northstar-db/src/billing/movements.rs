//! One customer's MRR movements, from the MRR of their subscription lines.
//!
//! Pure code: the input is every subscription line of one customer, already
//! normalised to MRR and placed on the tenant's local calendar; the output is
//! one [`Movement`] per day on which the customer's MRR changed, classified
//! as ChartMogul defines MRR movements
//! (<https://help.chartmogul.com/hc/en-us/articles/203299912>):
//!
//! - **new business**: the customer's MRR goes from zero to positive for the
//!   first time;
//! - **reactivation**: it goes from zero to positive again after a churn;
//! - **churn**: it goes to zero (the last paid subscription ended);
//! - **expansion** / **contraction**: it changes while staying positive,
//!   including a second subscription or the end of one of several;
//! - **fx drift**: only exchange rates changed it (a renewal converted at a
//!   new rate), which ChartMogul keeps out of movements.
//!
//! A subscription's MRR on a day is that of its latest-starting line whose
//! service period covers the day, so a mid-period upgrade (a prorated line
//! starting on the upgrade day) replaces the old line from that day on, and
//! a subscription with no line covering a day has ended: churn or
//! contraction is recognised at the end of the paid period.

use std::collections::BTreeSet;

use chrono::NaiveDate;

/// A subscription line item, normalised to MRR.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionLine {
    /// The subscription the line bills (its external id).
    pub subscription: String,
    /// First local day of the service period.
    pub starts: NaiveDate,
    /// Local day the service period ends (exclusive).
    pub ends: NaiveDate,
    /// MRR in micro-units (1e-6) of the invoice's currency.
    pub native_mrr: i64,
    /// The invoice's currency.
    pub currency: String,
    /// Units of the reporting currency per unit of `currency`, at the
    /// service period's start.
    pub rate: f64,
}

impl SubscriptionLine {
    /// The line's MRR in micro-units of the reporting currency.
    pub fn mrr(&self) -> i64 {
        convert(self.native_mrr, self.rate)
    }

    fn covers(&self, day: NaiveDate) -> bool {
        self.starts <= day && day < self.ends
    }
}

fn convert(native: i64, rate: f64) -> i64 {
    // Amounts stay far below 2^53 micro-units, so f64 is exact enough.
    (native as f64 * rate).round() as i64
}

/// How a day's change of a customer's MRR is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MovementKind {
    /// First paid MRR.
    NewBusiness,
    /// More MRR from a paying customer.
    Expansion,
    /// Less MRR from a customer who still pays.
    Contraction,
    /// The customer's MRR fell to zero.
    Churn,
    /// A churned customer pays again.
    Reactivation,
    /// Only exchange rates changed the MRR.
    FxDrift,
}

impl MovementKind {
    /// The kind's name, as stored and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::NewBusiness => "new_business",
            MovementKind::Expansion => "expansion",
            MovementKind::Contraction => "contraction",
            MovementKind::Churn => "churn",
            MovementKind::Reactivation => "reactivation",
            MovementKind::FxDrift => "fx_drift",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            MovementKind::NewBusiness,
            MovementKind::Expansion,
            MovementKind::Contraction,
            MovementKind::Churn,
            MovementKind::Reactivation,
            MovementKind::FxDrift,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }
}

/// The change of one customer's MRR on one local day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// The local day from which the new MRR applies.
    pub day: NaiveDate,
    /// Its classification.
    pub kind: MovementKind,
    /// MRR on the day before, in micro-units of the reporting currency.
    pub mrr_before: i64,
    /// MRR from this day on.
    pub mrr_after: i64,
    /// The part of the change that is a movement of `kind`.
    pub movement: i64,
    /// The part of the change due to exchange rates; `movement + fx_drift`
    /// is `mrr_after - mrr_before`.
    pub fx_drift: i64,
}

/// The customer's movements, in day order. `lines` may come in any order;
/// among lines of one subscription starting the same day, the later one in
/// `lines` wins.
pub fn customer_movements(lines: &[SubscriptionLine]) -> Vec<Movement> {
    let mut days = BTreeSet::new();
    for line in lines.iter().filter(|line| line.starts < line.ends) {
        days.insert(line.starts);
        days.insert(line.ends);
    }
    let mut subscriptions: Vec<&str> = lines.iter().map(|l| l.subscription.as_str()).collect();
    subscriptions.sort_unstable();
    subscriptions.dedup();

    let mut movements = Vec::new();
    let mut has_paid = false;
    let mut previous: Vec<Option<&SubscriptionLine>> = vec![None; subscriptions.len()];
    for day in days {
        let current: Vec<Option<&SubscriptionLine>> = subscriptions
            .iter()
            .map(|subscription| active_line(lines, subscription, day))
            .collect();
        let before: i64 = previous.iter().flatten().map(|line| line.mrr()).sum();
        let after: i64 = current.iter().flatten().map(|line| line.mrr()).sum();
        let (mut movement, mut fx_drift) = (0, 0);
        for (old, new) in previous.iter().zip(&current) {
            let (change, drift) = split_change(*old, *new);
            movement += change;
            fx_drift += drift;
        }
        let kind = match (before, after) {
            (0, 0) => None,
            (0, _) if has_paid => Some(MovementKind::Reactivation),
            (0, _) => Some(MovementKind::NewBusiness),
            (_, 0) => Some(MovementKind::Churn),
            _ if movement > 0 => Some(MovementKind::Expansion),
            _ if movement < 0 => Some(MovementKind::Contraction),
            _ if fx_drift != 0 => Some(MovementKind::FxDrift),
            _ => None,
        };
        if let Some(kind) = kind {
            if before == 0 || after == 0 {
                // Entering or leaving paid status moves the whole MRR.
                (movement, fx_drift) = (after - before, 0);
            }
            has_paid = true;
            movements.push(Movement {
                day,
                kind,
                mrr_before: before,
                mrr_after: after,
                movement,
                fx_drift,
            });
        }
        previous = current;
    }
    movements
}

/// The line that sets `subscription`'s MRR on `day`, if any.
fn active_line<'a>(
    lines: &'a [SubscriptionLine],
    subscription: &str,
    day: NaiveDate,
) -> Option<&'a SubscriptionLine> {
    lines
        .iter()
        .filter(|line| line.subscription == subscription && line.covers(day))
        .max_by_key(|line| line.starts)
}

/// Splits one subscription's change from `old` to `new` into a movement and
/// exchange-rate drift: the drift is what the old native MRR gains or loses
/// by being converted at the new line's rate instead of its own.
fn split_change(old: Option<&SubscriptionLine>, new: Option<&SubscriptionLine>) -> (i64, i64) {
    match (old, new) {
        (None, None) => (0, 0),
        (None, Some(new)) => (new.mrr(), 0),
        (Some(old), None) => (-old.mrr(), 0),
        (Some(old), Some(new)) if old.currency == new.currency => {
            let old_at_new_rate = convert(old.native_mrr, new.rate);
            (new.mrr() - old_at_new_rate, old_at_new_rate - old.mrr())
        }
        (Some(old), Some(new)) => (new.mrr() - old.mrr(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("a test date")
    }

    /// A USD line of `mrr` whole units.
    fn line(subscription: &str, starts: &str, ends: &str, mrr: i64) -> SubscriptionLine {
        SubscriptionLine {
            subscription: subscription.into(),
            starts: day(starts),
            ends: day(ends),
            native_mrr: mrr * 1_000_000,
            currency: "USD".into(),
            rate: 1.0,
        }
    }

    /// (day, kind, movement in whole units)
    fn summary(lines: &[SubscriptionLine]) -> Vec<(String, &'static str, i64)> {
        customer_movements(lines)
            .into_iter()
            .map(|m| {
                assert_eq!(m.movement + m.fx_drift, m.mrr_after - m.mrr_before);
                (m.day.to_string(), m.kind.as_str(), m.movement / 1_000_000)
            })
            .collect()
    }

    #[test]
    fn monthly_renewals_are_one_new_business_then_churn_at_the_paid_period_end() {
        let lines = [
            line("s1", "2026-01-01", "2026-02-01", 50),
            line("s1", "2026-02-01", "2026-03-01", 50),
        ];
        assert_eq!(
            summary(&lines),
            [
                ("2026-01-01".into(), "new_business", 50),
                ("2026-03-01".into(), "churn", -50),
            ]
        );
    }

    #[test]
    fn a_mid_period_upgrade_is_expansion_from_the_upgrade_day() {
        let lines = [
            line("s1", "2026-01-01", "2026-02-01", 50),
            line("s1", "2026-01-16", "2026-02-01", 80),
            line("s1", "2026-02-01", "2026-03-01", 80),
        ];
        assert_eq!(
            summary(&lines),
            [
                ("2026-01-01".into(), "new_business", 50),
                ("2026-01-16".into(), "expansion", 30),
                ("2026-03-01".into(), "churn", -80),
            ]
        );
    }

    #[test]
    fn ending_one_of_two_subscriptions_is_contraction_and_the_last_is_churn() {
        let lines = [
            line("gold", "2026-01-01", "2027-01-01", 100),
            line("silver", "2026-01-10", "2026-02-10", 60),
        ];
        assert_eq!(
            summary(&lines),
            [
                ("2026-01-01".into(), "new_business", 100),
                ("2026-01-10".into(), "expansion", 60),
                ("2026-02-10".into(), "contraction", -60),
                ("2027-01-01".into(), "churn", -100),
            ]
        );
    }

    #[test]
    fn paying_again_after_churn_is_reactivation() {
        let lines = [
            line("s1", "2026-01-01", "2026-02-01", 50),
            line("s2", "2026-04-01", "2026-05-01", 70),
        ];
        assert_eq!(
            summary(&lines),
            [
                ("2026-01-01".into(), "new_business", 50),
                ("2026-02-01".into(), "churn", -50),
                ("2026-04-01".into(), "reactivation", 70),
                ("2026-05-01".into(), "churn", -70),
            ]
        );
    }

    #[test]
    fn a_free_trial_is_a_lead_until_the_first_paid_period() {
        let lines = [
            line("s1", "2026-01-01", "2026-01-15", 0),
            line("s1", "2026-01-15", "2026-02-15", 40),
        ];
        assert_eq!(
            summary(&lines),
            [
                ("2026-01-15".into(), "new_business", 40),
                ("2026-02-15".into(), "churn", -40),
            ]
        );
    }

    #[test]
    fn a_renewal_at_a_new_rate_is_drift_not_a_movement() {
        let mut first = line("s1", "2026-01-01", "2026-02-01", 100);
        first.currency = "EUR".into();
        first.rate = 1.10;
        let mut second = line("s1", "2026-02-01", "2026-03-01", 120);
        second.currency = "EUR".into();
        second.rate = 1.05;
        let movements = customer_movements(&[first.clone(), second]);
        assert_eq!(movements.len(), 3);
        assert_eq!(movements[0].kind, MovementKind::NewBusiness);
        assert_eq!(movements[0].movement, 110_000_000);
        // 100 EUR at 1.10 = 110 USD becomes 120 EUR at 1.05 = 126 USD:
        // +21 USD of expansion (20 EUR at 1.05) and -5 USD of drift.
        assert_eq!(movements[1].kind, MovementKind::Expansion);
        assert_eq!(movements[1].movement, 21_000_000);
        assert_eq!(movements[1].fx_drift, -5_000_000);
        assert_eq!(movements[2].kind, MovementKind::Churn);
        assert_eq!(movements[2].movement, -126_000_000);

        let mut same_price = first.clone();
        same_price.starts = day("2026-02-01");
        same_price.ends = day("2026-03-01");
        same_price.rate = 1.20;
        let movements = customer_movements(&[first, same_price]);
        assert_eq!(movements[1].kind, MovementKind::FxDrift);
        assert_eq!(
            (movements[1].movement, movements[1].fx_drift),
            (0, 10_000_000)
        );
    }

    #[test]
    fn lines_in_any_order_give_the_same_movements() {
        let mut lines = vec![
            line("a", "2026-01-01", "2026-02-01", 10),
            line("b", "2026-01-05", "2026-03-01", 20),
            line("a", "2026-02-01", "2026-03-01", 15),
        ];
        let forward = customer_movements(&lines);
        lines.reverse();
        assert_eq!(customer_movements(&lines), forward);
    }

    /// Random customers: the movements summed up to any day equal the MRR
    /// computed directly for that day, and every kind matches its rule.
    #[test]
    fn movements_add_up_to_the_mrr_of_every_day() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let origin = day("2026-01-01");
        for seed in 0..300 {
            let mut rng = StdRng::seed_from_u64(seed);
            let lines: Vec<SubscriptionLine> = (0..rng.gen_range(1..8))
                .map(|_| {
                    let starts = origin + chrono::Duration::days(rng.gen_range(0..120));
                    let currency = ["USD", "EUR"][rng.gen_range(0..2)];
                    SubscriptionLine {
                        subscription: format!("s{}", rng.gen_range(0..3)),
                        starts,
                        ends: starts + chrono::Duration::days(rng.gen_range(1..60)),
                        native_mrr: [0, 10, 25, 40][rng.gen_range(0..4)] * 1_000_000,
                        currency: currency.into(),
                        rate: if currency == "USD" {
                            1.0
                        } else {
                            rng.gen_range(0.8..1.3)
                        },
                    }
                })
                .collect();
            let movements = customer_movements(&lines);
            let mut level = 0;
            let mut ever_paid = false;
            let mut next = movements.iter().peekable();
            for offset in 0..200 {
                let today = origin + chrono::Duration::days(offset);
                if let Some(m) = next.next_if(|m| m.day == today) {
                    assert_eq!(m.mrr_before, level, "seed {seed}, {today}");
                    level += m.movement + m.fx_drift;
                    assert_eq!(m.mrr_after, level, "seed {seed}, {today}");
                    let expected = match (m.mrr_before, m.mrr_after) {
                        (0, _) if ever_paid => MovementKind::Reactivation,
                        (0, _) => MovementKind::NewBusiness,
                        (_, 0) => MovementKind::Churn,
                        _ if m.movement > 0 => MovementKind::Expansion,
                        _ if m.movement < 0 => MovementKind::Contraction,
                        _ => MovementKind::FxDrift,
                    };
                    assert_eq!(m.kind, expected, "seed {seed}, {today}");
                    ever_paid = true;
                }
                // Directly: each subscription's latest-starting line covering the day.
                let mut direct = 0;
                let mut subscriptions: Vec<&str> =
                    lines.iter().map(|l| l.subscription.as_str()).collect();
                subscriptions.sort_unstable();
                subscriptions.dedup();
                for subscription in subscriptions {
                    let covering = lines.iter().filter(|l| {
                        l.subscription == subscription && l.starts <= today && today < l.ends
                    });
                    if let Some(line) = covering.max_by_key(|l| l.starts) {
                        direct += line.mrr();
                    }
                }
                assert_eq!(level, direct, "seed {seed}, {today}");
            }
            assert!(
                next.next().is_none(),
                "seed {seed}: movements after the window"
            );
        }
    }
}
