//! Keeps the revenue rollups (`mrr_movements`, `mrr_daily`) equal to what
//! the billing data implies.
//!
//! [`recompute_customers`] runs in the transaction that changed those
//! customers' billing data: it recomputes each customer's movements from
//! their lines, replaces their rows in `mrr_movements`, and adds the
//! difference per day to `mrr_daily`. Adding deltas (rather than re-summing
//! a day) makes concurrent writers for different customers commute; rows
//! are touched in day order, so they cannot deadlock.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::{
    movements::{Movement, MovementKind, SubscriptionLine, customer_movements},
    normalise::{IntervalUnit, LineCharge, PlanInterval, minor_unit_exponent},
};
use crate::{DbError, TenantTx};

/// Customers recomputed per statement, so a bulk import or a rebuild never
/// holds every line of a large tenant in memory at once.
const CUSTOMERS_PER_CHUNK: usize = 1_000;

#[derive(FromRow)]
struct LineRow {
    customer_id: Uuid,
    subscription: String,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
    starts: NaiveDate,
    ends: NaiveDate,
    net_minor: i64,
    prorated: bool,
    interval_unit: Option<String>,
    interval_count: Option<i32>,
    currency: String,
    rate: Option<f64>,
}

impl LineRow {
    fn subscription_line(self) -> Option<SubscriptionLine> {
        let plan = match (self.interval_unit.as_deref(), self.interval_count) {
            (Some(unit), Some(count)) => Some(PlanInterval {
                unit: IntervalUnit::parse(unit)?,
                count: u32::try_from(count).ok()?,
            }),
            _ => None,
        };
        let charge = LineCharge {
            net_minor: self.net_minor,
            exponent: minor_unit_exponent(&self.currency),
            starts: self.period_start,
            ends: self.period_end,
            plan,
            prorated: self.prorated,
        };
        Some(SubscriptionLine {
            subscription: self.subscription,
            starts: self.starts,
            ends: self.ends,
            native_mrr: charge.mrr_micros(),
            currency: self.currency,
            // A currency without any loaded rate counts for nothing.
            rate: self.rate?,
        })
    }
}

/// The subscription lines of `customers`, on the tenant's calendar, in the
/// order they were invoiced. Credits (negative lines, such as a proration's
/// unused time) carry no MRR and never replace a line; cancelled
/// subscriptions lose the lines that start after their cancellation.
const LINES: &str = "
    SELECT i.customer_id, l.subscription_external_id AS subscription,
           l.service_period_start AS period_start, l.service_period_end AS period_end,
           (l.service_period_start AT TIME ZONE t.time_zone)::date AS starts,
           (l.service_period_end AT TIME ZONE t.time_zone)::date AS ends,
           l.amount_minor - l.tax_minor AS net_minor, l.prorated,
           p.interval_unit, p.interval_count, i.currency,
           CASE WHEN i.currency = t.reporting_currency THEN 1::float8 ELSE coalesce(
               (SELECT r.rate FROM exchange_rates r
                WHERE r.quote_currency = t.reporting_currency AND r.currency = i.currency
                  AND r.day <= (l.service_period_start AT TIME ZONE 'UTC')::date
                ORDER BY r.day DESC LIMIT 1),
               (SELECT r.rate FROM exchange_rates r
                WHERE r.quote_currency = t.reporting_currency AND r.currency = i.currency
                ORDER BY r.day LIMIT 1))::float8 END AS rate
    FROM billing_line_items l
    JOIN billing_invoices i ON i.id = l.invoice_id
    CROSS JOIN tenants t
    LEFT JOIN billing_plans p ON p.id = l.plan_id
    LEFT JOIN billing_subscription_cancellations c
           ON c.customer_id = i.customer_id AND c.subscription_external_id = l.subscription_external_id
    WHERE i.customer_id = ANY($1) AND l.kind = 'subscription' AND l.amount_minor >= 0
      AND (c.cancelled_at IS NULL OR l.service_period_start <= c.cancelled_at)
    ORDER BY i.issued_at, i.id, l.position";

/// Recomputes the MRR movements of `customers` (repeats allowed) and brings
/// `mrr_daily` in line with them, a bounded number of customers at a time.
pub async fn recompute_customers(tx: &mut TenantTx, customers: &[Uuid]) -> Result<(), DbError> {
    let mut customers = customers.to_vec();
    customers.sort_unstable();
    customers.dedup();
    for chunk in customers.chunks(CUSTOMERS_PER_CHUNK) {
        recompute_chunk(tx, chunk).await?;
    }
    Ok(())
}

async fn recompute_chunk(tx: &mut TenantTx, customers: &[Uuid]) -> Result<(), DbError> {
    let rows: Vec<LineRow> = sqlx::query_as(LINES)
        .bind(customers)
        .fetch_all(tx.conn())
        .await?;
    let mut lines: HashMap<Uuid, Vec<SubscriptionLine>> = HashMap::new();
    for row in rows {
        let customer = row.customer_id;
        if let Some(line) = row.subscription_line() {
            lines.entry(customer).or_default().push(line);
        }
    }
    let mut fresh: Vec<(Uuid, Movement)> = Vec::new();
    for (customer, lines) in &lines {
        fresh.extend(
            customer_movements(lines)
                .into_iter()
                .map(|movement| (*customer, movement)),
        );
    }

    let old: Vec<(NaiveDate, String, i64, i64)> = sqlx::query_as(
        "DELETE FROM mrr_movements WHERE customer_id = ANY($1)
         RETURNING day, kind, movement, fx_drift",
    )
    .bind(customers)
    .fetch_all(tx.conn())
    .await?;
    insert_movements(tx, &fresh).await?;

    let mut deltas: BTreeMap<NaiveDate, DayDelta> = BTreeMap::new();
    for (day, kind, movement, fx_drift) in old {
        if let Some(kind) = MovementKind::parse(&kind) {
            deltas
                .entry(day)
                .or_default()
                .add(kind, movement, fx_drift, -1);
        }
    }
    for (_, m) in &fresh {
        deltas
            .entry(m.day)
            .or_default()
            .add(m.kind, m.movement, m.fx_drift, 1);
    }
    apply_deltas(tx, &deltas).await
}

/// Recomputes every customer of the tenant from scratch: after a change of
/// exchange rates, reporting currency or time zone, or on demand
/// (`northstar rollups rebuild`). Returns the number of customers.
pub async fn rebuild(tx: &mut TenantTx) -> Result<usize, DbError> {
    sqlx::query("DELETE FROM mrr_movements")
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM mrr_daily")
        .execute(tx.conn())
        .await?;
    let customers = super::customers::all_ids(tx).await?;
    recompute_customers(tx, &customers).await?;
    Ok(customers.len())
}

async fn insert_movements(tx: &mut TenantTx, fresh: &[(Uuid, Movement)]) -> Result<(), DbError> {
    if fresh.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO mrr_movements
             (tenant_id, customer_id, day, kind, mrr_before, mrr_after, movement, fx_drift)
         SELECT current_tenant_id(), m.*
         FROM unnest($1::uuid[], $2::date[], $3::text[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::bigint[]) AS m",
    )
    .bind(fresh.iter().map(|(c, _)| *c).collect::<Vec<_>>())
    .bind(fresh.iter().map(|(_, m)| m.day).collect::<Vec<_>>())
    .bind(
        fresh
            .iter()
            .map(|(_, m)| m.kind.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(fresh.iter().map(|(_, m)| m.mrr_before).collect::<Vec<_>>())
    .bind(fresh.iter().map(|(_, m)| m.mrr_after).collect::<Vec<_>>())
    .bind(fresh.iter().map(|(_, m)| m.movement).collect::<Vec<_>>())
    .bind(fresh.iter().map(|(_, m)| m.fx_drift).collect::<Vec<_>>())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// How one day of `mrr_daily` changes.
#[derive(Debug, Default)]
struct DayDelta {
    amounts: [i64; 6],
    customers: [i32; 5],
}

impl DayDelta {
    fn add(&mut self, kind: MovementKind, movement: i64, fx_drift: i64, sign: i8) {
        let sign64 = i64::from(sign);
        let index = match kind {
            MovementKind::NewBusiness => Some(0),
            MovementKind::Expansion => Some(1),
            MovementKind::Contraction => Some(2),
            MovementKind::Churn => Some(3),
            MovementKind::Reactivation => Some(4),
            MovementKind::FxDrift => None,
        };
        if let Some(index) = index {
            self.amounts[index] += sign64 * movement;
            self.customers[index] += i32::from(sign);
        }
        self.amounts[5] += sign64 * fx_drift;
    }

    fn is_zero(&self) -> bool {
        self.amounts.iter().all(|a| *a == 0) && self.customers.iter().all(|c| *c == 0)
    }
}

async fn apply_deltas(
    tx: &mut TenantTx,
    deltas: &BTreeMap<NaiveDate, DayDelta>,
) -> Result<(), DbError> {
    let deltas: Vec<(&NaiveDate, &DayDelta)> =
        deltas.iter().filter(|(_, d)| !d.is_zero()).collect();
    if deltas.is_empty() {
        return Ok(());
    }
    let amount = |i: usize| deltas.iter().map(|(_, d)| d.amounts[i]).collect::<Vec<_>>();
    let count = |i: usize| {
        deltas
            .iter()
            .map(|(_, d)| d.customers[i])
            .collect::<Vec<_>>()
    };
    sqlx::query(
        "INSERT INTO mrr_daily AS d
             (tenant_id, day, new_business, expansion, contraction, churn, reactivation, fx_drift,
              new_customers, expansion_customers, contraction_customers, churned_customers,
              reactivated_customers)
         SELECT current_tenant_id(), x.*
         FROM unnest($1::date[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::bigint[], $8::int[], $9::int[], $10::int[], $11::int[],
                     $12::int[]) AS x
         ORDER BY 2
         ON CONFLICT (tenant_id, day) DO UPDATE SET
             new_business = d.new_business + excluded.new_business,
             expansion = d.expansion + excluded.expansion,
             contraction = d.contraction + excluded.contraction,
             churn = d.churn + excluded.churn,
             reactivation = d.reactivation + excluded.reactivation,
             fx_drift = d.fx_drift + excluded.fx_drift,
             new_customers = d.new_customers + excluded.new_customers,
             expansion_customers = d.expansion_customers + excluded.expansion_customers,
             contraction_customers = d.contraction_customers + excluded.contraction_customers,
             churned_customers = d.churned_customers + excluded.churned_customers,
             reactivated_customers = d.reactivated_customers + excluded.reactivated_customers",
    )
    .bind(deltas.iter().map(|(day, _)| **day).collect::<Vec<_>>())
    .bind(amount(0))
    .bind(amount(1))
    .bind(amount(2))
    .bind(amount(3))
    .bind(amount(4))
    .bind(amount(5))
    .bind(count(0))
    .bind(count(1))
    .bind(count(2))
    .bind(count(3))
    .bind(count(4))
    .execute(tx.conn())
    .await?;
    Ok(())
}
