//! Crash safety of ingestion: a message `POST /v1/batch` acknowledged is
//! stored, exactly once, even when the server is killed with SIGKILL in the
//! middle of a stream and the SDKs retry everything after the restart.
//!
//! The promise under test: `/v1/batch` answers 200 only once the batch
//! writer has committed the rows, and a retried message (same tenant, same
//! `messageId`) is dropped through `event_message_ids`. The test holds the
//! real binary to it over real sockets:
//!
//! 1. `northstar serve` runs as a child process on the test's database;
//!    [`CLIENTS`] SDK-like clients send batches of 50–200 track messages with
//!    unique ids (`c{client}-b{batch}-m{index}`), recording which batches got
//!    a 200.
//! 2. Once [`ACKED_BEFORE_KILL`] batches are acknowledged and at least
//!    [`IN_FLIGHT_AT_KILL`] requests are waiting for their answer, the server
//!    gets SIGKILL: no drain, no graceful shutdown. The test runs on one
//!    thread, so nothing moves between that check and the kill. The requests
//!    in flight fail and the clients stop.
//! 3. Before anything is retried, every acknowledged id must already be in
//!    the database, once.
//! 4. The server restarts on the same database; every batch without a 200 is
//!    re-sent until it gets one (some were committed by the killed server,
//!    which died before answering: their retries must be dropped), and a
//!    sample of acknowledged batches is re-sent with a `sentAt` 40 days
//!    later, so that their skew-corrected time falls in another monthly
//!    partition, where the events key (which holds the time) cannot catch
//!    the duplicate: only the dedupe set can.
//! 5. As the superuser: no message id is stored twice, the ids stored are
//!    exactly the ids sent, the dedupe set holds one hash per event, and the
//!    `stored` counter agrees with the table.
//!
//! The test fails rather than passes vacuously when the kill interrupted no
//! request. The servers are killed by a guard in every path, and their logs
//! are printed when the test fails.

use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, SecondsFormat, Utc};
use nix::{
    sys::signal::{self, Signal},
    unistd::Pid,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::{
    sync::{Semaphore, watch},
    task::JoinSet,
    time::Instant,
};
use uuid::Uuid;

use crate::support::TestApp;

/// Concurrent clients before the kill.
const CLIENTS: usize = 8;
/// Batches acknowledged before the server is killed.
const ACKED_BEFORE_KILL: usize = 30;
/// Requests waiting for their answer when the server is killed.
const IN_FLIGHT_AT_KILL: usize = 4;
/// A client's most batches: a bound in case the kill never comes.
const MAX_BATCHES_PER_CLIENT: usize = 1_000;
/// Concurrent re-sends after the restart.
const RESENDERS: usize = 4;
/// Attempts per re-sent batch before the test gives up on it.
const RESEND_ATTEMPTS: u32 = 10;
/// How long a server may take to answer `/readyz`.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// How long the load may take to reach the kill condition.
const LOAD_DEADLINE: Duration = Duration::from_secs(60);
/// Longest wait for one request's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much later the `sentAt` of a re-sent acknowledged batch is.
const RETRY_SENT_AT_SHIFT: chrono::Duration = chrono::Duration::days(40);

// One thread on purpose: nothing runs between the kill condition's check and
// the kill, so "in flight at the kill" is exact as the clients see it.
#[tokio::test(flavor = "current_thread")]
async fn acknowledged_messages_survive_sigkill_and_retries_store_nothing_twice() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let database_url = app.db.admin_url();
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("HTTP client");
    // Whole milliseconds, so the timestamps round-trip through RFC 3339 exactly.
    let original = DateTime::<Utc>::from_timestamp_millis(Utc::now().timestamp_millis() - 60_000)
        .expect("a representable time");

    // 1–2: load, then SIGKILL while requests are in flight.
    let mut first = ServerProcess::start(&database_url, "before the kill");
    first.wait_until_ready(&http).await;
    let (progress, mut watching) = watch::channel(Progress::default());
    let progress = Arc::new(progress);
    let killed = Arc::new(AtomicBool::new(false));
    let mut clients = JoinSet::new();
    for client in 0..CLIENTS {
        clients.spawn(run_client(
            client,
            Target {
                http: http.clone(),
                base: first.base.clone(),
                write_key: acme.write_key.clone(),
                original,
            },
            Arc::clone(&progress),
            Arc::clone(&killed),
        ));
    }
    let kill_condition = tokio::time::timeout(LOAD_DEADLINE, async {
        watching
            .wait_for(|p| p.acked >= ACKED_BEFORE_KILL && p.in_flight >= IN_FLIGHT_AT_KILL)
            .await
            .map(|progress| *progress)
    })
    .await;
    let at_kill = match kill_condition {
        Ok(Ok(progress)) => progress,
        Ok(Err(_)) => panic!(
            "every client stopped before {ACKED_BEFORE_KILL} batches were acknowledged \
             with {IN_FLIGHT_AT_KILL} in flight (last: {:?})",
            *watching.borrow()
        ),
        Err(_) => panic!(
            "no {ACKED_BEFORE_KILL} acknowledged batches with {IN_FLIGHT_AT_KILL} in flight \
             within {LOAD_DEADLINE:?} (last: {:?})",
            *watching.borrow()
        ),
    };
    // No await between the check above and the kill: on this single-threaded
    // runtime no client can move in between.
    killed.store(true, Ordering::SeqCst);
    let exit = first.kill();
    assert_eq!(
        exit.signal(),
        Some(Signal::SIGKILL as i32),
        "the first server did not die of SIGKILL: {exit}"
    );
    let mut attempts = Vec::new();
    while let Some(joined) = tokio::time::timeout(LOAD_DEADLINE, clients.join_next())
        .await
        .expect("the clients stop once the server is gone")
    {
        attempts.extend(joined.expect("a client task panicked"));
    }
    let unexpected: Vec<String> = attempts
        .iter()
        .filter_map(|attempt| match &attempt.outcome {
            Outcome::Refused { status, body } if !is_retryable(*status) => {
                Some(format!("{}: {status} {body}", attempt.batch.label))
            }
            _ => None,
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "batches refused for a reason a retry cannot cure: {unexpected:#?}"
    );

    let mut ledger = Ledger::new(&attempts, at_kill);

    // 3: what the killed server left behind, before any retry.
    let stored = stored_ids(&app).await;
    ledger.note_committed_without_answer(&stored);
    let lost: Vec<&String> = ledger
        .acked_ids()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        ledger.acked_batches >= 1 && ledger.interrupted >= 1,
        "the kill did not land mid-stream: {ledger}"
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged messages are missing after the kill (first: {:?}); {ledger}",
        lost.len(),
        lost.iter().take(10).collect::<Vec<_>>()
    );
    assert_eq!(
        duplicated_ids(&app).await,
        Vec::<Value>::new(),
        "messages stored twice after the kill; {ledger}"
    );

    // 4: restart on the same database and retry.
    let mut second = ServerProcess::start(&database_url, "after the restart");
    second.wait_until_ready(&http).await;
    let mut resends = Vec::new();
    for attempt in &attempts {
        if !matches!(attempt.outcome, Outcome::Acked) {
            resends.push((attempt.batch.clone(), original));
        } else if attempt.is_sampled_for_retry() {
            resends.push((attempt.batch.clone(), original + RETRY_SENT_AT_SHIFT));
        }
    }
    let target = Target {
        http: http.clone(),
        base: second.base.clone(),
        write_key: acme.write_key.clone(),
        original,
    };
    let room = Arc::new(Semaphore::new(RESENDERS));
    let mut resending = JoinSet::new();
    for (batch, sent_at) in resends {
        let target = target.clone();
        let room = Arc::clone(&room);
        resending.spawn(async move {
            let _turn = room
                .acquire_owned()
                .await
                .expect("the semaphore stays open");
            resend_until_acked(&target, &batch, sent_at).await
        });
    }
    let mut failures = Vec::new();
    let mut never_acked = Vec::new();
    while let Some(joined) = resending.join_next().await {
        let resent = joined.expect("a re-send task panicked");
        ledger.resent_requests += resent.requests;
        ledger.resend_failures += resent.failures.len();
        if !resent.acked {
            never_acked.push(resent.label);
        }
        failures.extend(resent.failures);
    }
    assert!(
        never_acked.is_empty(),
        "re-sent batches never acknowledged: {never_acked:?}; failed attempts: {failures:#?}; \
         {ledger}"
    );

    // 5: every message sent is stored, once.
    assert_eq!(
        duplicated_ids(&app).await,
        Vec::<Value>::new(),
        "messages stored twice after the retries; {ledger}"
    );
    let stored = stored_ids(&app).await;
    let sent: HashSet<&String> = ledger.sent_ids().collect();
    let mut missing: Vec<&&String> = sent.iter().filter(|id| !stored.contains(**id)).collect();
    missing.sort();
    let mut unknown: Vec<&String> = stored.iter().filter(|id| !sent.contains(id)).collect();
    unknown.sort();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "stored ids differ from the ids sent: {} missing (first: {:?}), {} never sent \
         (first: {:?}); {ledger}",
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>(),
        unknown.len(),
        unknown.iter().take(10).collect::<Vec<_>>()
    );
    let events = count(&app, "SELECT count(*) AS n FROM events").await;
    let hashes = count(&app, "SELECT count(*) AS n FROM event_message_ids").await;
    assert_eq!(
        (events, hashes),
        (sent.len(), sent.len()),
        "events and dedupe hashes per message sent; {ledger}"
    );
    let counters = counters(&app).await;
    assert_eq!(
        counters.get("stored").copied().unwrap_or_default(),
        sent.len(),
        "the stored counter disagrees with the events table ({counters:?}); {ledger}"
    );
    assert!(
        counters.get("duplicate").copied().unwrap_or_default() >= ledger.resent_acked_messages,
        "the duplicate counter misses re-sent acknowledged messages ({counters:?}); {ledger}"
    );
    eprintln!("ingest crash test: {ledger}; counters {counters:?}");
}

/// Where and as whom a client sends.
#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    base: String,
    write_key: String,
    /// Every message's `originalTimestamp`.
    original: DateTime<Utc>,
}

/// What the clients have done so far, watched by the test to time the kill.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    acked: usize,
    in_flight: usize,
}

/// A batch of messages with unique ids.
#[derive(Debug, Clone)]
struct SentBatch {
    label: String,
    number: usize,
    ids: Vec<String>,
}

impl SentBatch {
    /// Batch `number` of `client`: 50 to 200 messages.
    fn new(client: usize, number: usize) -> Self {
        let size = 50 + (client * 37 + number * 61) % 151;
        SentBatch {
            label: format!("c{client}-b{number}"),
            number,
            ids: (0..size)
                .map(|index| format!("c{client}-b{number}-m{index}"))
                .collect(),
        }
    }

    /// The request body, sent at `sent_at`.
    fn body(&self, original: DateTime<Utc>, sent_at: DateTime<Utc>) -> Value {
        let original = original.to_rfc3339_opts(SecondsFormat::Millis, true);
        let batch: Vec<Value> = self
            .ids
            .iter()
            .enumerate()
            .map(|(index, id)| {
                json!({
                    "type": "track",
                    "messageId": id,
                    "userId": format!("user-{}", index % 17),
                    "event": "Crash Test Step",
                    "properties": {"batch": self.label, "index": index},
                    "originalTimestamp": original,
                })
            })
            .collect();
        json!({
            "batch": batch,
            "sentAt": sent_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        })
    }
}

/// How a request ended.
#[derive(Debug)]
enum Outcome {
    /// 200 with every message accepted.
    Acked,
    /// Any other answer.
    Refused { status: StatusCode, body: String },
    /// No complete answer: connection refused or reset, timeout, cut-off body.
    NoAnswer(String),
}

/// One batch sent before the kill.
struct Attempt {
    batch: SentBatch,
    outcome: Outcome,
    started_after_kill: bool,
    finished_after_kill: bool,
}

impl Attempt {
    fn in_flight_at_kill(&self) -> bool {
        !self.started_after_kill && self.finished_after_kill
    }

    /// Whether this batch, if acknowledged, is re-sent after the restart:
    /// every other one, and every one that was in flight at the kill.
    fn is_sampled_for_retry(&self) -> bool {
        self.batch.number.is_multiple_of(2) || self.in_flight_at_kill()
    }
}

/// Answers an SDK retries.
fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

async fn send_batch(target: &Target, batch: &SentBatch, sent_at: DateTime<Utc>) -> Outcome {
    let sent = target
        .http
        .post(format!("{}/v1/batch", target.base))
        .basic_auth(&target.write_key, None::<&str>)
        .json(&batch.body(target.original, sent_at))
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(err) => return Outcome::NoAnswer(format!("{err:?}")),
    };
    let status = response.status();
    let body = match response.text().await {
        Ok(body) => body,
        Err(err) => return Outcome::NoAnswer(format!("{status}, body cut off: {err:?}")),
    };
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if status == StatusCode::OK
        && parsed["success"] == true
        && parsed["accepted"] == batch.ids.len()
        && parsed.get("rejected").is_none()
    {
        Outcome::Acked
    } else {
        Outcome::Refused { status, body }
    }
}

/// Sends batches until the server stops answering.
async fn run_client(
    client: usize,
    target: Target,
    progress: Arc<watch::Sender<Progress>>,
    killed: Arc<AtomicBool>,
) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for number in 0..MAX_BATCHES_PER_CLIENT {
        let batch = SentBatch::new(client, number);
        let started_after_kill = killed.load(Ordering::SeqCst);
        progress.send_modify(|p| p.in_flight += 1);
        let outcome = send_batch(&target, &batch, target.original).await;
        let acked = matches!(outcome, Outcome::Acked);
        progress.send_modify(|p| {
            p.in_flight -= 1;
            p.acked += usize::from(acked);
        });
        let stop = matches!(outcome, Outcome::NoAnswer(_));
        attempts.push(Attempt {
            batch,
            outcome,
            started_after_kill,
            finished_after_kill: killed.load(Ordering::SeqCst),
        });
        if stop {
            break;
        }
    }
    attempts
}

/// What became of one re-sent batch.
struct Resent {
    label: String,
    /// Whether it finally got a 200.
    acked: bool,
    requests: usize,
    /// Why each failed attempt failed.
    failures: Vec<String>,
}

async fn resend_until_acked(target: &Target, batch: &SentBatch, sent_at: DateTime<Utc>) -> Resent {
    let mut resent = Resent {
        label: batch.label.clone(),
        acked: false,
        requests: 0,
        failures: Vec::new(),
    };
    for attempt in 1..=RESEND_ATTEMPTS {
        resent.requests += 1;
        let (failure, retry) = match send_batch(target, batch, sent_at).await {
            Outcome::Acked => {
                resent.acked = true;
                break;
            }
            Outcome::Refused { status, body } => (
                format!("{}: {status} {body}", batch.label),
                is_retryable(status),
            ),
            Outcome::NoAnswer(err) => (format!("{}: {err}", batch.label), true),
        };
        resent.failures.push(failure);
        if !retry {
            break;
        }
        // Back off as an SDK would before the next attempt.
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
    }
    resent
}

/// The counts the assertions report.
struct Ledger {
    sent: Vec<SentBatch>,
    acked: Vec<SentBatch>,
    acked_batches: usize,
    acked_messages: usize,
    at_kill: Progress,
    in_flight_at_kill: usize,
    interrupted: usize,
    answered_while_dying: usize,
    sent_after_kill: usize,
    unacked_batches: usize,
    unacked_messages: usize,
    committed_without_answer: usize,
    partly_committed: usize,
    resent_acked_batches: usize,
    resent_acked_messages: usize,
    resent_requests: usize,
    resend_failures: usize,
}

impl Ledger {
    fn new(attempts: &[Attempt], at_kill: Progress) -> Self {
        let acked = |a: &&Attempt| matches!(a.outcome, Outcome::Acked);
        let in_flight = attempts.iter().filter(|a| a.in_flight_at_kill());
        let resent_acked: Vec<&Attempt> = attempts
            .iter()
            .filter(acked)
            .filter(|a| a.is_sampled_for_retry())
            .collect();
        Ledger {
            sent: attempts.iter().map(|a| a.batch.clone()).collect(),
            acked: attempts
                .iter()
                .filter(acked)
                .map(|a| a.batch.clone())
                .collect(),
            acked_batches: attempts.iter().filter(acked).count(),
            acked_messages: attempts
                .iter()
                .filter(acked)
                .map(|a| a.batch.ids.len())
                .sum(),
            at_kill,
            in_flight_at_kill: in_flight.clone().count(),
            interrupted: in_flight.clone().filter(|a| !acked(a)).count(),
            answered_while_dying: in_flight.filter(acked).count(),
            sent_after_kill: attempts.iter().filter(|a| a.started_after_kill).count(),
            unacked_batches: attempts.iter().filter(|a| !acked(a)).count(),
            unacked_messages: attempts
                .iter()
                .filter(|a| !acked(a))
                .map(|a| a.batch.ids.len())
                .sum(),
            committed_without_answer: 0,
            partly_committed: 0,
            resent_acked_batches: resent_acked.len(),
            resent_acked_messages: resent_acked.iter().map(|a| a.batch.ids.len()).sum(),
            resent_requests: 0,
            resend_failures: 0,
        }
    }

    fn acked_ids(&self) -> impl Iterator<Item = &String> {
        self.acked.iter().flat_map(|b| &b.ids)
    }

    fn sent_ids(&self) -> impl Iterator<Item = &String> {
        self.sent.iter().flat_map(|b| &b.ids)
    }

    /// Counts the unacknowledged batches the killed server had committed
    /// (wholly, or in part: one request's rows should share a transaction).
    fn note_committed_without_answer(&mut self, stored: &HashSet<String>) {
        let acked: HashSet<&str> = self.acked.iter().map(|b| b.label.as_str()).collect();
        for batch in self
            .sent
            .iter()
            .filter(|b| !acked.contains(b.label.as_str()))
        {
            let present = batch.ids.iter().filter(|id| stored.contains(*id)).count();
            if present == batch.ids.len() {
                self.committed_without_answer += 1;
            } else if present > 0 {
                self.partly_committed += 1;
            }
        }
    }
}

impl std::fmt::Display for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "acknowledged before the kill: {} batches ({} messages); at the kill {} acknowledged \
             and {} in flight as the clients saw it, of which {} were cut off and {} still got \
             their 200; {} batches sent after the kill; {} batches ({} messages) without a 200, \
             of which {} were committed anyway and {} partly; re-sent: those {} plus {} \
             acknowledged batches ({} messages) with a later sentAt, in {} requests ({} failed \
             attempts)",
            self.acked_batches,
            self.acked_messages,
            self.at_kill.acked,
            self.in_flight_at_kill,
            self.interrupted,
            self.answered_while_dying,
            self.sent_after_kill,
            self.unacked_batches,
            self.unacked_messages,
            self.committed_without_answer,
            self.partly_committed,
            self.unacked_batches,
            self.resent_acked_batches,
            self.resent_acked_messages,
            self.resent_requests,
            self.resend_failures,
        )
    }
}

/// Every stored message id, read as the superuser.
async fn stored_ids(app: &TestApp) -> HashSet<String> {
    app.rows("SELECT message_id FROM events")
        .await
        .iter()
        .map(|row| {
            row["message_id"]
                .as_str()
                .expect("message_id is text")
                .to_owned()
        })
        .collect()
}

/// The first ten message ids stored more than once, with their counts.
async fn duplicated_ids(app: &TestApp) -> Vec<Value> {
    app.rows(
        "SELECT message_id, count(*) AS copies FROM events GROUP BY 1 HAVING count(*) > 1
         ORDER BY 1 LIMIT 10",
    )
    .await
}

/// The `n` of a one-row query.
async fn count(app: &TestApp, sql: &str) -> usize {
    let rows = app.rows(sql).await;
    let n = rows
        .first()
        .and_then(|row| row["n"].as_u64())
        .unwrap_or_else(|| panic!("{sql} gave no count: {rows:?}"));
    usize::try_from(n).expect("a count fits a usize")
}

/// The ingestion counters, summed by outcome.
async fn counters(app: &TestApp) -> BTreeMap<String, usize> {
    app.rows("SELECT outcome, sum(count)::bigint AS n FROM ingest_counters GROUP BY 1")
        .await
        .iter()
        .map(|row| {
            let outcome = row["outcome"].as_str().expect("outcome is text").to_owned();
            let n = row["n"].as_u64().expect("a count");
            (outcome, usize::try_from(n).expect("a count fits a usize"))
        })
        .collect()
}

/// `northstar serve` as a child process on a port of its own, logging to a
/// file. Dropping it kills the server if it still runs, and prints its log
/// when the test is failing.
struct ServerProcess {
    child: Child,
    label: &'static str,
    base: String,
    log_path: PathBuf,
}

impl ServerProcess {
    fn start(database_url: &str, label: &'static str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("the port's address")
            .port();
        let bind = format!("127.0.0.1:{port}");
        let log_path = std::env::temp_dir().join(format!(
            "northstar-ingest-crash-{}.log",
            Uuid::new_v4().simple()
        ));
        let log = File::create(&log_path).expect("create the server's log file");
        let child = Command::new(env!("CARGO_BIN_EXE_northstar"))
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("NORTHSTAR_BIND", &bind)
            .env("NORTHSTAR_LOG", "info")
            .env("NORTHSTAR_LOG_FORMAT", "json")
            // Rate limits would only turn batches into 429s: out of the way.
            .env("NORTHSTAR_INGEST_RATE_LIMITS", "free=1000000")
            .env_remove("DATABASE_APP_PASSWORD")
            .env_remove("NORTHSTAR_PUBLIC_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("share the log file"))
            .stderr(log)
            .spawn()
            .expect("start northstar serve");
        ServerProcess {
            child,
            label,
            base: format!("http://{bind}"),
            log_path,
        }
    }

    /// Polls `/readyz` until it answers 200; panics with the log if the
    /// server exits or is not ready in time.
    async fn wait_until_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server process") {
                panic!(
                    "northstar serve ({}) exited with {status} before it was ready:\n{}",
                    self.label,
                    self.log()
                );
            }
            let probe = http
                .get(format!("{}/readyz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if probe.is_ok_and(|response| response.status() == StatusCode::OK) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "northstar serve ({}) not ready after {READY_DEADLINE:?}:\n{}",
                self.label,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) -> ExitStatus {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("a pid fits an i32"));
        signal::kill(pid, Signal::SIGKILL).expect("SIGKILL the server");
        self.child.wait().expect("reap the killed server")
    }

    /// The last lines of the server's log.
    fn log(&self) -> String {
        let text = std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|err| format!("(no log: {err})"));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(200)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- northstar serve ({}) log, last lines ---\n{}",
                self.label,
                self.log()
            );
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}
