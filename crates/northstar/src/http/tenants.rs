//! A tenant as its members see it, and its audit log.

use axum::{Json, extract::State};
use northstar_db::{
    audit::{self, AuditEntry},
    billing::rollup,
    memberships::Role,
    product,
    tenants::{self, Tenant, TenantChanges},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::state::AppState;

use super::{
    error::{ApiError, FieldError, Problem},
    extract_json::{ApiJson, ApiQuery},
    tenant_scope::TenantScope,
};

/// The tenant and the caller's role in it.
#[derive(Serialize, ToSchema)]
pub struct TenantView {
    /// The tenant.
    pub tenant: Tenant,
    /// The caller's role.
    pub role: Role,
}

/// The tenant.
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}", tag = "tenants",
    params(("slug" = String, Path, description = "Tenant slug")),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = TenantView), (status = 404, body = Problem))
)]
pub async fn get(mut scope: TenantScope) -> Result<Json<TenantView>, ApiError> {
    let tenant = tenants::current(&mut scope.tx).await?;
    Ok(Json(TenantView {
        tenant,
        role: scope.role,
    }))
}

/// Fields of the tenant its owners and admins may change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    /// Display name, 1 to 100 characters.
    pub name: Option<String>,
    /// Days of events to keep, 1 to 3660; older events are deleted daily.
    pub event_retention_days: Option<i32>,
    /// ISO 4217 code revenue is reported in; changing it recomputes revenue.
    pub reporting_currency: Option<String>,
    /// IANA time zone whose midnights bound the tenant's days (`Europe/Paris`);
    /// changing it recomputes revenue and product rollups.
    pub time_zone: Option<String>,
    /// The track event that counts as a sign-up (default `Signed Up`), 1 to
    /// 200 characters.
    pub signup_event: Option<String>,
    /// The onboarding steps: up to 20 distinct track event names, in the
    /// order the product presents them.
    pub onboarding_steps: Option<Vec<String>>,
}

/// Change the tenant's name, event retention, reporting currency, time
/// zone, sign-up event or onboarding steps (owners and admins).
#[utoipa::path(
    patch, path = "/api/v1/tenants/{slug}", tag = "tenants",
    params(("slug" = String, Path, description = "Tenant slug")),
    request_body = TenantUpdate,
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, body = TenantView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)
    )
)]
pub async fn update(
    State(state): State<AppState>,
    mut scope: TenantScope,
    ApiJson(update): ApiJson<TenantUpdate>,
) -> Result<Json<TenantView>, ApiError> {
    scope.require(Role::Admin)?;
    let mut errors = Vec::new();
    let name = update.name.as_deref().map(str::trim);
    if name.is_some_and(|n| !(1..=100).contains(&n.chars().count())) {
        errors.push(FieldError::new("name", "must be 1 to 100 characters long"));
    }
    if update
        .event_retention_days
        .is_some_and(|days| !(1..=3660).contains(&days))
    {
        errors.push(FieldError::new(
            "event_retention_days",
            "must be between 1 and 3660",
        ));
    }
    if let Some(currency) = &update.reporting_currency
        && !is_currency_code(currency)
    {
        errors.push(FieldError::new(
            "reporting_currency",
            "must be an ISO 4217 code in upper case, such as USD",
        ));
    }
    if let Some(zone) = &update.time_zone
        && !tenants::is_time_zone(&mut scope.tx, zone).await?
    {
        errors.push(FieldError::new(
            "time_zone",
            "must be an IANA time zone name, such as Europe/Paris",
        ));
    }
    if let Some(event) = &update.signup_event
        && !(1..=MAX_EVENT_NAME_CHARS).contains(&event.chars().count())
    {
        errors.push(FieldError::new(
            "signup_event",
            format!("must be 1 to {MAX_EVENT_NAME_CHARS} characters long"),
        ));
    }
    if let Some(steps) = &update.onboarding_steps {
        errors.extend(onboarding_steps_errors(steps));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let before = tenants::current(&mut scope.tx).await?;
    let tenant = tenants::update(
        &mut scope.tx,
        TenantChanges {
            name: name.map(str::to_owned),
            event_retention_days: update.event_retention_days,
            reporting_currency: update.reporting_currency,
            time_zone: update.time_zone,
            signup_event: update.signup_event,
            onboarding_steps: update.onboarding_steps,
        },
    )
    .await?;
    if (&tenant.reporting_currency, &tenant.time_zone)
        != (&before.reporting_currency, &before.time_zone)
    {
        rollup::rebuild(&mut scope.tx).await?;
    }
    let zone_changed = tenant.time_zone != before.time_zone;
    if zone_changed {
        product::request_rebuild(&mut scope.tx).await?;
    } else if (&tenant.signup_event, &tenant.onboarding_steps)
        != (&before.signup_event, &before.onboarding_steps)
    {
        product::rebuild_onboarding(&mut scope.tx).await?;
    }
    audit::record(
        &mut scope.tx,
        &scope.actor,
        "tenant.updated",
        Some(&tenant.slug),
        json!({
            "name": {"from": before.name, "to": tenant.name},
            "event_retention_days": {"from": before.event_retention_days, "to": tenant.event_retention_days},
            "reporting_currency": {"from": before.reporting_currency, "to": tenant.reporting_currency},
            "time_zone": {"from": before.time_zone, "to": tenant.time_zone},
            "signup_event": {"from": before.signup_event, "to": tenant.signup_event},
            "onboarding_steps": {"from": before.onboarding_steps, "to": tenant.onboarding_steps},
        }),
    )
    .await?;
    scope.tx.commit().await?;
    if zone_changed {
        // Rebuilt now, so the answer's dashboards already use the new
        // zone; should this fail, the rollup worker does it (requested above).
        if let Err(err) = product::rebuild_if_requested(&state.pool, tenant.id).await {
            tracing::warn!(tenant = %tenant.slug, error = %err, "rollup rebuild left to the worker");
        }
    }
    Ok(Json(TenantView {
        tenant,
        role: scope.role,
    }))
}

/// Longest event name a setting may hold, in characters.
const MAX_EVENT_NAME_CHARS: usize = 200;
/// Most onboarding steps.
const MAX_ONBOARDING_STEPS: usize = 20;

/// What is wrong with a list of onboarding steps.
fn onboarding_steps_errors(steps: &[String]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if steps.len() > MAX_ONBOARDING_STEPS {
        errors.push(FieldError::new(
            "onboarding_steps",
            format!("at most {MAX_ONBOARDING_STEPS} steps"),
        ));
    }
    for (i, step) in steps.iter().enumerate() {
        if !(1..=MAX_EVENT_NAME_CHARS).contains(&step.chars().count()) {
            errors.push(FieldError::new(
                format!("onboarding_steps[{i}]"),
                format!("must be 1 to {MAX_EVENT_NAME_CHARS} characters long"),
            ));
        } else if steps[..i].contains(step) {
            errors.push(FieldError::new(
                format!("onboarding_steps[{i}]"),
                "repeats an earlier step",
            ));
        }
    }
    errors
}

/// Whether `code` looks like an ISO 4217 currency code (three capitals).
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Paging through the audit log, newest first.
#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Entries per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Only entries older than this id (the last id of the previous page).
    pub before: Option<i64>,
}

/// A page of the audit log.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

/// The tenant's audit log (owners and admins).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/audit-log", tag = "tenants",
    params(("slug" = String, Path, description = "Tenant slug"), AuditQuery),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn audit_log(
    mut scope: TenantScope,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    scope.require(Role::Admin)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 200"));
    }
    let entries = audit::list(&mut scope.tx, limit, query.before).await?;
    Ok(Json(AuditPage { entries }))
}
