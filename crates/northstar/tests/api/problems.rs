//! Bad input gets RFC 9457 problem details that name the field and reason.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use serde_json::json;

use crate::support::TestApp;

fn raw(
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(body.into()).expect("request")
}

#[tokio::test]
async fn bad_bodies_get_problem_details() {
    let app = TestApp::spawn().await;
    let login = "/api/v1/auth/login";
    let json_type = Some("application/json");
    let cases = [
        (
            "malformed",
            raw(Method::POST, login, json_type, "{\"email\": "),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (
            "trailing",
            raw(
                Method::POST,
                login,
                json_type,
                r#"{"email":"a@b.test","password":"x"} {"#,
            ),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (
            "missing field",
            raw(Method::POST, login, json_type, r#"{"email":"a@b.test"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some(("password", "is required")),
        ),
        (
            "wrong type",
            raw(
                Method::POST,
                login,
                json_type,
                r#"{"email":"a@b.test","password":42}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some(("password", "invalid type: integer `42`, expected a string")),
        ),
        (
            "unknown field",
            raw(
                Method::POST,
                login,
                json_type,
                r#"{"email":"a","password":"b","admin":true}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some(("admin", "is not a known field")),
        ),
        (
            "not an object",
            raw(Method::POST, login, json_type, r#""hello""#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((
                "body",
                r#"invalid type: string "hello", expected struct LoginRequest"#,
            )),
        ),
        (
            "no content type",
            raw(Method::POST, login, None, "{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            "form",
            raw(
                Method::POST,
                login,
                Some("application/x-www-form-urlencoded"),
                "a=b",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            "too large",
            raw(
                Method::POST,
                login,
                json_type,
                format!("{{\"email\":\"{}\"}}", "a".repeat(70 * 1024)),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        ),
        (
            "unknown route",
            raw(Method::GET, "/api/v1/nope", None, Body::empty()),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            "wrong method",
            raw(Method::PUT, login, json_type, "{}"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
        ),
    ];
    for (name, request, status, code, field) in cases {
        let response = app.send(request).await;
        assert_eq!(response.status, status, "{name}: {}", response.text);
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json"),
            "{name}"
        );
        assert_eq!(response.body["code"], code, "{name}");
        assert_eq!(response.body["status"], status.as_u16(), "{name}");
        assert_eq!(
            response.body["type"],
            format!("urn:northstar:problem:{code}"),
            "{name}"
        );
        assert!(response.body["title"].is_string(), "{name}");
        if let Some((field, reason)) = field {
            assert_eq!(
                response.body["errors"],
                json!([{ "field": field, "reason": reason }]),
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let generated = app
        .send(raw(Method::GET, "/healthz", None, Body::empty()))
        .await;
    let id = generated.header("x-request-id").expect("generated id");
    assert_eq!(id.len(), 36, "{id}");
    let mut request = raw(Method::GET, "/api/v1/nope", None, Body::empty());
    request
        .headers_mut()
        .insert("x-request-id", "trace-me-123".parse().expect("header"));
    let echoed = app.send(request).await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-me-123"));
}

#[tokio::test]
async fn bad_path_and_query_parameters() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    let not_uuid = owner
        .delete("/api/v1/tenants/acme/members/not-a-uuid")
        .await;
    assert_eq!(not_uuid.status, StatusCode::NOT_FOUND);
    assert_eq!(not_uuid.code(), "not_found");
    let not_number = owner.get("/api/v1/tenants/acme/audit-log?limit=many").await;
    assert_eq!(not_number.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(not_number.body["errors"][0]["field"], "limit");
    let too_many = owner.get("/api/v1/tenants/acme/audit-log?limit=5000").await;
    assert_eq!(
        too_many.body["errors"],
        json!([{ "field": "limit", "reason": "must be between 1 and 200" }])
    );
}

#[tokio::test]
async fn probes_answer() {
    let app = TestApp::spawn().await;
    let live = app
        .send(raw(Method::GET, "/healthz", None, Body::empty()))
        .await;
    assert_eq!(
        (live.status, live.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let ready = app
        .send(raw(Method::GET, "/readyz", None, Body::empty()))
        .await;
    assert_eq!(
        (ready.status, ready.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    app.state.pool.close().await;
    let closed = app
        .send(raw(Method::GET, "/readyz", None, Body::empty()))
        .await;
    assert_eq!(closed.status, StatusCode::SERVICE_UNAVAILABLE);
}
