//! The dashboard endpoints: headline numbers and series over a period of
//! the tenant's local days, compared with an earlier period, served from
//! rollups.

mod cohorts;
mod overview;
mod revenue;
mod support;
mod users;

pub use cohorts::*;
pub use overview::*;
pub use revenue::*;
pub use support::*;
pub use users::*;

use chrono::{Duration, Months, NaiveDate};
use northstar_db::{
    billing::revenue::{self as revenue_db, Granularity},
    tenants::Tenant,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    error::{ApiError, FieldError},
    tenant_scope::TenantScope,
};

/// Longest period a dashboard reports, in days.
const MAX_PERIOD_DAYS: i64 = 3660;

/// What period to report and how.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DashboardQuery {
    /// First local day (default: 29 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last local day (default: today in the tenant's time zone).
    pub to: Option<NaiveDate>,
    /// `day` (default), `week` (Monday to Sunday) or `month`.
    pub granularity: Option<String>,
    /// `previous_period` (default: as many days just before), `previous_year`
    /// or `none`.
    pub compare: Option<String>,
}

/// A reporting period: its days, the granularity of its series, and the
/// period it is compared with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Period {
    /// First local day.
    pub from: NaiveDate,
    /// Last local day.
    pub to: NaiveDate,
    /// `day`, `week` or `month`.
    pub granularity: String,
    /// The comparison period's first day, if any.
    pub compare_from: Option<NaiveDate>,
    /// The comparison period's last day, if any.
    pub compare_to: Option<NaiveDate>,
    /// The IANA time zone whose days these are.
    pub time_zone: String,
}

impl Period {
    pub(crate) fn granularity(&self) -> Granularity {
        match self.granularity.as_str() {
            "week" => Granularity::Week,
            "month" => Granularity::Month,
            _ => Granularity::Day,
        }
    }

    pub(crate) fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    pub(crate) fn comparison(&self) -> Option<(NaiveDate, NaiveDate)> {
        self.compare_from.zip(self.compare_to)
    }

    /// The first and last day of the period and its comparison together:
    /// what a handler reads once to compute both.
    pub(crate) fn span(&self) -> (NaiveDate, NaiveDate) {
        match self.comparison() {
            Some((from, to)) => (from.min(self.from), to.max(self.to)),
            None => (self.from, self.to),
        }
    }
}

/// Checks the query against the calendar of `tenant`.
pub(crate) async fn period(
    scope: &mut TenantScope,
    tenant: &Tenant,
    query: &DashboardQuery,
) -> Result<Period, ApiError> {
    let to = match query.to {
        Some(to) => to,
        None => revenue_db::local_today(&mut scope.tx).await?,
    };
    let from = query.from.unwrap_or(to - Duration::days(29));
    let mut errors = Vec::new();
    if from > to {
        errors.push(FieldError::new("from", "must not be after `to`"));
    } else if (to - from).num_days() >= MAX_PERIOD_DAYS {
        errors.push(FieldError::new(
            "from",
            format!("the period is at most {MAX_PERIOD_DAYS} days"),
        ));
    }
    let granularity = query.granularity.as_deref().unwrap_or("day");
    if !["day", "week", "month"].contains(&granularity) {
        errors.push(FieldError::new(
            "granularity",
            "must be `day`, `week` or `month`",
        ));
    }
    let length = (to - from).num_days() + 1;
    let comparison = match query.compare.as_deref().unwrap_or("previous_period") {
        "previous_period" => Some((from - Duration::days(length), from - Duration::days(1))),
        "previous_year" => from
            .checked_sub_months(Months::new(12))
            .zip(to.checked_sub_months(Months::new(12))),
        "none" => None,
        _ => {
            errors.push(FieldError::new(
                "compare",
                "must be `previous_period`, `previous_year` or `none`",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(Period {
        from,
        to,
        granularity: granularity.to_owned(),
        compare_from: comparison.map(|(from, _)| from),
        compare_to: comparison.map(|(_, to)| to),
        time_zone: tenant.time_zone.clone(),
    })
}
