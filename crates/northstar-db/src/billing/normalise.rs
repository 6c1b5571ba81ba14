//! A subscription line's monthly recurring revenue: what it charged, net of
//! tax (discounts are already deducted from the amount), spread over the
//! months of its service period.
//!
//! - A line of a known plan that is not prorated covers one plan interval:
//!   annual ÷ 12, quarterly ÷ 3, weekly × 365.25 / 12 / 7, daily × 365.25 / 12.
//! - A prorated line of a known plan covers the fraction of a full interval
//!   (the interval ending where the line ends) that its period spans, so a
//!   prorated upgrade line is worth exactly the new plan's MRR.
//! - Without a plan, a period within three days of a whole number of calendar
//!   months counts as that many months (billing anchored on the 31st gives
//!   28- to 31-day months), and any other period as days ÷ 30.4375.

use chrono::{DateTime, Months, TimeDelta, Utc};

/// The unit of a plan's billing interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalUnit {
    /// Days.
    Day,
    /// Weeks.
    Week,
    /// Calendar months.
    Month,
    /// Calendar years.
    Year,
}

impl IntervalUnit {
    /// The unit with this name (`day`, `week`, `month`, `year`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "day" => Some(IntervalUnit::Day),
            "week" => Some(IntervalUnit::Week),
            "month" => Some(IntervalUnit::Month),
            "year" => Some(IntervalUnit::Year),
            _ => None,
        }
    }
}

/// A plan's billing interval, such as 1 year or 3 months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanInterval {
    /// Its unit.
    pub unit: IntervalUnit,
    /// How many units (at least 1).
    pub count: u32,
}

/// Average days in a month (365.25 / 12).
const DAYS_PER_MONTH: f64 = 30.4375;

impl PlanInterval {
    fn months(self) -> f64 {
        let count = f64::from(self.count);
        match self.unit {
            IntervalUnit::Day => count / DAYS_PER_MONTH,
            IntervalUnit::Week => count * 7.0 / DAYS_PER_MONTH,
            IntervalUnit::Month => count,
            IntervalUnit::Year => count * 12.0,
        }
    }

    /// The instant one interval before `end`.
    fn before(self, end: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.unit {
            IntervalUnit::Day => end.checked_sub_signed(TimeDelta::days(self.count.into())),
            IntervalUnit::Week => end.checked_sub_signed(TimeDelta::weeks(self.count.into())),
            IntervalUnit::Month => end.checked_sub_months(Months::new(self.count)),
            IntervalUnit::Year => end.checked_sub_months(Months::new(self.count * 12)),
        }
    }
}

/// What a line needs for its MRR.
#[derive(Debug, Clone, Copy)]
pub struct LineCharge {
    /// Charged amount net of tax, in minor units of the currency.
    pub net_minor: i64,
    /// The currency's minor-unit exponent (2 for USD, 0 for JPY).
    pub exponent: u32,
    /// Service period start.
    pub starts: DateTime<Utc>,
    /// Service period end (after `starts`).
    pub ends: DateTime<Utc>,
    /// The plan's interval, when the line names a plan.
    pub plan: Option<PlanInterval>,
    /// Whether the line bills part of an interval.
    pub prorated: bool,
}

impl LineCharge {
    /// The line's MRR in micro-units (1e-6) of its currency; zero for a
    /// credit (negative amount) or an empty period.
    pub fn mrr_micros(&self) -> i64 {
        if self.net_minor <= 0 || self.ends <= self.starts {
            return 0;
        }
        let months = self.months();
        if months <= 0.0 {
            return 0;
        }
        let micros = self.net_minor as f64 * 10f64.powi(6 - self.exponent as i32);
        (micros / months).round() as i64
    }

    fn months(&self) -> f64 {
        let seconds = (self.ends - self.starts).num_seconds() as f64;
        match self.plan {
            Some(plan) if !self.prorated => plan.months(),
            Some(plan) => match plan.before(self.ends) {
                Some(full_start) if full_start < self.ends => {
                    let full = (self.ends - full_start).num_seconds() as f64;
                    plan.months() * (seconds / full).min(1.0)
                }
                _ => plan.months(),
            },
            None => calendar_months(self.starts, self.ends)
                .unwrap_or(seconds / 86_400.0 / DAYS_PER_MONTH),
        }
    }
}

/// The whole number of calendar months from `starts` to within three days
/// of `ends`, if there is one.
fn calendar_months(starts: DateTime<Utc>, ends: DateTime<Utc>) -> Option<f64> {
    let tolerance = TimeDelta::days(3);
    (1..=120u32).find_map(|months| {
        let end = starts.checked_add_months(Months::new(months))?;
        ((end - ends).abs() <= tolerance).then_some(f64::from(months))
    })
}

/// The number of decimal places of a currency's minor unit (ISO 4217).
pub fn minor_unit_exponent(currency: &str) -> u32 {
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
        "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    if ZERO.contains(&currency) {
        0
    } else if THREE.contains(&currency) {
        3
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        format!("{text}T00:00:00Z").parse().expect("a test instant")
    }

    fn charge(net_minor: i64, starts: &str, ends: &str) -> LineCharge {
        LineCharge {
            net_minor,
            exponent: 2,
            starts: at(starts),
            ends: at(ends),
            plan: None,
            prorated: false,
        }
    }

    const MONTHLY: PlanInterval = PlanInterval {
        unit: IntervalUnit::Month,
        count: 1,
    };

    #[test]
    fn annual_is_divided_by_twelve() {
        // $1,000.00 a year: $83.333333 a month.
        assert_eq!(
            charge(100_000, "2026-01-01", "2027-01-01").mrr_micros(),
            83_333_333
        );
        let mut with_plan = charge(100_000, "2026-01-01", "2027-01-01");
        with_plan.plan = Some(PlanInterval {
            unit: IntervalUnit::Year,
            count: 1,
        });
        assert_eq!(with_plan.mrr_micros(), 83_333_333);
    }

    #[test]
    fn months_of_any_length_are_one_month() {
        for (starts, ends) in [
            ("2026-01-31", "2026-02-28"),
            ("2026-02-28", "2026-03-31"),
            ("2026-03-01", "2026-06-01"),
        ] {
            let months = calendar_months(at(starts), at(ends)).expect("whole months");
            let expected = if starts == "2026-03-01" { 3.0 } else { 1.0 };
            assert_eq!(months, expected, "{starts}..{ends}");
        }
    }

    #[test]
    fn weekly_and_daily_are_scaled_to_an_average_month() {
        let mut weekly = charge(700, "2026-01-05", "2026-01-12");
        assert_eq!(weekly.mrr_micros(), 30_437_500);
        weekly.plan = Some(PlanInterval {
            unit: IntervalUnit::Week,
            count: 1,
        });
        assert_eq!(weekly.mrr_micros(), 30_437_500);
    }

    #[test]
    fn a_prorated_line_is_worth_the_full_plan_rate() {
        // 16 of January's 31 days of a $31 plan were billed $16.
        let mut upgrade = charge(1_600, "2026-01-16", "2026-02-01");
        upgrade.plan = Some(MONTHLY);
        upgrade.prorated = true;
        assert_eq!(upgrade.mrr_micros(), 31_000_000);
    }

    #[test]
    fn credits_and_zero_amounts_have_no_mrr() {
        assert_eq!(charge(-500, "2026-01-01", "2026-02-01").mrr_micros(), 0);
        assert_eq!(charge(0, "2026-01-01", "2026-02-01").mrr_micros(), 0);
    }

    #[test]
    fn zero_decimal_currencies_are_not_divided_by_100() {
        let mut yen = charge(5_000, "2026-01-01", "2026-02-01");
        yen.exponent = minor_unit_exponent("JPY");
        assert_eq!(yen.mrr_micros(), 5_000_000_000);
    }
}
