//! Loads a generated company into one tenant, through the same repository
//! functions and batch writer as the API and ingestion.
//!
//! Order matters for a load that stops half-way: the tenant's settings
//! first (the product rollups depend on its time zone, sign-up event and
//! onboarding steps), then the events, then the billing
//! data in one transaction. `northstar demo` loads a tenant only while it
//! has no billing customers, so an interrupted load is redone on the next
//! run, its events deduplicated by message id, rather than left half-done.

use std::{
    io::IsTerminal,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use northstar_db::{
    TenantTx,
    billing::{customers, exchange_rates, invoices, plans, rollup},
    ingest::{Batch, BatchWriter},
    product::{self, inbox::RollupWorker},
    tenants::{self, TenantChanges},
};
use sqlx::{PgPool, postgres::PgConnectOptions};
use tokio::{
    sync::{Mutex, mpsc, watch},
    task::JoinSet,
};
use uuid::Uuid;

use crate::ingest::rollup_worker;

use super::company::{Company, CompanyShape, ONBOARDING_STEPS, SIGNUP_EVENT};

/// Rows per batch written (one `COPY`, one commit), as ingestion's default.
const BATCH_ROWS: u64 = 5_000;
/// Concurrent batch writers (connections), as ingestion's default.
const EVENT_WRITERS: usize = 2;
/// How long the rollup worker waits when the inbox is empty.
const ROLLUP_IDLE: Duration = Duration::from_millis(200);
/// Batches generated ahead of the writers.
const BATCHES_AHEAD: usize = 4;
/// Longest event retention a tenant may have, in days.
const MAX_RETENTION_DAYS: i32 = 3660;

/// What a load stored and how long it took.
#[derive(Debug, Clone, Default)]
pub struct LoadStats {
    /// Billing customers written.
    pub customers: usize,
    /// Invoices written.
    pub invoices: usize,
    /// Events generated.
    pub events: u64,
    /// Events stored for the first time (the rest were already stored).
    pub events_stored: u64,
    /// Event batches written.
    pub batches: u64,
    /// Time spent on events.
    pub events_time: Duration,
    /// Time the rollup worker spent applying the rollup inbox (while the
    /// writers wrote, and after them until it was empty; part of `events_time`).
    pub rollups_time: Duration,
    /// Inbox chunks the rollup worker applied.
    pub rollup_chunks: u64,
    /// Time spent on billing, revenue rollups included.
    pub billing_time: Duration,
    /// Time of the whole load, generation included.
    pub total_time: Duration,
}

/// Generates the company `shape` and `seed` describe and loads it into
/// `tenant_id`: settings, events, then billing with its revenue rollups.
/// `pool` is an app-role pool (Row Level Security applies); the event
/// writers connect like it. With `progress`, bars are drawn on standard
/// error when it is a terminal (`false` for benchmarks and tests).
pub async fn load_company(
    pool: &PgPool,
    tenant_id: Uuid,
    shape: &CompanyShape,
    seed: u64,
    progress: bool,
) -> anyhow::Result<LoadStats> {
    let started = Instant::now();
    let generated_shape = shape.clone();
    let company = Arc::new(
        tokio::task::spawn_blocking(move || Company::generate(&generated_shape, seed))
            .await
            .context("generating the company")?,
    );
    apply_settings(pool, tenant_id, shape).await?;

    let events_started = Instant::now();
    let show = progress && std::io::stderr().is_terminal();
    let bar = if show {
        // A bar needs its length: counting the plan costs a fraction of
        // rendering it, and nothing when no bar is drawn.
        let counted = Arc::clone(&company);
        let total = tokio::task::spawn_blocking(move || counted.event_count())
            .await
            .context("counting the events")?;
        progress_bar(total, "events")?
    } else {
        ProgressBar::hidden()
    };
    let options = pool.connect_options().as_ref().clone();
    let written = load_events(&options, tenant_id, Arc::clone(&company), &bar).await?;
    bar.finish_and_clear();
    let events_time = events_started.elapsed();

    let billing_started = Instant::now();
    let bar = if show {
        progress_bar(company.customer_count() as u64, "customers")?
    } else {
        ProgressBar::hidden()
    };
    let invoices = load_billing(pool, tenant_id, &company, &bar).await?;
    bar.finish_and_clear();
    Ok(LoadStats {
        customers: company.customer_count(),
        invoices,
        events: written.generated,
        events_stored: written.stored,
        batches: written.batches,
        events_time,
        rollups_time: written.rollups,
        rollup_chunks: written.rollup_chunks,
        billing_time: billing_started.elapsed(),
        total_time: started.elapsed(),
    })
}

/// Whether the tenant has any billing customer: a company was loaded.
pub async fn has_billing(pool: &PgPool, tenant_id: Uuid) -> anyhow::Result<bool> {
    let mut tx = TenantTx::begin(pool, tenant_id).await?;
    let some = !customers::list(&mut tx, None, 1).await?.is_empty();
    tx.commit().await?;
    Ok(some)
}

/// Sets the tenant's time zone, reporting currency, sign-up event and
/// onboarding steps (and a retention covering the history), rebuilding
/// whatever rollups a change invalidates, as the settings API does.
async fn apply_settings(
    pool: &PgPool,
    tenant_id: Uuid,
    shape: &CompanyShape,
) -> anyhow::Result<()> {
    let mut tx = TenantTx::begin(pool, tenant_id).await?;
    let before = tenants::current(&mut tx).await?;
    let retention = (i32::try_from(shape.days)
        .unwrap_or(i32::MAX)
        .saturating_add(30))
    .min(MAX_RETENTION_DAYS);
    let after = tenants::update(
        &mut tx,
        TenantChanges {
            time_zone: Some(shape.market.time_zone().into()),
            reporting_currency: Some(shape.market.reporting_currency().into()),
            signup_event: Some(SIGNUP_EVENT.into()),
            onboarding_steps: Some(ONBOARDING_STEPS.map(String::from).to_vec()),
            event_retention_days: (retention > before.event_retention_days).then_some(retention),
            ..TenantChanges::default()
        },
    )
    .await?;
    if (&after.time_zone, &after.reporting_currency)
        != (&before.time_zone, &before.reporting_currency)
    {
        rollup::rebuild(&mut tx).await?;
    }
    let zone_changed = after.time_zone != before.time_zone;
    if zone_changed {
        product::request_rebuild(&mut tx).await?;
    } else if (&after.signup_event, &after.onboarding_steps)
        != (&before.signup_event, &before.onboarding_steps)
    {
        product::rebuild_onboarding(&mut tx).await?;
    }
    tx.commit().await?;
    if zone_changed {
        product::rebuild_if_requested(pool, tenant_id).await?;
    }
    Ok(())
}

/// What the event generator and writers did.
#[derive(Debug, Default)]
struct Written {
    generated: u64,
    stored: u64,
    batches: u64,
    rollups: Duration,
    rollup_chunks: u64,
}

/// Streams the company's events into the tenant: a blocking thread
/// generates batches a few ahead of the writers, and a rollup worker
/// applies what they record in the rollup inbox as they go.
async fn load_events(
    options: &PgConnectOptions,
    tenant_id: Uuid,
    company: Arc<Company>,
    bar: &ProgressBar,
) -> anyhow::Result<Written> {
    let (sender, receiver) = mpsc::channel::<Batch>(BATCHES_AHEAD);
    let generator = tokio::task::spawn_blocking(move || {
        let mut batch = Batch::new();
        let mut generated = 0;
        for row in company.events(tenant_id) {
            generated += 1;
            batch.push(&row);
            if batch.rows() >= BATCH_ROWS
                && sender.blocking_send(std::mem::take(&mut batch)).is_err()
            {
                // The writers stopped: their error is reported.
                return generated;
            }
        }
        if !batch.is_empty() {
            let _ = sender.blocking_send(batch);
        }
        generated
    });
    let receiver = Arc::new(Mutex::new(receiver));
    let mut writers = JoinSet::new();
    for _ in 0..EVENT_WRITERS {
        let receiver = Arc::clone(&receiver);
        let options = options.clone();
        let bar = bar.clone();
        writers.spawn(async move {
            let mut writer = BatchWriter::connect(&options).await?;
            let mut written = Written::default();
            loop {
                let next = receiver.lock().await.recv().await;
                let Some(batch) = next else { break };
                for outcome in writer.write(&batch).await? {
                    written.stored += outcome.stored;
                }
                written.batches += 1;
                bar.inc(batch.rows());
            }
            writer.close().await;
            anyhow::Ok(written)
        });
    }
    // Only the writers hold the receiver now: if they all fail, the
    // generator's next send fails and it stops.
    drop(receiver);
    let (writing, written_all) = watch::channel(false);
    let rollups = tokio::spawn(apply_rollups(options.clone(), tenant_id, written_all));
    let mut total = Written::default();
    while let Some(done) = writers.join_next().await {
        let written = done.context("an event writer")?.context("writing events")?;
        total.stored += written.stored;
        total.batches += written.batches;
    }
    let _ = writing.send(true);
    (total.rollups, total.rollup_chunks) = rollups
        .await
        .context("the rollup worker")?
        .context("applying the rollup inbox")?;
    total.generated = generator.await.context("generating events")?;
    Ok(total)
}

/// Applies the tenant's rollup inbox as the writers fill it, and what is
/// left once `written_all` turns true; answers the time spent applying and
/// the number of chunks.
async fn apply_rollups(
    options: PgConnectOptions,
    tenant_id: Uuid,
    written_all: watch::Receiver<bool>,
) -> anyhow::Result<(Duration, u64)> {
    let mut worker = RollupWorker::connect(&options).await?;
    let mut spent = Duration::ZERO;
    let mut chunks = 0;
    loop {
        let done = *written_all.borrow();
        let started = Instant::now();
        let applied = worker
            .apply_chunk(tenant_id, rollup_worker::CHUNK_CALLS)
            .await?;
        if applied > 0 {
            spent += started.elapsed();
            chunks += 1;
        } else if done {
            break;
        } else {
            tokio::time::sleep(ROLLUP_IDLE).await;
        }
    }
    worker.close().await;
    Ok((spent, chunks))
}

/// Writes plans, exchange rates, customers and their invoices, then
/// rebuilds the revenue rollups, in one transaction: a tenant has billing
/// customers only once its billing is complete. Returns the number of
/// invoices.
///
/// Rebuilding once at the end was measured faster than recomputing each
/// chunk of customers as it is written (5.6 s against 8.8 s for 1,000
/// customers and 4,100 invoices), and parallel transactions did not help.
async fn load_billing(
    pool: &PgPool,
    tenant_id: Uuid,
    company: &Company,
    bar: &ProgressBar,
) -> anyhow::Result<usize> {
    let mut tx = TenantTx::begin(pool, tenant_id).await?;
    tx.plan_each_statement().await?;
    for plan in company.plans() {
        plans::upsert(&mut tx, &plan).await?;
    }
    exchange_rates::put(&mut tx, &company.exchange_rates()).await?;
    let mut written = 0;
    for index in 0..company.customer_count() {
        let billing = company
            .billing(index)
            .with_context(|| format!("no customer {index}"))?;
        customers::upsert(&mut tx, &billing.customer).await?;
        for invoice in &billing.invoices {
            invoices::upsert(&mut tx, invoice, "api").await?;
        }
        written += billing.invoices.len();
        bar.inc(1);
    }
    rollup::rebuild(&mut tx).await?;
    tx.commit().await?;
    Ok(written)
}

/// A bar over `total` items of `what`, on standard error.
fn progress_bar(total: u64, what: &str) -> anyhow::Result<ProgressBar> {
    Ok(
        ProgressBar::new(total).with_style(ProgressStyle::with_template(&format!(
            "  {{bar:40}} {{human_pos}}/{{human_len}} {what} {{per_sec}} {{eta}}"
        ))?),
    )
}
