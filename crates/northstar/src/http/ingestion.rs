//! A tenant's ingestion counters: what arrived, what was stored, what was a
//! retry of something stored, and what was refused and why.

use axum::Json;
use chrono::{Duration, NaiveDate, Utc};
use northstar_db::ingest::counters::{self, DailyCount};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    error::{ApiError, Problem},
    extract_json::ApiQuery,
    tenant_scope::TenantScope,
};

/// The days to report.
#[derive(Deserialize, IntoParams)]
pub struct StatsQuery {
    /// First UTC day (default: 29 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last UTC day (default: today).
    pub to: Option<NaiveDate>,
}

/// Totals over the period and the per-day counters.
#[derive(Serialize, ToSchema)]
pub struct IngestionStats {
    /// First day reported.
    pub from: NaiveDate,
    /// Last day reported.
    pub to: NaiveDate,
    /// Messages processed: stored + duplicate + rejected.
    pub received: i64,
    /// Messages stored.
    pub stored: i64,
    /// Retries of stored messages, dropped.
    pub duplicate: i64,
    /// Messages refused.
    pub rejected: i64,
    /// Refusals by reason code.
    pub rejected_by_reason: std::collections::BTreeMap<String, i64>,
    /// Every counter, per day.
    pub days: Vec<DailyCount>,
}

/// Ingestion counters of the tenant (any member).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/ingestion/stats", tag = "ingestion",
    params(("slug" = String, Path, description = "Tenant slug"), StatsQuery),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = IngestionStats), (status = 404, body = Problem), (status = 422, body = Problem))
)]
pub async fn stats(
    mut scope: TenantScope,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<IngestionStats>, ApiError> {
    let to = query.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = query.from.unwrap_or(to - Duration::days(29));
    if from > to {
        return Err(ApiError::field("from", "must not be after `to`"));
    }
    if to - from > Duration::days(366) {
        return Err(ApiError::field("from", "the period is at most 366 days"));
    }
    let days = counters::daily(&mut scope.tx, from, to).await?;
    let total = |outcome: &str| {
        days.iter()
            .filter(|d| d.outcome == outcome)
            .map(|d| d.count)
            .sum::<i64>()
    };
    let mut rejected_by_reason = std::collections::BTreeMap::new();
    for day in days.iter().filter(|d| d.outcome == "rejected") {
        *rejected_by_reason.entry(day.reason.clone()).or_default() += day.count;
    }
    let (stored, duplicate, rejected) = (total("stored"), total("duplicate"), total("rejected"));
    Ok(Json(IngestionStats {
        from,
        to,
        received: stored + duplicate + rejected,
        stored,
        duplicate,
        rejected,
        rejected_by_reason,
        days,
    }))
}
