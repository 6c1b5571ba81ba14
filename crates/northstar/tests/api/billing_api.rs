//! The billing REST API: idempotent upserts, the MRR movements each write
//! leaves behind, validation, roles, and the CSV import.

use axum::{
    body::Body,
    http::{HeaderValue, Method, StatusCode, header},
};
use insta::assert_json_snapshot;
use northstar_db::memberships::Role;
use serde_json::{Value, json};

use crate::support::{Persona, TestApp, TestResponse, test_settings};

const BASE: &str = "/api/v1/tenants/acme/billing";

fn url(path: &str) -> String {
    format!("{BASE}{path}")
}

async fn put(persona: &Persona, path: &str, body: Value) -> TestResponse {
    persona
        .send(persona.request(Method::PUT, path, Some(body)))
        .await
}

async fn post_csv(persona: &Persona, kind: &str, csv: impl Into<Body>) -> TestResponse {
    let mut request = persona.request(
        Method::POST,
        &url(&format!("/import/csv?kind={kind}")),
        None,
    );
    *request.body_mut() = csv.into();
    request
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    persona.send(request).await
}

/// Posts `body` to `path` and insists on 200.
async fn ok(persona: &Persona, path: &str, body: Value) -> Value {
    let response = persona.post(&url(path), body).await;
    assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
    response.body
}

fn customer(external_id: &str) -> Value {
    json!({ "external_id": external_id, "name": "Customer", "country": "FR" })
}

fn monthly_plan() -> Value {
    json!({ "external_id": "monthly", "name": "Monthly", "interval_unit": "month", "interval_count": 1 })
}

/// A one-line invoice of subscription `sub` for `[start, end)`.
fn invoice(id: &str, customer: &str, currency: &str, start: &str, end: &str, cents: i64) -> Value {
    json!({
        "external_id": id,
        "customer_external_id": customer,
        "date": format!("{start}T00:00:00Z"),
        "currency": currency,
        "line_items": [{
            "type": "subscription",
            "subscription_external_id": "sub-1",
            "service_period_start": format!("{start}T00:00:00Z"),
            "service_period_end": format!("{end}T00:00:00Z"),
            "amount_in_cents": cents,
        }],
    })
}

/// `(day, kind, movement)` of every MRR movement, by day.
async fn movements(app: &TestApp) -> Vec<(String, String, i64)> {
    app.rows("SELECT day::text AS day, kind, movement FROM mrr_movements ORDER BY day")
        .await
        .into_iter()
        .map(|row| {
            (
                row["day"].as_str().unwrap_or_default().to_owned(),
                row["kind"].as_str().unwrap_or_default().to_owned(),
                row["movement"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

fn movement(day: &str, kind: &str, micros: i64) -> (String, String, i64) {
    (day.to_owned(), kind.to_owned(), micros)
}

async fn count(app: &TestApp, table: &str) -> usize {
    app.rows(&format!("SELECT * FROM {table}")).await.len()
}

#[tokio::test]
async fn upserts_are_idempotent_by_external_id() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;

    let first = ok(&owner, "/customers", customer("cus-1")).await;
    let second = ok(
        &owner,
        "/customers",
        json!({ "external_id": "cus-1", "name": "Renamed", "email": "billing@cus.test" }),
    )
    .await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["name"], "Renamed");
    assert_eq!(
        second["country"],
        Value::Null,
        "the second replaces the first"
    );
    let stored = app
        .rows("SELECT name, email, country FROM billing_customers")
        .await;
    assert_eq!(
        stored,
        [json!({ "name": "Renamed", "email": "billing@cus.test", "country": null })]
    );

    ok(&owner, "/plans", monthly_plan()).await;
    let plan = ok(
        &owner,
        "/plans",
        json!({ "external_id": "monthly", "name": "Quarterly", "interval_unit": "month", "interval_count": 3 }),
    )
    .await;
    assert_eq!(plan["interval_count"], 3);
    assert_eq!(count(&app, "billing_plans").await, 1);

    let mut two_lines = invoice("inv-1", "cus-1", "USD", "2026-01-01", "2026-02-01", 10_000);
    two_lines["line_items"]
        .as_array_mut()
        .expect("lines")
        .push(json!({ "type": "one_time", "amount_in_cents": 500, "description": "Setup" }));
    let stored = ok(&owner, "/invoices", two_lines).await;
    assert_eq!(stored["line_items"].as_array().map(Vec::len), Some(2));
    assert_eq!(stored["source"], "api");
    assert_eq!(count(&app, "billing_line_items").await, 2);

    let one_line = invoice("inv-1", "cus-1", "USD", "2026-01-01", "2026-02-01", 12_000);
    let stored = ok(&owner, "/invoices", one_line).await;
    assert_eq!(stored["line_items"].as_array().map(Vec::len), Some(1));
    assert_eq!(stored["line_items"][0]["amount_in_cents"], 12_000);
    assert_eq!(stored["line_items"][0]["quantity"], 1);
    assert_eq!(count(&app, "billing_invoices").await, 1);
    assert_eq!(count(&app, "billing_line_items").await, 1);
    // The MRR follows the replacement, not the sum of both.
    assert_eq!(
        movements(&app).await,
        [
            movement("2026-01-01", "new_business", 120_000_000),
            movement("2026-02-01", "churn", -120_000_000),
        ]
    );

    let page = owner.get(&url("/customers")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.pluck("customers", "external_id"), ["cus-1"]);
    assert_eq!(page.body["next_after"], Value::Null);

    let actions = owner
        .get("/api/v1/tenants/acme/audit-log")
        .await
        .pluck("entries", "action");
    assert_eq!(
        actions[..6],
        [
            "billing.invoice.upserted",
            "billing.invoice.upserted",
            "billing.plan.upserted",
            "billing.plan.upserted",
            "billing.customer.upserted",
            "billing.customer.upserted",
        ]
    );
}

#[tokio::test]
async fn customers_are_paged_by_external_id() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    for id in ["c", "a", "b"] {
        ok(&owner, "/customers", customer(id)).await;
    }
    let first = owner.get(&url("/customers?limit=2")).await;
    assert_eq!(first.pluck("customers", "external_id"), ["a", "b"]);
    assert_eq!(first.body["next_after"], "b");
    let next = owner.get(&url("/customers?limit=2&after=b")).await;
    assert_eq!(next.pluck("customers", "external_id"), ["c"]);
    assert_eq!(next.body["next_after"], Value::Null);
}

#[tokio::test]
async fn an_annual_line_is_new_business_of_a_twelfth() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    ok(&owner, "/customers", customer("cus-1")).await;
    // $1,200.00 for a year: $100.00 of MRR, in micro-dollars.
    ok(
        &owner,
        "/invoices",
        invoice("inv-1", "cus-1", "USD", "2026-03-01", "2027-03-01", 120_000),
    )
    .await;
    let rows = app
        .rows(
            "SELECT day::text AS day, kind, mrr_before, mrr_after, movement, fx_drift
             FROM mrr_movements ORDER BY day LIMIT 1",
        )
        .await;
    assert_eq!(
        rows,
        [json!({
            "day": "2026-03-01", "kind": "new_business", "mrr_before": 0,
            "mrr_after": 100_000_000, "movement": 100_000_000, "fx_drift": 0,
        })]
    );
    let daily = app
        .rows("SELECT new_business, new_customers FROM mrr_daily WHERE day = '2026-03-01'")
        .await;
    assert_eq!(
        daily,
        [json!({ "new_business": 100_000_000, "new_customers": 1 })]
    );
}

#[tokio::test]
async fn a_dearer_second_month_is_expansion_and_a_plan_change_recomputes() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    ok(&owner, "/customers", customer("cus-1")).await;
    ok(&owner, "/plans", monthly_plan()).await;
    for (id, start, end, cents) in [
        ("inv-1", "2026-01-01", "2026-02-01", 10_000),
        ("inv-2", "2026-02-01", "2026-03-01", 15_000),
    ] {
        let mut body = invoice(id, "cus-1", "USD", start, end, cents);
        body["line_items"][0]["plan_external_id"] = json!("monthly");
        ok(&owner, "/invoices", body).await;
    }
    assert_eq!(
        movements(&app).await,
        [
            movement("2026-01-01", "new_business", 100_000_000),
            movement("2026-02-01", "expansion", 50_000_000),
            movement("2026-03-01", "churn", -150_000_000),
        ]
    );

    // The same plan billed quarterly: each line is a quarter's worth.
    ok(
        &owner,
        "/plans",
        json!({ "external_id": "monthly", "name": "Quarterly", "interval_unit": "month", "interval_count": 3 }),
    )
    .await;
    assert_eq!(
        movements(&app).await,
        [
            movement("2026-01-01", "new_business", 33_333_333),
            movement("2026-02-01", "expansion", 16_666_667),
            movement("2026-03-01", "churn", -50_000_000),
        ]
    );
}

#[tokio::test]
async fn a_cancellation_ends_revenue_and_withdrawing_it_restores_it() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    ok(&owner, "/customers", customer("cus-1")).await;
    for (id, start, end) in [
        ("inv-1", "2026-01-01", "2026-02-01"),
        ("inv-2", "2026-02-01", "2026-03-01"),
    ] {
        ok(
            &owner,
            "/invoices",
            invoice(id, "cus-1", "USD", start, end, 10_000),
        )
        .await;
    }
    let uncancelled = [
        movement("2026-01-01", "new_business", 100_000_000),
        movement("2026-03-01", "churn", -100_000_000),
    ];
    assert_eq!(movements(&app).await, uncancelled);

    let cancelled = ok(
        &owner,
        "/subscriptions/cancel",
        json!({
            "customer_external_id": "cus-1",
            "subscription_external_id": "sub-1",
            "cancelled_at": "2026-01-15T12:00:00Z",
        }),
    )
    .await;
    assert_eq!(cancelled["cancelled_at"], "2026-01-15T12:00:00Z");
    assert_eq!(
        movements(&app).await,
        [
            movement("2026-01-01", "new_business", 100_000_000),
            movement("2026-02-01", "churn", -100_000_000),
        ]
    );
    assert_eq!(count(&app, "billing_subscription_cancellations").await, 1);

    let restored = ok(
        &owner,
        "/subscriptions/cancel",
        json!({
            "customer_external_id": "cus-1",
            "subscription_external_id": "sub-1",
            "cancelled_at": null,
        }),
    )
    .await;
    assert_eq!(restored["cancelled_at"], Value::Null);
    assert_eq!(movements(&app).await, uncancelled);
    assert_eq!(count(&app, "billing_subscription_cancellations").await, 0);

    let actions = owner
        .get("/api/v1/tenants/acme/audit-log")
        .await
        .pluck("entries", "action");
    assert_eq!(
        actions[..2],
        [
            "billing.subscription.uncancelled",
            "billing.subscription.cancelled"
        ]
    );
}

#[tokio::test]
async fn exchange_rates_convert_revenue_and_a_new_rate_rebuilds_it() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    ok(&owner, "/customers", customer("cus-eu")).await;
    ok(
        &owner,
        "/invoices",
        invoice(
            "inv-eu",
            "cus-eu",
            "EUR",
            "2026-01-01",
            "2026-02-01",
            10_000,
        ),
    )
    .await;
    // No EUR rate yet: the line counts for nothing, and the API says why.
    assert_eq!(movements(&app).await, []);
    let rates = owner.get(&url("/exchange-rates")).await;
    assert_eq!(rates.status, StatusCode::OK, "{}", rates.text);
    assert_json_snapshot!(rates.body, @r#"
    {
      "missing_currencies": [
        "EUR"
      ],
      "rates": [],
      "reporting_currency": "USD"
    }
    "#);

    let put_rate = |rate: f64| {
        let owner = owner.clone();
        async move {
            let response = put(
                &owner,
                &url("/exchange-rates"),
                json!({ "rates": [{ "currency": "EUR", "day": "2025-12-01", "rate": rate }] }),
            )
            .await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.text);
            response
        }
    };
    let stored = put_rate(1.1).await;
    assert_eq!(stored.body["missing_currencies"], json!([]));
    assert_eq!(
        stored.body["rates"],
        json!([{ "currency": "EUR", "day": "2025-12-01", "rate": 1.1 }])
    );
    assert_eq!(
        movements(&app).await,
        [
            movement("2026-01-01", "new_business", 110_000_000),
            movement("2026-02-01", "churn", -110_000_000),
        ]
    );

    put_rate(1.25).await;
    assert_eq!(
        movements(&app).await,
        [
            movement("2026-01-01", "new_business", 125_000_000),
            movement("2026-02-01", "churn", -125_000_000),
        ]
    );
    let daily = app
        .rows("SELECT day::text AS day, new_business, churn FROM mrr_daily ORDER BY day")
        .await;
    assert_eq!(
        daily,
        [
            json!({ "day": "2026-01-01", "new_business": 125_000_000, "churn": 0 }),
            json!({ "day": "2026-02-01", "new_business": 0, "churn": -125_000_000 }),
        ]
    );
    let eur = owner.get(&url("/exchange-rates?currency=EUR")).await;
    assert_eq!(eur.body["rates"][0]["rate"], 1.25);
    let gbp = owner.get(&url("/exchange-rates?currency=GBP")).await;
    assert_eq!(gbp.body["rates"], json!([]));
}

/// A subscription line with `changes` applied.
fn line(changes: Value) -> Value {
    let mut line = json!({
        "type": "subscription",
        "subscription_external_id": "sub-1",
        "service_period_start": "2026-01-01T00:00:00Z",
        "service_period_end": "2026-02-01T00:00:00Z",
        "amount_in_cents": 10_000,
    });
    for (key, value) in changes.as_object().expect("changes") {
        line[key] = value.clone();
    }
    line
}

fn invoice_with(lines: Vec<Value>) -> Value {
    json!({
        "external_id": "inv-1",
        "customer_external_id": "cus-1",
        "date": "2026-01-01T00:00:00Z",
        "currency": "USD",
        "line_items": lines,
    })
}

#[tokio::test]
async fn every_validation_rule_names_its_field() {
    let mut settings = test_settings();
    // Room for 10,001 exchange rates.
    settings.max_body_bytes = 4 * 1024 * 1024;
    let app = TestApp::spawn_with(settings).await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    ok(&owner, "/customers", customer("cus-1")).await;
    let long_id = "x".repeat(256);
    let rate = |currency: &str, day: &str, rate: f64| json!({ "currency": currency, "day": day, "rate": rate });
    let first_day = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).expect("a day");
    let many_rates: Vec<Value> = (0..10_001)
        .map(|i| rate("EUR", &(first_day + chrono::Days::new(i)).to_string(), 1.0))
        .collect();

    #[rustfmt::skip]
    let cases: Vec<(Method, &str, Value, &[&str])> = vec![
        (Method::POST, "/customers", json!({ "external_id": "" }), &["external_id"]),
        (Method::POST, "/customers", json!({ "external_id": long_id }), &["external_id"]),
        (Method::POST, "/customers", json!({ "external_id": "c", "country": "fr" }), &["country"]),
        (Method::POST, "/customers", json!({ "external_id": "c", "country": "FRA" }), &["country"]),
        (Method::POST, "/customers", json!({ "name": "no id" }), &["external_id"]),
        (Method::POST, "/plans",
         json!({ "external_id": "", "name": "", "interval_unit": "fortnight", "interval_count": 0 }),
         &["external_id", "name", "interval_unit", "interval_count"]),
        (Method::POST, "/plans",
         json!({ "external_id": "p", "name": "P", "interval_unit": "year", "interval_count": 1001 }),
         &["interval_count"]),
        (Method::POST, "/invoices",
         json!({ "external_id": "", "customer_external_id": long_id, "date": "2026-01-01T00:00:00Z",
                 "currency": "usd", "line_items": [] }),
         &["external_id", "customer_external_id", "currency", "line_items"]),
        (Method::POST, "/invoices",
         invoice_with(vec![line(json!({})); 501]), &["line_items"]),
        (Method::POST, "/invoices",
         invoice_with(vec![line(json!({})), line(json!({ "subscription_external_id": null,
                                                         "service_period_start": null,
                                                         "service_period_end": null }))]),
         &["line_items[1].subscription_external_id", "line_items[1].service_period_start",
           "line_items[1].service_period_end"]),
        (Method::POST, "/invoices",
         invoice_with(vec![line(json!({ "service_period_end": "2026-01-01T00:00:00Z" }))]),
         &["line_items[0].service_period_end"]),
        (Method::POST, "/invoices",
         invoice_with(vec![line(json!({ "service_period_end": "2031-01-02T00:00:00Z" }))]),
         &["line_items[0].service_period_end"]),
        (Method::POST, "/invoices",
         invoice_with(vec![line(json!({ "quantity": -1, "discount_amount_in_cents": -1,
                                         "tax_amount_in_cents": -1 }))]),
         &["line_items[0].quantity", "line_items[0].discount_amount_in_cents",
           "line_items[0].tax_amount_in_cents"]),
        (Method::POST, "/invoices",
         invoice_with(vec![line(json!({})), line(json!({ "amount_in_cents": 100, "tax_amount_in_cents": 101 }))]),
         &["line_items[1].tax_amount_in_cents"]),
        (Method::POST, "/invoices",
         invoice_with(vec![line(json!({ "amount_in_cents": -100_000_000_001_i64, "tax_amount_in_cents": 1 }))]),
         &["line_items[0].amount_in_cents"]),
        (Method::POST, "/invoices",
         invoice_with(vec![line(json!({})), line(json!({ "amount_in_cents": 1e20 }))]),
         &["line_items[1].amount_in_cents"]),
        (Method::POST, "/invoices",
         invoice_with(vec![line(json!({ "external_id": long_id, "plan_external_id": "",
                                         "subscription_external_id": long_id }))]),
         &["line_items[0].external_id", "line_items[0].subscription_external_id",
           "line_items[0].plan_external_id"]),
        (Method::POST, "/subscriptions/cancel",
         json!({ "customer_external_id": "cus-1", "subscription_external_id": "" }),
         &["subscription_external_id", "cancelled_at"]),
        (Method::PUT, "/exchange-rates",
         json!({ "rates": [rate("USD", "2026-01-01", 1.0), rate("eur", "2026-01-01", 1.0),
                           rate("EUR", "2026-01-01", 0.0), rate("GBP", "2026-01-01", -2.0),
                           rate("GBP", "2026-01-01", 1.0)] }),
         &["rates[0].currency", "rates[1].currency", "rates[2].rate", "rates[3].rate",
           "rates[4].day"]),
        (Method::PUT, "/exchange-rates", json!({ "rates": many_rates }), &["rates"]),
        (Method::GET, "/customers?limit=0", Value::Null, &["limit"]),
        (Method::GET, "/customers?limit=501", Value::Null, &["limit"]),
        (Method::GET, "/exchange-rates?currency=eur", Value::Null, &["currency"]),
    ];
    for (method, path, body, fields) in cases {
        let body = (method != Method::GET).then_some(body);
        let response = owner
            .send(owner.request(method.clone(), &url(path), body))
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}: {}",
            response.text
        );
        assert_eq!(
            response.pluck("errors", "field"),
            fields,
            "{method} {path}: {}",
            response.text
        );
    }
    // Nothing of it was stored.
    assert_eq!(count(&app, "billing_customers").await, 1);
    assert_eq!(count(&app, "billing_plans").await, 0);
    assert_eq!(count(&app, "billing_invoices").await, 0);
    assert_eq!(count(&app, "exchange_rates").await, 0);

    // One problem document in full.
    let response = owner
        .post(
            &url("/invoices"),
            invoice_with(vec![line(json!({
                "service_period_start": "2026-02-01T00:00:00Z",
                "tax_amount_in_cents": 20_000,
            }))]),
        )
        .await;
    assert_json_snapshot!(response.body, @r#"
    {
      "code": "validation_failed",
      "errors": [
        {
          "field": "line_items[0].service_period_end",
          "reason": "must be after service_period_start"
        },
        {
          "field": "line_items[0].tax_amount_in_cents",
          "reason": "must not exceed amount_in_cents, which includes the tax"
        }
      ],
      "status": 422,
      "title": "The request has invalid fields",
      "type": "urn:northstar:problem:validation_failed"
    }
    "#);
}

#[tokio::test]
async fn unknown_customers_and_plans_are_named() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    let unknown_customer = owner
        .post(
            &url("/invoices"),
            invoice("inv-1", "nobody", "USD", "2026-01-01", "2026-02-01", 100),
        )
        .await;
    assert_eq!(unknown_customer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_json_snapshot!(unknown_customer.body["errors"], @r#"
    [
      {
        "field": "customer_external_id",
        "reason": "no customer with external id \"nobody\"; create it first"
      }
    ]
    "#);

    ok(&owner, "/customers", customer("cus-1")).await;
    let unknown_plan = owner
        .post(
            &url("/invoices"),
            invoice_with(vec![
                line(json!({})),
                line(json!({ "plan_external_id": "gold" })),
            ]),
        )
        .await;
    assert_eq!(unknown_plan.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_json_snapshot!(unknown_plan.body["errors"], @r#"
    [
      {
        "field": "line_items[1].plan_external_id",
        "reason": "no plan with external id \"gold\"; create it first"
      }
    ]
    "#);

    let unknown_cancel = owner
        .post(
            &url("/subscriptions/cancel"),
            json!({ "customer_external_id": "nobody", "subscription_external_id": "s",
                    "cancelled_at": "2026-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(unknown_cancel.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        unknown_cancel.pluck("errors", "field"),
        ["customer_external_id"]
    );
    assert_eq!(count(&app, "billing_invoices").await, 0);
}

#[tokio::test]
async fn viewers_read_and_only_admins_write() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;
    ok(&owner, "/customers", customer("cus-1")).await;
    let viewer = app.member(&acme, Role::Viewer).await;
    let editor = app.member(&acme, Role::Editor).await;
    let viewer_key = app.secret_key(&acme, Role::Viewer).await;
    let admin_key = app.secret_key(&acme, Role::Admin).await;

    for reader in [&viewer, &editor, &viewer_key] {
        for path in ["/customers", "/plans", "/exchange-rates"] {
            let response = reader.get(&url(path)).await;
            assert_eq!(
                response.status,
                StatusCode::OK,
                "GET {path}: {}",
                response.text
            );
        }
    }
    let writes: Vec<(Method, &str, Value)> = vec![
        (Method::POST, "/customers", customer("cus-2")),
        (Method::POST, "/plans", monthly_plan()),
        (
            Method::POST,
            "/invoices",
            invoice("inv-1", "cus-1", "USD", "2026-01-01", "2026-02-01", 100),
        ),
        (
            Method::POST,
            "/subscriptions/cancel",
            json!({ "customer_external_id": "cus-1", "subscription_external_id": "sub-1",
                    "cancelled_at": null }),
        ),
        (
            Method::PUT,
            "/exchange-rates",
            json!({ "rates": [{ "currency": "EUR", "day": "2026-01-01", "rate": 1.1 }] }),
        ),
    ];
    for (method, path, body) in &writes {
        for writer in [&viewer, &editor, &viewer_key] {
            let response = writer
                .send(writer.request(method.clone(), &url(path), Some(body.clone())))
                .await;
            assert_eq!(response.status, StatusCode::FORBIDDEN, "{method} {path}");
            assert_eq!(response.code(), "forbidden");
        }
    }
    let csv = post_csv(&viewer, "customers", "external_id\ncus-3\n").await;
    assert_eq!(csv.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&app, "billing_customers").await, 1);

    for (method, path, body) in writes {
        let response = admin_key
            .send(admin_key.request(method.clone(), &url(path), Some(body)))
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{method} {path}: {}",
            response.text
        );
    }
    let csv = post_csv(&admin_key, "customers", "external_id\ncus-3\n").await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    assert_eq!(count(&app, "billing_customers").await, 3);
}

#[tokio::test]
async fn a_csv_import_stores_valid_rows_and_reports_the_others_by_line() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;

    let customers = "\u{feff}external_id,name,email,company,country,user_id,lead_created_at,free_trial_started_at\r\n\
                     cus-1,Ada,ada@example.test,Analytical,GB,u-1,2025-12-01,2025-12-15T10:00:00Z\r\n\
                     cus-2,\"Grace, Rear Admiral\",,Navy,france,,,\r\n\
                     \r\n\
                     cus-3,Edsger,,,NL,,,\r\n";
    let report = post_csv(&owner, "customers", customers).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_json_snapshot!(report.body, @r#"
    {
      "imported": 2,
      "rejected": [
        {
          "field": "country",
          "line": 3,
          "reason": "must be an ISO 3166-1 alpha-2 code in upper case, such as FR"
        }
      ],
      "rejected_total": 1
    }
    "#);
    let stored = app
        .rows(
            "SELECT external_id, name, lead_created_at::text AS lead FROM billing_customers
             ORDER BY external_id",
        )
        .await;
    assert_eq!(
        stored,
        [
            json!({ "external_id": "cus-1", "name": "Ada", "lead": "2025-12-01 00:00:00+00" }),
            json!({ "external_id": "cus-3", "name": "Edsger", "lead": null }),
        ]
    );

    let plans = "external_id,name,interval_unit,interval_count\n\
                 monthly,Monthly,month,1\n\
                 annual,Annual,year,1\n\
                 odd,Odd,month,none\n";
    let report = post_csv(&owner, "plans", plans).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(report.body["imported"], 2);
    assert_eq!(
        report.body["rejected"],
        json!([{ "line": 4, "field": "interval_count",
                 "reason": "must be a whole number between 1 and 1000" }])
    );

    // inv-1: two lines; inv-2: a bad second line refuses the whole
    // invoice; inv-3: a plan nobody imported; inv-4: one line, stored.
    let invoices = "invoice_external_id,customer_external_id,date,currency,type,subscription_external_id,plan_external_id,service_period_start,service_period_end,quantity,amount_in_cents,discount_amount_in_cents,tax_amount_in_cents,prorated,description\n\
        inv-1,cus-1,2026-01-01,USD,subscription,sub-1,annual,2026-01-01,2027-01-01,1,120000,0,0,false,Annual\n\
        inv-1,cus-1,2026-01-01,USD,one_time,,,,,1,5000,,,,Setup\n\
        inv-2,cus-3,2026-01-01,USD,subscription,sub-2,monthly,2026-01-01,2026-02-01,1,1000,0,0,false,\n\
        inv-2,cus-3,2026-01-01,USD,subscription,sub-2,monthly,2026-02-01,2026-01-01,1,1000,0,0,false,\n\
        inv-3,cus-3,2026-01-01,USD,subscription,sub-3,gold,2026-01-01,2026-02-01,1,1000,0,0,false,\n\
        inv-4,cus-3,2026-03-01,USD,subscription,sub-4,monthly,2026-03-01,2026-04-01,2,5000,500,1000,false,\"Two \"\"seats\"\"\"\n";
    let report = post_csv(&owner, "invoices", invoices).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_json_snapshot!(report.body, @r#"
    {
      "imported": 3,
      "rejected": [
        {
          "field": "invoice_external_id",
          "line": 4,
          "reason": "the invoice is not stored: its row on line 5 is invalid"
        },
        {
          "field": "service_period_end",
          "line": 5,
          "reason": "must be after service_period_start"
        },
        {
          "field": "plan_external_id",
          "line": 6,
          "reason": "no plan with external id \"gold\"; import it first"
        }
      ],
      "rejected_total": 3
    }
    "#);
    let stored = app
        .rows(
            "SELECT i.external_id, i.source, count(l.*) AS lines
             FROM billing_invoices i JOIN billing_line_items l ON l.invoice_id = i.id
             GROUP BY 1, 2 ORDER BY 1",
        )
        .await;
    assert_eq!(
        stored,
        [
            json!({ "external_id": "inv-1", "source": "csv", "lines": 2 }),
            json!({ "external_id": "inv-4", "source": "csv", "lines": 1 }),
        ]
    );
    let description = app
        .rows("SELECT description FROM billing_line_items WHERE quantity = 2")
        .await;
    assert_eq!(description, [json!({ "description": "Two \"seats\"" })]);
    // Revenue was recomputed in the import's transaction: $100 for the
    // annual line, and (5000 - 1000 tax) / 1 month for inv-4.
    assert_eq!(
        movements(&app).await,
        [
            movement("2026-01-01", "new_business", 100_000_000),
            movement("2026-03-01", "new_business", 40_000_000),
            movement("2026-04-01", "churn", -40_000_000),
            movement("2027-01-01", "churn", -100_000_000),
        ]
    );
    let actions = owner
        .get("/api/v1/tenants/acme/audit-log")
        .await
        .pluck("entries", "action");
    assert_eq!(actions[..3], ["billing.csv.imported"; 3]);
}

#[tokio::test]
async fn a_csv_import_refuses_bad_headers_split_invoices_and_huge_files() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let owner = app.owner(&acme).await;

    let no_kind = owner
        .send({
            let mut request = owner.request(Method::POST, &url("/import/csv"), None);
            *request.body_mut() = Body::from("external_id\nc\n");
            request
        })
        .await;
    assert_eq!(no_kind.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_kind.pluck("errors", "field"), ["kind"]);
    let bad_kind = post_csv(&owner, "refunds", "external_id\n").await;
    assert_eq!(bad_kind.pluck("errors", "field"), ["kind"]);

    let empty = post_csv(&owner, "customers", "").await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.pluck("errors", "field"), ["header"]);

    let header = post_csv(&owner, "plans", "external_id,name,colour,name\np,P,red,P\n").await;
    assert_eq!(header.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_json_snapshot!(header.pluck("errors", "reason"), @r#"
    [
      "names the unknown column \"colour\"; a plans file has the columns external_id,name,interval_unit,interval_count",
      "names the column \"name\" twice",
      "lacks the required column \"interval_unit\"",
      "lacks the required column \"interval_count\""
    ]
    "#);
    assert_eq!(count(&app, "billing_plans").await, 0);

    ok(&owner, "/customers", customer("cus-1")).await;
    let split = "invoice_external_id,customer_external_id,date,currency,type,amount_in_cents\n\
                 inv-1,cus-1,2026-01-01,USD,one_time,100\n\
                 inv-2,cus-1,2026-01-01,USD,one_time,100\n\
                 inv-1,cus-1,2026-01-01,USD,one_time,100\n\
                 inv-3,cus-1,2026-01-01,USD,one_time\n\
                 inv-4,cus-1,2026-01-02,EUR,one_time,100\n\
                 inv-4,cus-1,2026-01-02,USD,one_time,100\n";
    let report = post_csv(&owner, "invoices", split).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_json_snapshot!(report.body, @r#"
    {
      "imported": 2,
      "rejected": [
        {
          "field": "invoice_external_id",
          "line": 4,
          "reason": "invoice \"inv-1\" also has rows from line 2; the rows of an invoice must be consecutive"
        },
        {
          "field": "row",
          "line": 5,
          "reason": "has 5 fields; the header names 6 columns"
        },
        {
          "field": "invoice_external_id",
          "line": 6,
          "reason": "the invoice is not stored: its row on line 7 is invalid"
        },
        {
          "field": "currency",
          "line": 7,
          "reason": "differs from the invoice's first row (line 6)"
        }
      ],
      "rejected_total": 4
    }
    "#);

    let huge = vec![b'x'; 10 * 1024 * 1024 + 1];
    let too_large = post_csv(&owner, "customers", huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.code(), "payload_too_large");
}
