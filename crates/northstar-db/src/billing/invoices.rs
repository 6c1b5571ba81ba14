//! Invoices and their line items, idempotent by the invoice's external id:
//! sending an invoice again replaces its lines whole.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use super::BillingError;
use crate::{DbError, TenantTx};

/// What a line item bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// A service period of a subscription: recurring revenue.
    Subscription,
    /// A one-off charge (setup fee, metered overage): no MRR.
    OneTime,
}

/// A line item as sent.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    /// The billing system's id of the line, if it has one.
    pub external_id: Option<String>,
    /// `subscription` or `one_time`.
    #[serde(rename = "type")]
    pub kind: LineKind,
    /// The subscription billed (required for `subscription` lines).
    pub subscription_external_id: Option<String>,
    /// The plan billed, by external id.
    pub plan_external_id: Option<String>,
    /// Start of the service period (required for `subscription` lines).
    pub service_period_start: Option<DateTime<Utc>>,
    /// End of the service period, exclusive (required for `subscription` lines).
    pub service_period_end: Option<DateTime<Utc>>,
    /// Seats or units (default 1).
    #[serde(default = "one")]
    pub quantity: i32,
    /// What was charged, in minor units: after discount, tax included.
    pub amount_in_cents: i64,
    /// The discount already deducted from `amount_in_cents`.
    #[serde(default)]
    pub discount_amount_in_cents: i64,
    /// The tax included in `amount_in_cents`.
    #[serde(default)]
    pub tax_amount_in_cents: i64,
    /// Whether the line bills part of a plan interval (an upgrade mid-period).
    #[serde(default)]
    pub prorated: bool,
    /// Free text.
    pub description: Option<String>,
}

fn one() -> i32 {
    1
}

/// An invoice as sent.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceInput {
    /// The billing system's id; sending it again replaces the invoice.
    pub external_id: String,
    /// The customer billed, by external id.
    pub customer_external_id: String,
    /// When the invoice was issued.
    pub date: DateTime<Utc>,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// The lines (at least one).
    pub line_items: Vec<LineInput>,
}

/// A stored invoice.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invoice {
    /// Northstar's id.
    pub id: Uuid,
    /// The billing system's id.
    pub external_id: String,
    /// The customer billed.
    pub customer_external_id: String,
    /// When it was issued.
    pub date: DateTime<Utc>,
    /// Its currency.
    pub currency: String,
    /// `api`, `csv` or `stripe`.
    pub source: String,
    /// Its lines, in order.
    pub line_items: Vec<LineInput>,
}

/// What storing an invoice changed.
#[derive(Debug, Clone)]
pub struct StoredInvoice {
    /// The invoice's id.
    pub id: Uuid,
    /// The customers whose revenue may have changed: the one billed, and the
    /// one billed before if the invoice moved to another customer.
    pub customers: Vec<Uuid>,
}

/// Creates or replaces the invoice with `input.external_id`. `source` says
/// where it came from (`api`, `csv`, `stripe`).
pub async fn upsert(
    tx: &mut TenantTx,
    input: &InvoiceInput,
    source: &str,
) -> Result<StoredInvoice, BillingError> {
    let customer: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM billing_customers WHERE external_id = $1")
            .bind(&input.customer_external_id)
            .fetch_optional(tx.conn())
            .await?;
    let customer = customer
        .ok_or_else(|| BillingError::UnknownCustomer(input.customer_external_id.clone()))?;
    let mut plan_ids = Vec::with_capacity(input.line_items.len());
    for (index, line) in input.line_items.iter().enumerate() {
        plan_ids.push(match &line.plan_external_id {
            Some(plan) => Some(
                sqlx::query_scalar::<_, Uuid>(
                    "SELECT id FROM billing_plans WHERE external_id = $1",
                )
                .bind(plan)
                .fetch_optional(tx.conn())
                .await?
                .ok_or_else(|| BillingError::UnknownPlan {
                    line: index,
                    plan: plan.clone(),
                })?,
            ),
            None => None,
        });
    }
    let previous: Option<Uuid> = sqlx::query_scalar(
        "SELECT customer_id FROM billing_invoices WHERE external_id = $1 FOR UPDATE",
    )
    .bind(&input.external_id)
    .fetch_optional(tx.conn())
    .await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO billing_invoices (tenant_id, external_id, customer_id, issued_at, currency, source)
         VALUES (current_tenant_id(), $1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, external_id) DO UPDATE SET
             customer_id = excluded.customer_id, issued_at = excluded.issued_at,
             currency = excluded.currency, source = excluded.source, updated_at = now()
         RETURNING id",
    )
    .bind(&input.external_id)
    .bind(customer)
    .bind(input.date)
    .bind(&input.currency)
    .bind(source)
    .fetch_one(tx.conn())
    .await?;
    sqlx::query("DELETE FROM billing_line_items WHERE invoice_id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    let lines = &input.line_items;
    sqlx::query(
        "INSERT INTO billing_line_items
             (tenant_id, invoice_id, position, external_id, kind, subscription_external_id,
              plan_id, service_period_start, service_period_end, quantity, amount_minor,
              discount_minor, tax_minor, prorated, description)
         SELECT current_tenant_id(), $1, l.*
         FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::uuid[],
                     $7::timestamptz[], $8::timestamptz[], $9::int[], $10::bigint[],
                     $11::bigint[], $12::bigint[], $13::bool[], $14::text[]) AS l",
    )
    .bind(id)
    .bind((0..lines.len() as i32).collect::<Vec<_>>())
    .bind(
        lines
            .iter()
            .map(|l| l.external_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .iter()
            .map(|l| match l.kind {
                LineKind::Subscription => "subscription",
                LineKind::OneTime => "one_time",
            })
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .iter()
            .map(|l| l.subscription_external_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(plan_ids)
    .bind(
        lines
            .iter()
            .map(|l| l.service_period_start)
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .iter()
            .map(|l| l.service_period_end)
            .collect::<Vec<_>>(),
    )
    .bind(lines.iter().map(|l| l.quantity).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.amount_in_cents).collect::<Vec<_>>())
    .bind(
        lines
            .iter()
            .map(|l| l.discount_amount_in_cents)
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .iter()
            .map(|l| l.tax_amount_in_cents)
            .collect::<Vec<_>>(),
    )
    .bind(lines.iter().map(|l| l.prorated).collect::<Vec<_>>())
    .bind(
        lines
            .iter()
            .map(|l| l.description.clone())
            .collect::<Vec<_>>(),
    )
    .execute(tx.conn())
    .await?;
    let mut customers = vec![customer];
    customers.extend(previous.filter(|old| *old != customer));
    Ok(StoredInvoice { id, customers })
}

#[derive(FromRow)]
struct InvoiceRow {
    id: Uuid,
    external_id: String,
    customer_external_id: String,
    issued_at: DateTime<Utc>,
    currency: String,
    source: String,
    line_items: sqlx::types::Json<Vec<LineInput>>,
}

/// The invoice with this external id.
pub async fn find(tx: &mut TenantTx, external_id: &str) -> Result<Option<Invoice>, DbError> {
    let row: Option<InvoiceRow> = sqlx::query_as(
        "SELECT i.id, i.external_id, c.external_id AS customer_external_id, i.issued_at,
                i.currency, i.source,
                coalesce((SELECT json_agg(json_build_object(
                     'external_id', l.external_id, 'type', l.kind,
                     'subscription_external_id', l.subscription_external_id,
                     'plan_external_id', p.external_id,
                     'service_period_start', l.service_period_start,
                     'service_period_end', l.service_period_end,
                     'quantity', l.quantity, 'amount_in_cents', l.amount_minor,
                     'discount_amount_in_cents', l.discount_minor,
                     'tax_amount_in_cents', l.tax_minor, 'prorated', l.prorated,
                     'description', l.description) ORDER BY l.position)
                   FROM billing_line_items l LEFT JOIN billing_plans p ON p.id = l.plan_id
                   WHERE l.invoice_id = i.id), '[]') AS line_items
         FROM billing_invoices i JOIN billing_customers c ON c.id = i.customer_id
         WHERE i.external_id = $1",
    )
    .bind(external_id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|row| Invoice {
        id: row.id,
        external_id: row.external_id,
        customer_external_id: row.customer_external_id,
        date: row.issued_at,
        currency: row.currency,
        source: row.source,
        line_items: row.line_items.0,
    }))
}

/// Cancels a customer's subscription at `cancelled_at`: its revenue ends
/// with the paid period containing that instant, and later lines of it are
/// ignored. Returns the customer's id.
pub async fn cancel_subscription(
    tx: &mut TenantTx,
    customer_external_id: &str,
    subscription_external_id: &str,
    cancelled_at: Option<DateTime<Utc>>,
) -> Result<Uuid, BillingError> {
    let customer: Uuid =
        sqlx::query_scalar("SELECT id FROM billing_customers WHERE external_id = $1")
            .bind(customer_external_id)
            .fetch_optional(tx.conn())
            .await?
            .ok_or_else(|| BillingError::UnknownCustomer(customer_external_id.to_owned()))?;
    match cancelled_at {
        Some(at) => {
            sqlx::query(
                "INSERT INTO billing_subscription_cancellations
                     (tenant_id, customer_id, subscription_external_id, cancelled_at)
                 VALUES (current_tenant_id(), $1, $2, $3)
                 ON CONFLICT (tenant_id, customer_id, subscription_external_id)
                 DO UPDATE SET cancelled_at = excluded.cancelled_at",
            )
            .bind(customer)
            .bind(subscription_external_id)
            .bind(at)
            .execute(tx.conn())
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM billing_subscription_cancellations
                 WHERE customer_id = $1 AND subscription_external_id = $2",
            )
            .bind(customer)
            .bind(subscription_external_id)
            .execute(tx.conn())
            .await?;
        }
    }
    Ok(customer)
}

/// The customers with a line of this plan, whose MRR a change of the
/// plan's interval changes.
pub async fn customers_on_plan(tx: &mut TenantTx, plan_id: Uuid) -> Result<Vec<Uuid>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT i.customer_id FROM billing_line_items l
         JOIN billing_invoices i ON i.id = l.invoice_id WHERE l.plan_id = $1",
    )
    .bind(plan_id)
    .fetch_all(tx.conn())
    .await?)
}
