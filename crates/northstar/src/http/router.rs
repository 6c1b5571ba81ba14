//! Every route, grouped by who calls it. The OpenAPI document is generated
//! from this same list (`utoipa_axum::routes!`), so the two cannot drift.

use std::time::Duration;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, Method, Request},
    routing::post,
};
use tower::ServiceBuilder;
use tower_http::{
    cors::{AllowHeaders, Any, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    trace::TraceLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{
        ApiKey as ApiKeyScheme, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::SwaggerUi;

use super::billing;
use super::stripe_webhook;
use super::{
    admin, api_keys, auth, dashboard, error::ApiError, health, import, ingestion, members, posthog,
    segment, tenants,
};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Northstar API",
        description = "Multi-tenant SaaS analytics. Errors are RFC 9457 problem details \
                       (`application/problem+json`) with a stable `code`.",
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Sessions and the signed-in user"),
        (name = "tenants", description = "A tenant and its audit log"),
        (name = "members", description = "Who belongs to a tenant"),
        (name = "api-keys", description = "Write keys (ingestion) and secret keys (REST API)"),
        (name = "ingestion", description = "The Segment tracking API, PostHog capture, bulk import and ingestion counters"),
        (name = "dashboards", description = "Headline numbers and series, served from rollups"),
        (name = "billing", description = "Billing data, revenue and the Stripe webhook"),
        (name = "admin", description = "Platform super-admin"),
        (name = "operations", description = "Probes"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKeyScheme::Cookie(ApiKeyValue::with_description(
                "__Host-northstar_session",
                "Session cookie set by POST /api/v1/auth/login; changes also need X-CSRF-Token.",
            ))),
        );
        components.add_security_scheme(
            "secret_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A tenant's secret API key (ns_sk_…)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "write_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A tenant's write key (ns_wk_…) as the user name, with an empty password.",
                    ))
                    .build(),
            ),
        );
    }
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        // Operations
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        // Web UI and API clients: sessions
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::set_password))
        // Web UI and API clients: tenant data
        .routes(routes!(tenants::get, tenants::update))
        .routes(routes!(tenants::audit_log))
        .routes(routes!(members::list, members::add))
        .routes(routes!(members::change_role, members::remove))
        .routes(routes!(api_keys::list, api_keys::create))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(import::ndjson))
        .routes(routes!(import::csv))
        .routes(routes!(ingestion::stats))
        // Web UI and API clients: billing
        .routes(routes!(billing::list_customers, billing::upsert_customer))
        .routes(routes!(billing::list_plans, billing::upsert_plan))
        .routes(routes!(billing::upsert_invoice))
        .routes(routes!(billing::cancel_subscription))
        .routes(routes!(
            billing::list_exchange_rates,
            billing::put_exchange_rates
        ))
        .routes(routes!(billing::csv_import::import_csv))
        // Web UI and API clients: dashboards
        .routes(routes!(dashboard::overview))
        .routes(routes!(dashboard::revenue))
        .routes(routes!(dashboard::revenue_cohorts))
        .routes(routes!(dashboard::users))
        .routes(routes!(dashboard::support))
        // Billing: Stripe
        .routes(routes!(
            stripe_webhook::list_secrets,
            stripe_webhook::add_secret
        ))
        .routes(routes!(stripe_webhook::revoke_secret))
        .routes(routes!(stripe_webhook::receive))
        // Admin
        .routes(routes!(admin::list_tenants, admin::provision_tenant))
        .routes(routes!(admin::suspend_tenant))
        .routes(routes!(admin::reactivate_tenant))
        .routes(routes!(admin::list_jobs))
}

/// SDK-facing ingestion: Segment's tracking API (with analytics.js's short
/// paths) and PostHog's capture API.
fn sdk_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Segment ingestion
        .routes(routes!(segment::batch))
        .route("/v1/import", post(segment::batch))
        .routes(routes!(segment::track))
        .routes(routes!(segment::page))
        .routes(routes!(segment::screen))
        .routes(routes!(segment::identify))
        .routes(routes!(segment::group))
        .routes(routes!(segment::alias))
        .route("/v1/t", post(segment::track))
        .route("/v1/p", post(segment::page))
        .route("/v1/s", post(segment::screen))
        .route("/v1/i", post(segment::identify))
        .route("/v1/g", post(segment::group))
        .route("/v1/a", post(segment::alias))
        // PostHog ingestion
        .routes(routes!(posthog::capture))
        .route("/batch", post(posthog::capture))
        .route("/capture/", post(posthog::capture))
        .route("/capture", post(posthog::capture))
        .route("/e/", post(posthog::capture))
        .route("/e", post(posthog::capture))
        .route("/i/v0/e/", post(posthog::capture))
        .route("/i/v0/e", post(posthog::capture))
}

/// Browsers call the SDK routes cross-origin with the write key in the body
/// or in `Authorization`, so CORS allows any origin, without credentials.
/// The 405 fallback is set before the layer, so preflights reach it.
fn with_cors(sdk: Router<AppState>) -> Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(24 * 3600));
    sdk.method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(cors)
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().merge(sdk_routes()).split_for_parts().1
}

/// The whole application, used alike by `northstar serve` and the tests.
pub fn build_router(state: AppState) -> Router {
    let (router, mut openapi) = api_routes().split_for_parts();
    let (sdk, sdk_openapi) = sdk_routes().split_for_parts();
    openapi.merge(sdk_openapi);
    let max_body = state.settings.max_body_bytes;
    let request_id = HeaderName::from_static("x-request-id");
    let middleware = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
        ]))
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id));
    router
        .merge(with_cors(sdk))
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware)
        .with_state(state)
}
