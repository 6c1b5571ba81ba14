//! PostHog's capture API: its SDKs' payload shapes, translated into the
//! same stored events (and identities) as Segment's.

use std::io::Write;

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use serde_json::{Value, json};

use crate::support::TestApp;

fn post(path: &str, body: Vec<u8>, extra: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn posthog_sdk_payloads_are_stored_as_events() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let key = acme.write_key.clone();
    // posthog-python / posthog-node: {api_key, batch}
    let batch = json!({"api_key": key, "sent_at": null, "batch": [
        {"event": "Report Exported", "distinct_id": "ada", "uuid": "ph-1",
         "properties": {"format": "csv", "$lib": "posthog-python", "$lib_version": "3.0.0"},
         "timestamp": "2026-11-20T10:00:00Z"},
        {"event": "$identify", "distinct_id": "ada", "uuid": "ph-2",
         "properties": {"$anon_distinct_id": "anon-ph", "$set": {"plan": "pro"}},
         "$set_once": {"signup": "2026-01-01"}},
        {"event": "$pageview", "distinct_id": "ada", "uuid": "ph-3",
         "properties": {"$pathname": "/pricing", "$current_url": "https://x.test/pricing"}},
        {"event": "$screen", "distinct_id": "ada", "uuid": "ph-4", "properties": {"$screen_name": "Home"}},
        {"event": "$groupidentify", "distinct_id": "ada", "uuid": "ph-5",
         "properties": {"$group_type": "company", "$group_key": "initech", "$group_set": {"name": "Initech"}}},
        {"event": "$create_alias", "distinct_id": "ada", "uuid": "ph-6", "properties": {"alias": "ada-old"}},
        {"event": "No Person", "uuid": "ph-bad"}
    ]});
    let response = app
        .send(post("/batch/", batch.to_string().into_bytes(), &[]))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["status"], 1);
    assert_eq!(response.body["rejected"][0]["messageId"], "ph-bad");
    assert_eq!(response.body["rejected"][0]["code"], "missing_identity");

    let rows = app
        .rows(
            "SELECT message_id, type, event, user_id, anonymous_id, group_id, previous_id,
                    properties::jsonb AS properties, context::jsonb -> 'library' AS library
             FROM events ORDER BY message_id",
        )
        .await;
    let project = |row: &Value| {
        json!([
            row["message_id"],
            row["type"],
            row["event"],
            row["user_id"],
            row["anonymous_id"],
            row["group_id"],
            row["previous_id"]
        ])
    };
    assert_eq!(
        rows.iter().map(project).collect::<Vec<_>>(),
        [
            json!(["ph-1", "track", "Report Exported", "ada", null, null, null]),
            json!(["ph-2", "identify", null, "ada", "anon-ph", null, null]),
            json!(["ph-3", "page", "/pricing", "ada", null, null, null]),
            json!(["ph-4", "screen", "Home", "ada", null, null, null]),
            json!(["ph-5", "group", null, "ada", null, "initech", null]),
            json!(["ph-6", "alias", null, "ada", null, null, "ada-old"]),
        ]
    );
    assert_eq!(
        rows[0]["library"],
        json!({"name": "posthog-python", "version": "3.0.0"})
    );
    assert_eq!(
        rows[1]["properties"],
        json!({"plan": "pro", "signup": "2026-01-01"})
    );
    assert_eq!(
        rows[4]["properties"],
        json!({"name": "Initech", "group_type": "company"})
    );
    assert_eq!(
        app.rows("SELECT alias_id, person_id FROM identity_links ORDER BY 1")
            .await,
        [
            json!({"alias_id": "ada-old", "person_id": "ada"}),
            json!({"alias_id": "anon-ph", "person_id": "ada"}),
        ]
    );
}

#[tokio::test]
async fn capture_takes_single_events_arrays_gzip_and_dedupes_by_uuid() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let key = acme.write_key.clone();
    let single = json!({"api_key": key, "event": "Clicked", "distinct_id": 7, "uuid": "u-1",
                        "properties": {"button": "buy"}});
    for path in ["/capture/", "/capture", "/i/v0/e/"] {
        let response = app
            .send(post(path, single.to_string().into_bytes(), &[]))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
    }
    // posthog-js: an array of events carrying the key as properties.token, gzipped.
    let array = json!([
        {"event": "$pageview", "properties": {"token": key, "distinct_id": "anon-js", "$pathname": "/"},
         "uuid": "u-2", "offset": 1500}
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(array.to_string().as_bytes()).expect("gzip");
    let body = gz.finish().expect("gzip");
    let response = app
        .send(post("/e/?compression=gzip-js&ver=1.0", body, &[]))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let rows = app
        .rows("SELECT message_id, user_id, round(extract(epoch FROM received_at - time)) AS offset_s FROM events ORDER BY 1")
        .await;
    assert_eq!(
        rows,
        [
            json!({"message_id": "u-1", "user_id": "7", "offset_s": 0}),
            json!({"message_id": "u-2", "user_id": "anon-js", "offset_s": 2}),
        ]
    );

    let response = app
        .send(post(
            "/batch/",
            json!({"api_key": "nope", "batch": [single]})
                .to_string()
                .into_bytes(),
            &[],
        ))
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let response = app.send(post("/batch/", b"{".to_vec(), &[])).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
}
