//! Bad input and back-pressure on the ingestion API: a bad message never
//! costs its neighbours, authentication failures are 401/403, a key over its
//! rate gets 429 and a full queue 503 (both with `Retry-After`), and every
//! message ends counted as stored, duplicate or rejected with its reason.

use std::time::Duration as StdDuration;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use insta::assert_json_snapshot;
use northstar_db::memberships::Role;
use serde_json::{Value, json};

use crate::support::{TestApp, test_settings};

#[tokio::test]
async fn a_batch_keeps_its_valid_messages_and_reports_the_others() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let future = (Utc::now() + Duration::days(3)).to_rfc3339();
    let ancient = (Utc::now() - Duration::days(800)).to_rfc3339();
    let batch = json!({"batch": [
        {"type": "track", "messageId": "ok-1", "userId": "u", "event": "Fine"},
        {"type": "track", "messageId": "no-id", "event": "Nobody"},
        {"type": "track", "messageId": "no-event", "userId": "u"},
        {"type": "bogus", "messageId": "bad-type", "userId": "u"},
        {"type": "track", "messageId": "bad-props", "userId": "u", "event": "E", "properties": [1, 2]},
        {"type": "track", "messageId": "bad-user", "userId": {"id": 1}, "event": "E"},
        {"type": "track", "messageId": "future", "userId": "u", "event": "E", "timestamp": future},
        {"type": "track", "messageId": "ancient", "userId": "u", "event": "E", "timestamp": ancient},
        {"type": "track", "messageId": "bad-time", "userId": "u", "event": "E", "timestamp": "yesterday"},
        {"type": "track", "messageId": "nul", "userId": "u", "event": "E", "properties": {"k": "a\u{0}b"}},
        {"type": "group", "messageId": "no-group", "userId": "u"},
        {"type": "alias", "messageId": "no-previous", "userId": "u"},
        "not an object",
        {"type": "identify", "messageId": "ok-2", "anonymousId": "a", "traits": {"x": 1}}
    ]});
    let response = app.sdk(&acme.write_key).post("/v1/batch", batch).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_json_snapshot!(response.body, @r#"
    {
      "accepted": 2,
      "rejected": [
        {
          "code": "missing_identity",
          "field": "userId",
          "index": 1,
          "messageId": "no-id",
          "reason": "userId or anonymousId is required"
        },
        {
          "code": "missing_field",
          "field": "event",
          "index": 2,
          "messageId": "no-event",
          "reason": "is required"
        },
        {
          "code": "invalid_type",
          "field": "type",
          "index": 3,
          "messageId": "bad-type",
          "reason": "must be one of track, page, screen, identify, group, alias"
        },
        {
          "code": "wrong_type",
          "field": "properties",
          "index": 4,
          "messageId": "bad-props",
          "reason": "must be an object"
        },
        {
          "code": "wrong_type",
          "field": "userId",
          "index": 5,
          "messageId": "bad-user",
          "reason": "must be a string or a number"
        },
        {
          "code": "timestamp_out_of_range",
          "field": "timestamp",
          "index": 6,
          "messageId": "future",
          "reason": "is more than 24 hours in the future (after clock-skew correction)"
        },
        {
          "code": "timestamp_out_of_range",
          "field": "timestamp",
          "index": 7,
          "messageId": "ancient",
          "reason": "is older than this tenant keeps events (760 days)"
        },
        {
          "code": "invalid_timestamp",
          "field": "timestamp",
          "index": 8,
          "messageId": "bad-time",
          "reason": "must be an ISO 8601 date-time with a UTC offset, like 2026-05-01T12:00:00.000Z"
        },
        {
          "code": "nul_character",
          "field": "properties",
          "index": 9,
          "messageId": "nul",
          "reason": "contains a NUL character (\\u0000), which cannot be stored"
        },
        {
          "code": "missing_field",
          "field": "groupId",
          "index": 10,
          "messageId": "no-group",
          "reason": "is required"
        },
        {
          "code": "missing_field",
          "field": "previousId",
          "index": 11,
          "messageId": "no-previous",
          "reason": "is required"
        },
        {
          "code": "malformed_json",
          "field": "message",
          "index": 12,
          "reason": "must be a JSON object"
        }
      ],
      "success": true
    }
    "#);
    let stored: Vec<String> = app
        .events()
        .await
        .into_iter()
        .map(|e| e.message_id)
        .collect();
    assert_eq!(stored.len(), 2);
    assert!(stored.contains(&"ok-1".to_owned()) && stored.contains(&"ok-2".to_owned()));

    // The counters say the same, by reason.
    let owner = app.owner(&acme).await;
    let stats = owner.get("/api/v1/tenants/acme/ingestion/stats").await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
    assert_eq!(stats.body["stored"], 2);
    assert_eq!(stats.body["rejected"], 12);
    assert_eq!(stats.body["received"], 14);
    assert_eq!(
        stats.body["rejected_by_reason"],
        json!({"invalid_timestamp": 1, "invalid_type": 1, "malformed_json": 1,
               "missing_field": 3, "missing_identity": 1, "nul_character": 1,
               "timestamp_out_of_range": 2, "wrong_type": 2})
    );
}

#[tokio::test]
async fn a_request_without_any_valid_message_is_a_400_naming_each() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);
    let response = sdk
        .post(
            "/v1/batch",
            json!({"batch": [{"type": "track", "userId": "u"}, {"type": "page"}]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.code(), "invalid_messages");
    assert_eq!(
        response.body["errors"],
        json!([
            {"field": "batch[0].event", "reason": "is required"},
            {"field": "batch[1].userId", "reason": "userId or anonymousId is required"},
        ])
    );

    let response = sdk.post("/v1/track", json!({"userId": "u"})).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.body["errors"][0]["field"], "event");

    for (body, what) in [
        (b"{not json".to_vec(), "malformed"),
        (b"[1, 2]".to_vec(), "not an object"),
    ] {
        let response = sdk.post_bytes("/v1/track", body, &[]).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(response.code(), "malformed_json", "{what}");
    }
    let response = sdk.post("/v1/batch", json!({"batch": []})).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let response = sdk.post("/v1/batch", json!({"messages": []})).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.body["errors"][0]["field"], "batch");
    assert!(app.events().await.is_empty());
}

#[tokio::test]
async fn write_keys_authenticate_ingestion_and_nothing_else_does() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let message = json!({"userId": "u", "event": "E"});
    let unauthenticated = |response: &crate::support::TestResponse, what: &str| {
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            response.text
        );
        assert_eq!(response.code(), "invalid_write_key", "{what}");
        assert_eq!(
            response.header("www-authenticate"),
            Some("Basic realm=\"northstar-ingest\""),
            "{what}"
        );
    };
    let anonymous = app.anonymous();
    unauthenticated(
        &anonymous.post("/v1/track", message.clone()).await,
        "no key",
    );
    unauthenticated(
        &app.sdk("ns_wk_unknown")
            .post("/v1/track", message.clone())
            .await,
        "unknown key",
    );
    // A secret key is not a write key.
    let secret = app.secret_key(&acme, Role::Admin).await;
    let secret = secret.bearer.expect("secret");
    unauthenticated(
        &app.sdk(&secret).post("/v1/track", message.clone()).await,
        "secret key",
    );

    // Revoked through the API, refused at once.
    let owner = app.owner(&acme).await;
    let created = owner
        .post(
            "/api/v1/tenants/acme/api-keys",
            json!({"kind": "write", "name": "web"}),
        )
        .await;
    let key = created.body["secret"].as_str().expect("secret").to_owned();
    let id = created.body["api_key"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let sdk = app.sdk(&key);
    assert_eq!(
        sdk.post("/v1/track", message.clone()).await.status,
        StatusCode::OK
    );
    let revoked = owner
        .delete(&format!("/api/v1/tenants/acme/api-keys/{id}"))
        .await;
    assert!(revoked.status.is_success(), "{}", revoked.text);
    unauthenticated(&sdk.post("/v1/track", message.clone()).await, "revoked key");

    // A suspended tenant's key is refused with 403.
    let admin = app.superadmin().await;
    let suspended = admin
        .post("/api/v1/admin/tenants/acme/suspend", json!({}))
        .await;
    assert!(suspended.status.is_success(), "{}", suspended.text);
    let response = app
        .sdk(&acme.write_key)
        .post(
            "/v1/batch",
            json!({"batch": [{"type": "track", "userId": "u", "event": "E"}]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.code(), "tenant_suspended");
    assert_eq!(app.events().await.len(), 1);
}

#[tokio::test]
async fn a_write_key_writes_only_into_its_own_tenant() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    // Whatever the body claims, the key decides the tenant.
    let response = app
        .sdk(&acme.write_key)
        .post(
            "/v1/batch",
            json!({"writeKey": globex.write_key, "tenant_id": globex.id, "batch": [
                {"type": "track", "userId": "u", "event": "E", "messageId": "shared-id",
                 "tenant_id": globex.id, "context": {"tenant_id": globex.id}}
            ]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    // The same message id in another tenant is another message.
    let response = app
        .sdk(&globex.write_key)
        .post(
            "/v1/track",
            json!({"userId": "u", "event": "E", "messageId": "shared-id"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let events = app.events().await;
    let tenants: Vec<_> = events.iter().map(|e| e.tenant_id).collect();
    assert_eq!(events.len(), 2);
    assert!(tenants.contains(&acme.id) && tenants.contains(&globex.id));

    // Each tenant's counters show only its own messages.
    let stats = app
        .owner(&globex)
        .await
        .get("/api/v1/tenants/globex/ingestion/stats")
        .await;
    assert_eq!(stats.body["stored"], 1);
    let acme_owner = app.owner(&acme).await;
    let across = acme_owner
        .get("/api/v1/tenants/globex/ingestion/stats")
        .await;
    assert_eq!(across.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_key_over_its_plans_rate_gets_429_with_retry_after() {
    let mut settings = test_settings();
    settings.ingest.rates = "free=5,enterprise=1000".parse().expect("rates");
    let app = TestApp::spawn_with(settings).await;
    let acme = app.tenant("acme").await; // on the free plan: a burst of 50
    let sdk = app.sdk(&acme.write_key);
    let batch = |n: usize, prefix: &str| {
        let messages: Vec<Value> = (0..n)
            .map(|i| json!({"type": "track", "userId": "u", "event": "E", "messageId": format!("{prefix}-{i}")}))
            .collect();
        json!({ "batch": messages })
    };
    assert_eq!(
        sdk.post("/v1/batch", batch(50, "a")).await.status,
        StatusCode::OK
    );
    let refused = sdk.post("/v1/batch", batch(10, "b")).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "rate_limited");
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    // Another tenant's key has its own bucket.
    let globex = app.tenant("globex").await;
    assert_eq!(
        app.sdk(&globex.write_key)
            .post("/v1/batch", batch(10, "c"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(app.events().await.len(), 60);
}

#[tokio::test]
async fn a_full_queue_answers_503_and_recovers_without_losing_what_it_acknowledged() {
    let mut settings = test_settings();
    settings.ingest.pipeline.queue_bytes = northstar::config::MIN_INGEST_QUEUE_BYTES;
    let app = TestApp::spawn_with(settings).await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);

    // Stall the writers: they wait on this lock until it is released.
    let mut blocker = app.db.admin().await;
    sqlx::query("BEGIN")
        .execute(&mut blocker)
        .await
        .expect("begin");
    sqlx::query("LOCK TABLE event_message_ids IN EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .expect("lock");

    let blob = "z".repeat(4000);
    let mut requests = tokio::task::JoinSet::new();
    for r in 0..40 {
        let sdk = sdk.clone();
        let blob = blob.clone();
        requests.spawn(async move {
            let messages: Vec<Value> = (0..100)
                .map(|i| {
                    json!({"type": "track", "userId": "u", "event": "E",
                                "messageId": format!("r{r}-{i}"), "properties": {"blob": blob}})
                })
                .collect();
            let response = sdk.post("/v1/batch", json!({ "batch": messages })).await;
            (r, response)
        });
    }
    // The queue holds 8 MiB; 40 requests of ~400 KB cannot all fit.
    let mut overloaded = Vec::new();
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(60);
    while overloaded.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no 503 while stalled"
        );
        let (r, response) = requests
            .join_next()
            .await
            .expect("a request")
            .expect("task");
        assert_eq!(
            response.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "request {r}"
        );
        assert_eq!(response.code(), "overloaded");
        assert_eq!(response.header("retry-after"), Some("2"));
        overloaded.push(r);
    }
    assert!(app.state.ingest.pipeline.queued_bytes() <= northstar::config::MIN_INGEST_QUEUE_BYTES);

    sqlx::query("COMMIT")
        .execute(&mut blocker)
        .await
        .expect("unlock");
    let mut acknowledged = Vec::new();
    while let Some(done) = requests.join_next().await {
        let (r, response) = done.expect("task");
        match response.status {
            StatusCode::OK => acknowledged.push(r),
            StatusCode::SERVICE_UNAVAILABLE => overloaded.push(r),
            other => panic!("request {r}: {other} {}", response.text),
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "nothing was acknowledged after the stall"
    );
    // Recovery: the refused requests succeed when retried.
    for r in &overloaded {
        let messages: Vec<Value> = (0..100)
            .map(|i| {
                json!({"type": "track", "userId": "u", "event": "E",
                            "messageId": format!("r{r}-{i}"), "properties": {"blob": blob}})
            })
            .collect();
        let response = sdk.post("/v1/batch", json!({ "batch": messages })).await;
        assert_eq!(response.status, StatusCode::OK, "retry of {r}");
    }
    let events = app.events().await;
    assert_eq!(events.len(), 40 * 100, "every request stored exactly once");
}

#[tokio::test]
async fn requests_beyond_the_intake_limit_get_503_before_their_body_is_read() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);
    let message = json!({"userId": "u", "event": "E"});
    // Every intake place taken, as by 64 requests being read at once.
    let taken = std::sync::Arc::clone(&app.state.ingest.intake)
        .acquire_many_owned(northstar::ingest::MAX_REQUESTS_IN_INTAKE as u32)
        .await
        .expect("intake");
    let refused = sdk.post("/v1/track", message.clone()).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.code(), "overloaded");
    assert_eq!(refused.header("retry-after"), Some("2"));
    drop(taken);
    assert_eq!(sdk.post("/v1/track", message).await.status, StatusCode::OK);
    assert_eq!(app.events().await.len(), 1);
}
