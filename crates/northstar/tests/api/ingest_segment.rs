//! The Segment tracking API, message type by message type: table-driven
//! wire fixtures (what each call stores), the spec's clock-skew correction,
//! gzip, analytics.js's short paths with CORS, and the size limits.

use std::io::Write;

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::support::{StoredEvent, TestApp};

/// One wire fixture: a call and the row it must store.
struct Fixture {
    name: &'static str,
    path: &'static str,
    body: Value,
    stored: Value,
}

fn fixtures() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "track with properties, context and integrations",
            path: "/v1/track",
            body: json!({
                "messageId": "m-track", "userId": "u1", "anonymousId": "a1",
                "event": "Order Completed",
                "properties": {"revenue": 49.5, "items": [{"sku": "x", "qty": 2}], "coupon": null},
                "context": {"library": {"name": "analytics-node", "version": "6.0.0"}, "ip": "203.0.113.9"},
                "integrations": {"All": false}
            }),
            stored: json!({
                "type": "track", "event": "Order Completed", "user_id": "u1", "anonymous_id": "a1",
                "group_id": null, "previous_id": null,
                "properties": {"revenue": 49.5, "items": [{"sku": "x", "qty": 2}], "coupon": null},
                "context": {"library": {"name": "analytics-node", "version": "6.0.0"}, "ip": "203.0.113.9"}
            }),
        },
        Fixture {
            name: "page with name and category",
            path: "/v1/page",
            body: json!({
                "messageId": "m-page", "anonymousId": "a2", "name": "Pricing", "category": "Marketing",
                "properties": {"path": "/pricing", "title": "Pricing"}
            }),
            stored: json!({
                "type": "page", "event": "Pricing", "user_id": null, "anonymous_id": "a2",
                "group_id": null, "previous_id": null,
                "properties": {"path": "/pricing", "title": "Pricing", "category": "Marketing"},
                "context": null
            }),
        },
        Fixture {
            name: "screen without a name",
            path: "/v1/screen",
            body: json!({"messageId": "m-screen", "userId": 42, "properties": {"build": 7}}),
            stored: json!({
                "type": "screen", "event": null, "user_id": "42", "anonymous_id": null,
                "group_id": null, "previous_id": null, "properties": {"build": 7}, "context": null
            }),
        },
        Fixture {
            name: "identify keeps traits",
            path: "/v1/identify",
            body: json!({
                "messageId": "m-identify", "userId": "u3", "anonymousId": "a3",
                "traits": {"email": "ada@example.com", "plan": "team", "seats": 5}
            }),
            stored: json!({
                "type": "identify", "event": null, "user_id": "u3", "anonymous_id": "a3",
                "group_id": null, "previous_id": null,
                "properties": {"email": "ada@example.com", "plan": "team", "seats": 5},
                "context": null
            }),
        },
        Fixture {
            name: "group with a numeric group id",
            path: "/v1/group",
            body: json!({
                "messageId": "m-group", "userId": "u4", "groupId": 1001,
                "traits": {"name": "Initech", "employees": 120}
            }),
            stored: json!({
                "type": "group", "event": null, "user_id": "u4", "anonymous_id": null,
                "group_id": "1001", "previous_id": null,
                "properties": {"name": "Initech", "employees": 120}, "context": null
            }),
        },
        Fixture {
            name: "alias",
            path: "/v1/alias",
            body: json!({"messageId": "m-alias", "userId": "u5", "previousId": "a5"}),
            stored: json!({
                "type": "alias", "event": null, "user_id": "u5", "anonymous_id": null,
                "group_id": null, "previous_id": "a5", "properties": null, "context": null
            }),
        },
        Fixture {
            name: "the path decides the type, whatever the body says",
            path: "/v1/track",
            body: json!({"messageId": "m-typed", "type": "identify", "userId": "u6", "event": "Clicked"}),
            stored: json!({
                "type": "track", "event": "Clicked", "user_id": "u6", "anonymous_id": null,
                "group_id": null, "previous_id": null, "properties": null, "context": null
            }),
        },
        Fixture {
            name: "an empty userId counts as absent",
            path: "/v1/track",
            body: json!({"messageId": "m-empty", "userId": "", "anonymousId": "a7", "event": "Viewed"}),
            stored: json!({
                "type": "track", "event": "Viewed", "user_id": null, "anonymous_id": "a7",
                "group_id": null, "previous_id": null, "properties": null, "context": null
            }),
        },
    ]
}

fn projection(event: &StoredEvent) -> Value {
    json!({
        "type": event.kind, "event": event.event, "user_id": event.user_id,
        "anonymous_id": event.anonymous_id, "group_id": event.group_id,
        "previous_id": event.previous_id, "properties": event.properties, "context": event.context,
    })
}

fn stored<'a>(events: &'a [StoredEvent], message_id: &str) -> &'a StoredEvent {
    events
        .iter()
        .find(|e| e.message_id == message_id)
        .unwrap_or_else(|| panic!("{message_id} was not stored: {events:#?}"))
}

#[tokio::test]
async fn every_message_type_stores_what_the_spec_says() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);
    let fixtures = fixtures();
    for fixture in &fixtures {
        let response = sdk.post(fixture.path, fixture.body.clone()).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{}: {}",
            fixture.name,
            response.text
        );
        assert_eq!(
            response.body,
            json!({"success": true, "accepted": 1}),
            "{}",
            fixture.name
        );
    }
    let events = app.events().await;
    assert_eq!(events.len(), fixtures.len());
    for fixture in &fixtures {
        let id = fixture.body["messageId"].as_str().expect("fixture id");
        let event = stored(&events, id);
        assert_eq!(projection(event), fixture.stored, "{}", fixture.name);
        assert_eq!(event.tenant_id, acme.id, "{}", fixture.name);
    }
}

#[tokio::test]
async fn a_batch_mixes_types_and_assigns_missing_message_ids() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let fixtures = fixtures();
    let mut batch: Vec<Value> = fixtures
        .iter()
        .map(|f| {
            let mut message = f.body.clone();
            if message.get("type").is_none() {
                message["type"] = json!(f.path.trim_start_matches("/v1/"));
            }
            message
        })
        .collect();
    batch.push(json!({"type": "track", "userId": "u9", "event": "No Id"}));
    let response = app
        .sdk(&acme.write_key)
        .post("/v1/batch", json!({ "batch": batch }))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["accepted"], batch.len());
    let events = app.events().await;
    assert_eq!(events.len(), batch.len());
    for fixture in &fixtures {
        let id = fixture.body["messageId"].as_str().expect("fixture id");
        let mut expected = fixture.stored.clone();
        if fixture.name.starts_with("the path decides") {
            // In a batch the body's type is the type.
            expected["type"] = json!("identify");
            expected["event"] = Value::Null;
        }
        assert_eq!(
            projection(stored(&events, id)),
            expected,
            "{}",
            fixture.name
        );
    }
    let assigned = events
        .iter()
        .find(|e| e.event.as_deref() == Some("No Id"))
        .expect("the message without id");
    assert!(
        assigned.message_id.starts_with("ns-") && assigned.message_id.len() == 39,
        "assigned id {}",
        assigned.message_id
    );
    // `/v1/import` is the same endpoint.
    let response = app
        .sdk(&acme.write_key)
        .post(
            "/v1/import",
            json!({"batch": [{"type": "track", "userId": "u9", "event": "Imported"}]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn time_is_corrected_for_the_clients_clock_skew() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);
    // A device clock three hours behind: it says it sent the message 2 s
    // after it happened.
    let happened = Utc::now() - Duration::hours(3);
    let sent = happened + Duration::seconds(2);
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let cases = [
        // (messageId, message fields, batch sentAt)
        (
            "skewed",
            json!({"timestamp": rfc(happened), "sentAt": rfc(sent)}),
            None,
        ),
        (
            "original-wins",
            json!({"originalTimestamp": rfc(happened), "timestamp": "2001-01-01T00:00:00Z",
                   "sentAt": rfc(sent)}),
            None,
        ),
        (
            "batch-sent-at",
            json!({"timestamp": rfc(happened)}),
            Some(rfc(sent)),
        ),
        ("as-given", json!({"timestamp": rfc(happened)}), None),
        ("no-time", json!({}), None),
    ];
    for (id, fields, batch_sent_at) in &cases {
        let mut message = json!({"type": "track", "messageId": id, "userId": "u", "event": "E"});
        for (key, value) in fields.as_object().expect("fields") {
            message[key] = value.clone();
        }
        let mut body = json!({ "batch": [message] });
        if let Some(sent_at) = batch_sent_at {
            body["sentAt"] = json!(sent_at);
        }
        let response = sdk.post("/v1/batch", body).await;
        assert_eq!(response.status, StatusCode::OK, "{id}: {}", response.text);
    }
    let events = app.events().await;
    let happened = at(&rfc(happened));
    let skew = Duration::seconds(2);
    for id in ["skewed", "original-wins", "batch-sent-at"] {
        let event = stored(&events, id);
        // receivedAt - (sentAt - originalTimestamp), to the microsecond.
        assert_eq!(event.time, event.received_at - skew, "{id}");
        assert_eq!(event.sent_at, Some(happened + skew), "{id}: sentAt is kept");
    }
    assert_eq!(stored(&events, "as-given").time, happened);
    let untimed = stored(&events, "no-time");
    assert_eq!(untimed.time, untimed.received_at);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("compress");
    encoder.finish().expect("compress")
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_bad_gzip_is_a_400() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);
    let body =
        json!({"batch": [{"type": "track", "userId": "u", "event": "Zipped", "messageId": "z1"}]});
    let response = sdk
        .post_bytes(
            "/v1/batch",
            gzip(body.to_string().as_bytes()),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(app.events().await[0].message_id, "z1");

    let response = sdk
        .post_bytes(
            "/v1/batch",
            b"not gzip".to_vec(),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.text
    );

    let response = sdk
        .post_bytes(
            "/v1/batch",
            body.to_string().into_bytes(),
            &[("content-encoding", "br")],
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.body["errors"][0]["field"], "Content-Encoding");

    // A small body that inflates past 500 KB is refused.
    let bomb =
        json!({"batch": [{"type": "track", "userId": "u", "event": "x".repeat(600 * 1024)}]});
    let response = sdk
        .post_bytes(
            "/v1/batch",
            gzip(bomb.to_string().as_bytes()),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.events().await.len(), 1);
}

#[tokio::test]
async fn analytics_js_short_paths_take_text_plain_with_the_key_in_the_body() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let paths = [
        ("/v1/t", json!({"event": "Clicked"}), "track"),
        ("/v1/p", json!({"name": "Home"}), "page"),
        ("/v1/s", json!({"name": "Home"}), "screen"),
        ("/v1/i", json!({"traits": {"a": 1}}), "identify"),
        ("/v1/g", json!({"groupId": "g1"}), "group"),
        ("/v1/a", json!({"previousId": "anon"}), "alias"),
    ];
    for (i, (path, fields, _)) in paths.iter().enumerate() {
        let mut message = json!({
            "writeKey": acme.write_key, "userId": "u1", "messageId": format!("short-{i}")
        });
        for (key, value) in fields.as_object().expect("fields") {
            message[key] = value.clone();
        }
        let request = Request::builder()
            .method(Method::POST)
            .uri(*path)
            .header(header::CONTENT_TYPE, "text/plain")
            .header(header::ORIGIN, "https://shop.example.com")
            .body(Body::from(message.to_string()))
            .expect("request");
        let response = app.send(request).await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
    }
    let events = app.events().await;
    for (i, (path, _, kind)) in paths.iter().enumerate() {
        assert_eq!(stored(&events, &format!("short-{i}")).kind, *kind, "{path}");
    }

    // A preflight for a JSON post with basic auth is allowed from anywhere.
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/batch")
        .header(header::ORIGIN, "https://shop.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .body(Body::empty())
        .expect("request");
    let response = app.send(preflight).await;
    assert!(response.status.is_success(), "{:?}", response.status);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    let allowed = response
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization"),
        "{allowed:?} {response:?}"
    );
}

#[tokio::test]
async fn size_limits_follow_segment() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);
    let big = "x".repeat(33 * 1024);

    // One message over 32 KB: a 413 on a single-message endpoint…
    let response = sdk
        .post(
            "/v1/track",
            json!({"userId": "u", "event": "Big", "properties": {"blob": big}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.code(), "payload_too_large");

    // …but only that message's rejection in a batch, whose others are kept.
    let batch = json!({"batch": [
        {"type": "track", "userId": "u", "event": "Small", "messageId": "small"},
        {"type": "track", "userId": "u", "event": "Big", "messageId": "big", "properties": {"blob": big}},
    ]});
    let response = sdk.post("/v1/batch", batch).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["accepted"], 1);
    assert_eq!(response.body["rejected"][0]["index"], 1);
    assert_eq!(response.body["rejected"][0]["code"], "message_too_large");

    // A request over 500 KB is a 413 and stores nothing.
    let messages: Vec<Value> = (0..20)
        .map(|i| {
            json!({"type": "track", "userId": "u", "event": "Mid", "messageId": format!("mid-{i}"),
                        "properties": {"blob": "y".repeat(30 * 1024)}})
        })
        .collect();
    let response = sdk.post("/v1/batch", json!({ "batch": messages })).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.body["status"], 413);
    let events = app.events().await;
    assert_eq!(
        events
            .iter()
            .map(|e| e.message_id.as_str())
            .collect::<Vec<_>>(),
        ["small"]
    );
}
