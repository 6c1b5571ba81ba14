//! Provisioning and the super-admin API.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::TestApp;

fn new_tenant(slug: &str) -> serde_json::Value {
    json!({ "slug": slug, "name": format!("{slug} Inc"), "owner_email": format!("boss@{slug}.test") })
}

#[tokio::test]
async fn provisioning_creates_everything_in_one_go() {
    let app = TestApp::spawn().await;
    let root = app.superadmin().await;
    let response = root
        .post("/api/v1/admin/tenants", new_tenant("initech"))
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    let body = &response.body;
    assert_eq!(body["created"], true);
    assert_eq!(body["tenant"]["slug"], "initech");
    assert_eq!(body["tenant"]["status"], "active");
    assert_eq!(body["tenant"]["plan"], "free");
    assert_eq!(body["tenant"]["branding"]["primary_color"], "#4f46e5");
    assert_eq!(body["owner"]["created"], true);
    let secret = body["write_key"]["secret"].as_str().expect("write key");
    assert!(secret.starts_with("ns_wk_"));
    let token = body["owner"]["set_password_token"].as_str().expect("token");

    // The owner sets a password, signs in, and is the owner.
    let set = app
        .anonymous()
        .post(
            "/api/v1/auth/set-password",
            json!({ "token": token, "password": "initech owner pw" }),
        )
        .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT);
    let mut conn = app.db.admin().await;
    let (members, keys, audits): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM memberships WHERE role = 'owner'),
                (SELECT count(*) FROM api_keys WHERE kind = 'write'),
                (SELECT count(*) FROM audit_log WHERE action = 'tenant.provisioned' AND actor = 'user:root@platform.test')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("counts");
    assert_eq!((members, keys, audits), (1, 1, 1));
}

#[tokio::test]
async fn provisioning_is_idempotent_by_slug_and_owner() {
    let app = TestApp::spawn().await;
    let root = app.superadmin().await;
    let first = root
        .post("/api/v1/admin/tenants", new_tenant("hooli"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = root
        .post("/api/v1/admin/tenants", new_tenant("hooli"))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["created"], false);
    assert_eq!(again.body["tenant"]["id"], first.body["tenant"]["id"]);
    assert!(again.body.get("write_key").is_none());

    let mut other_owner = new_tenant("hooli");
    other_owner["owner_email"] = json!("someone@else.test");
    let taken = root.post("/api/v1/admin/tenants", other_owner).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.code(), "slug_taken");

    // Concurrent identical requests create one tenant.
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let root = root.clone();
        requests.spawn(async move {
            root.post("/api/v1/admin/tenants", new_tenant("pied-piper"))
                .await
        });
    }
    let responses = requests.join_all().await;
    let created = responses
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let repeated = responses
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(
        (created, repeated),
        (1, 5),
        "{:?}",
        responses.iter().map(|r| &r.text).collect::<Vec<_>>()
    );

    let mut conn = app.db.admin().await;
    let (tenants, keys, users): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM api_keys),
                (SELECT count(*) FROM users WHERE email LIKE 'boss@%')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("counts");
    assert_eq!((tenants, keys, users), (2, 2, 2));
}

#[tokio::test]
async fn provisioning_input_is_validated() {
    let app = TestApp::spawn().await;
    let root = app.superadmin().await;
    let cases = [
        (
            "Acme",
            "slug",
            "may contain only lowercase letters, digits and hyphens",
        ),
        ("ab", "slug", "must be 3 to 40 characters long"),
        ("admin", "slug", "is reserved"),
        ("9lives", "slug", "must start with a letter"),
        (
            "trailing-",
            "slug",
            "may not end with a hyphen or contain two in a row",
        ),
    ];
    for (slug, field, reason) in cases {
        let response = root.post("/api/v1/admin/tenants", new_tenant(slug)).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{slug}");
        assert_eq!(
            response.body["errors"],
            json!([{ "field": field, "reason": reason }]),
            "{slug}"
        );
    }
    let everything_wrong = root
        .post(
            "/api/v1/admin/tenants",
            json!({ "slug": "x", "name": "", "owner_email": "nope", "owner_password": "short", "plan": "platinum" }),
        )
        .await;
    let fields = everything_wrong.pluck("errors", "field");
    assert_eq!(
        fields,
        ["slug", "name", "owner_email", "owner_password", "plan"]
    );
    let missing = root
        .post("/api/v1/admin/tenants", json!({ "slug": "abc" }))
        .await;
    assert_eq!(missing.body["errors"][0]["field"], "name");
}

#[tokio::test]
async fn only_super_admins_reach_the_admin_api() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    assert_eq!(
        owner.get("/api/v1/admin/tenants").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        owner
            .post("/api/v1/admin/tenants", new_tenant("sneaky"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.anonymous().get("/api/v1/admin/tenants").await.status,
        StatusCode::UNAUTHORIZED
    );
    let key = app
        .secret_key(&acme, northstar_db::memberships::Role::Admin)
        .await;
    assert_eq!(
        key.get("/api/v1/admin/tenants").await.status,
        StatusCode::FORBIDDEN
    );
    let root = app.superadmin().await;
    let list = root.get("/api/v1/admin/tenants").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["tenants"][0]["slug"], "acme");
    assert_eq!(list.body["tenants"][0]["member_count"], 1);
}

#[tokio::test]
async fn suspension_locks_members_and_keys_out_until_reactivated() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    let key = app
        .secret_key(&acme, northstar_db::memberships::Role::Viewer)
        .await;
    let root = app.superadmin().await;
    let suspended = root
        .post("/api/v1/admin/tenants/acme/suspend", json!({}))
        .await;
    assert_eq!(suspended.status, StatusCode::OK, "{}", suspended.text);
    assert_eq!(suspended.body["status"], "suspended");
    for persona in [&owner, &key] {
        let refused = persona.get("/api/v1/tenants/acme/members").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.code(), "tenant_suspended");
    }
    assert_eq!(
        root.post("/api/v1/admin/tenants/nope/suspend", json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let back = root
        .post("/api/v1/admin/tenants/acme/reactivate", json!({}))
        .await;
    assert_eq!(back.body["status"], "active");
    let actions = owner
        .get("/api/v1/tenants/acme/audit-log")
        .await
        .pluck("entries", "action");
    assert_eq!(
        actions,
        [
            "tenant.reactivated",
            "tenant.suspended",
            "tenant.provisioned"
        ]
    );
}
