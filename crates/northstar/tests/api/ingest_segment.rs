//! The Segment tracking API, message type by message type: what each call
//! stores, and how time is corrected for the client's clock.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn a_track_call_is_stored_once_committed() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);
    let response = sdk
        .post(
            "/v1/track",
            json!({"userId": "u1", "event": "Signed Up", "properties": {"plan": "pro"}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["success"], true);
    let events = app.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tenant_id, acme.id);
    assert_eq!(events[0].event.as_deref(), Some("Signed Up"));
    assert_eq!(events[0].properties, Some(json!({"plan": "pro"})));
}
