//! What the benchmarks share: the database they run on, their command-line
//! options, the app served on a socket, and latency summaries.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result};
use northstar::{
    AppState,
    auth::passwords::Passwords,
    build_router,
    config::HttpSettings,
    ingest::{IngestSettings, pipeline::Writers},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The server used when `DATABASE_URL` is unset: this machine kind's.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Runs `run` on a multi-threaded runtime, with `DATABASE_URL` set.
///
/// `TestDatabase` reads `DATABASE_URL` itself, and setting a variable in
/// this process is `unsafe`; without it, this same binary runs again with it.
pub fn main_with_database<F: Future<Output = Result<()>>>(
    run: impl FnOnce() -> Result<F>,
) -> Result<()> {
    if std::env::var_os("DATABASE_URL").is_none() {
        eprintln!("DATABASE_URL is unset; using {DEFAULT_DATABASE_URL}");
        let status = std::process::Command::new(std::env::current_exe().context("current exe")?)
            .args(std::env::args_os().skip(1))
            .env("DATABASE_URL", DEFAULT_DATABASE_URL)
            .status()
            .context("re-run the benchmark with DATABASE_URL set")?;
        std::process::exit(status.code().unwrap_or(1));
    }
    let future = run()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(future)
}

/// The app as `northstar serve` builds it (`build_router` over
/// `AppState::new`), on a loopback socket of its own, until [`ServedApp::stop`].
pub struct ServedApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The state the router was built from.
    pub state: AppState,
    writers: Writers,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

impl ServedApp {
    /// Serves the app over `pool` with plain-HTTP loopback settings and `ingest`.
    pub async fn start(pool: PgPool, ingest: IngestSettings) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let settings = HttpSettings {
            public_origin: base.clone(),
            secure_cookies: false,
            max_body_bytes: 1_048_576,
            session_idle: Duration::from_secs(12 * 3600),
            session_max: Duration::from_secs(7 * 24 * 3600),
            ingest,
        };
        let passwords = Passwords::new().context("password hasher")?;
        let (state, writers) = AppState::new(pool, settings, passwords);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(
                listener,
                build_router(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
        );
        Ok(ServedApp {
            base,
            state,
            writers,
            stop,
            server,
        })
    }

    /// Stops serving, writes what the ingestion queue still holds, and
    /// closes the pool.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.server
            .await
            .context("server task")?
            .context("server")?;
        self.writers.drain().await;
        self.state.pool.close().await;
        Ok(())
    }
}

/// `--flag N` or `--flag=N`, else the environment variable. Other arguments
/// (cargo passes `--bench`) are ignored.
pub fn option<T: std::str::FromStr>(flag: &str, variable: &str) -> Result<Option<T>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut value = std::env::var(variable).ok();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == flag {
            value = Some(
                iter.next()
                    .with_context(|| format!("{flag} needs a value"))?
                    .clone(),
            );
        } else if let Some(v) = arg.strip_prefix(flag).and_then(|v| v.strip_prefix('=')) {
            value = Some(v.to_owned());
        }
    }
    value
        .map(|v| {
            v.trim()
                .replace('_', "")
                .parse()
                .map_err(|_| anyhow::anyhow!("{flag} / {variable}: {v:?} is not a number"))
        })
        .transpose()
}

/// Latency summary, in milliseconds.
pub struct Stats {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    total: f64,
}

impl Stats {
    /// The summary of `samples`.
    pub fn of(samples: &[Duration]) -> Stats {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let total: f64 = ms.iter().sum();
        Stats {
            n: ms.len(),
            p50: percentile(&ms, 50.0),
            p95: percentile(&ms, 95.0),
            p99: percentile(&ms, 99.0),
            max: ms.last().copied().unwrap_or(f64::NAN),
            mean: total / ms.len() as f64,
            total,
        }
    }

    /// Sequential operations per second: n over the summed latencies.
    pub fn per_second(&self) -> f64 {
        self.n as f64 / (self.total / 1e3)
    }

    /// The summary as JSON, to three decimals.
    pub fn json(&self) -> Value {
        json!({
            "n": self.n,
            "p50": round3(self.p50),
            "p95": round3(self.p95),
            "p99": round3(self.p99),
            "max": round3(self.max),
            "mean": round3(self.mean),
            "per_second": round3(self.per_second()),
        })
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `x` to two decimals.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `x` to three decimals.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
