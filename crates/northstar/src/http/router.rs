//! Every route, grouped by who calls it. The OpenAPI document is generated
//! from this same list (`utoipa_axum::routes!`), so the two cannot drift.

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, Request},
};
use tower::ServiceBuilder;
use tower_http::{
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

use super::{admin, api_keys, auth, error::ApiError, health, members, tenants};
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
        .routes(routes!(tenants::get))
        .routes(routes!(tenants::audit_log))
        .routes(routes!(members::list, members::add))
        .routes(routes!(members::change_role, members::remove))
        .routes(routes!(api_keys::list, api_keys::create))
        .routes(routes!(api_keys::revoke))
        // Admin
        .routes(routes!(admin::list_tenants, admin::provision_tenant))
        .routes(routes!(admin::suspend_tenant))
        .routes(routes!(admin::reactivate_tenant))
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

/// The whole application, used alike by `northstar serve` and the tests.
pub fn build_router(state: AppState) -> Router {
    let (router, openapi) = api_routes().split_for_parts();
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
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware)
        .with_state(state)
}
