//! Stripe billing webhooks: one endpoint per tenant
//! (`POST /api/v1/webhooks/stripe/{slug}`), and the signing secrets that
//! authenticate it, managed by the tenant's owners and admins.
//!
//! The webhook has no session and no API key: Stripe's signature is its
//! authentication (<https://docs.stripe.com/webhooks#verify-manually>). The
//! `Stripe-Signature` header carries `t=<unix seconds>` and one or more
//! `v1=<hex HMAC-SHA256>` of `"{t}.{raw body}"` keyed with the endpoint's
//! whole `whsec_…` string; any live secret of the tenant and any `v1` may
//! match, and `t` must be within [`SIGNATURE_TOLERANCE_SECS`] of now. Every
//! refusal is the same 400 `invalid_signature` whether or not the tenant
//! exists, so the endpoint does not reveal which slugs do.
//!
//! A verified event is applied in one tenant transaction that also records
//! its id: a retry or replay of an id already recorded answers 200 and
//! changes nothing. Customers, subscriptions and paid invoices become the
//! billing data of [`northstar_db::billing`] (see `docs/billing-stripe.md`
//! for the mapping), and the revenue rollups of the affected customers are
//! recomputed before the commit.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use northstar_db::{
    TenantTx, audit,
    billing::{
        customers::{self, CustomerInput},
        invoices::{self, InvoiceInput, LineInput, LineKind},
        plans::{self, PlanInput},
        rollup,
        stripe_secrets::{self, SigningSecret, StripeSecret},
    },
    memberships::Role,
    tenants::{self, TenantStatus},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json, value::RawValue};
use sha2::Sha256;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    error::{ApiError, FieldError, Problem},
    extract_json::{ApiJson, ApiPath, parse_json},
    ingest_request::read_body,
    tenant_scope::TenantScope,
};
use crate::state::AppState;

/// Largest webhook body accepted: 1 MiB (Stripe's events are far smaller).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// How far the signed timestamp may be from now, either way: 300 seconds,
/// the default of Stripe's own libraries.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

// ---------------------------------------------------------------------------
// Signing secrets
// ---------------------------------------------------------------------------

/// The tenant's signing secrets, newest first, revoked ones included.
#[derive(Serialize, ToSchema)]
pub struct StripeSecretList {
    /// The secrets, as hints only: a secret is never returned.
    pub secrets: Vec<StripeSecret>,
}

/// A signing secret to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddStripeSecretRequest {
    /// The endpoint's signing secret as Stripe shows it (`whsec_…`).
    pub secret: String,
}

/// Lists the tenant's Stripe webhook signing secrets (owners and admins).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/billing/stripe/secrets", tag = "billing",
    params(("slug" = String, Path, description = "Tenant slug")),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = StripeSecretList), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn list_secrets(mut scope: TenantScope) -> Result<Json<StripeSecretList>, ApiError> {
    scope.require(Role::Admin)?;
    let secrets = stripe_secrets::list(&mut scope.tx).await?;
    Ok(Json(StripeSecretList { secrets }))
}

/// Adds a Stripe webhook signing secret (owners and admins). While rolling
/// the endpoint's secret in Stripe, add the new one before revoking the old.
#[utoipa::path(
    post, path = "/api/v1/tenants/{slug}/billing/stripe/secrets", tag = "billing",
    params(("slug" = String, Path, description = "Tenant slug")),
    request_body = AddStripeSecretRequest,
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 201, body = StripeSecret),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    )
)]
pub async fn add_secret(
    mut scope: TenantScope,
    ApiJson(request): ApiJson<AddStripeSecretRequest>,
) -> Result<(StatusCode, Json<StripeSecret>), ApiError> {
    scope.require(Role::Admin)?;
    let secret = request.secret.trim();
    let well_formed = secret.len() > "whsec_".len()
        && secret.len() <= 256
        && secret.bytes().all(|b| b.is_ascii_graphic());
    if !secret.starts_with("whsec_") {
        return Err(ApiError::field(
            "secret",
            "must be the endpoint's signing secret, which starts with whsec_",
        ));
    }
    if !well_formed {
        return Err(ApiError::field(
            "secret",
            "must be whsec_ followed by the secret, without spaces (at most 256 characters)",
        ));
    }
    let added = stripe_secrets::add(&mut scope.tx, secret).await?;
    audit::record(
        &mut scope.tx,
        &scope.actor,
        "stripe_secret.added",
        Some(&added.id.to_string()),
        json!({ "hint": added.hint }),
    )
    .await?;
    scope.tx.commit().await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// Revokes a signing secret; webhooks signed with it are refused at once.
/// Revoking twice is harmless.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{slug}/billing/stripe/secrets/{secret_id}", tag = "billing",
    params(("slug" = String, Path, description = "Tenant slug"), ("secret_id" = Uuid, Path)),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = StripeSecret), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn revoke_secret(
    mut scope: TenantScope,
    ApiPath((_slug, secret_id)): ApiPath<(String, Uuid)>,
) -> Result<Json<StripeSecret>, ApiError> {
    scope.require(Role::Admin)?;
    let secret = stripe_secrets::revoke(&mut scope.tx, secret_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit::record(
        &mut scope.tx,
        &scope.actor,
        "stripe_secret.revoked",
        Some(&secret.id.to_string()),
        json!({ "hint": secret.hint }),
    )
    .await?;
    scope.tx.commit().await?;
    Ok(Json(secret))
}

// ---------------------------------------------------------------------------
// The webhook
// ---------------------------------------------------------------------------

/// The answer to a verified event.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookReceipt {
    /// Always true: Stripe may stop retrying.
    pub received: bool,
    /// The event id was already processed; nothing changed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// The event type is not one Northstar uses; it was only recorded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
}

impl WebhookReceipt {
    fn applied() -> Self {
        WebhookReceipt {
            received: true,
            duplicate: false,
            ignored: false,
        }
    }
}

/// Receive a Stripe event for the tenant `slug`.
#[utoipa::path(
    post, path = "/api/v1/webhooks/stripe/{slug}", tag = "billing",
    description = "The endpoint to configure in Stripe, one per tenant. Authenticated by the \
                   `Stripe-Signature` header alone (`t=<unix seconds>,v1=<hex HMAC-SHA256>`, \
                   made with a live signing secret of the tenant, at most 300 s from now). Uses \
                   `customer.created`, `customer.updated`, `customer.subscription.created`, \
                   `customer.subscription.updated`, `customer.subscription.deleted` and \
                   `invoice.paid`; other types are acknowledged and ignored. An event id already \
                   processed is acknowledged with `duplicate: true` and changes nothing.",
    params(
        ("slug" = String, Path, description = "Tenant slug"),
        ("Stripe-Signature" = String, Header, description = "Stripe's signature header"),
    ),
    request_body(content = Object, description = "A Stripe event, at most 1 MiB"),
    responses(
        (status = 200, description = "Applied, ignored or a duplicate", body = WebhookReceipt),
        (status = 400, description = "`invalid_signature`: missing, malformed, stale or unmatched \
                                      signature (or no such endpoint); `malformed_json` or \
                                      `invalid_messages` (naming the field) for an unreadable event",
         body = Problem),
        (status = 403, description = "The tenant is suspended", body = Problem),
        (status = 413, description = "Body over 1 MiB", body = Problem),
        (status = 503, description = "Database unavailable; Stripe retries", body = Problem),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WebhookReceipt>, ApiError> {
    let body = read_body(body, false, MAX_WEBHOOK_BYTES).await?;
    let signature = match parse_signature(&headers, Utc::now().timestamp()) {
        Ok(signature) => signature,
        Err(refusal) => return Err(refused(&slug, refusal)),
    };
    let Some(tenant_id) = tenants::platform_id_by_slug(&state.pool, &slug).await? else {
        return Err(refused(&slug, Refusal::UnknownTenant));
    };
    let mut tx = TenantTx::begin(&state.pool, tenant_id).await?;
    let secrets = stripe_secrets::live(&mut tx).await?;
    let Some(secret_id) = matching_secret(&secrets, &signature, &body) else {
        return Err(refused(
            &slug,
            if secrets.is_empty() {
                Refusal::NoLiveSecret
            } else {
                Refusal::NoMatch
            },
        ));
    };
    if tenants::current(&mut tx).await?.status == TenantStatus::Suspended {
        tracing::warn!(tenant.slug = %slug, "Stripe webhook refused: the tenant is suspended");
        return Err(ApiError::TenantSuspended);
    }

    let event: StripeEvent = event_part(parse_json(&body), "")?;
    if !stripe_secrets::record_event(&mut tx, &event.id, &event.kind).await? {
        tracing::info!(tenant.slug = %slug, event.id = %event.id, "Stripe event already processed");
        return Ok(Json(WebhookReceipt {
            duplicate: true,
            ..WebhookReceipt::applied()
        }));
    }
    let created = event
        .created
        .and_then(|at| DateTime::from_timestamp(at, 0))
        .unwrap_or_else(Utc::now);
    let object = event.data.object.get().as_bytes();
    let mut affected = Vec::new();
    match event.kind.as_str() {
        "customer.created" | "customer.updated" => {
            let customer = customers::upsert(&mut tx, &customer_input(object_of(object)?)).await?;
            affected.push(customer.id);
        }
        "customer.subscription.created" | "customer.subscription.updated" => {
            let subscription: StripeSubscription = object_of(object)?;
            apply_subscription_change(&mut tx, &subscription, created, &mut affected).await?;
        }
        "customer.subscription.deleted" => {
            let subscription: StripeSubscription = object_of(object)?;
            let customer = subscription.customer.id();
            ensure_customer(&mut tx, customer, None, None).await?;
            let ended = subscription
                .ended_at
                .or(subscription.canceled_at)
                .map(|at| timestamp(at, "data.object.ended_at"))
                .transpose()?
                .unwrap_or(created);
            affected.push(
                invoices::cancel_subscription(&mut tx, customer, &subscription.id, Some(ended))
                    .await?,
            );
        }
        "invoice.paid" => {
            let invoice: StripeInvoice = object_of(object)?;
            if invoice.lines.has_more {
                tracing::warn!(
                    tenant.slug = %slug, invoice = %invoice.id,
                    "Stripe sent only the first lines of this invoice; the others are not stored"
                );
            }
            ensure_customer(
                &mut tx,
                invoice.customer.id(),
                invoice.customer_name.clone(),
                invoice.customer_email.clone(),
            )
            .await?;
            let input = invoice_input(&mut tx, &invoice).await?;
            let stored = invoices::upsert(&mut tx, &input, "stripe").await?;
            affected.extend(stored.customers);
        }
        other => {
            tracing::debug!(tenant.slug = %slug, event.kind = other, "Stripe event type not used");
            tx.commit().await?;
            return Ok(Json(WebhookReceipt {
                ignored: true,
                ..WebhookReceipt::applied()
            }));
        }
    }
    rollup::recompute_customers(&mut tx, &affected).await?;
    tx.commit().await?;
    tracing::info!(
        tenant.slug = %slug, event.id = %event.id, event.kind = %event.kind, secret.id = %secret_id,
        "Stripe event applied"
    );
    Ok(Json(WebhookReceipt::applied()))
}

// ---------------------------------------------------------------------------
// Signature
// ---------------------------------------------------------------------------

/// Why a webhook was refused before its body was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    MissingHeader,
    MalformedHeader,
    NoV1Signature,
    Stale,
    UnknownTenant,
    NoLiveSecret,
    NoMatch,
}

impl Refusal {
    /// What the sender is told. A tenant that does not exist, or has no live
    /// secret, gets exactly the answer of a wrong signature.
    fn public(self) -> &'static str {
        match self {
            Refusal::MissingHeader => "the Stripe-Signature header is missing",
            Refusal::MalformedHeader => {
                "the Stripe-Signature header is malformed: expected t=<unix seconds>,v1=<hex>"
            }
            Refusal::NoV1Signature => "the Stripe-Signature header has no v1 signature",
            Refusal::Stale => {
                "the Stripe-Signature timestamp is more than 300 seconds away from now"
            }
            Refusal::UnknownTenant | Refusal::NoLiveSecret | Refusal::NoMatch => {
                "no v1 signature matches a signing secret of this endpoint"
            }
        }
    }

    /// What the log says.
    fn reason(self) -> &'static str {
        match self {
            Refusal::MissingHeader => "missing Stripe-Signature header",
            Refusal::MalformedHeader => "malformed Stripe-Signature header",
            Refusal::NoV1Signature => "no v1 signature",
            Refusal::Stale => "timestamp outside the tolerance",
            Refusal::UnknownTenant => "no tenant with this slug",
            Refusal::NoLiveSecret => "the tenant has no live signing secret",
            Refusal::NoMatch => "no signature matches a live secret",
        }
    }
}

fn refused(slug: &str, refusal: Refusal) -> ApiError {
    tracing::warn!(tenant.slug = %slug, reason = refusal.reason(), "Stripe webhook refused");
    ApiError::WebhookSignature(refusal.public().to_owned())
}

/// The parts of a `Stripe-Signature` header that are checked.
#[derive(Debug, PartialEq, Eq)]
struct Signature {
    /// `t`, in Unix seconds.
    timestamp: i64,
    /// Every `v1`, hex-decoded (ones that are not hex are left out: they
    /// cannot match).
    v1: Vec<Vec<u8>>,
}

/// Parses the header as Stripe's libraries do (`,`-separated `key=value`
/// pairs; schemes other than `v1`, such as the test-only `v0`, are ignored)
/// and checks the timestamp against `now`.
fn parse_signature(headers: &HeaderMap, now: i64) -> Result<Signature, Refusal> {
    let header = headers
        .get("stripe-signature")
        .ok_or(Refusal::MissingHeader)?
        .to_str()
        .map_err(|_| Refusal::MalformedHeader)?;
    let mut timestamp = None;
    let mut v1 = Vec::new();
    let mut any_v1 = false;
    for item in header.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or(Refusal::MalformedHeader)?;
        match key {
            "t" => timestamp = Some(value.parse::<i64>().map_err(|_| Refusal::MalformedHeader)?),
            "v1" => {
                any_v1 = true;
                v1.extend(decode_hex(value));
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(Refusal::MalformedHeader)?;
    if !any_v1 {
        return Err(Refusal::NoV1Signature);
    }
    if (now - timestamp).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err(Refusal::Stale);
    }
    Ok(Signature { timestamp, v1 })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The id of the secret that made one of the signatures, if any. Each
/// comparison is in constant time.
fn matching_secret(secrets: &[SigningSecret], signature: &Signature, body: &[u8]) -> Option<Uuid> {
    let timestamp = signature.timestamp.to_string();
    secrets.iter().find_map(|secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.secret.as_bytes()).ok()?;
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        signature
            .v1
            .iter()
            .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
            .then_some(secret.id)
    })
}

// ---------------------------------------------------------------------------
// Events, as Stripe sends them
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: Option<i64>,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Box<RawValue>,
}

/// An id, or the object it names when the sender expanded it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    fn id(&self) -> &str {
        match self {
            Expandable::Id(id) | Expandable::Object { id } => id,
        }
    }
}

#[derive(Deserialize)]
struct StripeCustomer {
    id: String,
    name: Option<String>,
    email: Option<String>,
    address: Option<Address>,
    metadata: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Address {
    country: Option<String>,
}

#[derive(Deserialize)]
struct StripeSubscription {
    id: String,
    customer: Expandable,
    status: String,
    cancel_at_period_end: Option<bool>,
    canceled_at: Option<i64>,
    ended_at: Option<i64>,
    trial_start: Option<i64>,
}

#[derive(Deserialize)]
struct StripeInvoice {
    id: String,
    customer: Expandable,
    customer_name: Option<String>,
    customer_email: Option<String>,
    created: i64,
    currency: String,
    lines: LineList,
}

#[derive(Deserialize)]
struct LineList {
    data: Vec<StripeLine>,
    #[serde(default)]
    has_more: bool,
}

/// An invoice line in any API version: before 2025-03-31 a line names its
/// `subscription`, `plan`, `price` and `proration` itself; since, they moved
/// under `parent`, and `taxes` replaced `tax_amounts`.
#[derive(Deserialize)]
struct StripeLine {
    id: Option<String>,
    amount: i64,
    description: Option<String>,
    discount_amounts: Option<Vec<Amount>>,
    tax_amounts: Option<Vec<TaxAmount>>,
    taxes: Option<Vec<Tax>>,
    period: Period,
    proration: Option<bool>,
    quantity: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    subscription: Option<Expandable>,
    parent: Option<LineParent>,
    price: Option<Price>,
    plan: Option<StripePlan>,
}

#[derive(Deserialize)]
struct Amount {
    amount: i64,
}

#[derive(Deserialize)]
struct TaxAmount {
    amount: i64,
    #[serde(default)]
    inclusive: bool,
}

#[derive(Deserialize)]
struct Tax {
    amount: i64,
    tax_behavior: Option<String>,
}

#[derive(Deserialize)]
struct Period {
    start: i64,
    end: i64,
}

#[derive(Deserialize)]
struct LineParent {
    subscription_item_details: Option<ParentDetails>,
    invoice_item_details: Option<ParentDetails>,
}

#[derive(Deserialize)]
struct ParentDetails {
    subscription: Option<Expandable>,
    proration: Option<bool>,
}

#[derive(Deserialize)]
struct Price {
    id: String,
    nickname: Option<String>,
    recurring: Option<Recurring>,
}

#[derive(Deserialize)]
struct Recurring {
    interval: String,
    interval_count: Option<i64>,
}

#[derive(Deserialize)]
struct StripePlan {
    id: String,
    nickname: Option<String>,
    interval: Option<String>,
    interval_count: Option<i64>,
}

/// A parse result with validation problems turned into a 400 naming the
/// field under `prefix` (Stripe shows the answer in its dashboard; a 422
/// would read as a client error about something the tenant sent).
fn event_part<T>(parsed: Result<T, ApiError>, prefix: &str) -> Result<T, ApiError> {
    parsed.map_err(|err| match err {
        ApiError::Validation(errors) => ApiError::InvalidMessages(
            errors
                .into_iter()
                .map(|error| {
                    let field = match (prefix, error.field.as_str()) {
                        ("", field) => field.to_owned(),
                        (prefix, "body") => prefix.to_owned(),
                        (prefix, field) => format!("{prefix}.{field}"),
                    };
                    FieldError::new(field, error.reason)
                })
                .collect(),
        ),
        other => other,
    })
}

fn object_of<T: DeserializeOwned>(object: &[u8]) -> Result<T, ApiError> {
    event_part(parse_json(object), "data.object")
}

fn timestamp(seconds: i64, field: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::from_timestamp(seconds, 0).ok_or_else(|| {
        ApiError::InvalidMessages(vec![FieldError::new(field, "is not a Unix timestamp")])
    })
}

// ---------------------------------------------------------------------------
// Mapping to billing data
// ---------------------------------------------------------------------------

fn customer_input(customer: StripeCustomer) -> CustomerInput {
    let attributes = customer.metadata.unwrap_or_default();
    let user_id = attributes
        .get("user_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // Stripe sends ISO 3166-1 alpha-2; anything else is dropped rather than
    // refused, since the rest of the customer is still worth keeping.
    let country = customer
        .address
        .and_then(|address| address.country)
        .map(|country| country.trim().to_ascii_uppercase())
        .filter(|country| country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()));
    CustomerInput {
        external_id: customer.id,
        name: customer.name,
        email: customer.email,
        country,
        user_id,
        attributes,
        ..CustomerInput::default()
    }
}

/// The customer's id, creating it with what is known when Stripe has not
/// (yet) sent it: events arrive in no guaranteed order.
async fn ensure_customer(
    tx: &mut TenantTx,
    external_id: &str,
    name: Option<String>,
    email: Option<String>,
) -> Result<Uuid, ApiError> {
    if let Some(customer) = customers::find(tx, external_id).await? {
        return Ok(customer.id);
    }
    let input = CustomerInput {
        external_id: external_id.to_owned(),
        name,
        email,
        ..CustomerInput::default()
    };
    Ok(customers::upsert(tx, &input).await?.id)
}

async fn apply_subscription_change(
    tx: &mut TenantTx,
    subscription: &StripeSubscription,
    event_created: DateTime<Utc>,
    affected: &mut Vec<Uuid>,
) -> Result<(), ApiError> {
    let customer = subscription.customer.id();
    let customer_id = ensure_customer(tx, customer, None, None).await?;
    affected.push(customer_id);
    if let Some(trial_start) = subscription.trial_start {
        let at = timestamp(trial_start, "data.object.trial_start")?;
        customers::mark_trial_started(tx, customer_id, at).await?;
    }
    let cancelling =
        subscription.cancel_at_period_end == Some(true) || subscription.canceled_at.is_some();
    let cancelled_at = if cancelling {
        // When the cancellation was asked for; its paid period still counts.
        Some(match subscription.canceled_at {
            Some(at) => timestamp(at, "data.object.canceled_at")?,
            None => event_created,
        })
    } else if matches!(subscription.status.as_str(), "active" | "trialing") {
        // Renewed, or a scheduled cancellation was withdrawn.
        None
    } else {
        return Ok(());
    };
    invoices::cancel_subscription(tx, customer, &subscription.id, cancelled_at).await?;
    Ok(())
}

/// The invoice as Northstar stores it, upserting the plans its lines bill.
async fn invoice_input(
    tx: &mut TenantTx,
    invoice: &StripeInvoice,
) -> Result<InvoiceInput, ApiError> {
    let currency = invoice.currency.trim().to_ascii_uppercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::InvalidMessages(vec![FieldError::new(
            "data.object.currency",
            "must be a three-letter ISO 4217 code",
        )]));
    }
    let mut line_items = Vec::with_capacity(invoice.lines.data.len());
    for (index, line) in invoice.lines.data.iter().enumerate() {
        let field = |name: &str| format!("data.object.lines.data[{index}].{name}");
        let plan_external_id = match line_plan(line) {
            Some(plan) => Some(plans::upsert(tx, &plan).await?.external_id),
            None => None,
        };
        let starts = timestamp(line.period.start, &field("period.start"))?;
        let ends = timestamp(line.period.end, &field("period.end"))?;
        let (subscription, prorated) = line_subscription(line);
        // A line of an empty period (a one-off item on a subscription's
        // invoice) has no service to spread revenue over.
        let subscription = subscription.filter(|_| ends > starts);
        let discount: i64 = line
            .discount_amounts
            .iter()
            .flatten()
            .map(|d| d.amount)
            .sum();
        let (tax, exclusive_tax) = line_taxes(line);
        let mut amount = line.amount - discount + exclusive_tax;
        // A credit line carries negative tax, which is stored folded into
        // its amount: the net (amount - tax) is what revenue uses.
        let tax = if tax < 0 {
            amount -= tax;
            0
        } else {
            tax
        };
        line_items.push(LineInput {
            external_id: line.id.clone(),
            kind: if subscription.is_some() {
                LineKind::Subscription
            } else {
                LineKind::OneTime
            },
            subscription_external_id: subscription.map(str::to_owned),
            plan_external_id,
            service_period_start: Some(starts),
            service_period_end: Some(ends),
            quantity: line
                .quantity
                .map_or(1, |q| i32::try_from(q.max(0)).unwrap_or(i32::MAX)),
            amount_in_cents: amount,
            discount_amount_in_cents: discount.max(0),
            tax_amount_in_cents: tax,
            prorated,
            description: line.description.clone(),
        });
    }
    Ok(InvoiceInput {
        external_id: invoice.id.clone(),
        customer_external_id: invoice.customer.id().to_owned(),
        date: timestamp(invoice.created, "data.object.created")?,
        currency,
        line_items,
    })
}

/// The subscription a line bills, if it is recurring revenue, and whether it
/// is prorated. Subscription items count; invoice items (added by hand or
/// by a plan change) count only when they are prorations of the
/// subscription, so a setup fee on a subscription's invoice stays one-time.
fn line_subscription(line: &StripeLine) -> (Option<&str>, bool) {
    if let Some(parent) = &line.parent {
        if let Some(item) = &parent.subscription_item_details {
            let prorated = item.proration.unwrap_or(false);
            return (item.subscription.as_ref().map(Expandable::id), prorated);
        }
        if let Some(item) = &parent.invoice_item_details {
            let prorated = item.proration.unwrap_or(false);
            let subscription = item.subscription.as_ref().map(Expandable::id);
            return (subscription.filter(|_| prorated), prorated);
        }
    }
    let prorated = line.proration.unwrap_or(false);
    let subscription = line.subscription.as_ref().map(Expandable::id).or_else(|| {
        // Before 2019-12-03 a subscription line's id was the subscription's.
        line.id
            .as_deref()
            .filter(|id| line.kind.as_deref() == Some("subscription") && id.starts_with("sub_"))
    });
    match line.kind.as_deref() {
        Some("invoiceitem") => (subscription.filter(|_| prorated), prorated),
        _ => (subscription, prorated),
    }
}

/// All tax of a line, and the part of it added on top of `amount`.
fn line_taxes(line: &StripeLine) -> (i64, i64) {
    match (&line.taxes, &line.tax_amounts) {
        (Some(taxes), _) if !taxes.is_empty() => (
            taxes.iter().map(|t| t.amount).sum(),
            taxes
                .iter()
                .filter(|t| t.tax_behavior.as_deref() == Some("exclusive"))
                .map(|t| t.amount)
                .sum(),
        ),
        (_, Some(amounts)) => (
            amounts.iter().map(|t| t.amount).sum(),
            amounts
                .iter()
                .filter(|t| !t.inclusive)
                .map(|t| t.amount)
                .sum(),
        ),
        _ => (0, 0),
    }
}

/// The recurring price (or, in older API versions, the plan) a line bills.
fn line_plan(line: &StripeLine) -> Option<PlanInput> {
    let (id, nickname, interval, count) = match (&line.price, &line.plan) {
        (
            Some(Price {
                id,
                nickname,
                recurring: Some(recurring),
            }),
            _,
        ) => (
            id,
            nickname,
            recurring.interval.as_str(),
            recurring.interval_count,
        ),
        (_, Some(plan)) => (
            &plan.id,
            &plan.nickname,
            plan.interval.as_deref()?,
            plan.interval_count,
        ),
        _ => return None,
    };
    if !matches!(interval, "day" | "week" | "month" | "year") {
        return None;
    }
    Some(PlanInput {
        external_id: id.clone(),
        name: nickname
            .clone()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| id.clone()),
        interval_unit: interval.to_owned(),
        interval_count: count
            .and_then(|c| i32::try_from(c).ok())
            .filter(|c| *c > 0)
            .unwrap_or(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("stripe-signature", value.parse().expect("header value"));
        headers
    }

    fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn the_header_is_read_as_stripe_writes_it() {
        let now = 1_700_000_000;
        let parsed = parse_signature(&headers(&format!("t={now},v1=00ff,v1=zz,v0=abcd")), now)
            .expect("valid");
        assert_eq!(parsed.timestamp, now);
        assert_eq!(parsed.v1, vec![vec![0x00, 0xff]]);
        for (header, refusal) in [
            ("", Refusal::MalformedHeader),
            ("v1=00", Refusal::MalformedHeader),
            ("t=abc,v1=00", Refusal::MalformedHeader),
            ("t=1700000000", Refusal::NoV1Signature),
            ("t=1700000000,v0=00", Refusal::NoV1Signature),
            ("t=1699999699,v1=00", Refusal::Stale),
            ("t=1700000301,v1=00", Refusal::Stale),
        ] {
            assert_eq!(
                parse_signature(&headers(header), now),
                Err(refusal),
                "{header:?}"
            );
        }
        assert!(parse_signature(&headers("t=1699999700,v1=00"), now).is_ok());
        assert_eq!(
            parse_signature(&HeaderMap::new(), now),
            Err(Refusal::MissingHeader)
        );
    }

    #[test]
    fn any_live_secret_and_any_v1_may_match() {
        let body = br#"{"id":"evt_1"}"#;
        let now = 1_700_000_000;
        let old = SigningSecret {
            id: Uuid::now_v7(),
            secret: "whsec_old".into(),
        };
        let new = SigningSecret {
            id: Uuid::now_v7(),
            secret: "whsec_new".into(),
        };
        let header = format!(
            "t={now},v1={},v1={}",
            sign("whsec_other", now, body),
            sign("whsec_new", now, body)
        );
        let signature = parse_signature(&headers(&header), now).expect("valid");
        assert_eq!(
            matching_secret(&[old.clone(), new.clone()], &signature, body),
            Some(new.id)
        );
        assert_eq!(
            matching_secret(std::slice::from_ref(&old), &signature, body),
            None
        );
        assert_eq!(
            matching_secret(&[new], &signature, br#"{"id":"evt_2"}"#),
            None
        );
    }

    #[test]
    fn a_known_signature_verifies() {
        // Computed independently (Python's hmac): HMAC-SHA256 keyed with
        // "whsec_test" of "1700000000.{}".
        let expected = "35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91";
        assert_eq!(sign("whsec_test", 1_700_000_000, b"{}"), expected);
        let signature = Signature {
            timestamp: 1_700_000_000,
            v1: vec![decode_hex(expected).expect("hex")],
        };
        let secret = SigningSecret {
            id: Uuid::nil(),
            secret: "whsec_test".into(),
        };
        assert_eq!(
            matching_secret(&[secret], &signature, b"{}"),
            Some(Uuid::nil())
        );
    }
}
