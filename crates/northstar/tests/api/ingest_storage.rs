//! Event storage over time: the partition job creates months ahead, the
//! retention job drops partitions past every tenant's window and deletes a
//! shorter-lived tenant's old rows (with their message ids), and operators
//! see both jobs' outcome and, in `pg_stat_activity`, the connections that
//! write in bulk.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn jobs_create_partitions_ahead_and_apply_each_tenants_retention() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await; // keeps 760 days, the default
    let globex = app.tenant("globex").await;
    let mut admin = app.db.admin().await;
    sqlx::query("UPDATE tenants SET event_retention_days = 30 WHERE id = $1")
        .bind(globex.id)
        .execute(&mut admin)
        .await
        .expect("shorten globex's retention");
    sqlx::raw_sql(
        "SELECT ensure_event_partitions(now() - interval '800 days', now() - interval '800 days');
         SELECT ensure_event_partitions(now() - interval '60 days', now());",
    )
    .execute(&mut admin)
    .await
    .expect("old partitions");
    let ancient: String =
        sqlx::query_scalar("SELECT 'events_p' || to_char(now() - interval '800 days', 'YYYYMM')")
            .fetch_one(&mut admin)
            .await
            .expect("partition name");
    for (tenant, id, age) in [
        (acme.id, "acme-800d", 800),
        (acme.id, "acme-60d", 60),
        (globex.id, "globex-60d", 60),
        (globex.id, "globex-10d", 10),
    ] {
        sqlx::query(
            "WITH e AS (
                 INSERT INTO events (tenant_id, time, message_id, type, event, user_id, received_at)
                 VALUES ($1, now() - make_interval(days => $3), $2, 'track', 'Old', 'u', now())
                 RETURNING tenant_id, message_id)
             INSERT INTO event_message_ids SELECT tenant_id, md5(message_id)::uuid FROM e",
        )
        .bind(tenant)
        .bind(id)
        .bind(age)
        .execute(&mut admin)
        .await
        .expect("seed an old event");
    }

    let pool = &app.state.pool;
    for job in ["create_event_partitions", "apply_event_retention"] {
        assert!(
            northstar_db::jobs::run_soon(pool, job)
                .await
                .expect("schedule")
        );
    }
    northstar::jobs::run_due(pool).await.expect("run the jobs");

    let left = app
        .rows(
            "SELECT e.message_id, m.message_hash IS NOT NULL AS id_kept
             FROM events e LEFT JOIN event_message_ids m
               ON m.tenant_id = e.tenant_id AND m.message_hash = md5(e.message_id)::uuid
             ORDER BY 1",
        )
        .await;
    assert_eq!(
        left,
        [
            json!({"message_id": "acme-60d", "id_kept": true}),
            json!({"message_id": "globex-10d", "id_kept": true}),
        ]
    );
    assert_eq!(
        app.rows("SELECT count(*) AS ids FROM event_message_ids")
            .await,
        [json!({"ids": 2})],
        "the message ids of deleted events are deleted with them"
    );
    let partitions = app
        .rows(&format!(
            "SELECT to_regclass('{ancient}') IS NULL AS ancient_dropped,
                    to_regclass('events_p' || to_char(now() + interval '1 month', 'YYYYMM')) IS NOT NULL
                      AS next_month_ready"
        ))
        .await;
    assert_eq!(
        partitions,
        [json!({"ancient_dropped": true, "next_month_ready": true})]
    );

    // Operators see both runs.
    let jobs = app.superadmin().await.get("/api/v1/admin/jobs").await;
    assert_eq!(jobs.status, StatusCode::OK, "{}", jobs.text);
    for job in jobs.body["jobs"].as_array().expect("jobs") {
        assert!(job["last_finished_at"].is_string(), "{job}");
        assert_eq!(job["last_error"], json!(null), "{job}");
        assert_eq!(job["attempts"], 0, "{job}");
    }
    let member = app.owner(&acme).await.get("/api/v1/admin/jobs").await;
    assert_eq!(member.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_backfill_into_a_month_without_a_partition_creates_it() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let long_ago = (chrono::Utc::now() - chrono::Duration::days(400)).to_rfc3339();
    let response = app
        .sdk(&acme.write_key)
        .post(
            "/v1/batch",
            json!({"batch": [{"type": "track", "userId": "u", "event": "Backfilled", "timestamp": long_ago}]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let events = app.events().await;
    assert_eq!(events.len(), 1);
    assert!(events[0].time < chrono::Utc::now() - chrono::Duration::days(399));
}

#[tokio::test]
async fn owners_and_admins_set_the_event_retention_and_it_is_audited() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    let response = owner
        .patch("/api/v1/tenants/acme", json!({"event_retention_days": 90}))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["tenant"]["event_retention_days"], 90);
    let audit = owner.get("/api/v1/tenants/acme/audit-log").await;
    assert_eq!(audit.body["entries"][0]["action"], "tenant.updated");
    assert_eq!(
        audit.body["entries"][0]["details"]["event_retention_days"],
        json!({"from": 760, "to": 90})
    );

    // The new window applies to ingestion at once.
    let old = (chrono::Utc::now() - chrono::Duration::days(100)).to_rfc3339();
    let response = app
        .sdk(&acme.write_key)
        .post(
            "/v1/track",
            json!({"userId": "u", "event": "E", "timestamp": old}),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.body["errors"][0]["reason"],
        "is older than this tenant keeps events (90 days)"
    );

    let invalid = owner
        .patch(
            "/api/v1/tenants/acme",
            json!({"event_retention_days": 0, "name": ""}),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.body["errors"].as_array().map(Vec::len), Some(2));
    let editor = app
        .member(&acme, northstar_db::memberships::Role::Editor)
        .await;
    let refused = editor
        .patch("/api/v1/tenants/acme", json!({"event_retention_days": 30}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_batch_writer_and_the_rollup_worker_are_named_in_pg_stat_activity() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let response = app
        .sdk(&tenant.write_key)
        .post("/v1/track", json!({"userId": "u1", "event": "Signed Up"}))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    app.rollups_applied().await;

    // One writer took the one request; the rollup worker applied it.
    let named = app
        .rows(
            "SELECT application_name, count(*) AS connections FROM pg_stat_activity
             WHERE datname = current_database() AND application_name LIKE 'northstar %'
             GROUP BY 1 ORDER BY 1",
        )
        .await;
    assert_eq!(
        named,
        [
            json!({"application_name": "northstar ingest writer", "connections": 1}),
            json!({"application_name": "northstar rollup worker", "connections": 1}),
        ]
    );
}
