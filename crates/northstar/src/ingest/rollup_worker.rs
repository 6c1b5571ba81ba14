//! The rollup worker: every interval it applies what the batch writers
//! recorded in the rollup inbox (`northstar_db::product::inbox`), a chunk
//! per tenant in turn until no tenant has a full chunk left, and runs the
//! rollup rebuilds that settings changes requested. The inbox is durable:
//! what a stopped or crashed worker left is applied by the next one.

use std::time::Duration;

use northstar_db::{DbError, product::inbox::RollupWorker};
use sqlx::postgres::PgConnectOptions;
use tokio::sync::watch;

/// Inbox calls applied in one transaction (whole writer batches, so a
/// chunk may hold a batch more).
pub const CHUNK_CALLS: i64 = 50_000;

/// Runs until `stopping` turns true, connecting with `options`.
pub(super) async fn run(
    options: PgConnectOptions,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let mut worker: Option<RollupWorker> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stopping.changed() => {}
        }
        if *stopping.borrow() {
            break;
        }
        if let Err(err) = apply_pending(&mut worker, &options, &stopping).await {
            tracing::warn!(error = %err, "rollup worker: will retry");
            if matches!(err, DbError::Unavailable(_)) {
                worker = None;
            }
        }
    }
    if let Some(worker) = worker {
        worker.close().await;
    }
}

/// Applies the inbox of every tenant with work, a chunk each in turn,
/// until no tenant has a full chunk left or the worker is stopping. A
/// tenant whose chunk fails is logged and skipped until the next interval.
async fn apply_pending(
    worker: &mut Option<RollupWorker>,
    options: &PgConnectOptions,
    stopping: &watch::Receiver<bool>,
) -> Result<(), DbError> {
    let worker = match worker {
        Some(connected) => connected,
        None => worker.insert(RollupWorker::connect(options).await?),
    };
    let mut failed = Vec::new();
    loop {
        let mut more = false;
        for work in worker.pending().await? {
            if *stopping.borrow() {
                return Ok(());
            }
            if failed.contains(&work.tenant_id) {
                continue;
            }
            let applied = async {
                if work.rebuild {
                    worker.rebuild_requested(work.tenant_id).await?;
                }
                worker.apply_chunk(work.tenant_id, CHUNK_CALLS).await
            }
            .await;
            match applied {
                Ok(calls) => more |= calls >= CHUNK_CALLS.unsigned_abs(),
                Err(err @ DbError::Unavailable(_)) => return Err(err),
                Err(err) => {
                    tracing::error!(tenant_id = %work.tenant_id, error = ?err, "could not apply the rollup inbox");
                    failed.push(work.tenant_id);
                }
            }
        }
        if !more {
            return Ok(());
        }
    }
}
