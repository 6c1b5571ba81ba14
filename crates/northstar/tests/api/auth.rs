//! Log-in, sessions, cookies, CSRF, throttling, set-password, API keys.

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Method, Request, StatusCode, header},
};
use northstar_db::memberships::Role;
use serde_json::json;

use crate::support::{ORIGIN, PASSWORD, TestApp, session_cookie, test_settings};

fn login_request(email: &str, password: &str, from: Option<SocketAddr>) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({ "email": email, "password": password }).to_string(),
        ))
        .expect("request");
    if let Some(address) = from {
        request.extensions_mut().insert(ConnectInfo(address));
    }
    request
}

#[tokio::test]
async fn login_sets_a_host_only_secure_http_only_lax_cookie() {
    let app = TestApp::spawn().await;
    app.user("ada@example.test").await;
    let response = app
        .send(login_request("ada@example.test", PASSWORD, None))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let cookie = response.header("set-cookie").expect("set-cookie");
    let attributes: Vec<&str> = cookie.split("; ").collect();
    assert!(
        attributes[0].starts_with("__Host-northstar_session="),
        "{cookie}"
    );
    for expected in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(
            attributes.contains(&expected),
            "{expected} missing in {cookie}"
        );
    }
    assert!(
        !cookie.contains("Domain"),
        "__Host- cookies have no Domain: {cookie}"
    );
    assert!(cookie.contains("Max-Age=86400"), "{cookie}");
    assert_eq!(response.body["user"]["email"], "ada@example.test");
    assert!(
        response.body["csrf_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 32)
    );
    // The database stores the token's SHA-256, never the token.
    let token = attributes[0].split_once('=').expect("value").1;
    let mut admin = app.db.admin().await;
    let (hashed, raw): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE token_hash = $1), count(*) FILTER (WHERE token_hash = $2)
         FROM sessions",
    )
    .bind(northstar_db::secret_token::digest(token))
    .bind(token.as_bytes())
    .fetch_one(&mut admin)
    .await
    .expect("count");
    assert_eq!((hashed, raw), (1, 0));
}

#[tokio::test]
async fn plain_http_on_localhost_drops_secure_and_the_host_prefix() {
    let mut settings = test_settings();
    settings.secure_cookies = false;
    settings.public_origin = "http://localhost:8080".into();
    let app = TestApp::spawn_with(settings).await;
    app.user("dev@example.test").await;
    let response = app
        .send(login_request("dev@example.test", PASSWORD, None))
        .await;
    let cookie = response.header("set-cookie").expect("set-cookie");
    assert!(cookie.starts_with("northstar_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && !cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn me_needs_a_session_and_lists_tenants_with_roles() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    let me = owner.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["tenants"][0]["slug"], "acme");
    assert_eq!(me.body["tenants"][0]["role"], "owner");
    assert_eq!(
        me.body["csrf_token"],
        owner.csrf.clone().expect("csrf").as_str()
    );

    let anonymous = app.anonymous().get("/api/v1/me").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.code(), "unauthenticated");
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.user("known@example.test").await;
    let wrong_password = app
        .send(login_request(
            "known@example.test",
            "not the password",
            None,
        ))
        .await;
    let unknown_email = app
        .send(login_request("nobody@example.test", PASSWORD, None))
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.code(), "invalid_credentials");
    assert_eq!(wrong_password.status, unknown_email.status);
    assert_eq!(wrong_password.body, unknown_email.body);
    assert!(wrong_password.header("set-cookie").is_none());
}

#[tokio::test]
async fn email_is_case_insensitive() {
    let app = TestApp::spawn().await;
    app.user("Grace@Example.test").await;
    let response = app
        .send(login_request("grace@example.TEST", PASSWORD, None))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}

#[tokio::test]
async fn logout_destroys_the_session_server_side() {
    let app = TestApp::spawn().await;
    let ada = app.sign_in("ada@example.test").await;
    let logout = ada.post("/api/v1/auth/logout", json!({})).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.text);
    let cleared = logout.header("set-cookie").expect("set-cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The browser may keep sending the old cookie: it must not work any more.
    let after = ada.get("/api/v1/me").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    let mut admin = app.db.admin().await;
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&mut admin)
        .await
        .expect("count");
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn logging_in_again_rotates_the_session() {
    let app = TestApp::spawn().await;
    let first = app.sign_in("ada@example.test").await;
    let mut request = login_request("ada@example.test", PASSWORD, None);
    request.headers_mut().insert(
        header::COOKIE,
        first
            .cookie
            .clone()
            .expect("cookie")
            .parse()
            .expect("header"),
    );
    let second = app.send(request).await;
    assert_eq!(second.status, StatusCode::OK);
    let new_cookie = session_cookie(&second.headers).expect("new cookie");
    assert_ne!(Some(new_cookie), first.cookie);
    assert_eq!(
        first.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn idle_and_absolute_expiry_end_a_session() {
    let app = TestApp::spawn().await;
    let idle = app.sign_in("idle@example.test").await;
    let old = app.sign_in("old@example.test").await;
    let fresh = app.sign_in("fresh@example.test").await;
    let mut admin = app.db.admin().await;
    // Idle timeout in the test settings is one hour; absolute lifetime a day.
    sqlx::query(
        "UPDATE sessions s SET last_seen_at = now() - interval '61 minutes'
         FROM users u WHERE u.id = s.user_id AND u.email = 'idle@example.test'",
    )
    .execute(&mut admin)
    .await
    .expect("age the session");
    sqlx::query(
        "UPDATE sessions s SET expires_at = now() - interval '1 second'
         FROM users u WHERE u.id = s.user_id AND u.email = 'old@example.test'",
    )
    .execute(&mut admin)
    .await
    .expect("expire the session");
    assert_eq!(
        idle.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(old.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fresh.get("/api/v1/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn cookie_authenticated_changes_need_the_csrf_token() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    let body = json!({ "kind": "write", "name": "web" });
    let path = "/api/v1/tenants/acme/api-keys";

    let mut without = owner.clone();
    without.csrf = None;
    let refused = without.post(path, body.clone()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "csrf_rejected");

    let mut wrong = owner.clone();
    wrong.csrf = Some("x".repeat(32));
    assert_eq!(wrong.post(path, body.clone()).await.code(), "csrf_rejected");

    let mut cross_origin = owner.request(Method::POST, path, Some(body.clone()));
    cross_origin
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.test".parse().expect("header"));
    assert_eq!(owner.send(cross_origin).await.code(), "csrf_rejected");

    let mut same_origin = owner.request(Method::POST, path, Some(body.clone()));
    same_origin
        .headers_mut()
        .insert(header::ORIGIN, ORIGIN.parse().expect("header"));
    assert_eq!(owner.send(same_origin).await.status, StatusCode::CREATED);

    // Logging out is a change too.
    assert_eq!(
        without.post("/api/v1/auth/logout", json!({})).await.code(),
        "csrf_rejected"
    );
    // Nothing was created by the refused requests: one default write key plus one.
    let keys = owner.get(path).await;
    assert_eq!(keys.body["api_keys"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn login_from_another_origin_is_refused() {
    let app = TestApp::spawn().await;
    app.user("ada@example.test").await;
    let mut request = login_request("ada@example.test", PASSWORD, None);
    request
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.test".parse().expect("header"));
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.code(), "csrf_rejected");
}

#[tokio::test]
async fn login_is_throttled_per_account() {
    let app = TestApp::spawn().await;
    app.user("target@example.test").await;
    for attempt in 1..=10 {
        let from: SocketAddr = format!("10.0.0.{attempt}:4000").parse().expect("address");
        let response = app
            .send(login_request(
                "target@example.test",
                "wrong password",
                Some(from),
            ))
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    // From yet another address, even with the right password: the account is throttled.
    let from: SocketAddr = "10.0.1.1:4000".parse().expect("address");
    let throttled = app
        .send(login_request("TARGET@example.test", PASSWORD, Some(from)))
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.code(), "rate_limited");
    let retry_after: u64 = throttled
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1, "{retry_after}");
    // Another account is unaffected.
    app.user("other@example.test").await;
    let other = app
        .send(login_request("other@example.test", PASSWORD, Some(from)))
        .await;
    assert_eq!(other.status, StatusCode::OK);
}

#[tokio::test]
async fn login_is_throttled_per_client_address() {
    let app = TestApp::spawn().await;
    let from: SocketAddr = "192.0.2.7:5555".parse().expect("address");
    for attempt in 0..30 {
        let response = app
            .send(login_request(
                &format!("guess{attempt}@example.test"),
                "x",
                Some(from),
            ))
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    let blocked = app
        .send(login_request("guess-last@example.test", "x", Some(from)))
        .await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    let elsewhere: SocketAddr = "192.0.2.8:5555".parse().expect("address");
    let allowed = app
        .send(login_request(
            "guess-last@example.test",
            "x",
            Some(elsewhere),
        ))
        .await;
    assert_eq!(allowed.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_set_password_token_works_once() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    let invited = owner
        .post(
            "/api/v1/tenants/acme/members",
            json!({ "email": "new@acme.test", "role": "editor" }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    let token = invited.body["set_password_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert!(token.starts_with("ns_pw_"));

    let anonymous = app.anonymous();
    let set_password = |password: &str| {
        anonymous.post(
            "/api/v1/auth/set-password",
            json!({ "token": token, "password": password }),
        )
    };
    let weak = set_password("short").await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(weak.body["errors"][0]["field"], "password");

    let set = set_password("a long enough password").await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.text);
    let again = set_password("another long password").await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.body["errors"][0]["field"], "token");

    let login = app
        .send(login_request(
            "new@acme.test",
            "a long enough password",
            None,
        ))
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.body["tenants"][0]["role"], "editor");
}

#[tokio::test]
async fn secret_keys_authenticate_write_keys_do_not() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let key = app.secret_key(&acme, Role::Viewer).await;
    let members = key.get("/api/v1/tenants/acme/members").await;
    assert_eq!(members.status, StatusCode::OK, "{}", members.text);
    // Bearer requests are not CSRF-prone: no token needed, but the role still applies.
    let refused = key
        .post(
            "/api/v1/tenants/acme/api-keys",
            json!({ "kind": "write", "name": "x" }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "forbidden");

    let mut write_key = app.anonymous();
    write_key.bearer = Some(acme.write_key.clone());
    let with_write_key = write_key.get("/api/v1/tenants/acme/members").await;
    assert_eq!(with_write_key.status, StatusCode::FORBIDDEN);

    let mut garbage = app.anonymous();
    garbage.bearer = Some("ns_sk_not-a-real-key".into());
    assert_eq!(
        garbage.get("/api/v1/tenants/acme/members").await.status,
        StatusCode::UNAUTHORIZED
    );
    // A key cannot stand in for a person.
    assert_eq!(key.get("/api/v1/me").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    let created = owner
        .post(
            "/api/v1/tenants/acme/api-keys",
            json!({ "kind": "secret", "name": "ci", "role": "viewer" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let mut key = app.anonymous();
    key.bearer = created.body["secret"].as_str().map(str::to_owned);
    assert_eq!(key.get("/api/v1/tenants/acme").await.status, StatusCode::OK);
    let id = created.body["api_key"]["id"].as_str().expect("id");
    let revoked = owner
        .delete(&format!("/api/v1/tenants/acme/api-keys/{id}"))
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_string());
    assert_eq!(
        key.get("/api/v1/tenants/acme").await.status,
        StatusCode::UNAUTHORIZED
    );
    // The listing never shows secrets or hashes.
    let listing = owner.get("/api/v1/tenants/acme/api-keys").await;
    assert!(
        !listing
            .text
            .contains(key.bearer.as_deref().expect("secret"))
    );
    assert!(!listing.text.contains("hash"));
}
