//! The Stripe webhook: signatures checked exactly as Stripe makes them,
//! events applied once, and billing data and revenue rollups kept in step.
//! Fixtures are shaped like real Stripe events of two API versions
//! (2024-06-20, where lines name their subscription and price, and
//! 2025-03-31.basil, where they moved under `parent`).

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use chrono::Utc;
use hmac::{Hmac, Mac};
use northstar_db::memberships::Role;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::{Persona, TestApp, TestResponse, TestTenant};

const SECRET: &str = "whsec_4eC39HqLyjWDarjtT1zdp7dcA1b2C3d4";
const OTHER_SECRET: &str = "whsec_9fZ81KqPmNbVcXz0LkJhGfDsA5s6D7f8";

// 2026-01-15, 2026-02-01, 2026-02-10, 2026-03-01, 2026-04-01 and
// 2027-01-15 at 00:00 UTC.
const JAN_15: i64 = 1_768_435_200;
const FEB_1: i64 = 1_769_904_000;
const FEB_10: i64 = 1_770_681_600;
const MAR_1: i64 = 1_772_323_200;
const APR_1: i64 = 1_775_001_600;
const JAN_15_2027: i64 = 1_799_971_200;

/// `Stripe-Signature` for `body` signed with `secret` at `timestamp`, as
/// Stripe computes it: hex HMAC-SHA256 of `"{t}.{body}"` keyed with the
/// whole `whsec_…` string.
fn stripe_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

/// Posts raw `body` to the tenant's webhook URL with `signature`, if any.
async fn post_raw(
    app: &TestApp,
    slug: &str,
    body: Vec<u8>,
    signature: Option<String>,
) -> TestResponse {
    let mut request = Request::post(format!("/api/v1/webhooks/stripe/{slug}"))
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "user-agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        );
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    app.send(request.body(Body::from(body)).expect("request"))
        .await
}

/// Delivers `event` as Stripe does: signed with `secret` now.
async fn deliver(app: &TestApp, slug: &str, secret: &str, event: &Value) -> TestResponse {
    let body = serde_json::to_vec(event).expect("json");
    let signature = stripe_signature(secret, Utc::now().timestamp(), &body);
    post_raw(app, slug, body, Some(signature)).await
}

async fn add_secret(owner: &Persona, tenant: &TestTenant, secret: &str) -> TestResponse {
    owner
        .post(
            &format!("/api/v1/tenants/{}/billing/stripe/secrets", tenant.slug),
            json!({ "secret": secret }),
        )
        .await
}

/// A tenant whose owner has added [`SECRET`].
async fn connected(app: &TestApp, slug: &str) -> (TestTenant, Persona) {
    let tenant = app.tenant(slug).await;
    let owner = app.owner(&tenant).await;
    let added = add_secret(&owner, &tenant, SECRET).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    (tenant, owner)
}

fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": "req_8Vd2kLm3NpQr4S", "idempotency_key": "6c1e7f4a-2b9d-4e3f-8a5b-0c7d9e1f2a3b" },
        "type": kind,
    })
}

fn customer_created() -> Value {
    event(
        "evt_1QcCustCreated01",
        "customer.created",
        JAN_15,
        json!({
            "id": "cus_RInitech01",
            "object": "customer",
            "address": {
                "city": "Paris", "country": "FR", "line1": "12 rue de la Paix", "line2": null,
                "postal_code": "75002", "state": null
            },
            "balance": 0,
            "created": JAN_15,
            "currency": null,
            "default_source": null,
            "delinquent": false,
            "description": null,
            "discount": null,
            "email": "billing@initech.example",
            "invoice_prefix": "7F3A2C1B",
            "invoice_settings": {
                "custom_fields": null, "default_payment_method": null, "footer": null,
                "rendering_options": null
            },
            "livemode": false,
            "metadata": { "user_id": "user_4242", "segment": "enterprise" },
            "name": "Initech SAS",
            "next_invoice_sequence": 1,
            "phone": null,
            "preferred_locales": ["fr"],
            "shipping": null,
            "tax_exempt": "none",
            "test_clock": null
        }),
    )
}

/// `invoice.paid` in API version 2024-06-20: one subscription line naming
/// its subscription, plan and price.
fn annual_invoice_paid() -> Value {
    let line = json!({
        "id": "il_1QcAnnualLine01",
        "object": "line_item",
        "amount": 120000,
        "amount_excluding_tax": 120000,
        "currency": "usd",
        "description": "1 × Pro (at $1,200.00 / year)",
        "discount_amounts": [],
        "discountable": true,
        "discounts": [],
        "invoice": "in_1QcAnnual0001",
        "livemode": false,
        "metadata": {},
        "period": { "end": JAN_15_2027, "start": JAN_15 },
        "plan": {
            "id": "price_1QcProAnnual", "object": "plan", "active": true,
            "amount": 120000, "billing_scheme": "per_unit", "currency": "usd",
            "interval": "year", "interval_count": 1, "nickname": "Pro annual",
            "product": "prod_RPro", "usage_type": "licensed"
        },
        "price": {
            "id": "price_1QcProAnnual", "object": "price", "active": true,
            "billing_scheme": "per_unit", "currency": "usd", "nickname": "Pro annual",
            "product": "prod_RPro",
            "recurring": {
                "aggregate_usage": null, "interval": "year", "interval_count": 1,
                "meter": null, "usage_type": "licensed"
            },
            "tax_behavior": "unspecified", "type": "recurring", "unit_amount": 120000
        },
        "proration": false,
        "proration_details": { "credited_items": null },
        "quantity": 1,
        "subscription": "sub_1QcAnnual01",
        "subscription_item": "si_RAnnualItem1",
        "tax_amounts": [],
        "tax_rates": [],
        "type": "subscription",
        "unit_amount_excluding_tax": "120000"
    });
    event(
        "evt_1QcAnnualPaid01",
        "invoice.paid",
        JAN_15,
        json!({
            "id": "in_1QcAnnual0001",
            "object": "invoice",
            "account_country": "US",
            "account_name": "Initech",
            "amount_due": 120000,
            "amount_paid": 120000,
            "amount_remaining": 0,
            "attempt_count": 1,
            "attempted": true,
            "billing_reason": "subscription_create",
            "collection_method": "charge_automatically",
            "created": JAN_15,
            "currency": "usd",
            "customer": "cus_RAnnual0001",
            "customer_address": null,
            "customer_email": "finance@annual.example",
            "customer_name": "Annual Corp",
            "discount": null,
            "discounts": [],
            "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1Q/test_YWNjdF8x",
            "lines": {
                "object": "list",
                "data": [line],
                "has_more": false,
                "total_count": 1,
                "url": "/v1/invoices/in_1QcAnnual0001/lines"
            },
            "livemode": false,
            "number": "ANNUAL-0001",
            "paid": true,
            "period_end": JAN_15,
            "period_start": JAN_15,
            "status": "paid",
            "status_transitions": { "paid_at": JAN_15 + 5, "finalized_at": JAN_15 },
            "subscription": "sub_1QcAnnual01",
            "subtotal": 120000,
            "tax": null,
            "total": 120000
        }),
    )
}

/// `invoice.paid` in API version 2025-03-31.basil for a month of the
/// monthly subscription: $50.00 less a $10.00 coupon, plus 20% exclusive
/// VAT, and a $25.00 one-off setup fee.
fn monthly_invoice_paid(event_id: &str, invoice_id: &str, start: i64, end: i64) -> Value {
    let subscription_line = json!({
        "id": format!("il_{invoice_id}_sub"),
        "object": "line_item",
        "amount": 5000,
        "currency": "usd",
        "description": "1 × Team (at $50.00 / month)",
        "discount_amounts": [{ "amount": 1000, "discount": "di_1QcWelcome10" }],
        "discountable": true,
        "discounts": ["di_1QcWelcome10"],
        "invoice": invoice_id,
        "livemode": false,
        "metadata": {},
        "parent": {
            "invoice_item_details": null,
            "subscription_item_details": {
                "invoice_item": null,
                "proration": false,
                "proration_details": { "credited_items": null },
                "subscription": "sub_1QcMonthly01",
                "subscription_item": "si_RMonthlyItem1"
            },
            "type": "subscription_item_details"
        },
        "period": { "end": end, "start": start },
        "pretax_credit_amounts": [
            { "amount": 1000, "credit_balance_transaction": null,
              "discount": "di_1QcWelcome10", "type": "discount" }
        ],
        "pricing": {
            "price_details": { "price": "price_1QcTeamMonthly", "product": "prod_RTeam" },
            "type": "price_details",
            "unit_amount_decimal": "5000"
        },
        "quantity": 1,
        "taxes": [{
            "amount": 800,
            "tax_behavior": "exclusive",
            "tax_rate_details": { "tax_rate": "txr_1QcVat20" },
            "taxability_reason": "standard_rated",
            "taxable_amount": 4000,
            "type": "tax_rate_details"
        }]
    });
    let setup_line = json!({
        "id": format!("il_{invoice_id}_setup"),
        "object": "line_item",
        "amount": 2500,
        "currency": "usd",
        "description": "Onboarding",
        "discount_amounts": [],
        "discountable": true,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": false,
        "metadata": {},
        "parent": {
            "invoice_item_details": {
                "invoice_item": "ii_1QcSetupFee01",
                "proration": false,
                "proration_details": { "credited_items": null },
                "subscription": "sub_1QcMonthly01"
            },
            "subscription_item_details": null,
            "type": "invoice_item_details"
        },
        "period": { "end": start, "start": start },
        "pricing": {
            "price_details": { "price": "price_1QcSetup", "product": "prod_RSetup" },
            "type": "price_details",
            "unit_amount_decimal": "2500"
        },
        "quantity": 1,
        "taxes": []
    });
    let mut event = event(
        event_id,
        "invoice.paid",
        start,
        json!({
            "id": invoice_id,
            "object": "invoice",
            "account_country": "GB",
            "amount_due": 7800,
            "amount_paid": 7800,
            "amount_remaining": 0,
            "billing_reason": "subscription_cycle",
            "collection_method": "charge_automatically",
            "created": start,
            "currency": "usd",
            "customer": "cus_RMonthly001",
            "customer_email": "ops@monthly.example",
            "customer_name": "Monthly Ltd",
            "discounts": ["di_1QcWelcome10"],
            "lines": {
                "object": "list",
                "data": [
                    subscription_line, setup_line
                ],
                "has_more": false,
                "total_count": 2,
                "url": format!("/v1/invoices/{invoice_id}/lines")
            },
            "livemode": false,
            "parent": {
                "quote_details": null,
                "subscription_details": { "metadata": {}, "subscription": "sub_1QcMonthly01" },
                "type": "subscription_details"
            },
            "period_end": start,
            "period_start": start,
            "status": "paid",
            "subtotal": 7500,
            "total": 7800,
            "total_taxes": [{ "amount": 800, "tax_behavior": "exclusive", "taxable_amount": 4000,
                              "type": "tax_rate_details" }]
        }),
    );
    event["api_version"] = json!("2025-03-31.basil");
    event
}

fn subscription(event_id: &str, kind: &str, created: i64, changes: Value) -> Value {
    let mut object = json!({
        "id": "sub_1QcMonthly01",
        "object": "subscription",
        "billing_cycle_anchor": FEB_1,
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "cancellation_details": { "comment": null, "feedback": null, "reason": null },
        "collection_method": "charge_automatically",
        "created": FEB_1,
        "currency": "usd",
        "customer": "cus_RMonthly001",
        "ended_at": null,
        "items": {
            "object": "list",
            "data": [{
                "id": "si_RMonthlyItem1", "object": "subscription_item",
                "current_period_end": MAR_1, "current_period_start": FEB_1, "quantity": 1,
                "price": { "id": "price_1QcTeamMonthly", "object": "price", "nickname": "Team",
                           "recurring": { "interval": "month", "interval_count": 1 },
                           "unit_amount": 5000 }
            }],
            "has_more": false
        },
        "livemode": false,
        "metadata": {},
        "start_date": FEB_1,
        "status": "active",
        "trial_end": null,
        "trial_start": null
    });
    for (key, value) in changes.as_object().expect("changes") {
        object[key] = value.clone();
    }
    event(event_id, kind, created, object)
}

async fn count(app: &TestApp, table: &str) -> i64 {
    app.rows(&format!("SELECT count(*) AS n FROM {table}"))
        .await
        .first()
        .and_then(|row| row["n"].as_i64())
        .expect("count")
}

/// `(day, kind, movement)` of every MRR movement, by customer external id and day.
async fn movements(app: &TestApp) -> Vec<(String, String, String, i64)> {
    app.rows(
        "SELECT c.external_id AS customer, m.day::text AS day, m.kind, m.movement
         FROM mrr_movements m JOIN billing_customers c ON c.id = m.customer_id
         ORDER BY c.external_id, m.day",
    )
    .await
    .into_iter()
    .map(|row| {
        (
            row["customer"].as_str().expect("customer").to_owned(),
            row["day"].as_str().expect("day").to_owned(),
            row["kind"].as_str().expect("kind").to_owned(),
            row["movement"].as_i64().expect("movement"),
        )
    })
    .collect()
}

fn movement(customer: &str, day: &str, kind: &str, amount: i64) -> (String, String, String, i64) {
    (customer.into(), day.into(), kind.into(), amount)
}

#[tokio::test]
async fn paid_invoices_store_their_lines_and_move_mrr() {
    let app = TestApp::spawn().await;
    let (tenant, _owner) = connected(&app, "acme").await;

    let annual = deliver(&app, &tenant.slug, SECRET, &annual_invoice_paid()).await;
    assert_eq!(annual.status, StatusCode::OK, "{}", annual.text);
    assert_eq!(annual.body, json!({ "received": true }));
    let monthly = monthly_invoice_paid("evt_1QcMonthlyFeb01", "in_1QcMonthlyFeb", FEB_1, MAR_1);
    let monthly = deliver(&app, &tenant.slug, SECRET, &monthly).await;
    assert_eq!(monthly.status, StatusCode::OK, "{}", monthly.text);

    let invoices = app
        .rows(
            "SELECT i.external_id, c.external_id AS customer, c.name, c.email, i.currency,
                    i.source, i.issued_at
             FROM billing_invoices i JOIN billing_customers c ON c.id = i.customer_id
             ORDER BY i.issued_at",
        )
        .await;
    assert_eq!(
        invoices,
        [
            json!({ "external_id": "in_1QcAnnual0001", "customer": "cus_RAnnual0001",
                    "name": "Annual Corp", "email": "finance@annual.example", "currency": "USD",
                    "source": "stripe", "issued_at": "2026-01-15T00:00:00+00:00" }),
            json!({ "external_id": "in_1QcMonthlyFeb", "customer": "cus_RMonthly001",
                    "name": "Monthly Ltd", "email": "ops@monthly.example", "currency": "USD",
                    "source": "stripe", "issued_at": "2026-02-01T00:00:00+00:00" }),
        ]
    );
    let lines = app
        .rows(
            "SELECT l.external_id, l.kind, l.subscription_external_id AS subscription,
                    p.external_id AS plan, l.service_period_start::date::text AS starts,
                    l.service_period_end::date::text AS ends, l.quantity, l.amount_minor,
                    l.discount_minor, l.tax_minor, l.prorated
             FROM billing_line_items l LEFT JOIN billing_plans p ON p.id = l.plan_id
             ORDER BY l.service_period_start, l.kind DESC",
        )
        .await;
    assert_eq!(
        lines,
        [
            json!({ "external_id": "il_1QcAnnualLine01", "kind": "subscription",
                    "subscription": "sub_1QcAnnual01", "plan": "price_1QcProAnnual",
                    "starts": "2026-01-15", "ends": "2027-01-15", "quantity": 1,
                    "amount_minor": 120000, "discount_minor": 0, "tax_minor": 0,
                    "prorated": false }),
            // $50 - $10 coupon + $8 VAT on top; no recurring price in this API version.
            json!({ "external_id": "il_in_1QcMonthlyFeb_sub", "kind": "subscription",
                    "subscription": "sub_1QcMonthly01", "plan": null,
                    "starts": "2026-02-01", "ends": "2026-03-01", "quantity": 1,
                    "amount_minor": 4800, "discount_minor": 1000, "tax_minor": 800,
                    "prorated": false }),
            // An invoice item that is not a proration is one-time revenue.
            json!({ "external_id": "il_in_1QcMonthlyFeb_setup", "kind": "one_time",
                    "subscription": null, "plan": null,
                    "starts": "2026-02-01", "ends": "2026-02-01", "quantity": 1,
                    "amount_minor": 2500, "discount_minor": 0, "tax_minor": 0,
                    "prorated": false }),
        ]
    );
    let plans = app
        .rows("SELECT external_id, name, interval_unit, interval_count FROM billing_plans")
        .await;
    assert_eq!(
        plans,
        [
            json!({ "external_id": "price_1QcProAnnual", "name": "Pro annual",
                    "interval_unit": "year", "interval_count": 1 })
        ]
    );

    // $1,200 a year is $100 of MRR; $40 net a month is $40.
    assert_eq!(
        movements(&app).await,
        [
            movement("cus_RAnnual0001", "2026-01-15", "new_business", 100_000_000),
            movement("cus_RAnnual0001", "2027-01-15", "churn", -100_000_000),
            movement("cus_RMonthly001", "2026-02-01", "new_business", 40_000_000),
            movement("cus_RMonthly001", "2026-03-01", "churn", -40_000_000),
        ]
    );
    let daily = app
        .rows("SELECT day::text AS day, new_business, new_customers FROM mrr_daily WHERE new_business > 0 ORDER BY day")
        .await;
    assert_eq!(
        daily,
        [
            json!({ "day": "2026-01-15", "new_business": 100_000_000, "new_customers": 1 }),
            json!({ "day": "2026-02-01", "new_business": 40_000_000, "new_customers": 1 }),
        ]
    );
    let receipts = app
        .rows("SELECT event_id, event_type FROM stripe_webhook_events ORDER BY event_id")
        .await;
    assert_eq!(receipts.len(), 2, "{receipts:?}");
}

#[tokio::test]
async fn a_deleted_subscription_ends_with_its_paid_period() {
    let app = TestApp::spawn().await;
    let (tenant, _owner) = connected(&app, "acme").await;
    for (event_id, invoice_id, start, end) in [
        ("evt_1QcMonthlyFeb01", "in_1QcMonthlyFeb", FEB_1, MAR_1),
        ("evt_1QcMonthlyMar01", "in_1QcMonthlyMar", MAR_1, APR_1),
    ] {
        let paid = monthly_invoice_paid(event_id, invoice_id, start, end);
        let response = deliver(&app, &tenant.slug, SECRET, &paid).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    let churn_day = |movements: &[(String, String, String, i64)]| {
        movements
            .iter()
            .find(|m| m.2 == "churn")
            .map(|m| m.1.clone())
    };
    assert_eq!(
        churn_day(&movements(&app).await).as_deref(),
        Some("2026-04-01")
    );

    // Stripe ended the subscription on 10 February, in the first paid
    // period: the March line no longer counts, and the revenue ends with
    // February's period, not on the day of the deletion.
    let deleted = subscription(
        "evt_1QcSubDeleted01",
        "customer.subscription.deleted",
        FEB_10,
        json!({ "status": "canceled", "canceled_at": FEB_10, "ended_at": FEB_10 }),
    );
    let response = deliver(&app, &tenant.slug, SECRET, &deleted).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(
        movements(&app).await,
        [
            movement("cus_RMonthly001", "2026-02-01", "new_business", 40_000_000),
            movement("cus_RMonthly001", "2026-03-01", "churn", -40_000_000),
        ]
    );
    let cancellations = app
        .rows("SELECT subscription_external_id AS sub, cancelled_at FROM billing_subscription_cancellations")
        .await;
    assert_eq!(
        cancellations,
        [json!({ "sub": "sub_1QcMonthly01", "cancelled_at": "2026-02-10T00:00:00+00:00" })]
    );
    let churned = app
        .rows("SELECT churn, churned_customers FROM mrr_daily WHERE day = '2026-03-01'")
        .await;
    assert_eq!(
        churned,
        [json!({ "churn": -40_000_000, "churned_customers": 1 })]
    );
}

#[tokio::test]
async fn a_subscription_update_records_trials_and_scheduled_cancellations() {
    let app = TestApp::spawn().await;
    let (tenant, _owner) = connected(&app, "acme").await;

    // Created in trial before Stripe sent the customer: a bare customer is made.
    let created = subscription(
        "evt_1QcSubCreated01",
        "customer.subscription.created",
        JAN_15,
        json!({ "status": "trialing", "trial_start": JAN_15, "trial_end": FEB_1 }),
    );
    assert_eq!(
        deliver(&app, &tenant.slug, SECRET, &created).await.status,
        StatusCode::OK
    );
    let customer = app
        .rows("SELECT external_id, name, free_trial_started_at FROM billing_customers")
        .await;
    assert_eq!(
        customer,
        [json!({ "external_id": "cus_RMonthly001", "name": null,
                 "free_trial_started_at": "2026-01-15T00:00:00+00:00" })]
    );

    let scheduled = subscription(
        "evt_1QcSubUpdated01",
        "customer.subscription.updated",
        FEB_10,
        json!({ "cancel_at_period_end": true, "cancel_at": MAR_1, "canceled_at": FEB_10 }),
    );
    assert_eq!(
        deliver(&app, &tenant.slug, SECRET, &scheduled).await.status,
        StatusCode::OK
    );
    let cancelled = app
        .rows("SELECT cancelled_at FROM billing_subscription_cancellations")
        .await;
    assert_eq!(
        cancelled,
        [json!({ "cancelled_at": "2026-02-10T00:00:00+00:00" })]
    );

    // The customer changed their mind: the cancellation is withdrawn.
    let resumed = subscription(
        "evt_1QcSubUpdated02",
        "customer.subscription.updated",
        FEB_10 + 3600,
        json!({ "status": "active" }),
    );
    assert_eq!(
        deliver(&app, &tenant.slug, SECRET, &resumed).await.status,
        StatusCode::OK
    );
    assert_eq!(count(&app, "billing_subscription_cancellations").await, 0);
}

#[tokio::test]
async fn customer_events_upsert_the_customer() {
    let app = TestApp::spawn().await;
    let (tenant, _owner) = connected(&app, "acme").await;
    let created = deliver(&app, &tenant.slug, SECRET, &customer_created()).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);

    let mut updated = customer_created();
    updated["id"] = json!("evt_1QcCustUpdated01");
    updated["type"] = json!("customer.updated");
    updated["data"]["object"]["name"] = json!("Initech Group");
    updated["data"]["previous_attributes"] = json!({ "name": "Initech SAS" });
    let response = deliver(&app, &tenant.slug, SECRET, &updated).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);

    let customers = app
        .rows(
            "SELECT external_id, name, email, country, user_id, attributes FROM billing_customers",
        )
        .await;
    assert_eq!(
        customers,
        [json!({
            "external_id": "cus_RInitech01", "name": "Initech Group",
            "email": "billing@initech.example", "country": "FR", "user_id": "user_4242",
            "attributes": { "user_id": "user_4242", "segment": "enterprise" }
        })]
    );
}

#[tokio::test]
async fn an_event_type_not_used_is_acknowledged_and_ignored() {
    let app = TestApp::spawn().await;
    let (tenant, _owner) = connected(&app, "acme").await;
    let charge = event(
        "evt_1QcCharge0001",
        "charge.succeeded",
        JAN_15,
        json!({ "id": "ch_3QcCharge01", "object": "charge", "amount": 120000, "currency": "usd",
                "customer": "cus_RAnnual0001", "paid": true, "status": "succeeded" }),
    );
    let response = deliver(&app, &tenant.slug, SECRET, &charge).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body, json!({ "received": true, "ignored": true }));
    assert_eq!(count(&app, "stripe_webhook_events").await, 1);
    assert_eq!(count(&app, "billing_customers").await, 0);
}

#[tokio::test]
async fn a_replayed_event_changes_nothing() {
    let app = TestApp::spawn().await;
    let (tenant, _owner) = connected(&app, "acme").await;
    let paid = annual_invoice_paid();
    let first = deliver(&app, &tenant.slug, SECRET, &paid).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let before = movements(&app).await;

    // Stripe signs each retry anew; the event id is what identifies it.
    for _ in 0..2 {
        let again = deliver(&app, &tenant.slug, SECRET, &paid).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);
        assert_eq!(again.body, json!({ "received": true, "duplicate": true }));
    }
    assert_eq!(count(&app, "billing_invoices").await, 1);
    assert_eq!(count(&app, "billing_line_items").await, 1);
    assert_eq!(count(&app, "stripe_webhook_events").await, 1);
    assert_eq!(movements(&app).await, before);
    let daily = app
        .rows("SELECT new_business FROM mrr_daily WHERE day = '2026-01-15'")
        .await;
    assert_eq!(daily, [json!({ "new_business": 100_000_000 })]);
}

#[tokio::test]
async fn unsigned_forged_stale_or_misaddressed_webhooks_are_refused() {
    let app = TestApp::spawn().await;
    let (tenant, _owner) = connected(&app, "acme").await;
    let body = serde_json::to_vec(&annual_invoice_paid()).expect("json");
    let now = Utc::now().timestamp();
    let wrong_secret = post_raw(
        &app,
        &tenant.slug,
        body.clone(),
        Some(stripe_signature(OTHER_SECRET, now, &body)),
    )
    .await;
    let cases = [
        (
            "no header",
            post_raw(&app, &tenant.slug, body.clone(), None).await,
        ),
        (
            "malformed header",
            post_raw(&app, &tenant.slug, body.clone(), Some("sha256=abc".into())).await,
        ),
        (
            "tampered body",
            post_raw(
                &app,
                &tenant.slug,
                body.iter()
                    .map(|b| if *b == b'2' { b'9' } else { *b })
                    .collect(),
                Some(stripe_signature(SECRET, now, &body)),
            )
            .await,
        ),
        (
            "stale timestamp",
            post_raw(
                &app,
                &tenant.slug,
                body.clone(),
                Some(stripe_signature(SECRET, now - 301, &body)),
            )
            .await,
        ),
        (
            // Not `now + 301`: each request before this one moves the
            // server's clock on, and at `now + 1` that is within tolerance.
            "timestamp in the future",
            post_raw(
                &app,
                &tenant.slug,
                body.clone(),
                Some(stripe_signature(SECRET, now + 360, &body)),
            )
            .await,
        ),
        (
            "unknown slug",
            post_raw(
                &app,
                "no-such-tenant",
                body.clone(),
                Some(stripe_signature(SECRET, now, &body)),
            )
            .await,
        ),
        ("wrong secret", wrong_secret),
    ];
    for (case, response) in &cases {
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            response.text
        );
        assert_eq!(response.code(), "invalid_signature", "{case}");
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json"),
            "{case}"
        );
    }
    // An unknown tenant is indistinguishable from a wrong signature.
    let answer = |case: &str| {
        cases
            .iter()
            .find(|(name, _)| *name == case)
            .map(|(_, response)| response.body.clone())
    };
    assert_eq!(answer("unknown slug"), answer("wrong secret"));
    assert_eq!(answer("tampered body"), answer("wrong secret"));
    assert_eq!(count(&app, "stripe_webhook_events").await, 0);
    assert_eq!(count(&app, "billing_customers").await, 0);
    assert_eq!(count(&app, "billing_invoices").await, 0);
}

#[tokio::test]
async fn a_tenants_secret_does_not_open_another_tenants_webhook() {
    let app = TestApp::spawn().await;
    let (_acme, _acme_owner) = connected(&app, "acme").await;
    let globex = app.tenant("globex").await;
    let globex_owner = app.owner(&globex).await;

    // Globex has no secret yet, then a secret of its own: acme's never works.
    let refused = deliver(&app, "globex", SECRET, &customer_created()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.code(), "invalid_signature");
    assert_eq!(
        add_secret(&globex_owner, &globex, OTHER_SECRET)
            .await
            .status,
        StatusCode::CREATED
    );
    let refused = deliver(&app, "globex", SECRET, &customer_created()).await;
    assert_eq!(refused.code(), "invalid_signature");
    assert_eq!(count(&app, "billing_customers").await, 0);

    let accepted = deliver(&app, "globex", OTHER_SECRET, &customer_created()).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    let owners = app
        .rows("SELECT t.slug FROM billing_customers c JOIN tenants t ON t.id = c.tenant_id")
        .await;
    assert_eq!(owners, [json!({ "slug": "globex" })]);
}

#[tokio::test]
async fn secrets_rotate_and_a_revoked_one_stops_working() {
    let app = TestApp::spawn().await;
    let (tenant, owner) = connected(&app, "acme").await;
    let path = "/api/v1/tenants/acme/billing/stripe/secrets";
    let rolled = add_secret(&owner, &tenant, OTHER_SECRET).await;
    assert_eq!(rolled.status, StatusCode::CREATED, "{}", rolled.text);

    // During the roll Stripe may sign with either secret, or with both.
    let mut both = customer_created();
    let body = serde_json::to_vec(&both).expect("json");
    let now = Utc::now().timestamp();
    let old_header = stripe_signature(SECRET, now, &body);
    let new_header = stripe_signature(OTHER_SECRET, now, &body);
    let new_v1 = new_header.split_once(",v1=").expect("v1").1;
    let response = post_raw(
        &app,
        "acme",
        body,
        Some(format!("{old_header},v1={new_v1}")),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    both["id"] = json!("evt_1QcCustSecond");
    assert_eq!(
        deliver(&app, "acme", OTHER_SECRET, &both).await.status,
        StatusCode::OK
    );

    let list = owner.get(path).await;
    assert_eq!(list.status, StatusCode::OK);
    let old_id = list.body["secrets"][1]["id"]
        .as_str()
        .expect("old id")
        .to_owned();
    let revoked = owner.delete(&format!("{path}/{old_id}")).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert!(revoked.body["revoked_at"].is_string());

    both["id"] = json!("evt_1QcCustThird");
    let refused = deliver(&app, "acme", SECRET, &both).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.code(), "invalid_signature");
    assert_eq!(
        deliver(&app, "acme", OTHER_SECRET, &both).await.status,
        StatusCode::OK
    );
    let missing = owner
        .delete(&format!("{path}/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let actions = owner
        .get("/api/v1/tenants/acme/audit-log")
        .await
        .pluck("entries", "action");
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.starts_with("stripe_secret."))
            .count(),
        3,
        "{actions:?}"
    );
}

#[tokio::test]
async fn secrets_are_never_shown_and_only_admins_manage_them() {
    let app = TestApp::spawn().await;
    let (tenant, owner) = connected(&app, "acme").await;
    let path = "/api/v1/tenants/acme/billing/stripe/secrets";

    let list = owner.get(path).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(!list.text.contains(SECRET), "{}", list.text);
    let listed = &list.body["secrets"][0];
    assert_eq!(listed["hint"], "whsec_4eC3…");
    assert!(listed["revoked_at"].is_null());
    assert_eq!(
        listed.as_object().map(|o| {
            let mut keys: Vec<_> = o.keys().cloned().collect();
            keys.sort();
            keys
        }),
        Some(vec![
            "created_at".to_owned(),
            "hint".to_owned(),
            "id".to_owned(),
            "revoked_at".to_owned()
        ])
    );
    let added = add_secret(&owner, &tenant, OTHER_SECRET).await;
    assert!(!added.text.contains(OTHER_SECRET), "{}", added.text);
    let audit = owner.get("/api/v1/tenants/acme/audit-log").await;
    assert!(!audit.text.contains(SECRET) && !audit.text.contains(OTHER_SECRET));

    let not_whsec = add_secret(&owner, &tenant, "sk_live_51Hx").await;
    assert_eq!(not_whsec.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(not_whsec.body["errors"][0]["field"], "secret");

    let viewer = app.member(&tenant, Role::Viewer).await;
    let refused = add_secret(&viewer, &tenant, "whsec_fromaviewer1234").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "forbidden");
    assert_eq!(viewer.get(path).await.status, StatusCode::FORBIDDEN);
    let editor_key = app.secret_key(&tenant, Role::Editor).await;
    assert_eq!(
        add_secret(&editor_key, &tenant, "whsec_fromaneditor123")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(count(&app, "stripe_webhook_secrets").await, 2);
}

#[tokio::test]
async fn an_unreadable_event_names_the_field_and_is_not_recorded() {
    let app = TestApp::spawn().await;
    let (tenant, _owner) = connected(&app, "acme").await;
    let now = Utc::now().timestamp();

    let body = b"{\"id\": \"evt_1\", ".to_vec();
    let malformed = post_raw(
        &app,
        &tenant.slug,
        body.clone(),
        Some(stripe_signature(SECRET, now, &body)),
    )
    .await;
    assert_eq!(
        malformed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        malformed.text
    );
    assert_eq!(malformed.code(), "malformed_json");

    let mut paid = annual_invoice_paid();
    paid["data"]["object"]
        .as_object_mut()
        .expect("invoice")
        .remove("customer");
    let missing = deliver(&app, &tenant.slug, SECRET, &paid).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.text);
    assert_eq!(missing.body["errors"][0]["field"], "data.object.customer");

    let mut no_object = customer_created();
    no_object["data"] = json!({});
    let missing = deliver(&app, &tenant.slug, SECRET, &no_object).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.text);
    assert_eq!(missing.body["errors"][0]["field"], "data.object");

    // Nothing was recorded, so the corrected event is applied.
    assert_eq!(count(&app, "stripe_webhook_events").await, 0);
    let fixed = deliver(&app, &tenant.slug, SECRET, &annual_invoice_paid()).await;
    assert_eq!(fixed.status, StatusCode::OK, "{}", fixed.text);
    assert_eq!(count(&app, "billing_invoices").await, 1);
}

#[tokio::test]
async fn a_suspended_tenant_and_an_oversized_body_are_refused() {
    let app = TestApp::spawn().await;
    let (tenant, _owner) = connected(&app, "acme").await;
    let huge = vec![b' '; 1024 * 1024 + 1];
    let now = Utc::now().timestamp();
    let too_large = post_raw(
        &app,
        &tenant.slug,
        huge.clone(),
        Some(stripe_signature(SECRET, now, &huge)),
    )
    .await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.code(), "payload_too_large");

    // Larger than the API's default body limit, within the webhook's.
    let mut padded = customer_created();
    padded["data"]["object"]["metadata"]["notes"] = json!("x".repeat(200 * 1024));
    let accepted = deliver(&app, &tenant.slug, SECRET, &padded).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);

    let root = app.superadmin().await;
    let suspended = root
        .post("/api/v1/admin/tenants/acme/suspend", json!({}))
        .await;
    assert_eq!(suspended.status, StatusCode::OK, "{}", suspended.text);
    let mut later = customer_created();
    later["id"] = json!("evt_1QcAfterSuspension");
    let refused = deliver(&app, &tenant.slug, SECRET, &later).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.code(), "tenant_suspended");
    assert_eq!(count(&app, "stripe_webhook_events").await, 1);
}
