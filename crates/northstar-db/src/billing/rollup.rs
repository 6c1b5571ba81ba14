//! Keeps the revenue rollups (`mrr_movements`, `mrr_daily`,
//! `revenue_cohorts`, `revenue_cohort_days`, and the trial conversions in
//! `trial_customers` and `trial_days`) equal to what the billing data
//! implies.
//!
//! [`recompute_customers`] runs in the transaction that changed those
//! customers' billing data: it recomputes each customer's movements from
//! their lines, replaces their rows in `mrr_movements`, and adds the
//! difference per day to `mrr_daily` and per cohort (the month of the
//! customer's first payment) and day or month to the cohort rollups. Adding
//! deltas (rather than re-summing a day) makes concurrent writers for
//! different customers commute; rows are touched in key order, so they
//! cannot deadlock.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::{
    movements::{Movement, MovementKind, SubscriptionLine, customer_movements},
    normalise::{IntervalUnit, LineCharge, PlanInterval, minor_unit_exponent},
    revenue::Granularity,
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
    let customers = lock_customers(tx, customers).await?;
    for chunk in customers.chunks(CUSTOMERS_PER_CHUNK) {
        recompute_chunk(tx, chunk).await?;
    }
    Ok(())
}

/// Counts again the trials of `customers` (repeats allowed) whose trial
/// start may have changed while their billing data did not: a customer
/// written on its own ([`super::customers::upsert`]).
pub async fn recount_trials(tx: &mut TenantTx, customers: &[Uuid]) -> Result<(), DbError> {
    let customers = lock_customers(tx, customers).await?;
    for chunk in customers.chunks(CUSTOMERS_PER_CHUNK) {
        sqlx::query(COUNT_TRIALS)
            .bind(chunk)
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

/// Most customers a transaction locks one by one; beyond, it locks the
/// tenant's billing rollups as a whole. Each lock takes an entry of
/// PostgreSQL's shared lock table until the transaction ends, and the table
/// holds about `max_locks_per_transaction` × connections entries (6,400 by
/// default): a rebuild of 20,000 customers failed with "out of shared
/// memory".
const CUSTOMERS_LOCKED_ONE_BY_ONE: usize = 1_000;

/// Takes the rollup locks of `customers` until the transaction ends, and
/// answers them sorted and without repeats. Two writers recomputing one
/// customer would each subtract the same old rows; the second waits here,
/// then reads what the first committed. Every writer holds the tenant's
/// lock, shared when it locks its customers one by one, exclusive when it
/// has too many customers to.
async fn lock_customers(tx: &mut TenantTx, customers: &[Uuid]) -> Result<Vec<Uuid>, DbError> {
    let mut customers = customers.to_vec();
    customers.sort_unstable();
    customers.dedup();
    if customers.is_empty() {
        return Ok(customers);
    }
    let one_by_one = customers.len() <= CUSTOMERS_LOCKED_ONE_BY_ONE;
    sqlx::query(if one_by_one {
        "SELECT pg_advisory_xact_lock_shared(
                    hashtextextended('northstar.billing.tenant.' || current_tenant_id()::text, 0))"
    } else {
        "SELECT pg_advisory_xact_lock(
                    hashtextextended('northstar.billing.tenant.' || current_tenant_id()::text, 0))"
    })
    .execute(tx.conn())
    .await?;
    if one_by_one {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('northstar.billing.' || id::text, 0))
             FROM (SELECT id FROM unnest($1::uuid[]) AS id ORDER BY id) AS sorted",
        )
        .bind(&customers)
        .execute(tx.conn())
        .await?;
    }
    Ok(customers)
}

/// Recomputes `customers`, whose locks the transaction holds.
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

    // The rows actually deleted, each with its customer's cohort.
    let old: Vec<(NaiveDate, String, i64, i64, Option<NaiveDate>)> =
        sqlx::query_as(DELETE_MOVEMENTS)
            .bind(customers)
            .fetch_all(tx.conn())
            .await?;
    insert_movements(tx, &fresh).await?;

    let mut deltas: BTreeMap<NaiveDate, DayDelta> = BTreeMap::new();
    let mut cohort_deltas = CohortDeltas::default();
    for (day, kind, movement, fx_drift, cohort) in old {
        if let Some(kind) = MovementKind::parse(&kind) {
            deltas
                .entry(day)
                .or_default()
                .add(kind, movement, fx_drift, -1);
            if let Some(cohort) = cohort {
                cohort_deltas.add(cohort, day, kind, movement + fx_drift, -1);
            }
        }
    }
    let cohorts: HashMap<Uuid, NaiveDate> = fresh
        .iter()
        .filter(|(_, m)| m.kind == MovementKind::NewBusiness)
        .map(|(customer, m)| (*customer, Granularity::Month.bucket_start(m.day)))
        .collect();
    for (customer, m) in &fresh {
        deltas
            .entry(m.day)
            .or_default()
            .add(m.kind, m.movement, m.fx_drift, 1);
        if let Some(cohort) = cohorts.get(customer) {
            cohort_deltas.add(*cohort, m.day, m.kind, m.movement + m.fx_drift, 1);
        }
    }
    apply_deltas(tx, &deltas).await?;
    apply_cohort_deltas(tx, &cohort_deltas).await?;
    sqlx::query(COUNT_TRIALS)
        .bind(customers)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Brings what `trial_customers` counts for the customers `$1` in line with
/// their trial start (its local day) and whether they have paid (a
/// `new_business` movement), and moves the difference into `trial_days`.
/// The caller holds the customers' locks, so their rows cannot change under
/// it; `trial_days` takes deltas, so writers of other customers commute.
const COUNT_TRIALS: &str = "
WITH fresh AS (
    SELECT c.id AS customer_id, (c.free_trial_started_at AT TIME ZONE t.time_zone)::date AS day,
           EXISTS (SELECT 1 FROM mrr_movements m
                   WHERE m.customer_id = c.id AND m.kind = 'new_business') AS converted
    FROM billing_customers c CROSS JOIN tenants t
    WHERE c.id = ANY($1) AND c.free_trial_started_at IS NOT NULL
), changed AS (
    SELECT coalesce(f.customer_id, o.customer_id) AS customer_id, f.day, f.converted,
           o.day AS old_day, o.converted AS old_converted
    FROM fresh f
    FULL JOIN (SELECT customer_id, day, converted FROM trial_customers
               WHERE customer_id = ANY($1)) o ON o.customer_id = f.customer_id
    WHERE f.day IS DISTINCT FROM o.day OR f.converted IS DISTINCT FROM o.converted
), removed AS (
    DELETE FROM trial_customers x USING changed c
    WHERE x.customer_id = c.customer_id AND c.day IS NULL
), written AS (
    INSERT INTO trial_customers AS x (tenant_id, customer_id, day, converted)
    SELECT current_tenant_id(), customer_id, day, converted FROM changed
    WHERE day IS NOT NULL ORDER BY customer_id
    ON CONFLICT (tenant_id, customer_id) DO UPDATE SET day = excluded.day,
                                                       converted = excluded.converted
), moves AS (
    SELECT day, 1 AS trials, converted::int AS converted FROM changed WHERE day IS NOT NULL
    UNION ALL
    SELECT old_day, -1, -(old_converted::int) FROM changed WHERE old_day IS NOT NULL
)
INSERT INTO trial_days AS d (tenant_id, day, trials, converted)
SELECT current_tenant_id(), day, sum(trials), sum(converted) FROM moves
GROUP BY day HAVING sum(trials) <> 0 OR sum(converted) <> 0 ORDER BY day
ON CONFLICT (tenant_id, day) DO UPDATE SET trials = d.trials + excluded.trials,
                                           converted = d.converted + excluded.converted";

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
    sqlx::query("DELETE FROM revenue_cohorts")
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM revenue_cohort_days")
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM trial_customers")
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM trial_days")
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

/// Deletes the movements of `$1` (customer ids), returning each with its
/// customer's cohort: the local month of their `new_business` movement, if
/// they ever paid. Taken from the deleted rows themselves, so the cohort
/// rollups lose exactly what `mrr_movements` lost.
const DELETE_MOVEMENTS: &str = "
    WITH old AS (
        DELETE FROM mrr_movements WHERE customer_id = ANY($1)
        RETURNING customer_id, day, kind, movement, fx_drift
    )
    SELECT day, kind, movement, fx_drift,
           date_trunc('month', (min(day) FILTER (WHERE kind = 'new_business')
                                OVER (PARTITION BY customer_id))::timestamp)::date AS cohort
    FROM old";

/// One change of a cohort rollup: (cohort month, day or month, customers,
/// MRR).
type CohortChange = (NaiveDate, NaiveDate, i64, i64);

/// How the cohort rollups change: (customers, MRR) per (cohort month, day).
#[derive(Debug, Default)]
struct CohortDeltas(BTreeMap<(NaiveDate, NaiveDate), (i64, i64)>);

impl CohortDeltas {
    /// Adds (`sign` 1) or takes away (-1) a movement of a customer of
    /// `cohort` changing their MRR by `change`: new business and
    /// reactivation bring a paying customer, churn takes one away.
    fn add(
        &mut self,
        cohort: NaiveDate,
        day: NaiveDate,
        kind: MovementKind,
        change: i64,
        sign: i64,
    ) {
        let customers = match kind {
            MovementKind::NewBusiness | MovementKind::Reactivation => 1,
            MovementKind::Churn => -1,
            MovementKind::Expansion | MovementKind::Contraction | MovementKind::FxDrift => 0,
        };
        let delta = self.0.entry((cohort, day)).or_default();
        delta.0 += sign * customers;
        delta.1 += sign * change;
    }

    /// The non-zero changes per (cohort, day), in key order.
    fn days(&self) -> Vec<CohortChange> {
        self.0
            .iter()
            .filter(|(_, delta)| **delta != (0, 0))
            .map(|((cohort, day), (customers, mrr))| (*cohort, *day, *customers, *mrr))
            .collect()
    }

    /// The non-zero changes per (cohort, month), in key order.
    fn months(&self) -> Vec<CohortChange> {
        let mut months: BTreeMap<(NaiveDate, NaiveDate), (i64, i64)> = BTreeMap::new();
        for ((cohort, day), (customers, mrr)) in &self.0 {
            let month = Granularity::Month.bucket_start(*day);
            let delta = months.entry((*cohort, month)).or_default();
            delta.0 += customers;
            delta.1 += mrr;
        }
        months
            .into_iter()
            .filter(|(_, delta)| *delta != (0, 0))
            .map(|((cohort, month), (customers, mrr))| (cohort, month, customers, mrr))
            .collect()
    }
}

async fn apply_cohort_deltas(tx: &mut TenantTx, deltas: &CohortDeltas) -> Result<(), DbError> {
    add_cohort_changes(tx, "revenue_cohort_days", "day", &deltas.days()).await?;
    add_cohort_changes(tx, "revenue_cohorts", "month", &deltas.months()).await
}

/// Adds `changes` to `table` (keyed by cohort month and `period`, a day or
/// a month), then deletes the rows the changes brought to zero, so that the
/// table holds the same rows as after a rebuild.
async fn add_cohort_changes(
    tx: &mut TenantTx,
    table: &'static str,
    period: &'static str,
    changes: &[CohortChange],
) -> Result<(), DbError> {
    if changes.is_empty() {
        return Ok(());
    }
    let rows: Vec<(NaiveDate, NaiveDate, bool)> = sqlx::query_as(&format!(
        "INSERT INTO {table} AS r (tenant_id, cohort_month, {period}, customers, mrr)
         SELECT current_tenant_id(), x.*
         FROM unnest($1::date[], $2::date[], $3::bigint[], $4::bigint[]) AS x
         ORDER BY 2, 3
         ON CONFLICT (tenant_id, cohort_month, {period}) DO UPDATE SET
             customers = r.customers + excluded.customers,
             mrr = r.mrr + excluded.mrr
         RETURNING cohort_month, {period}, customers = 0 AND mrr = 0 AS zero"
    ))
    .bind(changes.iter().map(|c| c.0).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.1).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.2).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.3).collect::<Vec<_>>())
    .fetch_all(tx.conn())
    .await?;
    let zeroed: Vec<(NaiveDate, NaiveDate)> = rows
        .into_iter()
        .filter_map(|(cohort, key, zero)| zero.then_some((cohort, key)))
        .collect();
    if zeroed.is_empty() {
        return Ok(());
    }
    // Rows this transaction has just locked, so no other writer can have
    // changed them since.
    sqlx::query(&format!(
        "DELETE FROM {table} r
         USING unnest($1::date[], $2::date[]) AS z (cohort_month, key)
         WHERE r.cohort_month = z.cohort_month AND r.{period} = z.key
           AND r.customers = 0 AND r.mrr = 0"
    ))
    .bind(zeroed.iter().map(|z| z.0).collect::<Vec<_>>())
    .bind(zeroed.iter().map(|z| z.1).collect::<Vec<_>>())
    .execute(tx.conn())
    .await?;
    Ok(())
}
