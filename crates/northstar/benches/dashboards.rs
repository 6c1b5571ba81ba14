//! Dashboard latency at scale, with the cost of keeping the rollups, and the
//! same numbers computed from raw rows, in one run.
//!
//! 1. **load**: `NS_BENCH_TENANTS` tenants in one database, each a company
//!    from the seeded demo generator loaded the way `northstar demo` loads
//!    it (events through the batch writer, which records them in the rollup
//!    inbox, applied meanwhile by a rollup worker in chunks; billing through
//!    the billing API's functions, which maintain the revenue rollups). The largest has
//!    `--largest-customers` customers and `--largest-events-per-user-day`
//!    (about 10 million events at the defaults); the others are small (a
//!    power law from 30 to `--small-customers`). Reports load rates and the
//!    rollup cost per batch. With `NS_BENCH_DATABASE=<name>` the database is
//!    kept, and a later run with the same name skips the load.
//! 2. **cold**: `--cold-runs` times, a fresh app (new pool: no connection,
//!    catalog or prepared-statement cache) asks each endpoint once for the
//!    largest tenant's two-year range. With `NS_BENCH_RESTART_PG` set to a
//!    command (`pg_ctlcluster 15 main restart`), PostgreSQL is restarted
//!    first, so its shared buffers are empty too; the OS page cache cannot
//!    be dropped in this container.
//! 3. **warm**: `--requests` sequential requests per endpoint, the largest
//!    tenant's two-year range (day granularity, compared with the previous
//!    two years); then one request per endpoint for every tenant.
//! 4. **raw**: the overview's event-derived numbers (sign-ups, average DAU,
//!    MAU on the last day, tickets opened, median first response) computed
//!    straight from `events` for the same period, timed, and checked equal
//!    to the served ones; the ratio raw ÷ warm p50.
//! 5. **rebuild** (unless `--rebuild 0`): `northstar rollups rebuild` of the
//!    largest tenant, timed (it holds the tenant's rollup lock while it runs).
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench -p northstar --bench dashboards
//! ```
//!
//! | variable | flag | default | |
//! |---|---|---|---|
//! | `NS_BENCH_TENANTS` | `--tenants` | 100 | tenants |
//! | `NS_BENCH_LARGEST_CUSTOMERS` | `--largest-customers` | 50000 | customers of the largest |
//! | `NS_BENCH_LARGEST_EVENTS_PER_USER_DAY` | `--largest-events-per-user-day` | 1.4 | its event density |
//! | `NS_BENCH_SMALL_CUSTOMERS` | `--small-customers` | 300 | the other tenants' most customers |
//! | `NS_BENCH_DAYS` | `--days` | 730 | days of history |
//! | `NS_BENCH_REQUESTS` | `--requests` | 200 | warm requests per endpoint |
//! | `NS_BENCH_COLD_RUNS` | `--cold-runs` | 5 | cold samples per endpoint |
//! | `NS_BENCH_SEED` | `--seed` | 7 | generator seed |
//! | `NS_BENCH_REBUILD` | `--rebuild` | 1 | 0: skip the rebuild phase |
//! | `NS_BENCH_DATABASE` | | none | keep the loaded database under this name |
//! | `NS_BENCH_RESTART_PG` | | none | command that restarts PostgreSQL before each cold sample |
//!
//! Timing is reported, never asserted; a raw number that differs from the
//! served one fails the run.

#[allow(
    dead_code,
    reason = "the ingest benchmark's helpers are not all used here"
)]
mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use chrono::{Duration as Days, NaiveDate, Utc};
use northstar::{
    demo::{
        company::{CompanyShape, Market},
        load::{LoadStats, load_company},
    },
    ingest::IngestSettings,
    provision::{NewTenant, provision},
};
use northstar_db::{
    TenantTx, audit::Actor, billing::rollup, connect_app_pool, product,
    provisioning::ProvisionOutcome, roles, testing::TestDatabase,
};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgConnectOptions};
use support::{ServedApp, Stats, round2};
use uuid::Uuid;

const OWNER_EMAIL: &str = "bench-owner@example.com";
const OWNER_PASSWORD: &str = "bench-password-1";
const ENDPOINTS: &[&str] = &["overview", "revenue", "users", "support", "revenue/cohorts"];

struct Config {
    tenants: u32,
    largest_customers: u32,
    largest_density: f64,
    small_customers: u32,
    days: u32,
    requests: usize,
    cold_runs: usize,
    seed: u64,
    rebuild: bool,
    database: Option<String>,
    restart_pg: Option<String>,
}

impl Config {
    fn read() -> Result<Self> {
        let get = |flag: &str, variable: &str, default: u64| -> Result<u64> {
            Ok(support::option(flag, variable)?.unwrap_or(default))
        };
        let config = Config {
            tenants: u32::try_from(get("--tenants", "NS_BENCH_TENANTS", 100)?)?,
            largest_customers: u32::try_from(get(
                "--largest-customers",
                "NS_BENCH_LARGEST_CUSTOMERS",
                50_000,
            )?)?,
            largest_density: support::option(
                "--largest-events-per-user-day",
                "NS_BENCH_LARGEST_EVENTS_PER_USER_DAY",
            )?
            .unwrap_or(1.4),
            small_customers: u32::try_from(get(
                "--small-customers",
                "NS_BENCH_SMALL_CUSTOMERS",
                300,
            )?)?,
            days: u32::try_from(get("--days", "NS_BENCH_DAYS", 730)?)?,
            requests: usize::try_from(get("--requests", "NS_BENCH_REQUESTS", 200)?)?,
            cold_runs: usize::try_from(get("--cold-runs", "NS_BENCH_COLD_RUNS", 5)?)?,
            seed: get("--seed", "NS_BENCH_SEED", 7)?,
            rebuild: get("--rebuild", "NS_BENCH_REBUILD", 1)? != 0,
            database: std::env::var("NS_BENCH_DATABASE").ok(),
            restart_pg: std::env::var("NS_BENCH_RESTART_PG").ok(),
        };
        ensure!(config.tenants >= 1, "at least one tenant");
        ensure!(
            config.small_customers >= 30,
            "small tenants need 30 customers"
        );
        Ok(config)
    }

    /// The customers of tenant `index` (0 is the largest): a power law
    /// from `small_customers` down to 30.
    fn customers(&self, index: u32) -> u32 {
        if index == 0 {
            return self.largest_customers;
        }
        let rank = f64::from(index) / f64::from(self.tenants.max(2) - 1);
        let span = f64::from(self.small_customers) / 30.0;
        (f64::from(self.small_customers) / span.powf(rank)).round() as u32
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "northstar=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::read()?;
    support::main_with_database(|| Ok(run(config)))
}

/// The database the run uses: a fresh one, dropped at the end, or a kept one.
enum Database {
    Fresh(TestDatabase),
    Kept(PgConnectOptions),
}

impl Database {
    async fn open(config: &Config) -> Result<Self> {
        let Some(name) = &config.database else {
            return Ok(Database::Fresh(TestDatabase::create().await));
        };
        let url = std::env::var("DATABASE_URL").context("DATABASE_URL")?;
        let server: PgConnectOptions = url.parse()?;
        let mut admin = PgConnection::connect_with(&server).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&mut admin)
                .await?;
        if !exists {
            admin
                .execute(format!("CREATE DATABASE \"{name}\"").as_str())
                .await?;
        }
        admin.close().await?;
        let options = server.database(name);
        let mut conn = PgConnection::connect_with(&options).await?;
        roles::bootstrap_and_migrate(&mut conn, None).await?;
        conn.close().await?;
        Ok(Database::Kept(options))
    }

    fn admin_options(&self) -> PgConnectOptions {
        match self {
            Database::Fresh(db) => db.admin_options(),
            Database::Kept(options) => options.clone(),
        }
    }

    fn app_options(&self) -> PgConnectOptions {
        self.admin_options().username(roles::APP_ROLE)
    }
}

async fn app_pool(database: &Database) -> Result<PgPool> {
    Ok(connect_app_pool(database.app_options(), 16, Duration::from_secs(120)).await?)
}

async fn run(config: Config) -> Result<()> {
    let database = Database::open(&config).await?;
    let end = Utc::now();
    let app = ServedApp::start(app_pool(&database).await?, IngestSettings::default()).await?;
    let (tenants, loads) = load(&config, &app, end).await?;
    report_load(&loads);
    app.stop().await?;

    let largest = &tenants[0];
    let to = end.date_naive();
    let from = to - Days::days(i64::from(config.days) - 1);
    let cold = cold(&config, &database, &largest.0, from, to).await?;

    let app = ServedApp::start(app_pool(&database).await?, IngestSettings::default()).await?;
    let client = signed_in(&app).await?;
    let mut warm = Vec::new();
    for endpoint in ENDPOINTS {
        let url = dashboard_url(&app.base, &largest.0, endpoint, from, to);
        for _ in 0..5 {
            get(&client, &url).await?;
        }
        let mut samples = Vec::with_capacity(config.requests);
        for _ in 0..config.requests {
            let started = Instant::now();
            get(&client, &url).await?;
            samples.push(started.elapsed());
        }
        warm.push((*endpoint, Stats::of(&samples)));
    }
    let mut across = Vec::new();
    for endpoint in ENDPOINTS {
        let mut samples = Vec::new();
        for (slug, _) in &tenants {
            let url = dashboard_url(&app.base, slug, endpoint, from, to);
            let started = Instant::now();
            get(&client, &url).await?;
            samples.push(started.elapsed());
        }
        across.push((*endpoint, Stats::of(&samples)));
    }
    let served = get(
        &client,
        &dashboard_url(&app.base, &largest.0, "overview", from, to),
    )
    .await?;
    let raw = raw_overview(&database, largest.1, from, to).await?;
    check_raw_equals_served(&raw.numbers, &served)?;
    app.stop().await?;

    let rebuild = if config.rebuild {
        Some(rebuild_largest(&database, largest.1).await?)
    } else {
        None
    };

    let overview_warm = warm
        .iter()
        .find(|(e, _)| *e == "overview")
        .map(|(_, s)| s.p50)
        .unwrap_or(f64::NAN);
    let report = json!({
        "machine": machine(),
        "period": {"from": from, "to": to, "granularity": "day", "compare": "previous_period"},
        "largest_tenant": {
            "customers": config.largest_customers,
            "events_loaded_now": loads.first().map(|l| l.events),
        },
        "cold_ms": cold.iter().map(|(e, s)| (e.to_string(), s.json())).collect::<serde_json::Map<_, _>>(),
        "warm_ms": warm.iter().map(|(e, s)| (e.to_string(), s.json())).collect::<serde_json::Map<_, _>>(),
        "warm_every_tenant_ms": across.iter().map(|(e, s)| (e.to_string(), s.json())).collect::<serde_json::Map<_, _>>(),
        "raw_overview": {
            "ms": round2(raw.elapsed.as_secs_f64() * 1e3),
            "numbers": raw.numbers,
            "ratio_raw_to_served_overview_p50": round2(raw.elapsed.as_secs_f64() * 1e3 / overview_warm),
        },
        "rebuild_largest": rebuild,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Rebuilds the tenant's rollups as `northstar rollups rebuild` does; the
/// seconds of its revenue half and of the whole, and the calls read.
async fn rebuild_largest(database: &Database, tenant: Uuid) -> Result<Value> {
    let pool = app_pool(database).await?;
    let started = Instant::now();
    let mut tx = TenantTx::begin(&pool, tenant).await?;
    rollup::rebuild(&mut tx).await?;
    tx.commit().await?;
    let revenue = started.elapsed();
    let calls = product::rebuild(&pool, tenant).await?;
    let total = started.elapsed();
    pool.close().await;
    Ok(json!({
        "revenue_s": round2(revenue.as_secs_f64()),
        "total_s": round2(total.as_secs_f64()),
        "calls": calls,
    }))
}

/// Provisions and loads the tenants (or finds them loaded); answers each
/// tenant's slug and id, and the load statistics of those loaded now.
async fn load(
    config: &Config,
    app: &ServedApp,
    end: chrono::DateTime<Utc>,
) -> Result<(Vec<(String, Uuid)>, Vec<LoadStats>)> {
    let actor = Actor {
        label: "bench".into(),
        user_id: None,
        request_id: None,
    };
    let mut tenants = Vec::new();
    let mut loads = Vec::new();
    for index in 0..config.tenants {
        let slug = format!("bench-{index:03}");
        let request = NewTenant {
            slug: slug.clone(),
            name: format!("Bench company {index}"),
            owner_email: OWNER_EMAIL.into(),
            owner_name: Some("Bench owner".into()),
            owner_password: Some(OWNER_PASSWORD.into()),
            plan: Some("growth".into()),
        };
        let outcome = provision(&app.state.pool, &app.state.passwords, &request, &actor)
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        let (id, fresh) = match outcome {
            ProvisionOutcome::Created(done) => (done.tenant.id, true),
            ProvisionOutcome::AlreadyExists(tenant) => (tenant.id, false),
            ProvisionOutcome::SlugTaken => anyhow::bail!("{slug} is taken"),
        };
        if fresh {
            let shape = CompanyShape {
                customers: config.customers(index),
                days: config.days,
                end,
                market: if index % 3 == 2 {
                    Market::Europe
                } else {
                    Market::NorthAmerica
                },
                events_per_user_day: if index == 0 {
                    config.largest_density
                } else {
                    CompanyShape::DEFAULT_EVENTS_PER_USER_DAY
                },
            };
            let stats = load_company(
                &app.state.pool,
                id,
                &shape,
                config.seed + u64::from(index),
                index == 0,
            )
            .await?;
            eprintln!(
                "loaded {slug}: {} customers, {} events in {:.0} s",
                stats.customers,
                stats.events,
                stats.total_time.as_secs_f64()
            );
            loads.push(stats);
        }
        tenants.push((slug, id));
    }
    Ok((tenants, loads))
}

fn report_load(loads: &[LoadStats]) {
    let Some(largest) = loads.first() else {
        println!("load: skipped (the kept database is loaded)");
        return;
    };
    let events: u64 = loads.iter().map(|l| l.events_stored).sum();
    let seconds: f64 = loads.iter().map(|l| l.events_time.as_secs_f64()).sum();
    println!(
        "{}",
        json!({
            "load": {
                "tenants": loads.len(),
                "events": events,
                "events_per_second": round2(events as f64 / seconds),
                "largest": {
                    "events": largest.events_stored,
                    "events_s": round2(largest.events_time.as_secs_f64()),
                    "billing_s": round2(largest.billing_time.as_secs_f64()),
                    "batches": largest.batches,
                    "rollup_ms_per_batch": round2(largest.rollups_time.as_secs_f64() * 1e3 / largest.batches.max(1) as f64),
                    "rollup_chunks": largest.rollup_chunks,
                    "rollup_worker_busy_share": round2(largest.rollups_time.as_secs_f64() / largest.events_time.as_secs_f64()),
                },
            }
        })
    );
}

/// Cold samples: a fresh app (and PostgreSQL, when told how) per sample.
async fn cold(
    config: &Config,
    database: &Database,
    slug: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(&'static str, Stats)>> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); ENDPOINTS.len()];
    for run in 0..config.cold_runs {
        if let Some(command) = &config.restart_pg {
            let status = std::process::Command::new("sh")
                .args(["-c", command])
                .status()?;
            ensure!(status.success(), "{command} failed");
        }
        let app = ServedApp::start(app_pool(database).await?, IngestSettings::default()).await?;
        let client = signed_in(&app).await?;
        // Rotate the order, so no endpoint always warms the others' pages.
        for k in 0..ENDPOINTS.len() {
            let i = (k + run) % ENDPOINTS.len();
            let url = dashboard_url(&app.base, slug, ENDPOINTS[i], from, to);
            let started = Instant::now();
            get(&client, &url).await?;
            samples[i].push(started.elapsed());
        }
        app.stop().await?;
    }
    Ok(ENDPOINTS
        .iter()
        .zip(samples)
        .map(|(e, s)| (*e, Stats::of(&s)))
        .collect())
}

/// A client with the bench owner's session cookie.
async fn signed_in(app: &ServedApp) -> Result<reqwest::Client> {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", app.base))
        .header("origin", &app.base)
        .json(&json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD}))
        .send()
        .await?
        .error_for_status()?;
    let cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?
        .to_owned();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, cookie.parse()?);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

fn dashboard_url(base: &str, slug: &str, endpoint: &str, from: NaiveDate, to: NaiveDate) -> String {
    if endpoint == "revenue/cohorts" {
        return format!("{base}/api/v1/tenants/{slug}/dashboard/{endpoint}?from={from}&to={to}");
    }
    format!(
        "{base}/api/v1/tenants/{slug}/dashboard/{endpoint}?from={from}&to={to}\
         &granularity=day&compare=previous_period"
    )
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Value> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    ensure!(status.is_success(), "{url}: {status} {body}");
    Ok(body)
}

/// The overview's event-derived numbers, computed from raw events.
struct Raw {
    numbers: Value,
    elapsed: Duration,
}

/// Persons as the rollups resolve them: the message's user id, else its
/// anonymous id, through `identity_links`.
const RAW_OVERVIEW: &str = "
WITH tz AS (SELECT time_zone, signup_event FROM tenants WHERE id = $3),
calls AS (
    SELECT (e.time AT TIME ZONE tz.time_zone)::date AS day,
           coalesce(l.person_id, coalesce(e.user_id, e.anonymous_id)) AS person,
           e.event, e.type, e.time, e.properties
    FROM events e CROSS JOIN tz
    LEFT JOIN identity_links l
        ON l.tenant_id = $3 AND l.alias_id = coalesce(e.user_id, e.anonymous_id)
    WHERE e.tenant_id = $3 AND e.type IN ('track', 'page', 'screen')
      AND e.time >= ($1::date - 31)::timestamp AT TIME ZONE tz.time_zone
      AND e.time < ($2::date + 1)::timestamp AT TIME ZONE tz.time_zone
), daily AS (
    SELECT day, count(DISTINCT person) AS dau FROM calls WHERE day BETWEEN $1 AND $2 GROUP BY day
), firsts AS (
    SELECT person, min(e.time) AS first_at
    FROM events e CROSS JOIN tz
    LEFT JOIN identity_links l
        ON l.tenant_id = $3 AND l.alias_id = coalesce(e.user_id, e.anonymous_id)
    CROSS JOIN LATERAL (SELECT coalesce(l.person_id, coalesce(e.user_id, e.anonymous_id)) AS person) p
    WHERE e.tenant_id = $3 AND e.type = 'track' AND e.event = tz.signup_event
    GROUP BY person
), tickets AS (
    SELECT c.properties::jsonb ->> 'ticket_id' AS ticket_id,
           min(c.time) FILTER (WHERE c.event = 'Ticket Created') AS created,
           min(c.time) FILTER (WHERE c.event = 'Ticket Replied'
               AND coalesce(c.properties::jsonb ->> 'author_type', 'agent') = 'agent') AS replied
    FROM events c
    WHERE c.tenant_id = $3 AND c.type = 'track' AND c.event IN ('Ticket Created', 'Ticket Replied')
    GROUP BY 1
)
SELECT
    (SELECT count(*) FROM firsts CROSS JOIN tz
     WHERE (first_at AT TIME ZONE tz.time_zone)::date BETWEEN $1 AND $2) AS sign_ups,
    (SELECT coalesce(sum(dau), 0)::float8 / ($2::date - $1::date + 1) FROM daily) AS average_dau,
    (SELECT count(DISTINCT person) FROM calls WHERE day BETWEEN $2::date - 29 AND $2) AS mau,
    (SELECT count(*) FROM tickets CROSS JOIN tz
     WHERE (created AT TIME ZONE tz.time_zone)::date BETWEEN $1 AND $2) AS tickets_opened,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM replied - created))
     FROM tickets CROSS JOIN tz
     WHERE (created AT TIME ZONE tz.time_zone)::date BETWEEN $1 AND $2 AND replied IS NOT NULL)
        AS median_first_response_seconds";

/// Runs [`RAW_OVERVIEW`] as the administrative role, filtering on the
/// tenant explicitly.
async fn raw_overview(
    database: &Database,
    tenant: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Raw> {
    let mut conn = PgConnection::connect_with(&database.admin_options()).await?;
    let started = Instant::now();
    let row: (i64, f64, i64, i64, Option<f64>) = sqlx::query_as(RAW_OVERVIEW)
        .bind(from)
        .bind(to)
        .bind(tenant)
        .fetch_one(&mut conn)
        .await?;
    let elapsed = started.elapsed();
    conn.close().await?;
    Ok(Raw {
        numbers: json!({
            "sign_ups": row.0,
            "average_dau": row.1,
            "mau": row.2,
            "tickets_opened": row.3,
            "median_first_response_seconds": row.4,
        }),
        elapsed,
    })
}

/// Fails the run when a raw number differs from the served overview's.
fn check_raw_equals_served(raw: &Value, served: &Value) -> Result<()> {
    for (raw_name, served_name) in [
        ("sign_ups", "signups"),
        ("average_dau", "average_dau"),
        ("mau", "mau"),
        ("tickets_opened", "tickets_opened"),
        (
            "median_first_response_seconds",
            "median_first_response_seconds",
        ),
    ] {
        let raw_value = raw[raw_name].as_f64();
        let served_value = served[served_name]["value"].as_f64();
        let equal = match (raw_value, served_value) {
            (Some(a), Some(b)) => (a - b).abs() <= 0.01 * a.abs().max(1.0),
            (a, b) => a == b,
        };
        ensure!(
            equal,
            "{raw_name}: raw {raw_value:?}, served {served_value:?}"
        );
    }
    Ok(())
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({"cpus": cpus, "postgres": "same machine", "clients": "in process"})
}
