//! Configuration, read once at start-up from flags and environment
//! variables (each flag's `env` names its variable). The README's
//! configuration table is checked against these definitions by a test.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use axum::http::Uri;

use crate::ingest::{
    IngestSettings,
    pipeline::PipelineSettings,
    rate_limit::{DEFAULT_PLAN_RATES, PlanRates},
};

/// A value that must not appear in logs or `Debug` output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Where the data lives.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseConfig {
    /// PostgreSQL server to use, as a URL with a superuser or the schema
    /// owner (migrations run through it; the app itself connects as
    /// `northstar_app`). Unset: Northstar runs its own cluster in the data
    /// directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<Secret>,

    /// Password for the `northstar_app` role, set by migrations and used to
    /// connect. Unset: connect without one (trust or peer authentication).
    #[arg(
        long,
        env = "DATABASE_APP_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub database_app_password: Option<Secret>,

    /// Directory for Northstar's own state, including the embedded cluster.
    #[arg(
        long,
        env = "NORTHSTAR_DATA_DIR",
        default_value = "./northstar-data",
        global = true
    )]
    pub data_dir: PathBuf,
}

/// Log output.
#[derive(Debug, Clone, clap::Args)]
pub struct LogConfig {
    /// Log filter, in `tracing` directive syntax (`info`, `northstar=debug,info`).
    #[arg(long, env = "NORTHSTAR_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Log format: `json` (one object per line), `pretty`, or `auto` (pretty
    /// on a terminal, JSON otherwise).
    #[arg(
        long,
        env = "NORTHSTAR_LOG_FORMAT",
        value_enum,
        default_value = "auto",
        global = true
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// The HTTP server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerConfig {
    /// Address and port to listen on.
    #[arg(long, env = "NORTHSTAR_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// The URL people and SDKs reach Northstar at. Must be `https://`, except
    /// for `http://localhost` and loopback addresses in development (cookies
    /// then lose `Secure` and the `__Host-` prefix). Default:
    /// `http://<NORTHSTAR_BIND>` when that is a loopback address.
    #[arg(long, env = "NORTHSTAR_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "NORTHSTAR_MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,

    /// Connections in the app's database pool.
    #[arg(long, env = "NORTHSTAR_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,

    /// Longest a single SQL statement may run, in milliseconds.
    #[arg(long, env = "NORTHSTAR_STATEMENT_TIMEOUT_MS", default_value_t = 30_000)]
    pub statement_timeout_ms: u64,

    /// A session ends after this many minutes without a request.
    #[arg(long, env = "NORTHSTAR_SESSION_IDLE_MINUTES", default_value_t = 720)]
    pub session_idle_minutes: u32,

    /// A session ends this many hours after log-in, active or not.
    #[arg(long, env = "NORTHSTAR_SESSION_MAX_HOURS", default_value_t = 168)]
    pub session_max_hours: u32,

    /// Bytes of accepted, not yet written messages held in memory; beyond
    /// it SDK requests get 503 with `Retry-After`.
    #[arg(
        long,
        env = "NORTHSTAR_INGEST_QUEUE_BYTES",
        default_value_t = 67_108_864
    )]
    pub ingest_queue_bytes: usize,

    /// Batch writers, each with its own database connection.
    #[arg(long, env = "NORTHSTAR_INGEST_WRITERS", default_value_t = PipelineSettings::DEFAULT.writers)]
    pub ingest_writers: usize,

    /// Most messages written in one batch (one COPY, one commit).
    #[arg(long, env = "NORTHSTAR_INGEST_BATCH_ROWS", default_value_t = PipelineSettings::DEFAULT.batch_rows)]
    pub ingest_batch_rows: usize,

    /// Milliseconds between the rollup worker's passes over the rollup
    /// inbox: how long the dashboards may lag behind acknowledged events.
    #[arg(long, env = "NORTHSTAR_ROLLUP_INTERVAL_MS", default_value_t = 1000)]
    pub rollup_interval_ms: u64,

    /// Messages per second each write key may send, by tenant plan
    /// (`plan=rate,…`; unknown plans get the lowest); bursts of ten seconds' worth.
    #[arg(long, env = "NORTHSTAR_INGEST_RATE_LIMITS", default_value = DEFAULT_PLAN_RATES)]
    pub ingest_rate_limits: PlanRates,
}

/// Smallest ingestion queue: room for the largest request's rows.
pub const MIN_INGEST_QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// What the HTTP layer needs from the configuration, validated.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `scheme://host[:port]` of the public URL, compared with `Origin`.
    pub public_origin: String,
    /// Whether cookies are `Secure` (and `__Host-` prefixed).
    pub secure_cookies: bool,
    /// Largest accepted REST request body.
    pub max_body_bytes: usize,
    /// Idle session timeout.
    pub session_idle: Duration,
    /// Absolute session lifetime.
    pub session_max: Duration,
    /// Ingestion queue, writers and rate limits.
    pub ingest: IngestSettings,
}

/// A configuration value that cannot work; names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable (and flag) at fault.
    pub variable: &'static str,
    /// Why.
    pub reason: String,
}

impl ServerConfig {
    /// Validates the configuration into what the HTTP layer uses.
    pub fn http_settings(&self) -> Result<HttpSettings, ConfigError> {
        let url = match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if self.bind.ip().is_loopback() => format!("http://{}", self.bind),
            None => {
                return Err(ConfigError {
                    variable: "NORTHSTAR_PUBLIC_URL",
                    reason: format!(
                        "required when NORTHSTAR_BIND ({}) is not a loopback address",
                        self.bind
                    ),
                });
            }
        };
        let (public_origin, secure_cookies) = parse_public_url(&url)?;
        if self.ingest_queue_bytes < MIN_INGEST_QUEUE_BYTES {
            return Err(ConfigError {
                variable: "NORTHSTAR_INGEST_QUEUE_BYTES",
                reason: format!(
                    "must be at least {MIN_INGEST_QUEUE_BYTES} (8 MiB): the largest request must fit"
                ),
            });
        }
        if !(1..=32).contains(&self.ingest_writers) {
            return Err(ConfigError {
                variable: "NORTHSTAR_INGEST_WRITERS",
                reason: "must be between 1 and 32".into(),
            });
        }
        if !(1..=100_000).contains(&self.ingest_batch_rows) {
            return Err(ConfigError {
                variable: "NORTHSTAR_INGEST_BATCH_ROWS",
                reason: "must be between 1 and 100000".into(),
            });
        }
        if !(10..=60_000).contains(&self.rollup_interval_ms) {
            return Err(ConfigError {
                variable: "NORTHSTAR_ROLLUP_INTERVAL_MS",
                reason: "must be between 10 and 60000".into(),
            });
        }
        Ok(HttpSettings {
            public_origin,
            secure_cookies,
            max_body_bytes: self.max_body_bytes,
            session_idle: Duration::from_secs(u64::from(self.session_idle_minutes) * 60),
            session_max: Duration::from_secs(u64::from(self.session_max_hours) * 3600),
            ingest: IngestSettings {
                pipeline: PipelineSettings {
                    queue_bytes: self.ingest_queue_bytes,
                    writers: self.ingest_writers,
                    batch_rows: self.ingest_batch_rows,
                    rollup_interval: Duration::from_millis(self.rollup_interval_ms),
                },
                rates: self.ingest_rate_limits.clone(),
            },
        })
    }
}

/// The origin of a public URL and whether it is served over TLS. Plain
/// HTTP is accepted for loopback hosts only.
pub fn parse_public_url(url: &str) -> Result<(String, bool), ConfigError> {
    let invalid = |reason: String| ConfigError {
        variable: "NORTHSTAR_PUBLIC_URL",
        reason,
    };
    let uri: Uri = url
        .parse()
        .map_err(|err| invalid(format!("{url:?} is not a URL: {err}")))?;
    let host = uri
        .host()
        .ok_or_else(|| invalid(format!("{url:?} has no host")))?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    match uri.scheme_str() {
        Some("https") => Ok((format!("https://{authority}"), true)),
        Some("http") if is_loopback_host(host) => Ok((format!("http://{authority}"), false)),
        Some("http") => Err(invalid(format!(
            "{url:?} is plain HTTP: use https:// (plain HTTP is allowed only for localhost)"
        ))),
        _ => Err(invalid(format!("{url:?} must start with https://"))),
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::parse_public_url;

    #[test]
    fn public_url_must_be_https_except_on_loopback() {
        assert_eq!(
            parse_public_url("https://stats.example.com").ok(),
            Some(("https://stats.example.com".into(), true))
        );
        assert_eq!(
            parse_public_url("http://localhost:8080").ok(),
            Some(("http://localhost:8080".into(), false))
        );
        assert_eq!(
            parse_public_url("http://127.0.0.1:8080").ok(),
            Some(("http://127.0.0.1:8080".into(), false))
        );
        assert!(parse_public_url("http://stats.example.com").is_err());
        assert!(parse_public_url("ftp://localhost").is_err());
    }
}
