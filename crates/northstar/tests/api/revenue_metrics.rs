//! Revenue metrics against hand-computed fixtures: billing data goes in
//! through the billing API, numbers come out of `/dashboard/revenue`, and
//! every expected value below was worked out by hand from the invoices.

use serde_json::{Value, json};

use crate::support::{TestApp, billing::Billing};

impl Billing {
    async fn plan(&self, id: &str, unit: &str, count: i32) {
        self.post(
            "plans",
            json!({ "external_id": id, "name": id, "interval_unit": unit, "interval_count": count }),
        )
        .await;
    }

    async fn revenue(&self, query: &str) -> Value {
        let response = self
            .owner
            .get(&format!(
                "/api/v1/tenants/{}/dashboard/revenue?{query}",
                self.slug
            ))
            .await;
        assert_eq!(response.status, 200, "{query}: {}", response.body);
        let body = response.body;
        let m = &body["movements"];
        let identity = m["mrr_start"].as_f64().unwrap_or_default()
            + m["new_business"].as_f64().unwrap_or_default()
            + m["expansion"].as_f64().unwrap_or_default()
            + m["reactivation"].as_f64().unwrap_or_default()
            - m["contraction"].as_f64().unwrap_or_default()
            - m["churn"].as_f64().unwrap_or_default()
            + m["fx_drift"].as_f64().unwrap_or_default();
        let end = m["mrr_end"].as_f64().unwrap_or_default();
        assert!(
            (identity - end).abs() < 0.005,
            "start + movements = end: {m}"
        );
        body
    }
}

/// A subscription line: `cents` charged for `[start, end)` (dates at UTC midnight).
fn line(subscription: &str, plan: Option<&str>, start: &str, end: &str, cents: i64) -> Value {
    json!({
        "type": "subscription",
        "subscription_external_id": subscription,
        "plan_external_id": plan,
        "service_period_start": format!("{start}T00:00:00Z"),
        "service_period_end": format!("{end}T00:00:00Z"),
        "amount_in_cents": cents,
    })
}

/// The series' (date, MRR) points.
fn mrr_series(body: &Value) -> Vec<(String, f64)> {
    body["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|p| {
            (
                p["date"].as_str().expect("date").to_owned(),
                p["mrr"].as_f64().expect("mrr"),
            )
        })
        .collect()
}

/// Per series point, the values at these JSON pointers (`/mrr`,
/// `/movements/churn`), as one array.
fn series_columns(body: &Value, pointers: &[&str]) -> Vec<Value> {
    body["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|point| {
            pointers
                .iter()
                .map(|pointer| point.pointer(pointer).cloned().expect(pointer))
                .collect()
        })
        .collect()
}

fn pairs(expected: &[(&str, f64)]) -> Vec<(String, f64)> {
    expected
        .iter()
        .map(|(d, v)| ((*d).to_owned(), *v))
        .collect()
}

#[tokio::test]
async fn an_annual_plan_is_a_twelfth_of_its_net_of_tax_price_per_month() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    billing.customer("c1").await;
    billing.plan("annual", "year", 1).await;
    // $1,440 charged, of which $240 tax: $1,200 a year is $100 MRR.
    let mut annual = line("s1", Some("annual"), "2026-01-10", "2027-01-10", 144_000);
    annual["tax_amount_in_cents"] = json!(24_000);
    billing.invoice("in1", "c1", "USD", vec![annual]).await;

    let january = billing
        .revenue("from=2026-01-01&to=2026-01-31&compare=none")
        .await;
    assert_eq!(january["currency"], "USD");
    assert_eq!(january["kpis"]["mrr"], 100.0);
    assert_eq!(january["kpis"]["arr"], 1200.0);
    assert_eq!(january["kpis"]["paying_customers"], 1);
    assert_eq!(january["kpis"]["arpa"], 100.0);
    assert_eq!(january["kpis"]["asp"], 100.0);
    assert_eq!(january["movements"]["new_business"], 100.0);
    assert_eq!(january["movements"]["customers"]["new_business"], 1);
    let series = mrr_series(&january);
    assert_eq!(series[8], ("2026-01-09".into(), 0.0));
    assert_eq!(series[9], ("2026-01-10".into(), 100.0));

    // Not renewed: churn when the paid year ends.
    let next_january = billing
        .revenue("from=2027-01-01&to=2027-01-31&compare=none")
        .await;
    assert_eq!(next_january["movements"]["churn"], 100.0);
    assert_eq!(next_january["movements"]["customers"]["churn"], 1);
    assert_eq!(next_january["kpis"]["mrr"], 0.0);
    assert_eq!(next_january["kpis"]["customer_churn_rate"], 1.0);
    assert_eq!(
        mrr_series(&next_january)[8..10],
        pairs(&[("2027-01-09", 100.0), ("2027-01-10", 0.0)])
    );
}

#[tokio::test]
async fn a_mid_period_upgrade_is_expansion_from_the_upgrade_day() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    billing.customer("c1").await;
    billing.plan("basic", "month", 1).await;
    billing.plan("pro", "month", 1).await;
    billing
        .invoice(
            "in1",
            "c1",
            "USD",
            vec![line("s1", Some("basic"), "2026-02-01", "2026-03-01", 3_000)],
        )
        .await;
    // Upgraded on Feb 15: half of February left. Stripe credits the unused
    // half of Basic and charges half of Pro.
    let mut pro = line("s1", Some("pro"), "2026-02-15", "2026-03-01", 2_500);
    pro["prorated"] = json!(true);
    let mut credit = line("s1", Some("basic"), "2026-02-15", "2026-03-01", -1_500);
    credit["prorated"] = json!(true);
    billing.invoice("in2", "c1", "USD", vec![credit, pro]).await;
    billing
        .invoice(
            "in3",
            "c1",
            "USD",
            vec![line("s1", Some("pro"), "2026-03-01", "2026-04-01", 5_000)],
        )
        .await;

    let february = billing
        .revenue("from=2026-02-01&to=2026-03-31&compare=none")
        .await;
    let m = &february["movements"];
    assert_eq!(
        (&m["new_business"], &m["expansion"], &m["contraction"]),
        (&json!(30.0), &json!(20.0), &json!(0.0))
    );
    let series = mrr_series(&february);
    assert_eq!(
        series[13..15],
        pairs(&[("2026-02-14", 30.0), ("2026-02-15", 50.0)])
    );
    assert_eq!(series.last(), Some(&("2026-03-31".into(), 50.0)));
}

#[tokio::test]
async fn seats_added_and_removed_are_expansion_and_contraction() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    billing.customer("c1").await;
    billing.plan("seat", "month", 1).await;
    for (invoice, start, end, seats) in [
        ("in1", "2026-01-01", "2026-02-01", 5),
        ("in2", "2026-02-01", "2026-03-01", 8),
        ("in3", "2026-03-01", "2026-04-01", 6),
    ] {
        let mut seats_line = line("s1", Some("seat"), start, end, seats * 1_000);
        seats_line["quantity"] = json!(seats);
        billing
            .invoice(invoice, "c1", "USD", vec![seats_line])
            .await;
    }
    let quarter = billing
        .revenue("from=2026-01-01&to=2026-03-31&granularity=month&compare=none")
        .await;
    let months = series_columns(
        &quarter,
        &[
            "/date",
            "/mrr",
            "/movements/new_business",
            "/movements/expansion",
            "/movements/contraction",
        ],
    );
    assert_eq!(
        months,
        [
            json!(["2026-01-01", 50.0, 50.0, 0.0, 0.0]),
            json!(["2026-02-01", 80.0, 0.0, 30.0, 0.0]),
            json!(["2026-03-01", 60.0, 0.0, 0.0, 20.0]),
        ]
    );
    // February against January: 30 gained, nothing lost.
    let february = billing
        .revenue("from=2026-02-01&to=2026-02-28&compare=previous_period")
        .await;
    assert_eq!(february["period"]["compare_from"], "2026-01-04");
    assert_eq!(february["kpis"]["net_revenue_retention"], 1.6);
    assert_eq!(february["kpis"]["quick_ratio"], Value::Null);
    assert_eq!(february["previous"]["mrr"], 50.0);
}

#[tokio::test]
async fn cancelling_one_of_two_subscriptions_is_contraction_and_the_last_is_churn() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    billing.customer("c1").await;
    billing
        .invoice(
            "in1",
            "c1",
            "USD",
            vec![line("gold", None, "2026-01-01", "2027-01-01", 120_000)],
        )
        .await;
    billing
        .invoice(
            "in2",
            "c1",
            "USD",
            vec![line("silver", None, "2026-01-10", "2026-02-10", 6_000)],
        )
        .await;
    billing
        .post(
            "subscriptions/cancel",
            json!({ "customer_external_id": "c1", "subscription_external_id": "silver",
                    "cancelled_at": "2026-01-25T12:00:00Z" }),
        )
        .await;
    // A renewal that was invoiced anyway after the cancellation is ignored.
    billing
        .invoice(
            "in3",
            "c1",
            "USD",
            vec![line("silver", None, "2026-02-10", "2026-03-10", 6_000)],
        )
        .await;
    billing
        .post(
            "subscriptions/cancel",
            json!({ "customer_external_id": "c1", "subscription_external_id": "gold",
                    "cancelled_at": "2026-06-01T00:00:00Z" }),
        )
        .await;

    let january = billing
        .revenue("from=2026-01-01&to=2026-01-31&compare=none")
        .await;
    assert_eq!(january["movements"]["new_business"], 100.0);
    assert_eq!(january["movements"]["expansion"], 60.0);
    assert_eq!(january["kpis"]["mrr"], 160.0);
    // Paid until Feb 10: the silver MRR leaves then, as contraction.
    let february = billing
        .revenue("from=2026-02-01&to=2026-02-28&compare=none")
        .await;
    assert_eq!(february["movements"]["contraction"], 60.0);
    assert_eq!(february["movements"]["customers"]["contraction"], 1);
    assert_eq!(february["movements"]["churn"], 0.0);
    assert_eq!(february["kpis"]["mrr"], 100.0);
    assert_eq!(february["kpis"]["paying_customers"], 1);
    // Gold was cancelled in June but paid until the year's end.
    let year_end = billing
        .revenue("from=2026-12-01&to=2027-01-31&granularity=month&compare=none")
        .await;
    assert_eq!(
        mrr_series(&year_end),
        pairs(&[("2026-12-01", 100.0), ("2027-01-01", 0.0)])
    );
    assert_eq!(year_end["movements"]["churn"], 100.0);

    // Un-cancelling silver brings its renewal back.
    billing
        .post(
            "subscriptions/cancel",
            json!({ "customer_external_id": "c1", "subscription_external_id": "silver",
                    "cancelled_at": null }),
        )
        .await;
    let february = billing
        .revenue("from=2026-02-01&to=2026-02-28&compare=none")
        .await;
    assert_eq!(february["kpis"]["mrr"], 160.0);
    assert_eq!(february["movements"]["contraction"], 0.0);
}

#[tokio::test]
async fn paying_again_after_churn_is_reactivation() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    billing.customer("c1").await;
    billing.customer("c2").await;
    billing
        .invoice(
            "in1",
            "c1",
            "USD",
            vec![line("s1", None, "2026-01-01", "2026-02-01", 4_000)],
        )
        .await;
    billing
        .invoice(
            "in2",
            "c2",
            "USD",
            vec![line("s2", None, "2026-01-01", "2026-07-01", 60_000)],
        )
        .await;
    billing
        .invoice(
            "in3",
            "c1",
            "USD",
            vec![line("s3", None, "2026-04-01", "2026-05-01", 4_500)],
        )
        .await;
    let spring = billing
        .revenue("from=2026-01-01&to=2026-04-30&granularity=month&compare=none")
        .await;
    let months = series_columns(
        &spring,
        &[
            "/mrr",
            "/customers",
            "/movements/churn",
            "/movements/reactivation",
        ],
    );
    // c2's six months for $600 are $100 MRR.
    assert_eq!(
        months,
        [
            json!([140.0, 2, 0.0, 0.0]),
            json!([100.0, 1, 40.0, 0.0]),
            json!([100.0, 1, 0.0, 0.0]),
            json!([145.0, 2, 0.0, 45.0]),
        ]
    );
    let february = billing
        .revenue("from=2026-02-01&to=2026-02-28&compare=none")
        .await;
    assert_eq!(february["kpis"]["customer_churn_rate"], 0.5);
    assert_eq!(february["kpis"]["gross_mrr_churn_rate"], 0.285714);
    // ARPA $100 ÷ monthly churn 0.5 × 30.4375 / 28.
    assert_eq!(february["kpis"]["ltv"], 183.98);
}

#[tokio::test]
async fn an_expiring_discount_is_expansion() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    billing.customer("c1").await;
    billing.plan("monthly", "month", 1).await;
    for (invoice, start, end, cents, discount) in [
        ("in1", "2026-01-01", "2026-02-01", 2_500, 2_500),
        ("in2", "2026-02-01", "2026-03-01", 2_500, 2_500),
        ("in3", "2026-03-01", "2026-04-01", 5_000, 0),
    ] {
        let mut monthly = line("s1", Some("monthly"), start, end, cents);
        monthly["discount_amount_in_cents"] = json!(discount);
        billing.invoice(invoice, "c1", "USD", vec![monthly]).await;
    }
    let quarter = billing
        .revenue("from=2026-01-01&to=2026-03-31&compare=none")
        .await;
    assert_eq!(quarter["movements"]["new_business"], 25.0);
    assert_eq!(quarter["movements"]["expansion"], 25.0);
    assert_eq!(quarter["kpis"]["mrr"], 50.0);
}

#[tokio::test]
async fn foreign_currency_converts_at_the_period_start_and_drift_is_apart() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    billing.customer("c1").await;
    billing.customer("c2").await;
    billing
        .invoice(
            "in1",
            "c1",
            "EUR",
            vec![line("s1", None, "2026-01-01", "2026-02-01", 10_000)],
        )
        .await;
    billing
        .invoice(
            "in2",
            "c1",
            "EUR",
            vec![line("s1", None, "2026-02-01", "2026-03-01", 10_000)],
        )
        .await;
    billing
        .invoice(
            "in3",
            "c2",
            "GBP",
            vec![line("s2", None, "2026-01-01", "2026-02-01", 10_000)],
        )
        .await;
    // No rates yet: the foreign revenue counts for nothing, and says so.
    let before = billing
        .revenue("from=2026-01-01&to=2026-02-28&compare=none")
        .await;
    assert_eq!(before["kpis"]["mrr"], 0.0);
    assert_eq!(before["missing_exchange_rates"], json!(["EUR", "GBP"]));

    let response = billing
        .owner
        .send(billing.owner.request(
            axum::http::Method::PUT,
            "/api/v1/tenants/acme/billing/exchange-rates",
            Some(json!({ "rates": [
                { "currency": "EUR", "day": "2026-01-01", "rate": 1.10 },
                { "currency": "EUR", "day": "2026-02-01", "rate": 1.20 },
                { "currency": "GBP", "day": "2025-12-01", "rate": 1.25 },
            ]})),
        ))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let after = billing
        .revenue("from=2026-01-01&to=2026-02-28&granularity=month&compare=none")
        .await;
    assert_eq!(after["missing_exchange_rates"], json!([]));
    let months = series_columns(
        &after,
        &[
            "/mrr",
            "/movements/new_business",
            "/movements/expansion",
            "/movements/churn",
            "/movements/fx_drift",
        ],
    );
    // January: €100 at 1.10 + £100 at 1.25. February: the same €100
    // renewed at 1.20 is $10 of drift, not expansion; the £100 churned.
    assert_eq!(
        months,
        [
            json!([235.0, 235.0, 0.0, 0.0, 0.0]),
            json!([120.0, 0.0, 0.0, 125.0, 10.0]),
        ]
    );

    // Reporting in EUR instead recomputes everything from the same rates.
    let response = billing
        .owner
        .patch(
            "/api/v1/tenants/acme",
            json!({ "reporting_currency": "EUR" }),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let in_euros = billing
        .revenue("from=2026-01-01&to=2026-01-31&compare=none")
        .await;
    assert_eq!(in_euros["currency"], "EUR");
    assert_eq!(in_euros["missing_exchange_rates"], json!(["GBP"]));
    assert_eq!(in_euros["kpis"]["mrr"], 100.0);
}

#[tokio::test]
async fn a_trial_is_a_lead_until_it_converts() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    for (id, trial) in [("t1", "2026-01-05"), ("t2", "2026-01-10")] {
        billing
            .post(
                "customers",
                json!({ "external_id": id, "free_trial_started_at": format!("{trial}T09:00:00Z") }),
            )
            .await;
    }
    billing
        .invoice(
            "in1",
            "t1",
            "USD",
            vec![
                line("s1", None, "2026-01-05", "2026-01-19", 0),
                line("s1", None, "2026-01-19", "2026-02-19", 3_000),
            ],
        )
        .await;
    billing
        .invoice(
            "in2",
            "t2",
            "USD",
            vec![line("s2", None, "2026-01-10", "2026-01-24", 0)],
        )
        .await;
    let january = billing
        .revenue("from=2026-01-01&to=2026-01-31&compare=none")
        .await;
    assert_eq!(january["kpis"]["trial_to_paid"], 0.5);
    assert_eq!(january["movements"]["new_business"], 30.0);
    assert_eq!(january["movements"]["customers"]["new_business"], 1);
    let series = mrr_series(&january);
    assert_eq!(
        series[17..19],
        pairs(&[("2026-01-18", 0.0), ("2026-01-19", 30.0)])
    );
}

#[tokio::test]
async fn days_begin_at_midnight_in_the_tenants_time_zone() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    billing.customer("c1").await;
    // 03:00 UTC on March 1 is still February 28 in New York.
    let mut late = line("s1", None, "2026-03-01", "2026-04-01", 5_000);
    late["service_period_start"] = json!("2026-03-01T03:00:00Z");
    late["service_period_end"] = json!("2026-04-01T03:00:00Z");
    billing.invoice("in1", "c1", "USD", vec![late]).await;
    let query = "from=2026-02-27&to=2026-03-02&compare=none";
    assert_eq!(
        mrr_series(&billing.revenue(query).await),
        pairs(&[
            ("2026-02-27", 0.0),
            ("2026-02-28", 0.0),
            ("2026-03-01", 50.0),
            ("2026-03-02", 50.0)
        ])
    );
    let response = billing
        .owner
        .patch(
            "/api/v1/tenants/acme",
            json!({ "time_zone": "America/New_York" }),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let local = billing.revenue(query).await;
    assert_eq!(local["period"]["time_zone"], "America/New_York");
    assert_eq!(
        mrr_series(&local),
        pairs(&[
            ("2026-02-27", 0.0),
            ("2026-02-28", 50.0),
            ("2026-03-01", 50.0),
            ("2026-03-02", 50.0)
        ])
    );

    let refused = billing
        .owner
        .patch(
            "/api/v1/tenants/acme",
            json!({ "time_zone": "Mars/Olympus" }),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.body["errors"][0]["field"], "time_zone");
}

#[tokio::test]
async fn bad_dashboard_parameters_are_named() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    let response = billing
        .owner
        .get("/api/v1/tenants/acme/dashboard/revenue?from=2026-02-01&to=2026-01-01&granularity=hour&compare=lastweek")
        .await;
    assert_eq!(response.status, 422);
    let fields: Vec<_> = response.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_owned())
        .collect();
    assert_eq!(fields, ["from", "granularity", "compare"]);
}

/// The rollups as an administrator reads them, for comparison.
async fn rollup_rows(app: &TestApp) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    (
        app.rows(
            "SELECT day, new_business, expansion, contraction, churn, reactivation, fx_drift,
                    new_customers, expansion_customers, contraction_customers,
                    churned_customers, reactivated_customers
             FROM mrr_daily
             WHERE (new_business, expansion, contraction, churn, reactivation, fx_drift,
                    new_customers, expansion_customers, contraction_customers,
                    churned_customers, reactivated_customers) <> (0,0,0,0,0,0,0,0,0,0,0)
             ORDER BY day",
        )
        .await,
        app.rows(
            "SELECT customer_id, day, kind, mrr_before, mrr_after, movement, fx_drift
             FROM mrr_movements ORDER BY customer_id, day",
        )
        .await,
        app.rows(
            "SELECT day, trials, converted FROM trial_days
             WHERE (trials, converted) <> (0, 0) ORDER BY day",
        )
        .await,
    )
}

/// Free trials started in `from..=to` and how many converted, straight
/// from the customers and their movements.
async fn direct_trials(app: &TestApp, from: &str, to: &str) -> (i64, i64) {
    let rows = app
        .rows(&format!(
            "SELECT count(*) AS trials, count(*) FILTER (WHERE EXISTS (
                        SELECT 1 FROM mrr_movements m
                        WHERE m.customer_id = c.id AND m.kind = 'new_business')) AS converted
             FROM billing_customers c JOIN tenants t ON t.id = c.tenant_id
             WHERE (c.free_trial_started_at AT TIME ZONE t.time_zone)::date
                   BETWEEN DATE '{from}' AND DATE '{to}'"
        ))
        .await;
    let number = |key: &str| rows[0][key].as_i64().expect("a count");
    (number("trials"), number("converted"))
}

/// Sets (or moves) the trial start of `customer` to a random hour of the
/// 200 days from `origin`, through the API or the CSV import.
async fn set_trial_start(
    billing: &Billing,
    rng: &mut rand::rngs::StdRng,
    customer: &str,
    origin: chrono::NaiveDate,
) {
    use rand::Rng;
    let started = format!(
        "{}T{:02}:00:00Z",
        origin + chrono::Duration::days(rng.gen_range(0..200)),
        rng.gen_range(0..24)
    );
    if rng.gen_bool(0.5) {
        billing
            .post(
                "customers",
                json!({ "external_id": customer, "free_trial_started_at": started }),
            )
            .await;
    } else {
        let csv = format!("external_id,free_trial_started_at\n{customer},{started}\n");
        let mut request = billing.owner.request(
            axum::http::Method::POST,
            "/api/v1/tenants/acme/billing/import/csv?kind=customers",
            None,
        );
        *request.body_mut() = csv.into();
        request.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("text/csv"),
        );
        let response = billing.owner.send(request).await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(response.body["imported"], 1, "{}", response.body);
    }
}

/// Random billing histories written through the API in a random order,
/// with invoices re-sent, moved between customers, cancelled and
/// un-cancelled, and trial starts set and moved: the incrementally
/// maintained rollups equal a rebuild from raw data, the MRR the dashboard
/// serves for a day equals the MRR computed directly from the stored lines,
/// and its trial conversions those computed from the customers.
#[tokio::test]
async fn incremental_rollups_equal_a_rebuild_and_the_raw_lines() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    billing.plan("monthly", "month", 1).await;
    billing.plan("annual", "year", 1).await;
    let rates = json!({ "rates": [{ "currency": "EUR", "day": "2020-01-01", "rate": 1.25 }] });
    let response = billing
        .owner
        .send(billing.owner.request(
            axum::http::Method::PUT,
            "/api/v1/tenants/acme/billing/exchange-rates",
            Some(rates),
        ))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    for c in 0..8 {
        billing.customer(&format!("c{c}")).await;
    }
    let mut rng = StdRng::seed_from_u64(20261123);
    let origin = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
    for _ in 0..60 {
        let customer = format!("c{}", rng.gen_range(0..8));
        if rng.gen_bool(0.15) {
            set_trial_start(&billing, &mut rng, &customer, origin).await;
            continue;
        }
        let subscription = format!("{customer}-s{}", rng.gen_range(0..2));
        if rng.gen_bool(0.15) {
            let cancelled_at = rng.gen_bool(0.7).then(|| {
                format!(
                    "{}T12:00:00Z",
                    origin + chrono::Duration::days(rng.gen_range(0..200))
                )
            });
            billing
                .post(
                    "subscriptions/cancel",
                    json!({ "customer_external_id": customer,
                            "subscription_external_id": subscription,
                            "cancelled_at": cancelled_at }),
                )
                .await;
            continue;
        }
        let start = origin + chrono::Duration::days(rng.gen_range(0..200));
        let (plan, end) = if rng.gen_bool(0.8) {
            ("monthly", start + chrono::Months::new(1))
        } else {
            ("annual", start + chrono::Months::new(12))
        };
        let mut sub_line = line(
            &subscription,
            Some(plan),
            &start.to_string(),
            &end.to_string(),
            [0, 2_900, 4_900, 9_900][rng.gen_range(0..4)],
        );
        sub_line["tax_amount_in_cents"] = json!(0);
        // Re-sending one of a few invoice ids replaces (or moves) it.
        let invoice = format!("in{}", rng.gen_range(0..40));
        let currency = if rng.gen_bool(0.25) { "EUR" } else { "USD" };
        billing
            .invoice(&invoice, &customer, currency, vec![sub_line])
            .await;
    }

    // Trials that change last, some of customers who never pay.
    for c in 0..10 {
        set_trial_start(&billing, &mut rng, &format!("c{c}"), origin).await;
    }

    let incremental = rollup_rows(&app).await;
    assert!(!incremental.1.is_empty(), "the history produced movements");
    assert!(!incremental.2.is_empty(), "the history has trials");
    for (from, to) in [
        ("2026-01-01", "2026-12-31"),
        ("2026-01-01", "2026-03-15"),
        ("2026-03-16", "2026-05-31"),
        ("2026-06-01", "2026-07-19"),
    ] {
        let served = billing
            .revenue(&format!("from={from}&to={to}&compare=none"))
            .await;
        let (trials, converted) = direct_trials(&app, from, to).await;
        let rate = (trials > 0).then(|| ((converted as f64 / trials as f64) * 1e6).round() / 1e6);
        assert_eq!(
            served["kpis"]["trial_to_paid"].as_f64(),
            rate,
            "{from}..{to}: {converted} of {trials} trials converted"
        );
    }
    let output = crate::support::northstar(&app, &["rollups", "rebuild", "--tenant", "acme"], None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("10 customers"));
    assert_eq!(rollup_rows(&app).await, incremental);

    // Directly from the stored lines: per subscription, the latest-starting
    // line covering the day, unless it starts after a cancellation.
    let lines = app
        .rows(
            "SELECT i.customer_id::text || '/' || l.subscription_external_id AS subscription,
                    (l.service_period_start AT TIME ZONE 'UTC')::date::text AS starts,
                    (l.service_period_end AT TIME ZONE 'UTC')::date::text AS ends,
                    l.amount_minor, i.currency, p.interval_unit
             FROM billing_line_items l JOIN billing_invoices i ON i.id = l.invoice_id
             JOIN billing_plans p ON p.id = l.plan_id
             LEFT JOIN billing_subscription_cancellations c
                    ON c.customer_id = i.customer_id
                   AND c.subscription_external_id = l.subscription_external_id
             WHERE c.cancelled_at IS NULL OR l.service_period_start <= c.cancelled_at
             ORDER BY i.issued_at, i.id",
        )
        .await;
    let mut paying_days = 0;
    for offset in (0..420).step_by(7) {
        let day = origin + chrono::Duration::days(offset);
        let text = day.to_string();
        let mut latest: std::collections::HashMap<&str, (&str, f64)> = Default::default();
        for l in &lines {
            let (starts, ends) = (
                l["starts"].as_str().expect("starts"),
                l["ends"].as_str().expect("ends"),
            );
            if !(starts <= text.as_str() && text.as_str() < ends) {
                continue;
            }
            let cents = l["amount_minor"].as_f64().expect("amount");
            let months = if l["interval_unit"] == "year" {
                12.0
            } else {
                1.0
            };
            let rate = if l["currency"] == "EUR" { 1.25 } else { 1.0 };
            let mrr = cents / 100.0 / months * rate;
            let subscription = l["subscription"].as_str().expect("subscription");
            if latest.get(subscription).is_none_or(|(s, _)| *s <= starts) {
                latest.insert(subscription, (starts, mrr));
            }
        }
        let direct: f64 = latest.values().map(|(_, mrr)| mrr).sum();
        paying_days += usize::from(direct > 0.0);
        let served = billing
            .revenue(&format!("from={text}&to={text}&compare=none"))
            .await;
        let served = served["kpis"]["mrr"].as_f64().expect("mrr");
        assert!(
            (served - direct).abs() < 0.01,
            "{text}: served {served}, direct {direct}"
        );
    }
    assert!(
        paying_days > 20,
        "only {paying_days} sampled days had revenue"
    );
}
