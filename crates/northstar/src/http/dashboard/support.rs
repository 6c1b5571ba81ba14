//! `GET …/dashboard/support`: tickets opened and resolved, the backlog and
//! response times, read from the ticket rollups.

use axum::Json;
use northstar_db::{
    billing::revenue,
    product::support::{self as support_db, SupportKpis, SupportPoint},
    tenants,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{DashboardQuery, Period, period};
use crate::http::{
    error::{ApiError, Problem},
    extract_json::ApiQuery,
    tenant_scope::TenantScope,
};

/// The support dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct SupportDashboard {
    /// What was reported.
    pub period: Period,
    /// KPIs of the period.
    pub kpis: SupportKpis,
    /// KPIs of the comparison period.
    pub previous: Option<SupportKpis>,
    /// Tickets opened and resolved, and the backlog, per bucket.
    pub series: Vec<SupportPoint>,
}

/// Tickets opened and resolved, the backlog, response and resolution
/// times, and tickets per 100 paying customers (any member).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/dashboard/support", tag = "dashboards",
    params(("slug" = String, Path, description = "Tenant slug"), DashboardQuery),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = SupportDashboard), (status = 404, body = Problem), (status = 422, body = Problem))
)]
pub async fn support(
    mut scope: TenantScope,
    ApiQuery(query): ApiQuery<DashboardQuery>,
) -> Result<Json<SupportDashboard>, ApiError> {
    let tenant = tenants::current(&mut scope.tx).await?;
    let period = period(&mut scope, &tenant, &query).await?;
    let (first, last) = period.span();
    let tickets = support_db::days_between(&mut scope.tx, first, last).await?;
    let times = support_db::ticket_times(&mut scope.tx, first, last).await?;
    let revenue = revenue::days_between(&mut scope.tx, first, last).await?;
    let kpis = support_db::period_kpis(&tickets, &times, &revenue, period.from, period.to);
    let previous = period
        .comparison()
        .map(|(from, to)| support_db::period_kpis(&tickets, &times, &revenue, from, to));
    Ok(Json(SupportDashboard {
        kpis,
        previous,
        series: support_db::series(&tickets, period.from, period.to, period.granularity()),
        period,
    }))
}
