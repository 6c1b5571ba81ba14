//! `GET …/dashboard/users`: active users, stickiness, sign-ups, onboarding
//! and the top events, read from the product rollups.

use axum::Json;
use northstar_db::{
    product::users::{
        self as users_db, OnboardingCohort, TopEvent, UsersKpis, UsersPoint, UsersRollups,
    },
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

/// How the persons who signed up in each bucket onboarded.
#[derive(Debug, Serialize, ToSchema)]
pub struct Onboarding {
    /// The tenant's onboarding steps (event names), in order.
    pub steps: Vec<String>,
    /// One cohort per bucket of the period, by sign-up day.
    pub cohorts: Vec<OnboardingCohort>,
}

/// The users dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsersDashboard {
    /// What was reported.
    pub period: Period,
    /// The track event that counts as a sign-up.
    pub signup_event: String,
    /// KPIs of the period.
    pub kpis: UsersKpis,
    /// KPIs of the comparison period.
    pub previous: Option<UsersKpis>,
    /// Active users, stickiness, sign-ups and new users per bucket.
    pub series: Vec<UsersPoint>,
    /// Onboarding per sign-up cohort.
    pub onboarding: Onboarding,
    /// The 10 track events with the most calls in the period, with their
    /// adoption.
    pub top_events: Vec<TopEvent>,
}

/// Active users, stickiness, sign-ups, onboarding and top events (any
/// member).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/dashboard/users", tag = "dashboards",
    params(("slug" = String, Path, description = "Tenant slug"), DashboardQuery),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = UsersDashboard), (status = 404, body = Problem), (status = 422, body = Problem))
)]
pub async fn users(
    mut scope: TenantScope,
    ApiQuery(query): ApiQuery<DashboardQuery>,
) -> Result<Json<UsersDashboard>, ApiError> {
    let tenant = tenants::current(&mut scope.tx).await?;
    let period = period(&mut scope, &tenant, &query).await?;
    let (from, to) = (period.from, period.to);
    let steps = tenant.onboarding_steps;
    let granularity = period.granularity();
    let (first, last) = period.span();
    let rollups = UsersRollups::read(&mut scope.tx, first, last).await?;
    let onboarding = rollups.onboarding.report(from, to, granularity, &steps);
    let kpis = rollups.activity.kpis(from, to, &onboarding.period);
    let previous = period
        .comparison()
        .map(|(from, to)| rollups.kpis(from, to, &steps));
    let top_events = users_db::top_events(&mut scope.tx, from, to, kpis.total_users).await?;
    Ok(Json(UsersDashboard {
        signup_event: tenant.signup_event,
        kpis,
        previous,
        series: rollups.activity.series(from, to, granularity),
        onboarding: Onboarding {
            steps,
            cohorts: onboarding.cohorts,
        },
        top_events,
        period,
    }))
}
