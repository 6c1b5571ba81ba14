//! The bounded queue between request handlers and the batch writers.
//!
//! A handler submits its request's valid rows (and rejection counts) and
//! waits for the reply: `Ok` only once the batch holding them is committed.
//! The queue is bounded in bytes: a submission that does not fit is refused
//! at once (SDK traffic: 503 with `Retry-After`) or waits for room (imports),
//! so memory stays bounded whatever the load. Writers take everything queued
//! (up to a batch size) in one go, so batches grow with load and latency
//! stays low when it is light.

use std::{sync::Arc, time::Duration};

use northstar_db::{
    DbError,
    ingest::{Batch, BatchWriter, EventRow},
};
use sqlx::postgres::PgConnectOptions;
use tokio::{
    sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch},
    task::JoinSet,
};
use uuid::Uuid;

use super::rollup_worker;

/// Sizes of the queue and the writers.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Bytes of queued messages before new ones are refused.
    pub queue_bytes: usize,
    /// Concurrent batch writers (database connections).
    pub writers: usize,
    /// Most rows in one batch.
    pub batch_rows: usize,
    /// How often the rollup worker applies the rollup inbox.
    pub rollup_interval: Duration,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl PipelineSettings {
    /// `northstar serve`'s defaults: a 64 MiB queue, 2 writers, 5,000-row
    /// batches, rollups applied every second.
    pub const DEFAULT: PipelineSettings = PipelineSettings {
        queue_bytes: 64 * 1024 * 1024,
        writers: 2,
        batch_rows: 5000,
        rollup_interval: Duration::from_secs(1),
    };
}

/// Whether a submission may wait for room in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Refuse at once ([`PipelineError::Full`]): SDKs retry after a delay.
    Refuse,
    /// Wait for room: bulk imports, which stream at the writers' pace.
    Wait,
}

/// Why a submission was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The queue is full; retry later.
    #[error("the ingestion queue is full")]
    Full,
    /// The submission is larger than the whole queue.
    #[error("a submission larger than the ingestion queue ({limit} bytes)")]
    TooLarge {
        /// The queue's size in bytes.
        limit: usize,
    },
    /// The writers stopped (shutdown).
    #[error("ingestion is shutting down")]
    Closed,
    /// The batch could not be committed.
    #[error("could not store the batch")]
    Write(#[source] Arc<DbError>),
}

struct Submission {
    tenant_id: Uuid,
    rows: Vec<EventRow>,
    rejected: Vec<(&'static str, u64)>,
    _room: OwnedSemaphorePermit,
    reply: oneshot::Sender<Result<(), PipelineError>>,
}

/// Room held in the queue, released once the rows put in it are written.
pub struct Room(OwnedSemaphorePermit);

/// Handle to submit rows; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    sender: mpsc::UnboundedSender<Submission>,
    room: Arc<Semaphore>,
    queue_bytes: usize,
}

/// The writer tasks and the rollup worker. Dropping this aborts them;
/// [`Writers::drain`] stops them cleanly.
pub struct Writers {
    tasks: JoinSet<()>,
    shutdown: watch::Sender<bool>,
    room: Arc<Semaphore>,
}

impl Writers {
    /// Refuses new submissions, writes everything already queued, and
    /// waits for the writers to stop.
    pub async fn drain(mut self) {
        self.room.close();
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Pipeline {
    /// Starts `settings.writers` writers and the rollup worker, connecting
    /// with `options`.
    pub fn start(options: PgConnectOptions, settings: &PipelineSettings) -> (Pipeline, Writers) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        let (shutdown, stopping) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for number in 0..settings.writers.max(1) {
            tasks.spawn(run_writer(
                number,
                options.clone(),
                Arc::clone(&receiver),
                stopping.clone(),
                settings.batch_rows.max(1),
            ));
        }
        tasks.spawn(rollup_worker::run(
            options.clone(),
            settings.rollup_interval,
            stopping.clone(),
        ));
        let queue_bytes = settings.queue_bytes.clamp(1, u32::MAX as usize);
        let room = Arc::new(Semaphore::new(queue_bytes));
        let pipeline = Pipeline {
            sender,
            room: Arc::clone(&room),
            queue_bytes,
        };
        let writers = Writers {
            tasks,
            shutdown,
            room,
        };
        (pipeline, writers)
    }

    /// Queues `rows` of `tenant_id` and the counts of its rejected messages
    /// by reason code; returns once they are committed.
    pub async fn submit(
        &self,
        tenant_id: Uuid,
        rows: Vec<EventRow>,
        rejected: Vec<(&'static str, u64)>,
        when_full: WhenFull,
    ) -> Result<(), PipelineError> {
        let bytes = rows.iter().map(approximate_size).sum::<usize>();
        let room = self.reserve(bytes, when_full).await?;
        self.submit_in(room, tenant_id, rows, rejected).await
    }

    /// Takes `bytes` of room in the queue before the rows exist, so that a
    /// full queue refuses a request before its messages are validated.
    pub async fn reserve(&self, bytes: usize, when_full: WhenFull) -> Result<Room, PipelineError> {
        let too_large = PipelineError::TooLarge {
            limit: self.queue_bytes,
        };
        if bytes > self.queue_bytes {
            return Err(too_large);
        }
        let permits = u32::try_from(bytes.max(1)).map_err(|_| too_large)?;
        let permit = match when_full {
            WhenFull::Refuse => Arc::clone(&self.room)
                .try_acquire_many_owned(permits)
                .map_err(|_| PipelineError::Full)?,
            WhenFull::Wait => Arc::clone(&self.room)
                .acquire_many_owned(permits)
                .await
                .map_err(|_| PipelineError::Closed)?,
        };
        Ok(Room(permit))
    }

    /// Queues rows in room reserved for them; returns once they are committed.
    pub async fn submit_in(
        &self,
        room: Room,
        tenant_id: Uuid,
        rows: Vec<EventRow>,
        rejected: Vec<(&'static str, u64)>,
    ) -> Result<(), PipelineError> {
        let (reply, replied) = oneshot::channel();
        self.sender
            .send(Submission {
                tenant_id,
                rows,
                rejected,
                _room: room.0,
                reply,
            })
            .map_err(|_| PipelineError::Closed)?;
        replied.await.map_err(|_| PipelineError::Closed)?
    }

    /// Bytes of queued and in-flight submissions.
    pub fn queued_bytes(&self) -> usize {
        self.queue_bytes - self.room.available_permits()
    }
}

/// Memory a row holds while queued, near enough to bound the queue.
pub fn approximate_size(row: &EventRow) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    std::mem::size_of::<EventRow>()
        + row.message_id.len()
        + text(&row.event)
        + text(&row.user_id)
        + text(&row.anonymous_id)
        + text(&row.group_id)
        + text(&row.previous_id)
        + text(&row.properties)
        + text(&row.context)
}

type Receiver = Arc<Mutex<mpsc::UnboundedReceiver<Submission>>>;

async fn run_writer(
    number: usize,
    options: PgConnectOptions,
    queue: Receiver,
    mut stopping: watch::Receiver<bool>,
    batch_rows: usize,
) {
    let mut writer: Option<BatchWriter> = None;
    loop {
        let Some(submissions) = next_batch(&queue, &mut stopping, batch_rows).await else {
            break;
        };
        match write_with_retries(&mut writer, &options, &submissions, number).await {
            Ok(()) => reply_all(submissions, &Ok(())),
            Err(err) if submissions.len() > 1 && is_data_error(&err) => {
                // One submission's data broke the batch: write each alone, so
                // only the culprit fails.
                tracing::warn!(writer = number, error = %err, "batch refused; writing its submissions one by one");
                for submission in submissions {
                    let alone = std::slice::from_ref(&submission);
                    let outcome = write_with_retries(&mut writer, &options, alone, number).await;
                    if let Err(err) = &outcome {
                        tracing::error!(writer = number, error = %err, "could not store a submission");
                    }
                    reply_all(vec![submission], &outcome.map_err(Arc::new));
                }
            }
            Err(err) => {
                tracing::error!(writer = number, error = %err, "could not store a batch");
                reply_all(submissions, &Err(Arc::new(err)));
            }
        }
    }
    if let Some(writer) = writer {
        writer.close().await;
    }
}

fn reply_all(submissions: Vec<Submission>, outcome: &Result<(), Arc<DbError>>) {
    for submission in submissions {
        let reply = outcome.clone().map_err(PipelineError::Write);
        // The handler may have gone (client disconnected): nothing to tell.
        let _ = submission.reply.send(reply);
    }
}

/// The next submissions to write together: whatever is queued, up to
/// `batch_rows` rows, waiting for the first; `None` once stopping and empty.
async fn next_batch(
    queue: &Receiver,
    stopping: &mut watch::Receiver<bool>,
    batch_rows: usize,
) -> Option<Vec<Submission>> {
    let mut queue = queue.lock().await;
    let first = if *stopping.borrow() {
        // Shutting down: finish what is queued, then stop.
        queue.try_recv().ok()
    } else {
        tokio::select! {
            first = queue.recv() => first,
            _ = stopping.changed() => queue.try_recv().ok(),
        }
    };
    let first = first?;
    let mut rows = first.rows.len();
    let mut submissions = vec![first];
    while rows < batch_rows {
        match queue.try_recv() {
            Ok(next) => {
                rows += next.rows.len();
                submissions.push(next);
            }
            Err(_) => break,
        }
    }
    Some(submissions)
}

/// Writes the submissions as one batch, reconnecting and retrying up to
/// three times on errors that a retry can cure.
async fn write_with_retries(
    writer: &mut Option<BatchWriter>,
    options: &PgConnectOptions,
    submissions: &[Submission],
    number: usize,
) -> Result<(), DbError> {
    let mut batch = Batch::new();
    for submission in submissions {
        for row in &submission.rows {
            batch.push(row);
        }
        for &(reason, count) in &submission.rejected {
            batch.reject(submission.tenant_id, reason, count);
        }
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match writer {
            Some(connected) => connected.write(&batch).await.map(|_| ()),
            None => match BatchWriter::connect(options).await {
                Ok(connected) => {
                    let connected = writer.insert(connected);
                    connected.write(&batch).await.map(|_| ())
                }
                Err(err) => Err(err),
            },
        };
        match result {
            Ok(()) => return Ok(()),
            Err(err) if attempt < 4 && is_retryable(&err) => {
                tracing::warn!(writer = number, attempt, error = %err, "retrying a batch");
                if matches!(err, DbError::Unavailable(_))
                    && let Some(broken) = writer.take()
                {
                    broken.close().await;
                }
                tokio::time::sleep(Duration::from_millis(100 * (1 << attempt))).await;
            }
            Err(err) => {
                if matches!(err, DbError::Unavailable(_)) {
                    writer.take();
                }
                return Err(err);
            }
        }
    }
}

/// Connection loss, deadlock, serialization failure, a partition dropped
/// under us, or a server shutting down.
fn is_retryable(err: &DbError) -> bool {
    match err {
        DbError::Unavailable(_) => true,
        other => matches!(
            other.sqlstate().as_deref(),
            Some("40001" | "40P01" | "23514" | "57P01" | "57P02" | "57P03")
        ),
    }
}

/// Errors caused by the rows themselves (data exceptions, constraint failures).
fn is_data_error(err: &DbError) -> bool {
    err.sqlstate()
        .is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}
