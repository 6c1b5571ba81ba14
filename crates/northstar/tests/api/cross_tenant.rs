//! The cross-tenant matrix: every tenant route, from the OpenAPI document
//! so new routes are covered without editing this file, called by members
//! and keys of another tenant. All must get 404, exactly as for a tenant
//! that does not exist, while the tenant's own owner gets through.

use axum::http::{Method, StatusCode};
use northstar_db::memberships::Role;
use serde_json::{Value, json};

use crate::support::{Persona, TestApp, TestTenant};

/// Every `(method, path template)` under `/api/v1/tenants/{slug}`.
fn tenant_routes() -> Vec<(Method, String)> {
    let openapi = serde_json::to_value(northstar::http::openapi()).expect("openapi");
    let mut routes = Vec::new();
    for (path, item) in openapi["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/v1/tenants/{slug}") {
            continue;
        }
        for method in item.as_object().expect("path item").keys() {
            routes.push((method.to_uppercase().parse().expect("method"), path.clone()));
        }
    }
    assert!(
        routes.len() >= 8,
        "expected the tenant routes, found {routes:?}"
    );
    routes
}

/// The template filled with `tenant`'s own ids, and a plausible body.
fn concrete(template: &str, tenant: &TestTenant, ids: &Ids) -> (String, Option<Value>) {
    let path = template
        .replace("{slug}", &tenant.slug)
        .replace("{user_id}", &ids.user_id)
        .replace("{key_id}", &ids.key_id)
        .replace("{secret_id}", &ids.secret_id);
    assert!(
        !path.contains('{'),
        "no id fixture for {template}: add one to Ids"
    );
    let body = match template {
        t if t.ends_with("/members") => Some(json!({ "email": "x@y.test", "role": "viewer" })),
        t if t.ends_with("/members/{user_id}") => Some(json!({ "role": "viewer" })),
        t if t.ends_with("/api-keys") => Some(json!({ "kind": "write", "name": "probe" })),
        _ => Some(json!({})),
    };
    (path, body)
}

struct Ids {
    user_id: String,
    key_id: String,
    secret_id: String,
}

async fn ids_of(owner: &Persona, tenant: &TestTenant) -> Ids {
    let keys = owner
        .get(&format!("/api/v1/tenants/{}/api-keys", tenant.slug))
        .await;
    let secret = owner
        .post(
            &format!("/api/v1/tenants/{}/billing/stripe/secrets", tenant.slug),
            json!({ "secret": "whsec_crossTenantProbe0123456789" }),
        )
        .await;
    Ids {
        user_id: owner.user_id.expect("owner id").to_string(),
        key_id: keys.body["api_keys"][0]["id"]
            .as_str()
            .expect("key id")
            .to_owned(),
        secret_id: secret.body["id"]
            .as_str()
            .expect("stripe secret id")
            .to_owned(),
    }
}

async fn call(
    persona: &Persona,
    method: &Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let body = if *method == Method::GET || *method == Method::DELETE {
        None
    } else {
        body
    };
    let response = persona
        .send(persona.request(method.clone(), path, body))
        .await;
    (response.status, response.body)
}

#[tokio::test]
async fn no_tenant_route_answers_another_tenants_members_or_keys() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let globex_owner = app.owner(&globex).await;
    let globex_ids = ids_of(&globex_owner, &globex).await;
    let outsiders = [
        ("acme owner", app.owner(&acme).await),
        ("acme admin key", app.secret_key(&acme, Role::Admin).await),
        ("acme viewer", app.member(&acme, Role::Viewer).await),
    ];
    let not_found = app.anonymous();
    let mut checked = 0;
    for (method, template) in tenant_routes() {
        let (path, body) = concrete(&template, &globex, &globex_ids);
        for (who, outsider) in &outsiders {
            let (status, problem) = call(outsider, &method, &path, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{who}: {method} {path} -> {problem}"
            );
            assert_eq!(problem["code"], "not_found");
            // Indistinguishable from a tenant that does not exist.
            let missing = path.replacen("/globex", "/no-such-tenant", 1);
            let (missing_status, missing_problem) =
                call(outsider, &method, &missing, body.clone()).await;
            assert_eq!(
                (missing_status, &missing_problem),
                (status, &problem),
                "{who}: {method} {missing}"
            );
            checked += 1;
        }
        let (status, _) = call(&not_found, &method, &path, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "anonymous: {method} {path}"
        );
        // The tenant's own owner is not refused: the 404s above are about membership.
        if method == Method::GET {
            let (status, body) = call(&globex_owner, &method, &path, None).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "globex owner: {method} {path} -> {body}"
            );
        }
    }
    assert!(checked >= 24, "only {checked} checks ran");
    // Nothing of globex changed: its owner, one member, one write key.
    let members = globex_owner.get("/api/v1/tenants/globex/members").await;
    assert_eq!(members.body["members"].as_array().map(Vec::len), Some(1));
    let keys = globex_owner.get("/api/v1/tenants/globex/api-keys").await;
    assert_eq!(keys.body["api_keys"].as_array().map(Vec::len), Some(1));
    assert!(keys.body["api_keys"][0]["revoked_at"].is_null());
}

#[tokio::test]
async fn ids_of_another_tenant_are_invisible_inside_ones_own() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let acme_owner = app.owner(&acme).await;
    let globex_owner = app.owner(&globex).await;
    let globex_ids = ids_of(&globex_owner, &globex).await;

    // Acme's owner addresses globex's member and key through acme's own URL:
    // authorised for acme, but RLS hides globex's rows.
    let demote = acme_owner
        .patch(
            &format!("/api/v1/tenants/acme/members/{}", globex_ids.user_id),
            json!({ "role": "viewer" }),
        )
        .await;
    assert_eq!(demote.status, StatusCode::NOT_FOUND, "{}", demote.text);
    let remove = acme_owner
        .delete(&format!(
            "/api/v1/tenants/acme/members/{}",
            globex_ids.user_id
        ))
        .await;
    assert_eq!(remove.status, StatusCode::NOT_FOUND);
    let revoke = acme_owner
        .delete(&format!(
            "/api/v1/tenants/acme/api-keys/{}",
            globex_ids.key_id
        ))
        .await;
    assert_eq!(revoke.status, StatusCode::NOT_FOUND);

    let member = globex_owner.get("/api/v1/tenants/globex/members").await;
    assert_eq!(member.body["members"][0]["role"], "owner");
    let keys = globex_owner.get("/api/v1/tenants/globex/api-keys").await;
    assert!(keys.body["api_keys"][0]["revoked_at"].is_null());
    // And acme's audit log recorded nothing of it.
    let actions = acme_owner
        .get("/api/v1/tenants/acme/audit-log")
        .await
        .pluck("entries", "action");
    assert_eq!(actions, ["tenant.provisioned"]);
}
