//! The role matrix, member management and its guard rails.

use axum::http::StatusCode;
use northstar_db::memberships::Role;
use serde_json::json;

use crate::support::{Persona, TestApp};

/// What each role may do, one row per (role, request): the status expected.
#[tokio::test]
async fn the_role_matrix_holds() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    let admin = app.member(&acme, Role::Admin).await;
    let editor = app.member(&acme, Role::Editor).await;
    let viewer = app.member(&acme, Role::Viewer).await;
    let admin_key = app.secret_key(&acme, Role::Admin).await;
    let viewer_key = app.secret_key(&acme, Role::Viewer).await;
    let personas = [
        ("owner", &owner),
        ("admin", &admin),
        ("editor", &editor),
        ("viewer", &viewer),
        ("admin key", &admin_key),
        ("viewer key", &viewer_key),
    ];
    use StatusCode as S;
    // (request, [owner, admin, editor, viewer, admin key, viewer key])
    #[rustfmt::skip]
    let reads: [(&str, [S; 6]); 4] = [
        ("/api/v1/tenants/acme", [S::OK; 6]),
        ("/api/v1/tenants/acme/members", [S::OK; 6]),
        (
            "/api/v1/tenants/acme/api-keys",
            [S::OK, S::OK, S::FORBIDDEN, S::FORBIDDEN, S::OK, S::FORBIDDEN],
        ),
        (
            "/api/v1/tenants/acme/audit-log",
            [S::OK, S::OK, S::FORBIDDEN, S::FORBIDDEN, S::OK, S::FORBIDDEN],
        ),
    ];
    for (path, expected) in reads {
        for ((who, persona), want) in personas.iter().zip(expected) {
            let got = persona.get(path).await;
            assert_eq!(got.status, want, "{who} GET {path}: {}", got.text);
        }
    }
    // (what, path, body for persona i, expected per persona)
    type Body = fn(usize, &str) -> serde_json::Value;
    #[rustfmt::skip]
    let writes: [(&str, &str, Body, [S; 6]); 3] = [
        (
            "adds a viewer",
            "/api/v1/tenants/acme/members",
            |i, _| json!({ "email": format!("v{i}@acme.test"), "role": "viewer" }),
            [S::CREATED, S::CREATED, S::FORBIDDEN, S::FORBIDDEN, S::CREATED, S::FORBIDDEN],
        ),
        (
            "adds an owner",
            "/api/v1/tenants/acme/members",
            |i, _| json!({ "email": format!("o{i}@acme.test"), "role": "owner" }),
            [S::CREATED, S::FORBIDDEN, S::FORBIDDEN, S::FORBIDDEN, S::FORBIDDEN, S::FORBIDDEN],
        ),
        (
            "creates a key",
            "/api/v1/tenants/acme/api-keys",
            |_, who| json!({ "kind": "secret", "name": who, "role": "editor" }),
            [S::CREATED, S::CREATED, S::FORBIDDEN, S::FORBIDDEN, S::CREATED, S::FORBIDDEN],
        ),
    ];
    for (what, path, body, expected) in writes {
        for (i, ((who, persona), want)) in personas.iter().zip(expected).enumerate() {
            let got = persona.post(path, body(i, who)).await;
            assert_eq!(got.status, want, "{who} {what}: {}", got.text);
        }
    }
}

#[tokio::test]
async fn admins_cannot_touch_owners_and_the_last_owner_stays() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    let admin = app.member(&acme, Role::Admin).await;
    let owner_path = member_path(&owner);

    let demote = admin.patch(&owner_path, json!({ "role": "viewer" })).await;
    assert_eq!(demote.status, StatusCode::FORBIDDEN);
    let remove = admin.delete(&owner_path).await;
    assert_eq!(remove.status, StatusCode::FORBIDDEN);
    let promote_self = admin
        .patch(&member_path(&admin), json!({ "role": "owner" }))
        .await;
    assert_eq!(promote_self.status, StatusCode::FORBIDDEN);

    // The only owner can neither step down nor leave.
    let step_down = owner.patch(&owner_path, json!({ "role": "admin" })).await;
    assert_eq!(step_down.status, StatusCode::CONFLICT);
    assert_eq!(step_down.code(), "last_owner");
    let leave = owner.delete(&owner_path).await;
    assert_eq!(leave.code(), "last_owner");

    // With a second owner, the first may step down.
    let second = owner
        .patch(&member_path(&admin), json!({ "role": "owner" }))
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    let step_down = owner.patch(&owner_path, json!({ "role": "admin" })).await;
    assert_eq!(step_down.status, StatusCode::OK, "{}", step_down.text);
    assert_eq!(step_down.body["role"], "admin");
}

#[tokio::test]
async fn concurrent_demotions_cannot_remove_every_owner() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let first = app.owner(&acme).await;
    let second = app.member(&acme, Role::Owner).await;
    let first_path = member_path(&first);
    let second_path = member_path(&second);
    // Each owner demotes the other at the same time.
    let (a, b) = tokio::join!(
        first.patch(&second_path, json!({ "role": "viewer" })),
        second.patch(&first_path, json!({ "role": "viewer" })),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert!(
        statuses == [StatusCode::OK, StatusCode::FORBIDDEN]
            || statuses == [StatusCode::OK, StatusCode::CONFLICT],
        "{statuses:?}: {} / {}",
        a.text,
        b.text
    );
    let members = first.get("/api/v1/tenants/acme/members").await;
    let members = if members.status == StatusCode::OK {
        members
    } else {
        second.get("/api/v1/tenants/acme/members").await
    };
    let owners = members.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["role"] == "owner")
        .count();
    assert_eq!(owners, 1);
}

#[tokio::test]
async fn members_can_leave_and_are_then_strangers() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let viewer = app.member(&acme, Role::Viewer).await;
    let path = member_path(&viewer);
    assert_eq!(viewer.delete(&path).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        viewer.get("/api/v1/tenants/acme").await.status,
        StatusCode::NOT_FOUND
    );
    let me = viewer.get("/api/v1/me").await;
    assert_eq!(me.body["tenants"], json!([]));
}

#[tokio::test]
async fn adding_members_is_checked_and_audited() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    app.user("existing@example.test").await;
    let added = owner
        .post(
            "/api/v1/tenants/acme/members",
            json!({ "email": "existing@example.test", "role": "editor" }),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(added.body["user_created"], false);
    assert!(added.body.get("set_password_token").is_none());

    let again = owner
        .post(
            "/api/v1/tenants/acme/members",
            json!({ "email": "EXISTING@example.test", "role": "viewer" }),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "already_member");

    let bad = owner
        .post(
            "/api/v1/tenants/acme/members",
            json!({ "email": "not-an-email", "role": "superuser" }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "role");

    let bad_email = owner
        .post(
            "/api/v1/tenants/acme/members",
            json!({ "email": "not-an-email", "role": "viewer" }),
        )
        .await;
    assert_eq!(bad_email.body["errors"][0]["field"], "email");

    let editor_id = added.body["member"]["user_id"].as_str().expect("id");
    let changed = owner
        .patch(
            &format!("/api/v1/tenants/acme/members/{editor_id}"),
            json!({ "role": "viewer" }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    let removed = owner
        .delete(&format!("/api/v1/tenants/acme/members/{editor_id}"))
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);

    let audit = owner.get("/api/v1/tenants/acme/audit-log").await;
    let entries = audit.body["entries"].as_array().expect("entries");
    let actions = audit.pluck("entries", "action");
    assert_eq!(
        actions,
        [
            "member.removed",
            "member.role_changed",
            "member.added",
            "tenant.provisioned"
        ]
    );
    assert_eq!(
        entries[1]["details"],
        json!({ "from": "editor", "to": "viewer" })
    );
    assert_eq!(entries[0]["actor"], format!("user:{}", owner.email));
    assert!(entries[0]["request_id"].is_string());
    // Paging.
    let page = owner
        .get(&format!(
            "/api/v1/tenants/acme/audit-log?limit=2&before={}",
            entries[1]["id"]
        ))
        .await;
    let paged = page.pluck("entries", "action");
    assert_eq!(paged, ["member.added", "tenant.provisioned"]);
}

#[tokio::test]
async fn api_keys_are_validated() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    for (body, field) in [
        (json!({ "kind": "secret", "name": "no role" }), "role"),
        (
            json!({ "kind": "secret", "name": "owner key", "role": "owner" }),
            "role",
        ),
        (
            json!({ "kind": "write", "name": "w", "role": "viewer" }),
            "role",
        ),
        (json!({ "kind": "write", "name": "" }), "name"),
        (json!({ "kind": "public", "name": "x" }), "kind"),
    ] {
        let response = owner
            .post("/api/v1/tenants/acme/api-keys", body.clone())
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            response.text
        );
        assert_eq!(response.body["errors"][0]["field"], field, "{body}");
    }
    let created = owner
        .post(
            "/api/v1/tenants/acme/api-keys",
            json!({ "kind": "write", "name": "iOS app" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let secret = created.body["secret"].as_str().expect("secret");
    assert!(
        secret.starts_with("ns_wk_") && secret.len() == 38,
        "{secret}"
    );
    assert_eq!(created.body["api_key"]["prefix"], &secret[..12]);
    assert!(created.body["api_key"]["role"].is_null());
}

/// The URL of `persona`'s membership in acme.
fn member_path(persona: &Persona) -> String {
    format!(
        "/api/v1/tenants/acme/members/{}",
        persona.user_id.expect("id")
    )
}
