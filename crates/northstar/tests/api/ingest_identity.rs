//! What identify, group and alias do beyond being stored, and that a retried
//! message is stored once however it is retried, even in a batch the writer
//! has to redo.

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::support::TestApp;

fn rfc(minutes_ago: i64) -> String {
    (Utc::now() - Duration::minutes(minutes_ago)).to_rfc3339()
}

#[tokio::test]
async fn identify_merges_traits_newest_first_and_tracks_first_and_last_seen() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);
    // Out of order: the newer call arrives first; the older one only fills gaps.
    let batch = json!({"batch": [
        {"type": "identify", "userId": "ada", "timestamp": rfc(10), "traits": {"plan": "team", "seats": 5}},
        {"type": "identify", "userId": "ada", "timestamp": rfc(30), "traits": {"plan": "free", "email": "ada@x.test"}},
    ]});
    assert_eq!(sdk.post("/v1/batch", batch).await.status, StatusCode::OK);
    let newest =
        json!({"type": "identify", "userId": "ada", "timestamp": rfc(5), "traits": {"seats": 8}});
    assert_eq!(
        sdk.post("/v1/batch", json!({"batch": [newest]}))
            .await
            .status,
        StatusCode::OK
    );
    let oldest = json!({"type": "identify", "userId": "ada", "timestamp": rfc(60), "traits": {"plan": "trial", "company": "AE"}});
    assert_eq!(
        sdk.post("/v1/batch", json!({"batch": [oldest]}))
            .await
            .status,
        StatusCode::OK
    );
    let profiles = app
        .rows("SELECT user_id, traits, round(extract(epoch FROM now() - first_seen) / 60) AS first_min,
                      round(extract(epoch FROM now() - last_seen) / 60) AS last_min FROM profiles")
        .await;
    assert_eq!(
        profiles,
        [json!({"user_id": "ada", "first_min": 60, "last_min": 5,
                "traits": {"plan": "team", "seats": 8, "email": "ada@x.test", "company": "AE"}})]
    );
}

#[tokio::test]
async fn group_upserts_the_account_and_links_its_members() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);
    let batch = json!({"batch": [
        {"type": "group", "userId": "ada", "groupId": "initech", "traits": {"name": "Initech", "plan": "pro"}},
        {"type": "group", "userId": "bob", "groupId": "initech", "traits": {"employees": 120}},
        {"type": "group", "anonymousId": "anon-7", "groupId": "hooli"},
    ]});
    assert_eq!(sdk.post("/v1/batch", batch).await.status, StatusCode::OK);
    let again = json!({"type": "group", "userId": "ada", "groupId": "initech", "traits": {"plan": "enterprise"}});
    assert_eq!(
        sdk.post("/v1/batch", json!({"batch": [again]}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.rows("SELECT group_id, traits FROM accounts ORDER BY group_id")
            .await,
        [
            json!({"group_id": "hooli", "traits": {}}),
            json!({"group_id": "initech", "traits": {"name": "Initech", "plan": "enterprise", "employees": 120}}),
        ]
    );
    assert_eq!(
        app.rows("SELECT group_id, member_id FROM account_members ORDER BY 1, 2")
            .await,
        [
            json!({"group_id": "hooli", "member_id": "anon-7"}),
            json!({"group_id": "initech", "member_id": "ada"}),
            json!({"group_id": "initech", "member_id": "bob"}),
        ]
    );
}

/// Each event's person: the identity it was merged into, or its own id.
async fn people(app: &TestApp) -> Vec<Value> {
    app.rows(
        "SELECT e.message_id,
                coalesce(l.person_id, coalesce(e.user_id, e.anonymous_id)) AS person
         FROM events e
         LEFT JOIN identity_links l ON l.tenant_id = e.tenant_id
                                   AND l.alias_id = coalesce(e.user_id, e.anonymous_id)
         WHERE e.type = 'track' ORDER BY e.message_id",
    )
    .await
}

#[tokio::test]
async fn anonymous_activity_before_sign_up_counts_for_the_identified_user() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);
    let batch = json!({"batch": [
        // Browsing anonymously, then signing up (analytics.js identifies with both ids).
        {"type": "track", "messageId": "1-anon-visit", "anonymousId": "anon-1", "event": "Viewed Pricing"},
        {"type": "identify", "messageId": "2-sign-up", "anonymousId": "anon-1", "userId": "ada"},
        {"type": "track", "messageId": "3-ada", "userId": "ada", "event": "Created Project"},
        // Another device of hers, merged later by an explicit alias.
        {"type": "track", "messageId": "4-phone", "anonymousId": "phone-9", "event": "Opened App"},
    ]});
    assert_eq!(sdk.post("/v1/batch", batch).await.status, StatusCode::OK);
    assert_eq!(
        people(&app).await,
        [
            json!({"message_id": "1-anon-visit", "person": "ada"}),
            json!({"message_id": "3-ada", "person": "ada"}),
            json!({"message_id": "4-phone", "person": "phone-9"}),
        ]
    );
    let alias = json!({"userId": "ada", "previousId": "phone-9"});
    assert_eq!(sdk.post("/v1/alias", alias).await.status, StatusCode::OK);
    // Then ada's account is merged into a new user id: every identity follows.
    let merge = json!({"userId": "ada@corp", "previousId": "ada"});
    assert_eq!(sdk.post("/v1/alias", merge).await.status, StatusCode::OK);
    assert_eq!(
        people(&app).await,
        [
            json!({"message_id": "1-anon-visit", "person": "ada@corp"}),
            json!({"message_id": "3-ada", "person": "ada@corp"}),
            json!({"message_id": "4-phone", "person": "ada@corp"}),
        ]
    );
}

#[tokio::test]
async fn a_retried_message_is_stored_once_however_it_is_retried() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let sdk = app.sdk(&acme.write_key);
    let message = |sent_minutes_ago: i64| {
        json!({"batch": [{"type": "track", "messageId": "retry-me", "userId": "u", "event": "E",
                          "timestamp": rfc(20)}],
               "sentAt": rfc(sent_minutes_ago)})
    };
    // The same request twice, then a retry sent later (its skew-corrected
    // time differs), then the same id twice in one batch, then concurrently.
    for sent in [19, 19, 2] {
        let response = sdk.post("/v1/batch", message(sent)).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.body["accepted"], 1);
    }
    let twice = json!({"batch": [
        {"type": "track", "messageId": "twice", "userId": "u", "event": "E"},
        {"type": "track", "messageId": "twice", "userId": "u", "event": "E"},
    ]});
    assert_eq!(sdk.post("/v1/batch", twice).await.status, StatusCode::OK);
    let mut concurrent = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let sdk = sdk.clone();
        concurrent.spawn(async move {
            sdk.post(
                "/v1/track",
                json!({"messageId": "racy", "userId": "u", "event": "E"}),
            )
            .await
            .status
        });
    }
    while let Some(status) = concurrent.join_next().await {
        assert_eq!(status.expect("task"), StatusCode::OK);
    }
    let counts = app
        .rows("SELECT message_id, count(*) AS n FROM events GROUP BY 1 ORDER BY 1")
        .await;
    assert_eq!(
        counts,
        [
            json!({"message_id": "racy", "n": 1}),
            json!({"message_id": "retry-me", "n": 1}),
            json!({"message_id": "twice", "n": 1}),
        ]
    );
    let stats = app
        .owner(&acme)
        .await
        .get("/api/v1/tenants/acme/ingestion/stats")
        .await;
    assert_eq!(stats.body["stored"], 3);
    assert_eq!(stats.body["duplicate"], 2 + 1 + 7);
}

/// The writer assumes a batch's ids are new; when a tenant's rows repeat
/// a stored id, it redoes the whole batch deduplicating that tenant, and
/// the batch's other rows and counts are neither lost nor counted twice.
#[tokio::test]
async fn a_batch_repeating_stored_ids_is_redone_without_loss_or_double_counts() {
    use northstar_db::ingest::{Batch, BatchWriter, EventRow, MessageType, TenantOutcome};

    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let row = |tenant_id, message_id: &str| EventRow {
        tenant_id,
        time: Utc::now() - Duration::minutes(5),
        message_id: message_id.to_owned(),
        kind: MessageType::Track,
        event: Some("Report Exported".to_owned()),
        user_id: Some("u".to_owned()),
        anonymous_id: None,
        group_id: None,
        previous_id: None,
        properties: Some(r#"{"format":"csv"}"#.to_owned()),
        context: None,
        received_at: Utc::now(),
        sent_at: None,
    };
    let batch = |rows: &[EventRow]| {
        let mut batch = Batch::new();
        for row in rows {
            batch.push(row);
        }
        batch
    };
    let outcome = |tenant_id, stored, duplicates| TenantOutcome {
        tenant_id,
        stored,
        duplicates,
    };
    let mut writer = BatchWriter::connect(&app.db.app_options())
        .await
        .expect("writer");
    let first = writer.write(&batch(&[row(acme.id, "a1")])).await;
    assert_eq!(first.expect("first batch"), [outcome(acme.id, 1, 0)]);

    // globex's new row shares the batch with acme's repeat: both tenants'
    // rows are written once the batch is redone.
    let mixed = batch(&[row(globex.id, "g1"), row(acme.id, "a1"), row(acme.id, "a2")]);
    let mut outcomes = writer.write(&mixed).await.expect("mixed batch");
    outcomes.sort_by_key(|o| o.tenant_id != acme.id);
    assert_eq!(outcomes, [outcome(acme.id, 1, 1), outcome(globex.id, 1, 0)]);

    // acme now deduplicates up front: a repeat and a new id in one go.
    let again = batch(&[row(acme.id, "a2"), row(acme.id, "a3")]);
    let outcomes = writer.write(&again).await.expect("third batch");
    assert_eq!(outcomes, [outcome(acme.id, 1, 1)]);
    writer.close().await;

    let stored = app
        .rows(
            "SELECT t.slug, e.message_id, count(*) AS n
             FROM events e JOIN tenants t ON t.id = e.tenant_id GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .await;
    assert_eq!(
        stored,
        [
            json!({"slug": "acme", "message_id": "a1", "n": 1}),
            json!({"slug": "acme", "message_id": "a2", "n": 1}),
            json!({"slug": "acme", "message_id": "a3", "n": 1}),
            json!({"slug": "globex", "message_id": "g1", "n": 1}),
        ]
    );
    let counters = app
        .rows(
            "SELECT t.slug, c.outcome, sum(c.count)::int AS n
             FROM ingest_counters c JOIN tenants t ON t.id = c.tenant_id
             WHERE c.count > 0 GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .await;
    assert_eq!(
        counters,
        [
            json!({"slug": "acme", "outcome": "duplicate", "n": 2}),
            json!({"slug": "acme", "outcome": "stored", "n": 3}),
            json!({"slug": "globex", "outcome": "stored", "n": 1}),
        ]
    );
    app.rollups_applied().await;
    let exported = app
        .rows(
            "SELECT t.slug, sum(c.count)::int AS n FROM event_counts c
             JOIN tenants t ON t.id = c.tenant_id WHERE c.name = 'Report Exported'
             GROUP BY 1 ORDER BY 1",
        )
        .await;
    assert_eq!(
        exported,
        [
            json!({"slug": "acme", "n": 3}),
            json!({"slug": "globex", "n": 1})
        ]
    );
}

/// Two writers aliasing the same previous id at once: the second waits for
/// the first's link, then yields to it (it used to fail on the key, and its
/// whole batch with it).
#[tokio::test]
async fn concurrent_aliases_of_one_id_keep_the_first_link() {
    use sqlx::{Connection, PgConnection};

    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let connect = || async {
        let mut conn = PgConnection::connect_with(&app.db.app_options())
            .await
            .expect("connect as the app");
        sqlx::query("BEGIN")
            .execute(&mut conn)
            .await
            .expect("begin");
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(acme.id.to_string())
            .execute(&mut conn)
            .await
            .expect("tenant");
        conn
    };
    let alias = "SELECT apply_alias($1, 'device-1', $2, now())";
    let mut first = connect().await;
    let mut second = connect().await;
    sqlx::query(alias)
        .bind(acme.id)
        .bind("ada")
        .execute(&mut first)
        .await
        .expect("first alias");
    let waiting = tokio::spawn(async move {
        let outcome = sqlx::query(alias)
            .bind(acme.id)
            .bind("bob")
            .execute(&mut second)
            .await
            .map(|_| ());
        sqlx::query("COMMIT").execute(&mut second).await.ok();
        outcome
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "the second alias waits for the first link"
    );
    sqlx::query("COMMIT")
        .execute(&mut first)
        .await
        .expect("commit");
    waiting
        .await
        .expect("task")
        .expect("the second alias yields instead of failing");
    assert_eq!(
        app.rows("SELECT alias_id, person_id FROM identity_links")
            .await,
        vec![json!({"alias_id": "device-1", "person_id": "ada"})]
    );
}
