//! The billing REST API: customers, plans, invoices, subscription
//! cancellations and exchange rates, one at a time as JSON or in bulk as
//! CSV (`docs/billing.md` documents every field and answer).
//!
//! The CSV import is in [`csv_import`].
//!
//! Each write validates the whole request first (every problem in one 422
//! naming its field), stores through `northstar_db::billing`, recomputes the
//! revenue of the customers it touched in the same transaction (so the MRR
//! rollups never lag the data), records an audit entry and commits. Writes
//! need the admin role; reads any member.

use std::collections::{BTreeSet, HashMap};

use axum::{
    Json,
    body::Body,
    extract::{FromRequestParts, Request, State},
    http::header,
};
use chrono::{DateTime, Months, NaiveDate, Utc};
use csv_core::{ReadRecordResult, Reader};
use futures_util::StreamExt;
use northstar_db::{
    TenantTx, audit,
    billing::{
        BillingError,
        customers::{self, Customer, CustomerInput},
        exchange_rates::{self, ExchangeRate},
        invoices::{self, Invoice, InvoiceInput, LineInput, LineKind},
        plans::{self, Plan, PlanInput},
        rollup,
    },
    memberships::Role,
    tenants,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    error::{ApiError, FieldError, Problem},
    extract_json::{ApiJson, ApiQuery},
    tenant_scope::TenantScope,
    tenants::is_currency_code,
};
use crate::state::AppState;

pub mod csv_import;

/// Longest external id (customer, plan, invoice, line, subscription), in characters.
pub const MAX_EXTERNAL_ID_CHARS: usize = 255;
/// Longest plan name, in characters.
pub const MAX_PLAN_NAME_CHARS: usize = 255;
/// Largest amount of a line, in minor units either way (a billion dollars);
/// it keeps every MRR sum far from 64-bit overflow.
pub const MAX_AMOUNT_IN_CENTS: i64 = 100_000_000_000;
/// Most line items of one invoice.
pub const MAX_LINE_ITEMS: usize = 500;
/// Largest plan `interval_count`.
pub const MAX_INTERVAL_COUNT: i32 = 1000;
/// Longest service period of a subscription line, in calendar months (5 years).
pub const MAX_SERVICE_PERIOD_MONTHS: u32 = 60;
/// Most exchange rates in one `PUT`.
pub const MAX_RATES_PER_REQUEST: usize = 10_000;
/// Largest CSV import body, in bytes (10 MiB).
pub const MAX_CSV_BYTES: usize = 10 * 1024 * 1024;
/// Rejected rows listed in an import report; the rest are counted.
pub const MAX_REPORTED_REJECTIONS: usize = 1000;
/// Customers per page of `GET …/billing/customers`, by default and at most.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 500;

// ---------------------------------------------------------------------------
// Validation, shared by the JSON endpoints and the CSV import.

fn check_external_id(value: &str, field: &str, errors: &mut Vec<FieldError>) {
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_EXTERNAL_ID_CHARS {
        errors.push(FieldError::new(field, "must be 1 to 255 characters long"));
    }
}

fn check_optional_external_id(value: Option<&str>, field: &str, errors: &mut Vec<FieldError>) {
    if let Some(value) = value {
        check_external_id(value, field, errors);
    }
}

fn check_currency(value: &str, field: &str, errors: &mut Vec<FieldError>) {
    if !is_currency_code(value) {
        errors.push(FieldError::new(
            field,
            "must be an ISO 4217 code in upper case, such as EUR",
        ));
    }
}

fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Every problem of a customer.
pub fn check_customer(input: &CustomerInput) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_external_id(&input.external_id, "external_id", &mut errors);
    if input
        .country
        .as_deref()
        .is_some_and(|c| !is_country_code(c))
    {
        errors.push(FieldError::new(
            "country",
            "must be an ISO 3166-1 alpha-2 code in upper case, such as FR",
        ));
    }
    errors
}

/// Every problem of a plan.
pub fn check_plan(input: &PlanInput) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_external_id(&input.external_id, "external_id", &mut errors);
    if input.name.trim().is_empty() || input.name.chars().count() > MAX_PLAN_NAME_CHARS {
        errors.push(FieldError::new("name", "must be 1 to 255 characters long"));
    }
    if !matches!(
        input.interval_unit.as_str(),
        "day" | "week" | "month" | "year"
    ) {
        errors.push(FieldError::new(
            "interval_unit",
            "must be day, week, month or year",
        ));
    }
    if !(1..=MAX_INTERVAL_COUNT).contains(&input.interval_count) {
        errors.push(FieldError::new(
            "interval_count",
            "must be between 1 and 1000",
        ));
    }
    errors
}

/// Every problem of an invoice, its lines named `line_items[i].<field>`.
pub fn check_invoice(input: &InvoiceInput) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_external_id(&input.external_id, "external_id", &mut errors);
    check_external_id(
        &input.customer_external_id,
        "customer_external_id",
        &mut errors,
    );
    check_currency(&input.currency, "currency", &mut errors);
    if input.line_items.is_empty() || input.line_items.len() > MAX_LINE_ITEMS {
        errors.push(FieldError::new(
            "line_items",
            "must hold 1 to 500 line items",
        ));
    }
    for (i, line) in input.line_items.iter().enumerate() {
        check_line(line, &format!("line_items[{i}]."), &mut errors);
    }
    errors
}

/// The problems of one line item; `prefix` goes before each field name.
fn check_line(line: &LineInput, prefix: &str, errors: &mut Vec<FieldError>) {
    let at = |field: &str| format!("{prefix}{field}");
    check_optional_external_id(line.external_id.as_deref(), &at("external_id"), errors);
    check_optional_external_id(
        line.subscription_external_id.as_deref(),
        &at("subscription_external_id"),
        errors,
    );
    check_optional_external_id(
        line.plan_external_id.as_deref(),
        &at("plan_external_id"),
        errors,
    );
    if line.kind == LineKind::Subscription {
        let required = "is required for subscription lines";
        if line.subscription_external_id.is_none() {
            errors.push(FieldError::new(at("subscription_external_id"), required));
        }
        if line.service_period_start.is_none() {
            errors.push(FieldError::new(at("service_period_start"), required));
        }
        match (line.service_period_start, line.service_period_end) {
            (_, None) => errors.push(FieldError::new(at("service_period_end"), required)),
            (Some(start), Some(end)) if end <= start => errors.push(FieldError::new(
                at("service_period_end"),
                "must be after service_period_start",
            )),
            (Some(start), Some(end))
                if start
                    .checked_add_months(Months::new(MAX_SERVICE_PERIOD_MONTHS))
                    .is_none_or(|limit| end > limit) =>
            {
                errors.push(FieldError::new(
                    at("service_period_end"),
                    "the service period is at most 5 years",
                ));
            }
            _ => {}
        }
    }
    if line.quantity < 0 {
        errors.push(FieldError::new(at("quantity"), "must be 0 or more"));
    }
    for (field, amount, least) in [
        (
            "amount_in_cents",
            line.amount_in_cents,
            -MAX_AMOUNT_IN_CENTS,
        ),
        ("discount_amount_in_cents", line.discount_amount_in_cents, 0),
        ("tax_amount_in_cents", line.tax_amount_in_cents, 0),
    ] {
        if !(least..=MAX_AMOUNT_IN_CENTS).contains(&amount) {
            errors.push(FieldError::new(
                at(field),
                format!("must be between {least} and {MAX_AMOUNT_IN_CENTS}"),
            ));
        }
    }
    if line.amount_in_cents > 0 && line.tax_amount_in_cents > line.amount_in_cents {
        errors.push(FieldError::new(
            at("tax_amount_in_cents"),
            "must not exceed amount_in_cents, which includes the tax",
        ));
    }
}

/// Every problem of a list of exchange rates into `reporting_currency`.
fn check_rates(rates: &[ExchangeRate], reporting_currency: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if rates.len() > MAX_RATES_PER_REQUEST {
        errors.push(FieldError::new(
            "rates",
            format!(
                "holds {} rates; send at most 10000 per request",
                rates.len()
            ),
        ));
        return errors;
    }
    let mut seen: HashMap<(&str, NaiveDate), usize> = HashMap::new();
    for (i, rate) in rates.iter().enumerate() {
        if !is_currency_code(&rate.currency) {
            errors.push(FieldError::new(
                format!("rates[{i}].currency"),
                "must be an ISO 4217 code in upper case, such as EUR",
            ));
        } else if rate.currency == reporting_currency {
            errors.push(FieldError::new(
                format!("rates[{i}].currency"),
                format!("is the reporting currency ({reporting_currency}), whose rate is always 1"),
            ));
        }
        if !(rate.rate.is_finite() && rate.rate > 0.0) {
            errors.push(FieldError::new(
                format!("rates[{i}].rate"),
                "must be a number greater than 0",
            ));
        }
        // One statement stores them all; it cannot write a row twice.
        if let Some(first) = seen.insert((rate.currency.as_str(), rate.day), i) {
            errors.push(FieldError::new(
                format!("rates[{i}].day"),
                format!("repeats the currency and day of rates[{first}]"),
            ));
        }
    }
    errors
}

fn invalid_if_any(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

// ---------------------------------------------------------------------------
// Customers

/// A page of customers.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerQuery {
    /// Only customers whose external id sorts after this one (the
    /// `next_after` of the previous page).
    pub after: Option<String>,
    /// Customers per page, 1 to 500 (default 100).
    pub limit: Option<i64>,
}

/// Customers by external id (byte order).
#[derive(Serialize, ToSchema)]
pub struct CustomerPage {
    /// The customers.
    pub customers: Vec<Customer>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// Lists the tenant's billing customers (any member).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/billing/customers", tag = "billing",
    params(("slug" = String, Path, description = "Tenant slug"), CustomerQuery),
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, body = CustomerPage),
        (status = 404, body = Problem), (status = 422, body = Problem),
    )
)]
pub async fn list_customers(
    mut scope: TenantScope,
    ApiQuery(query): ApiQuery<CustomerQuery>,
) -> Result<Json<CustomerPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    let after = query.after.as_deref().filter(|a| !a.is_empty());
    let customers = customers::list(&mut scope.tx, after, limit).await?;
    let next_after = if customers.len() as i64 == limit {
        customers.last().map(|c| c.external_id.clone())
    } else {
        None
    };
    Ok(Json(CustomerPage {
        customers,
        next_after,
    }))
}

/// Creates or replaces a billing customer (owners and admins).
#[utoipa::path(
    post, path = "/api/v1/tenants/{slug}/billing/customers", tag = "billing",
    description = "Idempotent by `external_id`: sending a customer again replaces it (fields \
                   left out are cleared, except `lead_created_at` and `free_trial_started_at`, \
                   which are kept when absent).",
    params(("slug" = String, Path, description = "Tenant slug")),
    request_body = CustomerInput,
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, description = "The stored customer", body = Customer),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    )
)]
pub async fn upsert_customer(
    mut scope: TenantScope,
    ApiJson(input): ApiJson<CustomerInput>,
) -> Result<Json<Customer>, ApiError> {
    scope.require(Role::Admin)?;
    invalid_if_any(check_customer(&input))?;
    let customer = customers::upsert(&mut scope.tx, &input).await?;
    rollup::recount_trials(&mut scope.tx, &[customer.id]).await?;
    audit::record(
        &mut scope.tx,
        &scope.actor,
        "billing.customer.upserted",
        Some(&customer.external_id),
        json!({ "id": customer.id }),
    )
    .await?;
    scope.tx.commit().await?;
    Ok(Json(customer))
}

// ---------------------------------------------------------------------------
// Plans

/// Every plan.
#[derive(Serialize, ToSchema)]
pub struct PlanList {
    /// By external id.
    pub plans: Vec<Plan>,
}

/// Lists the tenant's billing plans (any member).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/billing/plans", tag = "billing",
    params(("slug" = String, Path, description = "Tenant slug")),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = PlanList), (status = 404, body = Problem))
)]
pub async fn list_plans(mut scope: TenantScope) -> Result<Json<PlanList>, ApiError> {
    let plans = plans::list(&mut scope.tx).await?;
    Ok(Json(PlanList { plans }))
}

/// Creates or replaces a billing plan (owners and admins).
#[utoipa::path(
    post, path = "/api/v1/tenants/{slug}/billing/plans", tag = "billing",
    description = "Idempotent by `external_id`. A plan's interval decides the MRR of the lines \
                   billing it, so the revenue of every customer on the plan is recomputed.",
    params(("slug" = String, Path, description = "Tenant slug")),
    request_body = PlanInput,
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, description = "The stored plan", body = Plan),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    )
)]
pub async fn upsert_plan(
    mut scope: TenantScope,
    ApiJson(input): ApiJson<PlanInput>,
) -> Result<Json<Plan>, ApiError> {
    scope.require(Role::Admin)?;
    invalid_if_any(check_plan(&input))?;
    let plan = plans::upsert(&mut scope.tx, &input).await?;
    let on_plan = invoices::customers_on_plan(&mut scope.tx, plan.id).await?;
    rollup::recompute_customers(&mut scope.tx, &on_plan).await?;
    audit::record(
        &mut scope.tx,
        &scope.actor,
        "billing.plan.upserted",
        Some(&plan.external_id),
        json!({ "interval_unit": plan.interval_unit, "interval_count": plan.interval_count }),
    )
    .await?;
    scope.tx.commit().await?;
    Ok(Json(plan))
}

// ---------------------------------------------------------------------------
// Invoices and cancellations

/// Creates or replaces an invoice with its line items (owners and admins).
#[utoipa::path(
    post, path = "/api/v1/tenants/{slug}/billing/invoices", tag = "billing",
    description = "Idempotent by `external_id`: sending an invoice again replaces it and all its \
                   lines. Amounts are in minor units of `currency` (cents; yen for JPY); \
                   `amount_in_cents` is what was charged for the line, after discount and with \
                   tax included. The customer, and any plan named, must exist. The revenue of \
                   the customer (and of the one billed before, if the invoice moved) is \
                   recomputed before the answer.",
    params(("slug" = String, Path, description = "Tenant slug")),
    request_body = InvoiceInput,
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, description = "The stored invoice", body = Invoice),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, description = "Invalid fields, or an unknown customer or plan", body = Problem),
    )
)]
pub async fn upsert_invoice(
    mut scope: TenantScope,
    ApiJson(input): ApiJson<InvoiceInput>,
) -> Result<Json<Invoice>, ApiError> {
    scope.require(Role::Admin)?;
    invalid_if_any(check_invoice(&input))?;
    let stored = invoices::upsert(&mut scope.tx, &input, "api").await?;
    rollup::recompute_customers(&mut scope.tx, &stored.customers).await?;
    let invoice = invoices::find(&mut scope.tx, &input.external_id)
        .await?
        .ok_or_else(|| ApiError::Internal("the invoice just stored is not found".into()))?;
    audit::record(
        &mut scope.tx,
        &scope.actor,
        "billing.invoice.upserted",
        Some(&invoice.external_id),
        json!({
            "customer_external_id": invoice.customer_external_id,
            "currency": invoice.currency,
            "line_items": invoice.line_items.len(),
        }),
    )
    .await?;
    scope.tx.commit().await?;
    Ok(Json(invoice))
}

/// A subscription to cancel, or to un-cancel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelSubscription {
    /// The customer, by external id.
    pub customer_external_id: String,
    /// The subscription, as the line items name it.
    pub subscription_external_id: String,
    /// When it was cancelled: its revenue ends with the paid service period
    /// containing this instant. `null` withdraws the cancellation. Required.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>, required = true)]
    pub cancelled_at: Option<Option<DateTime<Utc>>>,
}

/// `Some` of whatever the field holds, `null` included: tells a field sent
/// as `null` from a field left out (which `default` makes `None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A subscription's cancellation as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionCancellation {
    /// The customer, by external id.
    pub customer_external_id: String,
    /// The subscription.
    pub subscription_external_id: String,
    /// When it was cancelled; `null` when it is not (any more).
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// Cancels a subscription, or withdraws its cancellation (owners and admins).
#[utoipa::path(
    post, path = "/api/v1/tenants/{slug}/billing/subscriptions/cancel", tag = "billing",
    description = "Sets when the customer's subscription was cancelled: its revenue ends with the \
                   paid service period containing `cancelled_at`, and its lines starting later \
                   are ignored. Sending it again moves the date; `cancelled_at: null` withdraws \
                   the cancellation. The customer's revenue is recomputed.",
    params(("slug" = String, Path, description = "Tenant slug")),
    request_body = CancelSubscription,
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, body = SubscriptionCancellation),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, description = "Invalid fields, or an unknown customer", body = Problem),
    )
)]
pub async fn cancel_subscription(
    mut scope: TenantScope,
    ApiJson(request): ApiJson<CancelSubscription>,
) -> Result<Json<SubscriptionCancellation>, ApiError> {
    scope.require(Role::Admin)?;
    let mut errors = Vec::new();
    check_external_id(
        &request.customer_external_id,
        "customer_external_id",
        &mut errors,
    );
    check_external_id(
        &request.subscription_external_id,
        "subscription_external_id",
        &mut errors,
    );
    if request.cancelled_at.is_none() {
        errors.push(FieldError::new(
            "cancelled_at",
            "is required: a time, or null to withdraw the cancellation",
        ));
    }
    invalid_if_any(errors)?;
    let cancelled_at = request.cancelled_at.flatten();
    let customer = invoices::cancel_subscription(
        &mut scope.tx,
        &request.customer_external_id,
        &request.subscription_external_id,
        cancelled_at,
    )
    .await?;
    rollup::recompute_customers(&mut scope.tx, &[customer]).await?;
    audit::record(
        &mut scope.tx,
        &scope.actor,
        if cancelled_at.is_some() {
            "billing.subscription.cancelled"
        } else {
            "billing.subscription.uncancelled"
        },
        Some(&request.subscription_external_id),
        json!({
            "customer_external_id": request.customer_external_id,
            "cancelled_at": cancelled_at,
        }),
    )
    .await?;
    scope.tx.commit().await?;
    Ok(Json(SubscriptionCancellation {
        customer_external_id: request.customer_external_id,
        subscription_external_id: request.subscription_external_id,
        cancelled_at,
    }))
}

// ---------------------------------------------------------------------------
// Exchange rates

/// Which rates to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RatesQuery {
    /// Only this currency (ISO 4217, upper case); every currency when absent.
    pub currency: Option<String>,
}

/// The tenant's exchange rates.
#[derive(Serialize, ToSchema)]
pub struct ExchangeRates {
    /// The currency rates convert into (the tenant's setting).
    pub reporting_currency: String,
    /// The rates quoted in `reporting_currency`, by currency, then day.
    pub rates: Vec<ExchangeRate>,
    /// Invoice currencies without any rate: their lines count for no
    /// revenue until one is loaded.
    pub missing_currencies: Vec<String>,
}

/// Rates to store.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutExchangeRates {
    /// At most 10,000, quoted in the tenant's current reporting currency; a
    /// rate of the same currency and day replaces the stored one, and rates
    /// not sent are kept.
    pub rates: Vec<ExchangeRate>,
}

/// Lists exchange rates into the reporting currency (any member).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/billing/exchange-rates", tag = "billing",
    params(("slug" = String, Path, description = "Tenant slug"), RatesQuery),
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, body = ExchangeRates),
        (status = 404, body = Problem), (status = 422, body = Problem),
    )
)]
pub async fn list_exchange_rates(
    mut scope: TenantScope,
    ApiQuery(query): ApiQuery<RatesQuery>,
) -> Result<Json<ExchangeRates>, ApiError> {
    let currency = query.currency.as_deref().filter(|c| !c.is_empty());
    if let Some(currency) = currency {
        let mut errors = Vec::new();
        check_currency(currency, "currency", &mut errors);
        invalid_if_any(errors)?;
    }
    Ok(Json(exchange_rates_of(&mut scope.tx, currency).await?))
}

async fn exchange_rates_of(
    tx: &mut TenantTx,
    currency: Option<&str>,
) -> Result<ExchangeRates, ApiError> {
    let reporting_currency = tenants::current(tx).await?.reporting_currency;
    Ok(ExchangeRates {
        reporting_currency,
        rates: exchange_rates::list(tx, currency).await?,
        missing_currencies: exchange_rates::missing_currencies(tx).await?,
    })
}

/// Stores exchange rates into the reporting currency (owners and admins).
#[utoipa::path(
    put, path = "/api/v1/tenants/{slug}/billing/exchange-rates", tag = "billing",
    description = "Each rate is the number of units of the reporting currency one unit of \
                   `currency` is worth from `day` on. A rate of the same currency and day is \
                   replaced; rates not sent are kept. Rates are stored as quoted in the current \
                   reporting currency: after it changes, load them again. A line is converted at \
                   the latest rate on or before its service period's start (or the earliest \
                   loaded, if none is that early), so the whole tenant's revenue is recomputed \
                   before the answer.",
    params(("slug" = String, Path, description = "Tenant slug")),
    request_body = PutExchangeRates,
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, description = "Every rate of the tenant, after the change", body = ExchangeRates),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    )
)]
pub async fn put_exchange_rates(
    mut scope: TenantScope,
    ApiJson(request): ApiJson<PutExchangeRates>,
) -> Result<Json<ExchangeRates>, ApiError> {
    scope.require(Role::Admin)?;
    let reporting_currency = tenants::current(&mut scope.tx).await?.reporting_currency;
    invalid_if_any(check_rates(&request.rates, &reporting_currency))?;
    if !request.rates.is_empty() {
        exchange_rates::put(&mut scope.tx, &request.rates).await?;
        rollup::rebuild(&mut scope.tx).await?;
        let currencies: BTreeSet<&str> =
            request.rates.iter().map(|r| r.currency.as_str()).collect();
        audit::record(
            &mut scope.tx,
            &scope.actor,
            "billing.exchange_rates.put",
            None,
            json!({ "rates": request.rates.len(), "currencies": currencies }),
        )
        .await?;
    }
    let rates = exchange_rates_of(&mut scope.tx, None).await?;
    scope.tx.commit().await?;
    Ok(Json(rates))
}
