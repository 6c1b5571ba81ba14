//! The rollup inbox between the batch writers and the product rollups:
//! every stored call is applied exactly once, even while rebuilds run, and
//! a requested rebuild is carried out by the rollup worker.

use northstar_db::product;
use serde_json::{Value, json};

use crate::support::{Persona, Sdk, TestApp};

/// A track call by `user` at `at` (UTC, `2026-09-01T10:00`).
fn track(user: &str, event: &str, at: &str) -> Value {
    json!({
        "type": "track",
        "userId": user,
        "event": event,
        "messageId": uuid::Uuid::new_v4().to_string(),
        "timestamp": format!("{at}:00Z"),
    })
}

async fn send(sdk: &Sdk, batch: Vec<Value>) {
    let count = batch.len();
    let response = sdk.post("/v1/batch", json!({ "batch": batch })).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["accepted"], count, "{}", response.body);
}

async fn users(owner: &Persona, query: &str) -> Value {
    let response = owner
        .get(&format!("/api/v1/tenants/acme/dashboard/users?{query}"))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

/// The total of `event_counts` and of daily active users, past RLS.
async fn totals(app: &TestApp) -> (i64, i64) {
    let rows = app
        .rows(
            "SELECT (SELECT coalesce(sum(count), 0) FROM event_counts)::bigint AS calls,
                    (SELECT coalesce(sum(users), 0) FROM active_users WHERE window_kind = 'day')::bigint AS user_days",
        )
        .await;
    let total = |name: &str| rows[0][name].as_i64().expect("a number");
    (total("calls"), total("user_days"))
}

#[tokio::test]
async fn calls_stored_while_rebuilds_run_count_exactly_once() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let sdk = app.sdk(&tenant.write_key);
    let pool = app.db.app_pool().clone();

    // 40 batches of 25 calls by 7 users over 10 days, while the rollups are
    // rebuilt again and again from whatever is stored at that moment.
    let batches = 40;
    let sending = async {
        for b in 0..batches {
            let batch = (0..25)
                .map(|i| {
                    let n = b * 25 + i;
                    let at = format!("2026-10-{:02}T{:02}:00", 1 + n % 10, n % 24);
                    track(&format!("user-{}", n % 7), "Report Viewed", &at)
                })
                .collect();
            send(&sdk, batch).await;
        }
    };
    let rebuilding = async {
        for _ in 0..6 {
            product::rebuild(&pool, tenant.id).await.expect("rebuild");
        }
    };
    tokio::join!(sending, rebuilding);
    app.rollups_applied().await;

    // Every user was active on every day (n runs over all pairs of n % 7 and n % 10).
    assert_eq!(totals(&app).await, (batches * 25, 7 * 10));
    assert_eq!(app.month_rollup_mismatches().await, Vec::<Value>::new());
    let query = "from=2026-10-01&to=2026-10-10&granularity=day&compare=none";
    let served = users(&app.owner(&tenant).await, query).await;
    product::rebuild(&pool, tenant.id).await.expect("rebuild");
    assert_eq!(totals(&app).await, (batches * 25, 7 * 10));
    assert_eq!(users(&app.owner(&tenant).await, query).await, served);
    assert_eq!(app.month_rollup_mismatches().await, Vec::<Value>::new());
    assert_eq!(
        app.rows("SELECT 1 FROM rollup_inbox").await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn a_requested_rebuild_left_undone_is_run_by_the_rollup_worker() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let owner = app.owner(&tenant).await;
    send(
        &app.sdk(&tenant.write_key),
        vec![track("ann", "Report Viewed", "2026-10-01T20:00")],
    )
    .await;
    app.rollups_applied().await;
    let query = "from=2026-10-01&to=2026-10-02&granularity=day&compare=none";
    let active = |body: &Value| -> Vec<Value> {
        body["series"]
            .as_array()
            .expect("series")
            .iter()
            .map(|point| point["active_users"].clone())
            .collect()
    };
    assert_eq!(active(&users(&owner, query).await), [json!(1), json!(0)]);

    // As if the server stopped between committing a time zone change and
    // rebuilding: only the request is left.
    sqlx::query(
        "UPDATE tenants SET time_zone = 'Asia/Tokyo', rollups_rebuild_requested = true
         WHERE slug = 'acme'",
    )
    .execute(&mut app.db.admin().await)
    .await
    .expect("request a rebuild");
    app.rollups_applied().await;
    // 20:00 UTC is 05:00 the next day in Tokyo.
    assert_eq!(active(&users(&owner, query).await), [json!(0), json!(1)]);
}
