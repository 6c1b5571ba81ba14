//! Product and support metrics against hand-computed fixtures: events go in
//! through the Segment API with the tenant's write key, numbers come out of
//! `/dashboard/users`, `/dashboard/support` and `/dashboard/overview`, and
//! every expected value below was worked out by hand from the events. The
//! last test checks random histories against numbers computed directly from
//! the events sent, before and after a rebuild.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use northstar_db::memberships::Role;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;

use crate::support::{Persona, Sdk, TestApp, billing, wait_for_rollups};

/// A tenant's owner, its SDK and its slug, and the database (to wait for
/// the rollup worker).
struct Product {
    owner: Persona,
    sdk: Sdk,
    slug: String,
    admin: PgConnectOptions,
}

impl Product {
    async fn new(app: &TestApp) -> Self {
        let tenant = app.tenant("acme").await;
        Product {
            owner: app.owner(&tenant).await,
            sdk: app.sdk(&tenant.write_key),
            slug: tenant.slug,
            admin: app.db.admin_options(),
        }
    }

    /// Sends one batch through `/v1/batch`; every message must be accepted.
    async fn send(&self, batch: Vec<Value>) {
        let count = batch.len();
        let response = self.sdk.post("/v1/batch", json!({ "batch": batch })).await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(response.body["accepted"], count, "{}", response.body);
    }

    /// A dashboard's answer to `query`, once the rollup worker has applied
    /// every call sent.
    async fn dashboard(&self, name: &str, query: &str) -> Value {
        wait_for_rollups(&self.admin).await;
        let response = self
            .owner
            .get(&format!(
                "/api/v1/tenants/{}/dashboard/{name}?{query}",
                self.slug
            ))
            .await;
        assert_eq!(response.status, 200, "{name}?{query}: {}", response.body);
        response.body
    }

    async fn users(&self, query: &str) -> Value {
        self.dashboard("users", query).await
    }

    async fn support(&self, query: &str) -> Value {
        self.dashboard("support", query).await
    }

    /// Changes the tenant's settings.
    async fn settings(&self, changes: Value) {
        let response = self
            .owner
            .patch(&format!("/api/v1/tenants/{}", self.slug), changes)
            .await;
        assert_eq!(response.status, 200, "{}", response.body);
    }

    async fn billing(&self, path: &str, body: Value) {
        billing::post(&self.owner, &self.slug, path, body).await;
    }

    /// Customer `id` paying `cents` a month for `[start, end)`.
    async fn paying_customer(&self, id: &str, invoice: &str, start: &str, end: &str, cents: i64) {
        self.billing("customers", json!({ "external_id": id, "name": id }))
            .await;
        self.billing(
            "invoices",
            json!({
                "external_id": invoice, "customer_external_id": id,
                "date": format!("{start}T00:00:00Z"), "currency": "USD",
                "line_items": [{
                    "type": "subscription", "subscription_external_id": format!("{id}-sub"),
                    "service_period_start": format!("{start}T00:00:00Z"),
                    "service_period_end": format!("{end}T00:00:00Z"),
                    "amount_in_cents": cents,
                }],
            }),
        )
        .await;
    }
}

/// A message of `kind` by `who` (a user id, or `anon:<id>` for an anonymous
/// id) at `at` (`2026-09-01T10:00`, UTC), with a fresh message id.
fn call(kind: &str, who: &str, at: &str) -> Value {
    let mut message = json!({
        "type": kind,
        "messageId": uuid::Uuid::new_v4().to_string(),
        "timestamp": format!("{at}:00Z"),
    });
    match who.strip_prefix("anon:") {
        Some(anonymous) => message["anonymousId"] = json!(anonymous),
        None => message["userId"] = json!(who),
    }
    message
}

fn track(who: &str, event: &str, at: &str) -> Value {
    let mut message = call("track", who, at);
    message["event"] = json!(event);
    message
}

fn page(who: &str, at: &str) -> Value {
    let mut message = call("page", who, at);
    message["name"] = json!("Home");
    message
}

fn screen(who: &str, at: &str) -> Value {
    let mut message = call("screen", who, at);
    message["name"] = json!("Feed");
    message
}

fn identify(user: &str, anonymous: &str, at: &str) -> Value {
    let mut message = call("identify", user, at);
    message["anonymousId"] = json!(anonymous);
    message
}

fn alias(previous: &str, user: &str, at: &str) -> Value {
    let mut message = call("alias", user, at);
    message["previousId"] = json!(previous);
    message
}

/// A ticket event; `author` is the reply's `author_type`.
fn ticket(event: &str, id: &str, at: &str, author: Option<&str>) -> Value {
    let mut message = track("customer", event, at);
    message["properties"] = json!({ "ticket_id": id });
    if let Some(author) = author {
        message["properties"]["author_type"] = json!(author);
    }
    message
}

/// The values at `pointer` of every series point.
fn column(body: &Value, array: &str, pointer: &str) -> Vec<Value> {
    body[array]
        .as_array()
        .unwrap_or_else(|| panic!("no {array} in {body}"))
        .iter()
        .map(|point| point.pointer(pointer).cloned().expect(pointer))
        .collect()
}

fn ints(numbers: &[i64]) -> Vec<Value> {
    numbers.iter().map(|n| json!(n)).collect()
}

fn texts(items: &[&str]) -> Vec<Value> {
    items.iter().map(|t| json!(t)).collect()
}

#[tokio::test]
async fn active_users_count_persons_per_day_window_week_and_month() {
    let app = TestApp::spawn().await;
    let product = Product::new(&app).await;
    product
        .send(vec![
            track("a", "Viewed", "2026-09-01T10:00"),
            track("a", "Viewed", "2026-09-02T10:00"),
            track("a", "Viewed", "2026-09-08T10:00"),
            track("a", "Viewed", "2026-09-20T10:00"),
            page("anon:b", "2026-09-02T12:00"),
            page("anon:b", "2026-09-03T12:00"),
            page("c", "2026-09-08T09:00"),
            screen("c", "2026-10-02T09:00"),
            screen("c", "2026-10-05T09:00"),
            // Identify and group calls are not activity.
            call("identify", "d", "2026-09-03T10:00"),
            json!({"type": "group", "userId": "d", "groupId": "initech",
                   "timestamp": "2026-09-04T10:00:00Z"}),
        ])
        .await;

    let september = product
        .users("from=2026-09-01&to=2026-09-30&compare=none")
        .await;
    let kpis = &september["kpis"];
    // DAU: a, ab, b, -, -, -, -, ac, …, a on the 20th: 7 person-days / 30.
    assert_eq!(kpis["average_dau"], 0.23);
    assert_eq!((&kpis["wau"], &kpis["mau"]), (&json!(0), &json!(3)));
    // DAU/MAU: 1/1 + 2/2 + 1/2 + 2/3 (8th) + 1/3 (20th), over 30 days.
    assert_eq!(kpis["stickiness"], 0.116667);
    assert_eq!(
        (&kpis["new_users"], &kpis["total_users"]),
        (&json!(3), &json!(3))
    );
    assert_eq!(kpis["signups"], 0);
    assert_eq!(september["previous"], Value::Null);
    assert_eq!(
        column(&september, "series", "/active_users")[..8],
        ints(&[1, 2, 1, 0, 0, 0, 0, 2])
    );
    assert_eq!(
        column(&september, "series", "/mau")[..8],
        ints(&[1, 2, 2, 2, 2, 2, 2, 3])
    );

    // The last week is clipped by the period but reports the whole
    // calendar week, in which c was active on October 2.
    let weeks = product
        .users("from=2026-09-01&to=2026-09-30&granularity=week&compare=none")
        .await;
    assert_eq!(
        column(&weeks, "series", "/date"),
        texts(&[
            "2026-09-01",
            "2026-09-07",
            "2026-09-14",
            "2026-09-21",
            "2026-09-28"
        ])
    );
    assert_eq!(
        column(&weeks, "series", "/active_users"),
        ints(&[2, 2, 1, 0, 1])
    );
    assert_eq!(column(&weeks, "series", "/mau"), ints(&[2, 3, 3, 3, 3]));
    // Mid-September to October: the whole of September counts.
    let months = product
        .users("from=2026-09-15&to=2026-10-10&granularity=month&compare=none")
        .await;
    assert_eq!(column(&months, "series", "/active_users"), ints(&[3, 1]));

    let eighth = product
        .users("from=2026-09-08&to=2026-09-08&compare=none")
        .await;
    assert_eq!(
        (
            &eighth["kpis"]["average_dau"],
            &eighth["kpis"]["wau"],
            &eighth["kpis"]["mau"]
        ),
        (&json!(2.0), &json!(3), &json!(3))
    );
    let tenth = product
        .users("from=2026-09-10&to=2026-09-10&compare=none")
        .await;
    assert_eq!(
        (&tenth["kpis"]["wau"], &tenth["kpis"]["mau"]),
        (&json!(2), &json!(3))
    );

    // The week after the first, compared with the first.
    let second = product.users("from=2026-09-08&to=2026-09-14").await;
    assert_eq!(second["period"]["compare_from"], "2026-09-01");
    assert_eq!(second["previous"]["average_dau"], 0.57);
    assert_eq!(second["previous"]["new_users"], 2);
    assert_eq!(second["kpis"]["new_users"], 1);
    assert_eq!(second["kpis"]["total_users"], 3);
}

#[tokio::test]
async fn merged_identities_count_once_in_every_window_even_past_ones() {
    let app = TestApp::spawn().await;
    let product = Product::new(&app).await;
    let first_week = "from=2026-09-01&to=2026-09-07&compare=none";
    product
        .send(vec![
            page("anon:anon-1", "2026-09-01T10:00"),
            page("anon:anon-1", "2026-09-02T10:00"),
            screen("anon:phone-9", "2026-09-03T10:00"),
            screen("anon:phone-9", "2026-09-05T10:00"),
            track("bob", "Viewed", "2026-09-04T10:00"),
        ])
        .await;
    let before = product.users(first_week).await;
    assert_eq!(
        column(&before, "series", "/active_users"),
        ints(&[1, 1, 1, 1, 1, 0, 0])
    );
    assert_eq!(before["kpis"]["total_users"], 3);

    // Signing up: the anonymous days are now ada's, and she is active on
    // the 5th as is phone-9.
    product
        .send(vec![
            identify("ada", "anon-1", "2026-09-05T09:00"),
            track("ada", "Viewed", "2026-09-05T10:00"),
        ])
        .await;
    let identified = product.users(first_week).await;
    assert_eq!(
        column(&identified, "series", "/active_users"),
        ints(&[1, 1, 1, 1, 2, 0, 0])
    );
    assert_eq!(identified["kpis"]["total_users"], 3);
    assert_eq!(identified["kpis"]["wau"], 3);

    // Her phone is merged into her: the 5th counts her once.
    product
        .send(vec![alias("phone-9", "ada", "2026-09-06T10:00")])
        .await;
    let phone = product.users(first_week).await;
    assert_eq!(
        column(&phone, "series", "/active_users"),
        ints(&[1, 1, 1, 1, 1, 0, 0])
    );
    assert_eq!(
        column(&phone, "series", "/new_users"),
        ints(&[1, 0, 0, 1, 0, 0, 0])
    );
    assert_eq!(
        (&phone["kpis"]["total_users"], &phone["kpis"]["wau"]),
        (&json!(2), &json!(2))
    );

    // Two user ids merged: bob's past day is ada's, counted once.
    product
        .send(vec![alias("bob", "ada", "2026-09-06T11:00")])
        .await;
    let merged = product.users(first_week).await;
    assert_eq!(
        column(&merged, "series", "/new_users"),
        ints(&[1, 0, 0, 0, 0, 0, 0])
    );
    let k = &merged["kpis"];
    assert_eq!(
        (&k["total_users"], &k["wau"], &k["mau"], &k["new_users"]),
        (&json!(1), &json!(1), &json!(1), &json!(1))
    );
    let weeks = product
        .users("from=2026-08-31&to=2026-09-06&granularity=week&compare=none")
        .await;
    assert_eq!(column(&weeks, "series", "/active_users"), [json!(1)]);

    // Later calls of every merged id are ada's too.
    product
        .send(vec![
            page("anon:anon-1", "2026-09-10T10:00"),
            track("bob", "Viewed", "2026-09-12T10:00"),
            screen("anon:phone-9", "2026-09-12T11:00"),
        ])
        .await;
    let month = product
        .users("from=2026-09-01&to=2026-09-30&granularity=month&compare=none")
        .await;
    assert_eq!(column(&month, "series", "/active_users"), [json!(1)]);
    assert_eq!(month["kpis"]["total_users"], 1);
    let days = product
        .users("from=2026-09-10&to=2026-09-12&compare=none")
        .await;
    assert_eq!(column(&days, "series", "/active_users"), ints(&[1, 0, 1]));
}

/// An id already merged into a person stays with it (docs/ingestion.md): a
/// later alias naming it changes nothing, in the maintained rollups as in a
/// rebuild.
#[tokio::test]
async fn an_alias_cannot_move_an_id_already_merged_into_another_person() {
    let app = TestApp::spawn().await;
    let product = Product::new(&app).await;
    let query = "from=2026-09-01&to=2026-09-03&compare=none";
    product
        .send(vec![
            page("anon:anon-1", "2026-09-01T10:00"),
            identify("u1", "anon-1", "2026-09-01T12:00"),
            track("u1", "Viewed", "2026-09-02T10:00"),
            track("u2", "Viewed", "2026-09-03T10:00"),
        ])
        .await;
    let before = product.users(query).await;
    assert_eq!(column(&before, "series", "/new_users"), ints(&[1, 0, 1]));
    product
        .send(vec![alias("anon-1", "u2", "2026-09-04T10:00")])
        .await;
    let maintained = product.users(query).await;
    assert_eq!(
        column(&maintained, "series", "/new_users"),
        ints(&[1, 0, 1])
    );
    let output = crate::support::northstar(&app, &["rollups", "rebuild", "--tenant", "acme"], None);
    assert!(output.status.success());
    let rebuilt = product.users(query).await;
    assert_eq!(column(&rebuilt, "series", "/new_users"), ints(&[1, 0, 1]));
}

/// Cohort `index` of a users answer: (date, sign-ups, completed, rate,
/// median seconds, completions per step).
fn cohort(body: &Value, index: usize) -> Value {
    let c = &body["onboarding"]["cohorts"][index];
    json!([
        c["date"],
        c["signups"],
        c["completed"],
        c["completion_rate"],
        c["median_seconds_to_complete"],
        column(c, "steps", "/completed"),
    ])
}

#[tokio::test]
async fn onboarding_completes_when_every_step_is_done_in_any_order() {
    let app = TestApp::spawn().await;
    let product = Product::new(&app).await;
    product
        .settings(json!({ "onboarding_steps": ["Created Project", "Invited Teammate"] }))
        .await;
    product
        .send(vec![
            track("u1", "Signed Up", "2026-09-01T10:00"),
            track("u1", "Created Project", "2026-09-01T11:00"),
            track("u1", "Invited Teammate", "2026-09-02T10:00"),
            track("u1", "Signed Up", "2026-09-20T10:00"),
            track("u2", "Signed Up", "2026-09-02T09:00"),
            track("u2", "Invited Teammate", "2026-09-02T09:30"),
            track("u2", "Created Project", "2026-09-02T10:00"),
            track("u3", "Signed Up", "2026-09-03T12:00"),
            track("u3", "Created Project", "2026-09-04T18:00"),
            track("u4", "Signed Up", "2026-09-09T08:00"),
            track("u4", "Created Project", "2026-09-09T08:10"),
            track("u4", "Invited Teammate", "2026-09-09T08:20"),
            track("u6", "Signed Up", "2026-09-10T00:00"),
        ])
        .await;
    let query = "from=2026-08-31&to=2026-09-13&granularity=week&compare=none";
    let weeks = product.users(query).await;
    assert_eq!(weeks["signup_event"], "Signed Up");
    assert_eq!(
        weeks["onboarding"]["steps"],
        json!(["Created Project", "Invited Teammate"])
    );
    // u1 in a day, u2 in an hour (steps in the other order), u3 not yet.
    assert_eq!(
        cohort(&weeks, 0),
        json!(["2026-08-31", 3, 2, 0.666667, 45000.0, [3, 2]])
    );
    assert_eq!(
        cohort(&weeks, 1),
        json!(["2026-09-07", 2, 1, 0.5, 1200.0, [1, 1]])
    );
    assert_eq!(column(&weeks, "series", "/signups"), ints(&[3, 2]));
    let k = &weeks["kpis"];
    assert_eq!(
        (
            &k["signups"],
            &k["onboarding_completion_rate"],
            &k["median_seconds_to_onboard"]
        ),
        (&json!(5), &json!(0.6), &json!(3600.0))
    );
    // Signing up again is not a sign-up.
    let later = product
        .users("from=2026-09-14&to=2026-09-20&compare=none")
        .await;
    assert_eq!(later["kpis"]["signups"], 0);
    assert_eq!(later["kpis"]["onboarding_completion_rate"], Value::Null);

    // u3 finishes two days after signing up.
    product
        .send(vec![track("u3", "Invited Teammate", "2026-09-05T12:00")])
        .await;
    let weeks = product.users(query).await;
    assert_eq!(
        cohort(&weeks, 0),
        json!(["2026-08-31", 3, 3, 1.0, 86400.0, [3, 3]])
    );
    assert_eq!(weeks["kpis"]["onboarding_completion_rate"], 0.8);
    assert_eq!(weeks["kpis"]["median_seconds_to_onboard"], 45000.0);

    // With one step, everyone who created a project has onboarded.
    product
        .settings(json!({ "onboarding_steps": ["Created Project"] }))
        .await;
    let weeks = product.users(query).await;
    assert_eq!(weeks["onboarding"]["steps"], json!(["Created Project"]));
    assert_eq!(
        cohort(&weeks, 0),
        json!(["2026-08-31", 3, 3, 1.0, 3600.0, [3]])
    );
    assert_eq!(
        cohort(&weeks, 1),
        json!(["2026-09-07", 2, 1, 0.5, 600.0, [1]])
    );
    assert_eq!(weeks["kpis"]["median_seconds_to_onboard"], 3600.0);
    // Without steps there is nothing to complete.
    product.settings(json!({ "onboarding_steps": [] })).await;
    let weeks = product.users(query).await;
    assert_eq!(
        cohort(&weeks, 0),
        json!(["2026-08-31", 3, 0, null, null, []])
    );
}

#[tokio::test]
async fn top_events_rank_track_calls_with_their_adoption() {
    let app = TestApp::spawn().await;
    let product = Product::new(&app).await;
    let mut batch = vec![
        track("u1", "Exported", "2026-08-20T10:00"),
        track("u1", "Viewed Report", "2026-09-01T10:00"),
        track("u1", "Viewed Report", "2026-09-01T11:00"),
        track("u1", "Viewed Report", "2026-09-01T12:00"),
        track("u2", "Viewed Report", "2026-09-02T10:00"),
        track("u3", "Exported", "2026-09-03T10:00"),
        track("u3", "Exported", "2026-09-03T11:00"),
        track("u2", "Shared", "2026-09-05T10:00"),
        track("u2", "Shared", "2026-09-05T11:00"),
        track("u6", "Viewed Report", "2026-10-02T10:00"),
    ];
    for _ in 0..5 {
        batch.push(page("u4", "2026-09-04T10:00"));
    }
    for n in 1..=10 {
        batch.push(track("u5", &format!("E{n:02}"), "2026-09-06T10:00"));
    }
    product.send(batch).await;
    let september = product
        .users("from=2026-09-01&to=2026-09-30&compare=none")
        .await;
    assert_eq!(september["kpis"]["total_users"], 5);
    let top = top_event_rows(&september);
    assert_eq!(
        top,
        [
            json!(["Viewed Report", 4, 2, 2, 0.4]),
            json!(["Exported", 2, 2, 1, 0.4]),
            json!(["Shared", 2, 1, 1, 0.2]),
            json!(["E01", 1, 1, 1, 0.2]),
            json!(["E02", 1, 1, 1, 0.2]),
            json!(["E03", 1, 1, 1, 0.2]),
            json!(["E04", 1, 1, 1, 0.2]),
            json!(["E05", 1, 1, 1, 0.2]),
            json!(["E06", 1, 1, 1, 0.2]),
            json!(["E07", 1, 1, 1, 0.2]),
        ]
    );
}

#[tokio::test]
async fn tickets_open_get_answered_by_agents_and_resolve() {
    let app = TestApp::spawn().await;
    let product = Product::new(&app).await;
    product
        .send(vec![
            ticket("Ticket Created", "T1", "2026-09-01T10:00", None),
            ticket("Ticket Replied", "T1", "2026-09-01T10:30", Some("customer")),
            ticket("Ticket Replied", "T1", "2026-09-01T12:00", Some("agent")),
            ticket("Ticket Replied", "T1", "2026-09-01T13:00", None),
            ticket("Ticket Resolved", "T1", "2026-09-02T10:00", None),
            ticket("Ticket Resolved", "T1", "2026-09-03T10:00", None),
            ticket("Ticket Created", "T2", "2026-09-02T08:00", None),
            ticket("Ticket Replied", "T2", "2026-09-02T09:00", None),
            ticket("Ticket Created", "T3", "2026-09-03T00:00", None),
            ticket("Ticket Resolved", "T3", "2026-09-05T00:00", None),
            ticket("Ticket Created", "T4", "2026-09-10T00:00", None),
            ticket("Ticket Replied", "T4", "2026-09-10T00:30", Some("agent")),
            // T5's creation arrives later.
            ticket("Ticket Replied", "T5", "2026-09-04T01:00", Some("agent")),
            ticket("Ticket Resolved", "T5", "2026-09-06T00:00", None),
        ])
        .await;
    let query = "from=2026-09-01&to=2026-09-13&granularity=week&compare=none";
    let weeks = product.support(query).await;
    let points = |body: &Value| {
        column(body, "series", "")
            .iter()
            .map(|p| json!([p["date"], p["opened"], p["resolved"], p["backlog"]]))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        points(&weeks),
        [
            json!(["2026-09-01", 3, 2, 1]),
            json!(["2026-09-07", 1, 0, 2]),
        ]
    );
    let k = &weeks["kpis"];
    assert_eq!(
        (&k["opened"], &k["resolved"], &k["backlog"]),
        (&json!(4), &json!(2), &json!(2))
    );
    // First agent replies after 2 h, 1 h and 30 min; resolutions after 1 and 2 days.
    assert_eq!(k["median_first_response_seconds"], 3600.0);
    assert_eq!(k["median_resolution_seconds"], 129600.0);
    assert_eq!(k["tickets_per_100_customers"], Value::Null);

    product
        .send(vec![ticket(
            "Ticket Created",
            "T5",
            "2026-09-04T00:00",
            None,
        )])
        .await;
    product
        .paying_customer("c1", "in1", "2026-09-01", "2026-10-01", 5_000)
        .await;
    let weeks = product.support(query).await;
    assert_eq!(
        points(&weeks),
        [
            json!(["2026-09-01", 4, 3, 1]),
            json!(["2026-09-07", 1, 0, 2]),
        ]
    );
    let k = &weeks["kpis"];
    assert_eq!(
        (&k["opened"], &k["resolved"], &k["backlog"]),
        (&json!(5), &json!(3), &json!(2))
    );
    assert_eq!(k["median_first_response_seconds"], 3600.0);
    assert_eq!(k["median_resolution_seconds"], 172800.0);
    // Five tickets for one paying customer.
    assert_eq!(k["tickets_per_100_customers"], 500.0);
    let days = product
        .support("from=2026-09-05&to=2026-09-07&compare=none")
        .await;
    assert_eq!(column(&days, "series", "/backlog"), ints(&[2, 1, 1]));
}

/// The period's median times and the previous period's.
fn ticket_medians(body: &Value) -> Value {
    json!([
        body["kpis"]["median_first_response_seconds"],
        body["kpis"]["median_resolution_seconds"],
        body["previous"]["median_first_response_seconds"],
        body["previous"]["median_resolution_seconds"],
    ])
}

#[tokio::test]
async fn ticket_medians_take_every_ticket_of_the_period_and_follow_late_creations() {
    let app = TestApp::spawn().await;
    let product = Product::new(&app).await;
    product
        .send(vec![
            ticket("Ticket Created", "T1", "2026-09-01T10:00", None),
            ticket("Ticket Replied", "T1", "2026-09-01T10:10", None),
            ticket("Ticket Resolved", "T1", "2026-09-01T12:00", None),
            ticket("Ticket Created", "T2", "2026-09-01T11:00", None),
            ticket("Ticket Replied", "T2", "2026-09-01T11:30", None),
            ticket("Ticket Created", "T3", "2026-09-02T09:00", None),
            ticket("Ticket Replied", "T3", "2026-09-02T09:20", None),
            ticket("Ticket Resolved", "T3", "2026-09-03T09:00", None),
            ticket("Ticket Created", "T4", "2026-09-03T08:00", None),
        ])
        .await;
    let query = "from=2026-09-01&to=2026-09-03";
    // Replies after 10, 30 and 20 minutes; resolutions after 2 h and a day.
    assert_eq!(
        ticket_medians(&product.support(query).await),
        json!([1200.0, 46800.0, null, null])
    );
    // A fourth reply, after 40 minutes: between 20 and 30.
    product
        .send(vec![ticket(
            "Ticket Replied",
            "T4",
            "2026-09-03T08:40",
            None,
        )])
        .await;
    assert_eq!(
        ticket_medians(&product.support(query).await),
        json!([1500.0, 46800.0, null, null])
    );
    // T3 was created on August 31: its times leave September 2 for it.
    product
        .send(vec![ticket(
            "Ticket Created",
            "T3",
            "2026-08-31T09:00",
            None,
        )])
        .await;
    let support = product.support(query).await;
    assert_eq!(
        ticket_medians(&support),
        json!([1800.0, 7200.0, 174000.0, 259200.0])
    );
    assert_eq!(column(&support, "series", "/opened"), ints(&[2, 0, 1]));
    let day = product
        .support("from=2026-09-02&to=2026-09-02&compare=none")
        .await;
    assert_eq!(ticket_medians(&day), json!([null, null, null, null]));
    // The overview serves the same medians.
    let overview = product.dashboard("overview", query).await;
    assert_eq!(
        overview["median_first_response_seconds"],
        json!({ "value": 1800.0, "previous": 174000.0, "change": -0.989655 })
    );
}

#[tokio::test]
async fn days_begin_at_midnight_in_the_tenants_time_zone() {
    let app = TestApp::spawn().await;
    let product = Product::new(&app).await;
    // 03:00 UTC on September 2 is still September 1 in New York.
    product
        .send(vec![
            track("u1", "Signed Up", "2026-09-02T03:00"),
            ticket("Ticket Created", "T1", "2026-09-02T03:00", None),
        ])
        .await;
    let query = "from=2026-09-01&to=2026-09-02&compare=none";
    let days = |users: &Value, support: &Value| {
        json!([
            column(users, "series", "/active_users"),
            column(users, "series", "/signups"),
            column(support, "series", "/opened"),
        ])
    };
    assert_eq!(
        days(&product.users(query).await, &product.support(query).await),
        json!([[0, 2], [0, 1], [0, 1]])
    );
    product
        .settings(json!({ "time_zone": "America/New_York" }))
        .await;
    let users = product.users(query).await;
    assert_eq!(users["period"]["time_zone"], "America/New_York");
    assert_eq!(
        days(&users, &product.support(query).await),
        json!([[2, 0], [1, 0], [1, 0]])
    );
    // 02:00 UTC on the 2nd is the evening of the 1st in New York.
    product
        .send(vec![track("u2", "Viewed", "2026-09-02T02:00")])
        .await;
    assert_eq!(
        column(&product.users(query).await, "series", "/active_users"),
        [json!(3), json!(0)]
    );
    product.settings(json!({ "time_zone": "UTC" })).await;
    assert_eq!(
        days(&product.users(query).await, &product.support(query).await),
        json!([[0, 3], [0, 1], [0, 1]])
    );
}

#[tokio::test]
async fn late_events_correct_earlier_days_and_retries_count_once() {
    let app = TestApp::spawn().await;
    let product = Product::new(&app).await;
    let mut first = track("u1", "Viewed", "2026-09-10T10:00");
    first["messageId"] = json!("dup-1");
    product.send(vec![first.clone()]).await;
    let query = "from=2026-09-01&to=2026-09-10&compare=none";
    let before = product.users(query).await;
    assert_eq!(before["series"][9]["new_users"], 1);

    // Back-dated: u1 was first active on the 5th.
    product
        .send(vec![track("u1", "Viewed", "2026-09-05T10:00")])
        .await;
    let mut second = track("u2", "Viewed", "2026-09-06T10:00");
    second["messageId"] = json!("dup-2");
    // Retries: the first message again, and one message twice in a batch.
    product.send(vec![first]).await;
    product.send(vec![second.clone(), second]).await;
    let after = product.users(query).await;
    assert_eq!(
        column(&after, "series", "/new_users")[4..],
        ints(&[1, 1, 0, 0, 0, 0])
    );
    assert_eq!(
        column(&after, "series", "/active_users")[4..],
        ints(&[1, 1, 0, 0, 0, 1])
    );
    let k = &after["kpis"];
    assert_eq!(
        (&k["wau"], &k["mau"], &k["total_users"]),
        (&json!(2), &json!(2), &json!(2))
    );
    assert_eq!(after["top_events"][0]["calls"], 3);
    assert_eq!(after["top_events"][0]["adopters"], 2);
}

#[tokio::test]
async fn the_overview_repeats_each_dashboards_numbers_with_their_change() {
    let app = TestApp::spawn().await;
    let product = Product::new(&app).await;
    product
        .paying_customer("c1", "in1", "2026-08-01", "2026-09-01", 5_000)
        .await;
    product
        .billing(
            "invoices",
            json!({
                "external_id": "in2", "customer_external_id": "c1",
                "date": "2026-09-01T00:00:00Z", "currency": "USD",
                "line_items": [{
                    "type": "subscription", "subscription_external_id": "c1-sub",
                    "service_period_start": "2026-09-01T00:00:00Z",
                    "service_period_end": "2026-10-01T00:00:00Z",
                    "amount_in_cents": 10_000,
                }],
            }),
        )
        .await;
    product
        .settings(json!({ "onboarding_steps": ["Created Project"] }))
        .await;
    product
        .send(vec![
            track("u1", "Signed Up", "2026-08-10T10:00"),
            track("u2", "Signed Up", "2026-09-05T10:00"),
            track("u2", "Created Project", "2026-09-05T11:00"),
            track("u3", "Signed Up", "2026-09-06T10:00"),
            ticket("Ticket Created", "T1", "2026-08-10T10:00", None),
            ticket("Ticket Replied", "T1", "2026-08-10T10:10", None),
            ticket("Ticket Created", "T2", "2026-09-03T10:00", None),
            ticket("Ticket Replied", "T2", "2026-09-03T10:20", None),
            ticket("Ticket Created", "T3", "2026-09-04T10:00", None),
            ticket("Ticket Created", "T4", "2026-09-05T10:00", None),
        ])
        .await;
    let query = "from=2026-09-01&to=2026-09-30";
    let overview = product.dashboard("overview", query).await;
    assert_eq!(overview["currency"], "USD");
    assert_eq!(overview["period"]["compare_to"], "2026-08-31");
    let headline = |name: &str| {
        let h = &overview[name];
        json!([h["value"], h["previous"], h["change"]])
    };
    assert_eq!(headline("mrr"), json!([100.0, 50.0, 1.0]));
    assert_eq!(headline("arr"), json!([1200.0, 600.0, 1.0]));
    assert_eq!(headline("paying_customers"), json!([1.0, 1.0, 0.0]));
    assert_eq!(headline("signups"), json!([2.0, 1.0, 1.0]));
    assert_eq!(headline("tickets_opened"), json!([3.0, 1.0, 2.0]));
    assert_eq!(
        headline("median_first_response_seconds"),
        json!([1200.0, 600.0, 1.0])
    );
    assert_eq!(
        headline("onboarding_completion_rate"),
        json!([0.5, 0.0, null])
    );
    // No churn in either period: no change from 0.
    assert_eq!(headline("customer_churn_rate"), json!([0.0, 0.0, null]));

    let revenue = product.dashboard("revenue", query).await;
    let users = product.users(query).await;
    let support = product.support(query).await;
    for (name, dashboard, kpi) in [
        ("mrr", &revenue, "mrr"),
        ("arr", &revenue, "arr"),
        ("paying_customers", &revenue, "paying_customers"),
        ("customer_churn_rate", &revenue, "customer_churn_rate"),
        ("net_mrr_churn_rate", &revenue, "net_mrr_churn_rate"),
        ("net_revenue_retention", &revenue, "net_revenue_retention"),
        ("signups", &users, "signups"),
        ("average_dau", &users, "average_dau"),
        ("mau", &users, "mau"),
        ("stickiness", &users, "stickiness"),
        (
            "onboarding_completion_rate",
            &users,
            "onboarding_completion_rate",
        ),
        ("tickets_opened", &support, "opened"),
        (
            "median_first_response_seconds",
            &support,
            "median_first_response_seconds",
        ),
    ] {
        for (field, side) in [("value", "kpis"), ("previous", "previous")] {
            let number = |v: &Value| v.as_f64();
            assert_eq!(
                number(&overview[name][field]),
                number(&dashboard[side][kpi]),
                "{name}.{field}"
            );
        }
    }

    let alone = product
        .dashboard("overview", "from=2026-09-01&to=2026-09-30&compare=none")
        .await;
    assert_eq!(
        alone["mrr"],
        json!({ "value": 100.0, "previous": null, "change": null })
    );
}

#[tokio::test]
async fn bad_parameters_are_named_and_any_member_may_read() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let owner = app.owner(&tenant).await;
    for dashboard in ["overview", "users", "support"] {
        let response = owner
            .get(&format!("/api/v1/tenants/acme/dashboard/{dashboard}?from=2026-02-01&to=2026-01-01&granularity=hour&compare=lastweek"))
            .await;
        assert_eq!(response.status, 422, "{dashboard}");
        assert_eq!(
            response.pluck("errors", "field"),
            ["from", "granularity", "compare"],
            "{dashboard}"
        );
    }
    let viewer = app.member(&tenant, Role::Viewer).await;
    for dashboard in ["overview", "users", "support"] {
        let response = viewer
            .get(&format!(
                "/api/v1/tenants/acme/dashboard/{dashboard}?granularity=month"
            ))
            .await;
        assert_eq!(response.status, 200, "{dashboard}: {}", response.body);
    }
}

/// What the test knows of the events it sent: the stored activity calls and
/// the identity links, maintained the way the batch writer does.
#[derive(Default)]
struct Model {
    stored: HashSet<String>,
    /// (id, time, event name for a track call).
    calls: Vec<(String, DateTime<Utc>, Option<String>)>,
    links: HashMap<String, String>,
}

impl Model {
    fn person(&self, id: &str) -> String {
        self.links.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }

    /// Takes one batch: new messages are stored; then identify links each
    /// anonymous id not linked yet (the batch's earliest identify), then
    /// aliases apply in time order.
    fn apply(&mut self, batch: &[Value]) {
        let mut identifies: BTreeMap<String, (DateTime<Utc>, String)> = BTreeMap::new();
        let mut aliases = Vec::new();
        for message in batch {
            let id = message["messageId"].as_str().expect("id").to_owned();
            if !self.stored.insert(id.clone()) {
                continue;
            }
            let time: DateTime<Utc> = message["timestamp"]
                .as_str()
                .expect("timestamp")
                .parse()
                .expect("time");
            let user = message["userId"].as_str().map(str::to_owned);
            let anonymous = message["anonymousId"].as_str().map(str::to_owned);
            match message["type"].as_str().expect("type") {
                "identify" => {
                    let (user, anonymous) = (user.expect("user"), anonymous.expect("anon"));
                    let earliest = identifies.entry(anonymous).or_insert((time, user.clone()));
                    if time < earliest.0 {
                        *earliest = (time, user);
                    }
                }
                "alias" => {
                    let previous = message["previousId"].as_str().expect("previous");
                    aliases.push((time, id, previous.to_owned(), user.expect("user")));
                }
                _ => {
                    let event = message["event"].as_str().map(str::to_owned);
                    self.calls
                        .push((user.or(anonymous).expect("an id"), time, event));
                }
            }
        }
        let mut linked = Vec::new();
        for (anonymous, (_, user)) in identifies {
            if anonymous != user && !self.links.contains_key(&anonymous) {
                linked.push((anonymous, self.person(&user)));
            }
        }
        for (anonymous, person) in linked {
            // Ids merged into the anonymous id follow it: one hop deep.
            for merged in self.links.values_mut() {
                if *merged == anonymous {
                    *merged = person.clone();
                }
            }
            self.links.insert(anonymous, person);
        }
        aliases.sort();
        for (_, _, previous, user) in aliases {
            let target = self.person(&user);
            // An id already merged into a person stays with it.
            if target == previous || self.links.contains_key(&previous) {
                continue;
            }
            self.links.insert(previous.clone(), target.clone());
            for person in self.links.values_mut() {
                if *person == previous {
                    *person = target.clone();
                }
            }
        }
    }

    /// When each person first sent each track event.
    fn firsts(&self) -> BTreeMap<(String, String), DateTime<Utc>> {
        let mut firsts: BTreeMap<(String, String), DateTime<Utc>> = BTreeMap::new();
        for (id, time, event) in &self.calls {
            if let Some(event) = event {
                let first = firsts
                    .entry((self.person(id), event.clone()))
                    .or_insert(*time);
                *first = (*first).min(*time);
            }
        }
        firsts
    }

    /// The onboarding cohort of the persons who first sent `Signed Up` on a
    /// local day of `from..=to`, dated `date`, in the shape of [`cohort`]:
    /// the median is `percentile_cont(0.5)`'s, computed here by sorting.
    fn onboarding(
        &self,
        zone: FixedOffset,
        steps: &[&str],
        date: NaiveDate,
        (from, to): (NaiveDate, NaiveDate),
    ) -> Value {
        let firsts = self.firsts();
        let (mut signups, mut done) = (0, vec![0; steps.len()]);
        let mut seconds = Vec::new();
        for ((person, event), signed_up) in &firsts {
            let day = signed_up.with_timezone(&zone).date_naive();
            if event != "Signed Up" || day < from || day > to {
                continue;
            }
            signups += 1;
            let times: Vec<Option<&DateTime<Utc>>> = steps
                .iter()
                .map(|step| firsts.get(&(person.clone(), (*step).to_owned())))
                .collect();
            for (count, time) in done.iter_mut().zip(&times) {
                *count += i64::from(time.is_some());
            }
            if !steps.is_empty() && times.iter().all(Option::is_some) {
                let last = times.iter().flatten().max().copied().expect("a step");
                seconds.push((*last.max(signed_up) - *signed_up).num_seconds() as f64);
            }
        }
        seconds.sort_by(f64::total_cmp);
        let median = (!seconds.is_empty()).then(|| {
            let n = seconds.len();
            let (lo, hi) = (seconds[(n - 1) / 2], seconds[n / 2]);
            lo + 0.5 * (hi - lo)
        });
        let rate = (!steps.is_empty() && signups > 0)
            .then(|| ((seconds.len() as f64 / f64::from(signups)) * 1e6).round() / 1e6);
        json!([date, signups, seconds.len(), rate, median, done])
    }

    /// The expected numbers, in the shape [`served`] reads them: the total
    /// users up to the end of the first of `subs`, the top events of each.
    fn expected(
        &self,
        zone: FixedOffset,
        days: &[NaiveDate],
        subs: &[(NaiveDate, NaiveDate)],
    ) -> Value {
        let local = |t: &DateTime<Utc>| t.with_timezone(&zone).date_naive();
        let mut active: BTreeMap<String, BTreeSet<NaiveDate>> = BTreeMap::new();
        let mut counts: BTreeMap<(NaiveDate, String), i64> = BTreeMap::new();
        let firsts = self.firsts();
        for (id, time, event) in &self.calls {
            let person = self.person(id);
            active
                .entry(person.clone())
                .or_default()
                .insert(local(time));
            if let Some(event) = event {
                *counts.entry((local(time), event.clone())).or_default() += 1;
            }
        }
        let in_range = |from: NaiveDate, to: NaiveDate| {
            active
                .values()
                .filter(|days| days.range(from..=to).next().is_some())
                .count()
        };
        let first_day = |person_days: &BTreeSet<NaiveDate>| person_days.first().copied();
        let per_day: Vec<Value> = days
            .iter()
            .map(|&d| {
                let signups = firsts
                    .iter()
                    .filter(|((_, e), t)| e == "Signed Up" && local(t) == d)
                    .count();
                let new = active.values().filter(|s| first_day(s) == Some(d)).count();
                json!([
                    d,
                    in_range(d, d),
                    in_range(d - Duration::days(6), d),
                    in_range(d - Duration::days(29), d),
                    new,
                    signups
                ])
            })
            .collect();
        let weeks: Vec<Value> = week_starts(days)
            .into_iter()
            .map(|w| json!([w, in_range(w, w + Duration::days(6))]))
            .collect();
        let months: Vec<Value> = month_starts(days)
            .into_iter()
            .map(|m| {
                let end = m.checked_add_months(chrono::Months::new(1)).expect("month")
                    - Duration::days(1);
                json!([m, in_range(m, end)])
            })
            .collect();
        let total_to = |to: NaiveDate| {
            active
                .values()
                .filter(|s| first_day(s).is_some_and(|d| d <= to))
                .count()
        };
        let top_of = |(from, to): (NaiveDate, NaiveDate)| {
            let mut calls: BTreeMap<&str, i64> = BTreeMap::new();
            for ((day, event), n) in &counts {
                if (from..=to).contains(day) {
                    *calls.entry(event).or_default() += n;
                }
            }
            let mut ranked: Vec<(&str, i64)> = calls.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let total = total_to(to);
            let top: Vec<Value> = ranked
                .into_iter()
                .take(10)
                .map(|(event, calls)| {
                    let adopted: Vec<NaiveDate> = firsts
                        .iter()
                        .filter(|((_, e), _)| e == event)
                        .map(|(_, t)| local(t))
                        .filter(|d| *d <= to)
                        .collect();
                    let new = adopted.iter().filter(|d| **d >= from).count();
                    let rate = ((adopted.len() as f64 / total as f64) * 1e6).round() / 1e6;
                    json!([event, calls, adopted.len(), new, rate])
                })
                .collect();
            json!([from, to, top])
        };
        let total = total_to(subs[0].1);
        let top: Vec<Value> = subs.iter().copied().map(top_of).collect();
        let onboarding_days: Vec<Value> = days
            .iter()
            .map(|&d| self.onboarding(zone, STEPS, d, (d, d)))
            .collect();
        // Sign-ups cluster early: onboarding is checked over all the days.
        let (from, to) = (days[0], days[days.len() - 1]);
        let onboarding_weeks: Vec<Value> = week_starts(days)
            .into_iter()
            .map(|w| {
                let start = w.max(from);
                self.onboarding(zone, STEPS, start, (start, (w + Duration::days(6)).min(to)))
            })
            .collect();
        let length = (to - from).num_days() + 1;
        let before = (from - Duration::days(length), from - Duration::days(1));
        let onboarding_periods = [(from, to), before]
            .map(|(f, t)| {
                let c = self.onboarding(zone, STEPS, f, (f, t));
                json!([c[3], c[4]])
            })
            .to_vec();
        json!({
            "days": per_day, "weeks": weeks, "months": months, "total": total, "top": top,
            "onboarding_days": onboarding_days, "onboarding_weeks": onboarding_weeks,
            "onboarding_periods": onboarding_periods,
        })
    }
}

/// The onboarding steps of the random histories.
const STEPS: &[&str] = &["E00", "E02"];

fn week_starts(days: &[NaiveDate]) -> Vec<NaiveDate> {
    use chrono::Datelike;
    let mut starts: Vec<NaiveDate> = days
        .iter()
        .map(|d| *d - Duration::days(i64::from(d.weekday().num_days_from_monday())))
        .collect();
    starts.dedup();
    starts
}

fn month_starts(days: &[NaiveDate]) -> Vec<NaiveDate> {
    use chrono::Datelike;
    let mut starts: Vec<NaiveDate> = days.iter().map(|d| d.with_day(1).expect("first")).collect();
    starts.dedup();
    starts
}

/// The numbers the dashboards serve, in the shape of [`Model::expected`].
async fn served(product: &Product, days: &[NaiveDate], subs: &[(NaiveDate, NaiveDate)]) -> Value {
    let mut per_day = Vec::new();
    let mut onboarding_days = Vec::new();
    for d in days {
        let body = product
            .users(&format!("from={d}&to={d}&compare=none"))
            .await;
        onboarding_days.push(cohort(&body, 0));
        let k = &body["kpis"];
        let dau = body["series"][0]["active_users"].clone();
        assert_eq!(k["average_dau"].as_f64(), dau.as_f64(), "{d}");
        per_day.push(json!([
            d,
            dau,
            k["wau"],
            k["mau"],
            k["new_users"],
            k["signups"]
        ]));
    }
    let last = days[days.len() - 1];
    let weeks = product
        .users(&format!(
            "from={}&to={last}&granularity=week&compare=none",
            week_starts(days)[0]
        ))
        .await;
    let months = product
        .users(&format!(
            "from={}&to={last}&granularity=month&compare=none",
            month_starts(days)[0]
        ))
        .await;
    let pairs = |body: &Value| {
        column(body, "series", "")
            .iter()
            .map(|p| json!([p["date"], p["active_users"]]))
            .collect::<Vec<_>>()
    };
    let mut total = Value::Null;
    let mut top = Vec::new();
    for &(from, to) in subs {
        let period = product
            .users(&format!("from={from}&to={to}&compare=none"))
            .await;
        if total.is_null() {
            total = period["kpis"]["total_users"].clone();
        }
        top.push(json!([from, to, top_event_rows(&period)]));
    }
    let onboarding = product
        .users(&format!(
            "from={}&to={last}&granularity=week&compare=previous_period",
            days[0]
        ))
        .await;
    let onboarding_weeks: Vec<Value> = (0..onboarding["onboarding"]["cohorts"]
        .as_array()
        .map_or(0, Vec::len))
        .map(|i| cohort(&onboarding, i))
        .collect();
    let onboarding_periods: Vec<Value> = ["kpis", "previous"]
        .iter()
        .map(|side| {
            let k = &onboarding[side];
            json!([
                k["onboarding_completion_rate"],
                k["median_seconds_to_onboard"]
            ])
        })
        .collect();
    json!({
        "days": per_day, "weeks": pairs(&weeks), "months": pairs(&months),
        "total": total, "top": top,
        "onboarding_days": onboarding_days, "onboarding_weeks": onboarding_weeks,
        "onboarding_periods": onboarding_periods,
    })
}

/// Lists the entries of `served` and `expected` that differ.
fn differences(served: &Value, expected: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in [
        "days",
        "weeks",
        "months",
        "top",
        "onboarding_days",
        "onboarding_weeks",
        "onboarding_periods",
    ] {
        let (s, e) = (
            served[key].as_array().expect("served"),
            expected[key].as_array().expect("expected"),
        );
        if s.len() != e.len() {
            out.push(format!("{key}: {} served, {} expected", s.len(), e.len()));
        }
        for (s, e) in s.iter().zip(e) {
            if s != e {
                out.push(format!("{key}: served {s}, expected {e}"));
            }
        }
    }
    if served["total"] != expected["total"] {
        out.push(format!(
            "total: served {}, expected {}",
            served["total"], expected["total"]
        ));
    }
    out
}

/// Random histories of a few users and anonymous ids (page, screen and
/// track calls, identifies, aliases, retries, late events) sent in batches,
/// with a time zone change half-way and an onboarding steps change later:
/// every served count, and the onboarding of every day, week and period
/// (medians included), equals what is computed directly from the events
/// sent, and still does after `northstar rollups rebuild`; the month
/// rollups equal their days summed.
#[tokio::test]
async fn served_counts_equal_the_events_sent_and_a_rebuild() {
    use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
    let app = TestApp::spawn().await;
    let product = Product::new(&app).await;
    let mut rng = StdRng::seed_from_u64(20261123);
    let zones = [
        ("Asia/Tokyo", 9 * 3600),
        ("America/Bogota", -5 * 3600),
        ("Asia/Kolkata", 5 * 3600 + 1800),
        ("Pacific/Kiritimati", 14 * 3600),
    ];
    let users: Vec<String> = (0..16).map(|i| format!("user-{i}")).collect();
    let anonymous: Vec<String> = (0..24).map(|i| format!("anon-{i}")).collect();
    let events: Vec<String> = std::iter::once("Signed Up".to_owned())
        .chain((0..12).map(|i| format!("E{i:02}")))
        .collect();
    let origin: DateTime<Utc> = "2026-08-01T00:00:00Z".parse().expect("origin");
    let mut sent: Vec<Value> = Vec::new();
    let mut model = Model::default();
    let mut zone = FixedOffset::east_opt(0).expect("UTC");
    // Other steps at first: changing them recomputes every onboarding row.
    product
        .settings(json!({ "onboarding_steps": ["E01"] }))
        .await;
    for batch_number in 0..8 {
        if batch_number == 6 {
            product.settings(json!({ "onboarding_steps": STEPS })).await;
        }
        if batch_number == 4 {
            let (name, offset) = zones[rng.gen_range(0..zones.len())];
            product.settings(json!({ "time_zone": name })).await;
            zone = FixedOffset::east_opt(offset).expect("zone");
        }
        let mut batch = Vec::new();
        for _ in 0..50 {
            if !sent.is_empty() && rng.gen_bool(0.04) {
                batch.push(sent[rng.gen_range(0..sent.len())].clone());
                continue;
            }
            let time = origin + Duration::seconds(rng.gen_range(0..92 * 86400));
            let id = format!("m{:04}", sent.len());
            let who = |rng: &mut StdRng| -> (&str, String) {
                if rng.gen_bool(0.5) {
                    ("userId", users.choose(rng).expect("user").clone())
                } else {
                    ("anonymousId", anonymous.choose(rng).expect("anon").clone())
                }
            };
            let mut message = json!({
                "messageId": id,
                "timestamp": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
            let roll: f64 = rng.r#gen();
            if roll < 0.55 {
                let (key, actor) = who(&mut rng);
                message["type"] = json!("track");
                message[key] = json!(actor);
                let k = rng
                    .gen_range(0..events.len())
                    .min(rng.gen_range(0..events.len()));
                message["event"] = json!(events[k]);
                if key == "userId" && rng.gen_bool(0.2) {
                    message["anonymousId"] = json!(anonymous.choose(&mut rng).expect("anon"));
                }
            } else if roll < 0.75 {
                let (key, actor) = who(&mut rng);
                message["type"] = json!(if rng.gen_bool(0.5) { "page" } else { "screen" });
                message[key] = json!(actor);
                message["name"] = json!("Home");
            } else if roll < 0.96 {
                message["type"] = json!("identify");
                message["userId"] = json!(users.choose(&mut rng).expect("user"));
                message["anonymousId"] = json!(anonymous.choose(&mut rng).expect("anon"));
            } else {
                let user = users.choose(&mut rng).expect("user").clone();
                let (_, previous) = who(&mut rng);
                if previous == user {
                    continue;
                }
                message["type"] = json!("alias");
                message["userId"] = json!(user);
                message["previousId"] = json!(previous);
            }
            sent.push(message.clone());
            batch.push(message);
        }
        batch.shuffle(&mut rng);
        model.apply(&batch);
        product.send(batch).await;
    }

    let days: Vec<NaiveDate> = (0..100)
        .map(|i| NaiveDate::from_ymd_opt(2026, 7, 28).expect("day") + Duration::days(i))
        .collect();
    // Whole months, months with edge days, and runs within one or two
    // months: top events read months from the month rollups.
    let subs: Vec<(NaiveDate, NaiveDate)> = [
        ("2026-09-01", "2026-09-30"),
        ("2026-08-15", "2026-10-10"),
        ("2026-07-28", "2026-11-04"),
        ("2026-08-01", "2026-10-31"),
        ("2026-08-03", "2026-08-20"),
        ("2026-08-20", "2026-09-10"),
        ("2026-10-31", "2026-11-01"),
    ]
    .iter()
    .map(|(from, to)| (from.parse().expect("from"), to.parse().expect("to")))
    .collect();
    let expected = model.expected(zone, &days, &subs);
    assert!(
        expected["total"].as_u64().is_some_and(|n| n > 5),
        "a few persons: {}",
        expected["total"]
    );
    let weeks = expected["onboarding_weeks"].as_array().expect("weeks");
    assert!(
        weeks.iter().filter(|c| c[4].is_f64()).count() >= 2
            && weeks
                .iter()
                .any(|c| c[2].as_u64().is_some_and(|n| n % 2 == 0 && n > 0)),
        "medians of a few cohorts, one of an even count: {weeks:?}"
    );
    let incremental = served(&product, &days, &subs).await;
    let wrong = differences(&incremental, &expected);
    assert!(wrong.is_empty(), "incremental:\n{}", wrong.join("\n"));
    assert!(
        !app.rows("SELECT 1 FROM event_adopters_months")
            .await
            .is_empty(),
        "adopters per month"
    );
    assert_eq!(app.month_rollup_mismatches().await, Vec::<Value>::new());

    let output = crate::support::northstar(&app, &["rollups", "rebuild", "--tenant", "acme"], None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rebuilt = served(&product, &days, &subs).await;
    let wrong = differences(&rebuilt, &expected);
    assert!(wrong.is_empty(), "rebuilt:\n{}", wrong.join("\n"));
    assert_eq!(app.month_rollup_mismatches().await, Vec::<Value>::new());
}

/// A users report's top events as `[event, calls, adopters, new adopters,
/// adoption rate]` rows.
fn top_event_rows(report: &Value) -> Vec<Value> {
    report["top_events"]
        .as_array()
        .expect("top events")
        .iter()
        .map(|e| {
            json!([
                e["event"],
                e["calls"],
                e["adopters"],
                e["new_adopters"],
                e["adoption_rate"]
            ])
        })
        .collect()
}
