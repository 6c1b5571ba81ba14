//! Revenue cohorts: billing data goes in through the billing API, the cohort
//! table comes out of `/dashboard/revenue/cohorts`. The fixture's every cell
//! was worked out by hand; random histories check the incrementally
//! maintained rollup against a rebuild and the served cells against the
//! movements themselves.

use std::collections::BTreeMap;

use chrono::{Datelike, Months, NaiveDate};
use northstar_db::memberships::Role;
use serde_json::{Value, json};

use crate::support::{TestApp, billing::Billing};

impl Billing {
    /// A USD invoice of one line.
    async fn usd_invoice(&self, id: &str, customer: &str, line: Value) {
        self.invoice(id, customer, "USD", vec![line]).await;
    }

    async fn cohorts(&self, query: &str) -> Value {
        let response = self
            .owner
            .get(&format!(
                "/api/v1/tenants/{}/dashboard/revenue/cohorts?{query}",
                self.slug
            ))
            .await;
        assert_eq!(response.status, 200, "{query}: {}", response.body);
        response.body
    }
}

/// A subscription line without a plan: `cents` for `[start, end)` (UTC midnights).
fn line(subscription: &str, start: &str, end: &str, cents: i64) -> Value {
    json!({
        "type": "subscription",
        "subscription_external_id": subscription,
        "service_period_start": format!("{start}T00:00:00Z"),
        "service_period_end": format!("{end}T00:00:00Z"),
        "amount_in_cents": cents,
    })
}

/// One cohort's cells as `[offset, as_of, customers, mrr, customer
/// retention, revenue retention]`.
fn cells(cohort: &Value) -> Vec<Value> {
    cohort["months"]
        .as_array()
        .expect("months")
        .iter()
        .map(|m| {
            json!([
                m["offset"],
                m["as_of"],
                m["customers"],
                m["mrr"],
                m["customer_retention"],
                m["revenue_retention"]
            ])
        })
        .collect()
}

/// The fixture: January cohort A ($100) and B ($50), February cohort C
/// ($200). B churns on March 20; A expands to $150 on April 10; B comes
/// back on May 5. C's paid period ends on June 20 and D first pays on June
/// 18, both after the report's last day (June 15), so neither counts yet.
/// E first paid in December, before the first cohort reported.
async fn fixture(billing: &Billing) {
    for customer in ["a", "b", "c", "d", "e"] {
        billing.customer(customer).await;
    }
    // Three months for $300 is $100 MRR; then three for $450 is $150.
    billing
        .usd_invoice("a1", "a", line("sa", "2026-01-10", "2026-04-10", 30_000))
        .await;
    billing
        .usd_invoice("a2", "a", line("sa", "2026-04-10", "2026-07-10", 45_000))
        .await;
    billing
        .usd_invoice("b1", "b", line("sb", "2026-01-20", "2026-03-20", 10_000))
        .await;
    billing
        .usd_invoice("b2", "b", line("sb2", "2026-05-05", "2026-08-05", 15_000))
        .await;
    billing
        .usd_invoice("c1", "c", line("sc", "2026-02-20", "2026-06-20", 80_000))
        .await;
    billing
        .usd_invoice("d1", "d", line("sd", "2026-06-18", "2026-07-18", 5_000))
        .await;
    billing
        .usd_invoice("e1", "e", line("se", "2025-12-01", "2026-12-01", 120_000))
        .await;
}

#[tokio::test]
async fn every_cell_of_the_fixture_matches_the_hand_computed_table() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    fixture(&billing).await;

    let table = billing.cohorts("from=2026-01-01&to=2026-06-15").await;
    assert_eq!(table["currency"], "USD");
    assert_eq!(table["time_zone"], "UTC");
    assert_eq!(
        (&table["from"], &table["to"]),
        (&json!("2026-01-01"), &json!("2026-06-15"))
    );
    let cohorts = table["cohorts"].as_array().expect("cohorts");
    let heads: Vec<Value> = cohorts
        .iter()
        .map(|c| {
            json!([
                c["month"],
                c["customers"],
                c["new_business_mrr"],
                c["starting_mrr"]
            ])
        })
        .collect();
    assert_eq!(
        heads,
        [
            json!(["2026-01-01", 2, 150.0, 150.0]),
            json!(["2026-02-01", 1, 200.0, 200.0]),
            json!(["2026-03-01", 0, 0.0, 0.0]),
            json!(["2026-04-01", 0, 0.0, 0.0]),
            json!(["2026-05-01", 0, 0.0, 0.0]),
            json!(["2026-06-01", 0, 0.0, 0.0]),
        ]
    );
    assert_eq!(
        cells(&cohorts[0]),
        [
            json!([0, "2026-01-31", 2, 150.0, 1.0, 1.0]),
            json!([1, "2026-02-28", 2, 150.0, 1.0, 1.0]),
            json!([2, "2026-03-31", 1, 100.0, 0.5, 0.666667]),
            json!([3, "2026-04-30", 1, 150.0, 0.5, 1.0]),
            json!([4, "2026-05-31", 2, 200.0, 1.0, 1.333333]),
            json!([5, "2026-06-15", 2, 200.0, 1.0, 1.333333]),
        ]
    );
    assert_eq!(
        cells(&cohorts[1]),
        [
            json!([0, "2026-02-28", 1, 200.0, 1.0, 1.0]),
            json!([1, "2026-03-31", 1, 200.0, 1.0, 1.0]),
            json!([2, "2026-04-30", 1, 200.0, 1.0, 1.0]),
            json!([3, "2026-05-31", 1, 200.0, 1.0, 1.0]),
            // C's churn on June 20 is already recorded, but after June 15.
            json!([4, "2026-06-15", 1, 200.0, 1.0, 1.0]),
        ]
    );
    assert_eq!(
        cells(&cohorts[2]),
        [
            json!([0, "2026-03-31", 0, 0.0, null, null]),
            json!([1, "2026-04-30", 0, 0.0, null, null]),
            json!([2, "2026-05-31", 0, 0.0, null, null]),
            json!([3, "2026-06-15", 0, 0.0, null, null]),
        ]
    );
    assert_eq!(
        cells(&cohorts[5]),
        [json!([0, "2026-06-15", 0, 0.0, null, null])]
    );

    // At the end of June: C has churned and D is June's cohort.
    let june = billing.cohorts("from=2026-02-10&to=2026-06-30").await;
    let cohorts = june["cohorts"].as_array().expect("cohorts");
    assert_eq!(cohorts.len(), 5);
    assert_eq!(
        cells(&cohorts[0]).last(),
        Some(&json!([4, "2026-06-30", 0, 0.0, 0.0, 0.0]))
    );
    assert_eq!(
        json!([
            cohorts[4]["month"],
            cohorts[4]["customers"],
            cohorts[4]["starting_mrr"]
        ]),
        json!(["2026-06-01", 1, 50.0])
    );
    assert_eq!(
        cells(&cohorts[4]),
        [json!([0, "2026-06-30", 1, 50.0, 1.0, 1.0])]
    );

    // Any member may read it.
    let viewer = app.member(&billing.tenant, Role::Viewer).await;
    let response = viewer
        .get("/api/v1/tenants/acme/dashboard/revenue/cohorts?from=2025-12-01&to=2025-12-31")
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        cells(&response.body["cohorts"][0]),
        [json!([0, "2025-12-31", 1, 100.0, 1.0, 1.0])]
    );
}

#[tokio::test]
async fn a_cohort_is_the_month_of_the_first_payment_in_the_tenants_time_zone() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    billing.customer("c1").await;
    // 03:00 UTC on March 1 is still February 28 in New York.
    let mut late = line("s1", "2026-03-01", "2026-04-01", 5_000);
    late["service_period_start"] = json!("2026-03-01T03:00:00Z");
    late["service_period_end"] = json!("2026-04-01T03:00:00Z");
    billing.usd_invoice("in1", "c1", late).await;
    let months = |table: &Value| -> Vec<(String, i64)> {
        table["cohorts"]
            .as_array()
            .expect("cohorts")
            .iter()
            .map(|c| {
                (
                    c["month"].as_str().expect("month").to_owned(),
                    c["customers"].as_i64().expect("customers"),
                )
            })
            .collect()
    };
    let query = "from=2026-02-01&to=2026-03-31";
    assert_eq!(
        months(&billing.cohorts(query).await),
        [("2026-02-01".to_owned(), 0), ("2026-03-01".to_owned(), 1)]
    );
    let response = billing
        .owner
        .patch(
            "/api/v1/tenants/acme",
            json!({ "time_zone": "America/New_York" }),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let local = billing.cohorts(query).await;
    assert_eq!(local["time_zone"], "America/New_York");
    assert_eq!(
        months(&local),
        [("2026-02-01".to_owned(), 1), ("2026-03-01".to_owned(), 0)]
    );
    // Paid until March 31 local time: churned at the end of March.
    assert_eq!(
        cells(&local["cohorts"][0]),
        [
            json!([0, "2026-02-28", 1, 50.0, 1.0, 1.0]),
            json!([1, "2026-03-31", 0, 0.0, 0.0, 0.0]),
        ]
    );
}

#[tokio::test]
async fn the_default_is_twelve_cohorts_to_today_and_bad_parameters_are_named() {
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    let table = billing.cohorts("").await;
    let to: NaiveDate = table["to"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("to");
    let today = chrono::Utc::now().date_naive();
    assert!((to - today).num_days().abs() <= 1, "to {to}, today {today}");
    let first = to
        .with_day(1)
        .and_then(|d| d.checked_sub_months(Months::new(11)))
        .expect("first month");
    assert_eq!(table["from"], json!(first.to_string()));
    let cohorts = table["cohorts"].as_array().expect("cohorts");
    assert_eq!(cohorts.len(), 12);
    assert_eq!(cohorts[0]["months"].as_array().map(Vec::len), Some(12));
    assert_eq!(cohorts[11]["months"][0]["as_of"], json!(to.to_string()));

    for (query, field) in [
        ("from=2026-02-01&to=2026-01-31", "from"),
        ("from=2016-01-01&to=2026-01-31", "from"),
        ("to=2026-13-01", "to"),
        ("from=yesterday", "from"),
    ] {
        let response = billing
            .owner
            .get(&format!(
                "/api/v1/tenants/acme/dashboard/revenue/cohorts?{query}"
            ))
            .await;
        assert_eq!(response.status, 422, "{query}: {}", response.body);
        assert_eq!(
            response.body["errors"][0]["field"], field,
            "{query}: {}",
            response.body
        );
    }
}

/// The cohort rollups as an administrator reads them.
async fn cohort_rows(app: &TestApp) -> (Vec<Value>, Vec<Value>) {
    (
        app.rows(
            "SELECT cohort_month, month, customers, mrr FROM revenue_cohorts
             ORDER BY cohort_month, month",
        )
        .await,
        app.rows(
            "SELECT cohort_month, day, customers, mrr FROM revenue_cohort_days
             ORDER BY cohort_month, day",
        )
        .await,
    )
}

/// The same, summed straight from `mrr_movements`.
async fn cohort_rows_from_movements(app: &TestApp) -> (Vec<Value>, Vec<Value>) {
    let changes = |period: &str| {
        format!(
            "SELECT n.cohort_month, {period},
                    sum(CASE m.kind WHEN 'churn' THEN -1
                                    WHEN 'new_business' THEN 1 WHEN 'reactivation' THEN 1
                                    ELSE 0 END)::bigint AS customers,
                    sum(m.movement + m.fx_drift)::bigint AS mrr
             FROM mrr_movements m
             JOIN (SELECT customer_id, date_trunc('month', day::timestamp)::date AS cohort_month
                   FROM mrr_movements WHERE kind = 'new_business') n USING (customer_id)
             GROUP BY 1, 2
             HAVING sum(CASE m.kind WHEN 'churn' THEN -1
                                    WHEN 'new_business' THEN 1 WHEN 'reactivation' THEN 1
                                    ELSE 0 END) <> 0
                 OR sum(m.movement + m.fx_drift) <> 0
             ORDER BY 1, 2"
        )
    };
    (
        app.rows(&changes(
            "date_trunc('month', m.day::timestamp)::date AS month",
        ))
        .await,
        app.rows(&changes("m.day")).await,
    )
}

/// One stored movement, for the direct computation of cells.
struct Movement {
    customer: String,
    day: NaiveDate,
    kind: String,
    mrr_after: i64,
}

/// The cohort table for `from..=to` computed customer by customer from the
/// movements: `(month, customers, [(as_of, customers, mrr in micro-units)])`.
type DirectCohort = (NaiveDate, i64, Vec<(NaiveDate, i64, i64)>);

fn direct_cohorts(movements: &[Movement], from: NaiveDate, to: NaiveDate) -> Vec<DirectCohort> {
    let month_of = |day: NaiveDate| day.with_day(1).expect("first day");
    let next = |month: NaiveDate| month.checked_add_months(Months::new(1)).expect("month");
    let mut by_customer: BTreeMap<&str, Vec<&Movement>> = BTreeMap::new();
    for m in movements {
        by_customer.entry(&m.customer).or_default().push(m);
    }
    let mut cohorts = Vec::new();
    let mut cohort = month_of(from);
    while cohort <= to {
        // Customers whose first payment, up to `to`, fell in the month.
        let members: Vec<&Vec<&Movement>> = by_customer
            .values()
            .filter(|history| {
                history
                    .iter()
                    .find(|m| m.kind == "new_business")
                    .is_some_and(|m| m.day <= to && month_of(m.day) == cohort)
            })
            .collect();
        let mut cells = Vec::new();
        let mut month = cohort;
        while month <= to {
            let as_of = (next(month) - chrono::Duration::days(1)).min(to);
            let (mut customers, mut mrr) = (0, 0);
            for history in &members {
                let level = history
                    .iter()
                    .take_while(|m| m.day <= as_of)
                    .last()
                    .map_or(0, |m| m.mrr_after);
                customers += i64::from(level > 0);
                mrr += level;
            }
            cells.push((as_of, customers, mrr));
            month = next(month);
        }
        cohorts.push((cohort, members.len() as i64, cells));
        cohort = next(cohort);
    }
    cohorts
}

/// Random billing histories written through the API, with invoices re-sent
/// (moving customers between cohorts), moved between customers, cancelled
/// and un-cancelled: the incrementally maintained cohort rollups equal both
/// a rebuild and the movements summed directly, and every served cell
/// equals the customers' own MRR on its day.
#[tokio::test]
async fn incremental_cohorts_equal_a_rebuild_and_the_movements() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let app = TestApp::spawn().await;
    let billing = Billing::new(&app).await;
    for c in 0..10 {
        billing.customer(&format!("c{c}")).await;
    }
    let mut rng = StdRng::seed_from_u64(20260401);
    let origin = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
    for step in 0..80 {
        if step == 40 {
            assert_eq!(
                cohort_rows(&app).await,
                cohort_rows_from_movements(&app).await
            );
        }
        let customer = format!("c{}", rng.gen_range(0..10));
        let subscription = format!("{customer}-s{}", rng.gen_range(0..2));
        if rng.gen_bool(0.15) {
            let cancelled_at = rng.gen_bool(0.7).then(|| {
                format!(
                    "{}T12:00:00Z",
                    origin + chrono::Duration::days(rng.gen_range(0..240))
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
        let start = origin + chrono::Duration::days(rng.gen_range(0..240));
        let months = [1, 1, 2, 3][rng.gen_range(0..4)];
        let end = start + Months::new(months);
        let cents = [0, 2_900, 4_900, 9_900][rng.gen_range(0..4)] * i64::from(months);
        let invoice = format!("in{}", rng.gen_range(0..40));
        billing
            .usd_invoice(
                &invoice,
                &customer,
                line(&subscription, &start.to_string(), &end.to_string(), cents),
            )
            .await;
    }

    let incremental = cohort_rows(&app).await;
    assert!(
        incremental.0.len() > 5,
        "the history made cohorts: {incremental:?}"
    );
    assert_eq!(incremental, cohort_rows_from_movements(&app).await);
    let output = crate::support::northstar(&app, &["rollups", "rebuild", "--tenant", "acme"], None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(cohort_rows(&app).await, incremental);

    let movements: Vec<Movement> = app
        .rows(
            "SELECT customer_id::text AS customer, day::text AS day, kind, mrr_after
             FROM mrr_movements ORDER BY customer_id, day",
        )
        .await
        .iter()
        .map(|m| Movement {
            customer: m["customer"].as_str().expect("customer").to_owned(),
            day: m["day"].as_str().and_then(|d| d.parse().ok()).expect("day"),
            kind: m["kind"].as_str().expect("kind").to_owned(),
            mrr_after: m["mrr_after"].as_i64().expect("mrr_after"),
        })
        .collect();
    for _ in 0..6 {
        let from = origin + chrono::Duration::days(rng.gen_range(0..200));
        let to = from + chrono::Duration::days(rng.gen_range(0..300));
        let served = billing.cohorts(&format!("from={from}&to={to}")).await;
        let served = served["cohorts"].as_array().expect("cohorts");
        let direct = direct_cohorts(&movements, from, to);
        assert_eq!(served.len(), direct.len(), "{from}..{to}");
        for (cohort, (month, size, cells)) in served.iter().zip(&direct) {
            assert_eq!(cohort["month"], json!(month.to_string()), "{from}..{to}");
            assert_eq!(cohort["customers"], json!(size), "{from}..{to}, {month}");
            let months = cohort["months"].as_array().expect("months");
            assert_eq!(months.len(), cells.len(), "{from}..{to}, {month}");
            for (cell, (as_of, customers, mrr)) in months.iter().zip(cells) {
                let what = format!("{from}..{to}, cohort {month}, as of {as_of}");
                assert_eq!(cell["as_of"], json!(as_of.to_string()), "{what}");
                assert_eq!(cell["customers"], json!(customers), "{what}");
                let served_mrr = cell["mrr"].as_f64().expect("mrr");
                let direct_mrr = *mrr as f64 / 1e6;
                assert!(
                    (served_mrr - direct_mrr).abs() < 0.006,
                    "{what}: served {served_mrr}, direct {direct_mrr}"
                );
            }
        }
    }
}
