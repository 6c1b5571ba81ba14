//! Provisioning latency: `POST /api/v1/admin/tenants`, the automated path
//! (no owner password), as a signed-in super-admin calls it over a real
//! socket, against a fresh migrated database.
//!
//! Measured sequentially by one client, after a warm-up that is not counted:
//!
//! - **provision**: a new slug and a new owner each time (`201`);
//! - **repeat**: the same request again (`200`, the idempotent path);
//! - **in-process**: the same `northstar::provision::provision` call the
//!   handler makes, without HTTP, session or CSRF checks;
//! - **baseline**: the floor any provisioning pays, a transaction as
//!   `northstar_app` that sets its tenant context and inserts just the
//!   `tenants` row.
//!
//! The first three and the baseline are interleaved, one of each per round,
//! so that drift on a busy machine hits them alike. Timing is reported, never
//! asserted; any unexpected status fails the run.
//!
//! ```text
//! cargo bench -p northstar --bench provisioning [-- --tenants N]
//! ```
//!
//! `BENCH_TENANTS` also sets N (default 500). `DATABASE_URL` names the
//! server (a superuser URL); unset, `postgres://postgres@127.0.0.1:5432/postgres`.

use std::time::{Duration, Instant};

mod support;

use anyhow::{Context, Result, bail, ensure};
use northstar::{AppState, ingest::IngestSettings, provision::NewTenant};
use northstar_db::{audit::Actor, connect_app_pool, testing::TestDatabase, users};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use sqlx::{Connection, PgPool};
use support::{ServedApp, Stats, round2};
use uuid::Uuid;

const DEFAULT_TENANTS: usize = 500;
const WARM_UP: usize = 20;
const ADMIN_EMAIL: &str = "root@bench.test";
const ADMIN_PASSWORD: &str = "bench super-admin password";
/// As `northstar serve` defaults: `NORTHSTAR_DB_POOL_SIZE`, `NORTHSTAR_STATEMENT_TIMEOUT_MS`.
const POOL_SIZE: u32 = 16;
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> Result<()> {
    support::main_with_database(|| Ok(run(tenant_count()?)))
}

/// `--tenants N` (or `--tenants=N`), else `BENCH_TENANTS`, else 500.
fn tenant_count() -> Result<usize> {
    let count = support::option("--tenants", "BENCH_TENANTS")?.unwrap_or(DEFAULT_TENANTS);
    ensure!(count > 0, "the tenant count must be positive");
    Ok(count)
}

/// A signed-in super-admin's HTTP client.
struct Admin {
    client: reqwest::Client,
    url: String,
    cookie: String,
    csrf: String,
}

impl Admin {
    /// Sends one provisioning request; the time covers sending it and
    /// reading the whole response body.
    async fn provision(&self, body: &Value) -> Result<(StatusCode, Value, Duration)> {
        let started = Instant::now();
        let response = self
            .client
            .post(&self.url)
            .header(header::COOKIE, &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await
            .context("POST /api/v1/admin/tenants")?;
        let status = response.status();
        let bytes = response.bytes().await.context("read the response")?;
        let elapsed = started.elapsed();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, body, elapsed))
    }
}

fn request_body(slug: &str) -> Value {
    json!({
        "slug": slug,
        "name": format!("Bench {slug}"),
        "owner_email": format!("owner@{slug}.test"),
        "owner_name": "Bench Owner",
    })
}

/// Provisions over HTTP and checks the status and `created` flag.
async fn provision_checked(admin: &Admin, slug: &str, repeat: bool) -> Result<Duration> {
    let (status, body, elapsed) = admin.provision(&request_body(slug)).await?;
    let (want_status, want_created) = if repeat {
        (StatusCode::OK, false)
    } else {
        (StatusCode::CREATED, true)
    };
    if status != want_status || body["created"] != json!(want_created) {
        bail!(
            "provisioning {slug:?} (repeat: {repeat}) answered {status}, expected {want_status}: {body}"
        );
    }
    if !repeat && body["owner"]["set_password_token"].as_str().is_none() {
        bail!("provisioning {slug:?} returned no set-password token: {body}");
    }
    Ok(elapsed)
}

/// The handler's own call, in process: validation and the provisioning
/// transaction, without HTTP, session look-up or CSRF check.
async fn provision_in_process(state: &AppState, actor: &Actor, slug: &str) -> Result<Duration> {
    let request = NewTenant {
        slug: slug.to_owned(),
        name: format!("Bench {slug}"),
        owner_email: format!("owner@{slug}.test"),
        owner_name: Some("Bench Owner".into()),
        owner_password: None,
        plan: None,
    };
    let started = Instant::now();
    let outcome = northstar::provision::provision(&state.pool, &state.passwords, &request, actor)
        .await
        .map_err(|err| anyhow::anyhow!("in-process provisioning of {slug:?}: {err:?}"))?;
    let elapsed = started.elapsed();
    match outcome {
        northstar_db::provisioning::ProvisionOutcome::Created(_) => Ok(elapsed),
        _ => bail!("in-process provisioning of {slug:?} did not create a tenant"),
    }
}

/// The floor: one transaction as the app role that sets its tenant context
/// and inserts the `tenants` row, nothing else.
async fn baseline_insert(pool: &PgPool, slug: &str) -> Result<Duration> {
    let id = Uuid::now_v7();
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('app.tenant_id', $1, true)")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(slug)
        .bind(format!("Bench {slug}"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(started.elapsed())
}

async fn run(tenants: usize) -> Result<()> {
    let db = TestDatabase::create().await;
    let mut admin_conn = db.admin().await;
    let server_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut admin_conn)
        .await?;

    // The app as `northstar serve` builds it, on a socket of its own.
    let pool = connect_app_pool(db.app_options(), POOL_SIZE, STATEMENT_TIMEOUT)
        .await
        .context("connect as northstar_app")?;
    let app = ServedApp::start(pool.clone(), IngestSettings::default()).await?;
    let (state, base) = (app.state.clone(), app.base.clone());
    let client = reqwest::Client::builder().build().context("HTTP client")?;
    let admin = sign_in_superadmin(&state, &client, &base).await?;
    let actor = Actor {
        label: format!("user:{ADMIN_EMAIL}"),
        user_id: Some(admin.1),
        request_id: None,
    };
    let admin = admin.0;

    println!(
        "provisioning benchmark: {tenants} tenants (+{WARM_UP} warm-up) on PostgreSQL {server_version}, \
         {} CPUs, server at {base}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    for i in 0..WARM_UP {
        provision_checked(&admin, &format!("warm-h-{i:03}"), false).await?;
        provision_checked(&admin, &format!("warm-h-{i:03}"), true).await?;
        provision_in_process(&state, &actor, &format!("warm-p-{i:03}")).await?;
        baseline_insert(&pool, &format!("warm-b-{i:03}")).await?;
    }

    let mut provision = Vec::with_capacity(tenants);
    let mut in_process = Vec::with_capacity(tenants);
    let mut baseline = Vec::with_capacity(tenants);
    for i in 0..tenants {
        provision.push(provision_checked(&admin, &format!("bench-h-{i:06}"), false).await?);
        in_process.push(provision_in_process(&state, &actor, &format!("bench-p-{i:06}")).await?);
        baseline.push(baseline_insert(&pool, &format!("bench-b-{i:06}")).await?);
    }
    let mut repeat = Vec::with_capacity(tenants);
    for i in 0..tenants {
        repeat.push(provision_checked(&admin, &format!("bench-h-{i:06}"), true).await?);
    }

    // Everything that should exist does, and nothing else.
    let expected = i64::try_from(3 * (WARM_UP + tenants))?;
    let (tenant_rows, audit_rows): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM audit_log)")
            .fetch_one(&mut admin_conn)
            .await?;
    ensure!(
        tenant_rows == expected,
        "{tenant_rows} tenants rows, expected {expected}"
    );
    ensure!(
        audit_rows == i64::try_from(2 * (WARM_UP + tenants))?,
        "{audit_rows} audit rows, expected one per provisioned tenant"
    );

    let provision = Stats::of(&provision);
    let repeat = Stats::of(&repeat);
    let in_process = Stats::of(&in_process);
    let baseline = Stats::of(&baseline);
    let ratio = provision.p95 / baseline.p95;

    println!();
    println!(
        "{:<46} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "sequential, one client", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms", "per s"
    );
    for (label, stats) in [
        ("POST /admin/tenants, new (201)", &provision),
        ("POST /admin/tenants, repeat (200)", &repeat),
        ("provision() in process, no HTTP/auth", &in_process),
        ("baseline: tx + tenant context + tenants row", &baseline),
    ] {
        println!(
            "{label:<46} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.1}",
            stats.n,
            stats.p50,
            stats.p95,
            stats.p99,
            stats.max,
            stats.mean,
            stats.per_second()
        );
    }
    println!();
    println!(
        "provisioning p95 / baseline p95 = {:.2} / {:.2} ms = {ratio:.1}x   \
         (aim: p95 < 50 ms; seed documents: < 5 s is excellent)",
        provision.p95, baseline.p95
    );
    println!(
        "{}",
        json!({
            "bench": "provisioning",
            "tenants": tenants,
            "warm_up": WARM_UP,
            "postgres": server_version,
            "cpus": std::thread::available_parallelism().map_or(0, usize::from),
            "provision_ms": provision.json(),
            "repeat_ms": repeat.json(),
            "in_process_ms": in_process.json(),
            "baseline_ms": baseline.json(),
            "provision_p95_over_baseline_p95": round2(ratio),
        })
    );

    drop(admin);
    drop(client);
    app.stop().await?;
    admin_conn.close().await?;
    drop(db);
    Ok(())
}

/// Creates the super-admin and signs it in over HTTP; returns the client
/// and the user id.
async fn sign_in_superadmin(
    state: &AppState,
    client: &reqwest::Client,
    base: &str,
) -> Result<(Admin, Uuid)> {
    let hash = {
        use argon2::{
            Argon2, PasswordHasher,
            password_hash::{SaltString, rand_core::OsRng},
        };
        Argon2::default()
            .hash_password(ADMIN_PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
            .map_err(|err| anyhow::anyhow!("hash the admin password: {err}"))?
            .to_string()
    };
    let mut conn = state.pool.acquire().await?;
    let (user, _) = users::find_or_create(&mut conn, ADMIN_EMAIL, "Bench admin", Some(&hash))
        .await
        .map_err(|err| anyhow::anyhow!("create the super-admin: {err:?}"))?;
    drop(conn);
    users::set_superadmin(&state.pool, user.id, true)
        .await
        .map_err(|err| anyhow::anyhow!("make the super-admin: {err:?}"))?;

    let response = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .context("POST /api/v1/auth/login")?;
    let status = response.status();
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("northstar_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body: Value = response.json().await.context("log-in response")?;
    if status != StatusCode::OK {
        bail!("log-in answered {status}: {body}");
    }
    let cookie = cookie.context("log-in set no session cookie")?;
    let csrf = body["csrf_token"]
        .as_str()
        .context("log-in returned no csrf_token")?
        .to_owned();
    Ok((
        Admin {
            client: client.clone(),
            url: format!("{base}/api/v1/admin/tenants"),
            cookie,
            csrf,
        },
        user.id,
    ))
}
