//! The cost of Row Level Security on one representative tenant query.
//!
//! A seeded, deterministic dataset: 100 tenants and about 1,000,000
//! `audit_log` rows, skewed (tenant #k gets a share proportional to
//! k^-0.72, so the largest has ~10% and the median ~0.6%), with realistic
//! actions and `at` uniform over the last 365 days, inserted in `at` order as
//! an append-only log would be. Then the last-30-days activity breakdown
//!
//! ```sql
//! SELECT action, count(*) FROM audit_log WHERE at >= now() - interval '30 days'
//! GROUP BY action ORDER BY 2 DESC
//! ```
//!
//! runs (a) as `northstar_app` in a transaction that first sets
//! `app.tenant_id`, with no tenant filter of its own (the policy supplies it),
//! and (b) as the superuser (which bypasses RLS) with an explicit
//! `tenant_id = $1`, interleaved, for the largest and the median tenant. It
//! prints percentiles, the ratio RLS / explicit, and `EXPLAIN (ANALYZE,
//! BUFFERS)` of each so the plans can be compared. Timing is reported, never
//! asserted; the two variants must return the same rows.
//!
//! ```text
//! cargo bench -p northstar --bench rls_overhead [-- --iterations N --rows N]
//! ```
//!
//! `BENCH_ITERATIONS` (default 200) and `BENCH_ROWS` (default 1,000,000)
//! also set them. `DATABASE_URL` names the server (a superuser URL); unset,
//! `postgres://postgres@127.0.0.1:5432/postgres`.

use std::time::{Duration, Instant};

#[allow(
    dead_code,
    reason = "this bench queries the database directly; it serves no app"
)]
mod support;

use anyhow::{Context, Result, ensure};
use northstar_db::testing::TestDatabase;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use support::{Stats, round2};
use uuid::Uuid;

const TENANTS: i32 = 100;
/// Tenant #k's share of the rows is proportional to k^-SKEW.
const SKEW: f64 = 0.72;
const DEFAULT_ROWS: u64 = 1_000_000;
const DEFAULT_ITERATIONS: usize = 200;
const WARM_UP: usize = 20;
const SEED: f64 = 0.4242;

const RLS_QUERY: &str = "SELECT action, count(*) FROM audit_log \
     WHERE at >= now() - interval '30 days' GROUP BY action ORDER BY 2 DESC";
macro_rules! explicit_query {
    () => {
        "SELECT action, count(*) FROM audit_log \
         WHERE tenant_id = $1 AND at >= now() - interval '30 days' GROUP BY action ORDER BY 2 DESC"
    };
}
const EXPLICIT_QUERY: &str = explicit_query!();
/// The same text with a comment: sqlx reuses a cached prepared statement for
/// a known text even when asked not to, so the unprepared variant needs its
/// own. Run unprepared (an unnamed statement), it is planned for its tenant
/// every time.
const EXPLICIT_QUERY_UNPREPARED: &str = concat!("/* unprepared */ ", explicit_query!());

fn main() -> Result<()> {
    support::main_with_database(|| {
        let rows: u64 = support::option("--rows", "BENCH_ROWS")?.unwrap_or(DEFAULT_ROWS);
        let iterations: usize =
            support::option("--iterations", "BENCH_ITERATIONS")?.unwrap_or(DEFAULT_ITERATIONS);
        ensure!(
            rows >= u64::try_from(TENANTS)? && iterations > 0,
            "need at least one row per tenant and one iteration"
        );
        Ok(run(rows, iterations))
    })
}

/// Rows per tenant #1..=100: proportional to k^-SKEW, summing to `total`.
fn tenant_rows(total: u64) -> Vec<i32> {
    let weights: Vec<f64> = (1..=TENANTS).map(|k| f64::from(k).powf(-SKEW)).collect();
    let sum: f64 = weights.iter().sum();
    let mut rows: Vec<i32> = weights
        .iter()
        .map(|w| ((total as f64) * w / sum).round().max(1.0) as i32)
        .collect();
    let assigned: i64 = rows.iter().map(|&n| i64::from(n)).sum();
    rows[0] += (total as i64 - assigned) as i32;
    rows
}

/// The deterministic id of tenant #k.
const TENANT_ID_SQL: &str = "md5('northstar-bench-tenant-' || k)::uuid";

async fn seed(admin: &mut PgConnection, rows: &[i32]) -> Result<()> {
    admin
        .execute("SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'")
        .await?;
    sqlx::query("SELECT setseed($1)")
        .bind(SEED)
        .execute(&mut *admin)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO tenants (id, slug, name, plan)
         SELECT {TENANT_ID_SQL}, 'tenant-' || lpad(k::text, 3, '0'), 'Tenant ' || k, 'growth'
         FROM generate_series(1, {TENANTS}) AS k"
    ))
    .execute(&mut *admin)
    .await?;
    let ranks: Vec<i32> = (1..=TENANTS).collect();
    // The actions, weighted by repetition: views dominate, changes are rare.
    sqlx::query(&format!(
        "INSERT INTO audit_log (tenant_id, at, actor, action, target, details, request_id)
         SELECT tenant_id, at, actor, action, target, details, request_id FROM (
             SELECT {tenant_id} AS tenant_id,
                    now() - random() * interval '365 days' AS at,
                    'user:member' || (1 + floor(random() * 25)::int) || '@tenant-' || k || '.test'
                        AS actor,
                    (ARRAY['dashboard.viewed', 'dashboard.viewed', 'dashboard.viewed',
                           'dashboard.viewed', 'dashboard.viewed', 'dashboard.viewed',
                           'dashboard.viewed', 'query.executed', 'query.executed',
                           'query.executed', 'report.exported', 'report.exported',
                           'dashboard.created', 'dashboard.updated', 'member.added',
                           'member.role_changed', 'member.removed', 'api_key.created',
                           'api_key.revoked', 'tenant.updated'])[1 + floor(random() * 20)::int]
                        AS action,
                    'object:' || (1 + floor(random() * 500)::int) AS target,
                    jsonb_build_object('ip', '10.' || k || '.' || floor(random() * 256)::int
                        || '.' || floor(random() * 256)::int) AS details,
                    md5(k || ':' || g) AS request_id
             FROM unnest($1::int4[], $2::int4[]) AS t(k, n), generate_series(1, t.n) AS g
         ) AS generated
         ORDER BY at",
        tenant_id = TENANT_ID_SQL.replace("k)", "t.k)")
    ))
    .bind(&ranks)
    .bind(rows)
    .execute(&mut *admin)
    .await?;
    admin.execute("VACUUM (ANALYZE) tenants, audit_log").await?;
    Ok(())
}

/// One measured tenant.
struct Subject {
    label: &'static str,
    rank: i32,
    id: Uuid,
    rows: i32,
    window_rows: i64,
    rls_query: Vec<Duration>,
    rls_tx: Vec<Duration>,
    explicit: Vec<Duration>,
    explicit_custom: Vec<Duration>,
}

/// The ways the query runs.
#[derive(Clone, Copy)]
enum Variant {
    /// As the app role, RLS supplying the tenant.
    Rls,
    /// As the superuser with `tenant_id = $1`, a prepared statement (as sqlx
    /// runs queries: after five runs PostgreSQL may use a generic plan).
    Explicit,
    /// The same, unprepared: parsed and planned for this tenant every time.
    ExplicitCustom,
}

type Breakdown = Vec<(String, i64)>;

/// As the app: a transaction that sets the tenant, then the query without
/// a tenant filter. Returns (query time, whole transaction time).
async fn run_rls(app: &mut PgConnection, tenant: Uuid) -> Result<(Duration, Duration, Breakdown)> {
    let started = Instant::now();
    let mut tx = app.begin().await?;
    sqlx::query("select set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    let query_started = Instant::now();
    let rows: Breakdown = sqlx::query_as(RLS_QUERY).fetch_all(&mut *tx).await?;
    let query = query_started.elapsed();
    tx.commit().await?;
    Ok((query, started.elapsed(), rows))
}

/// As the owner (superuser: no RLS), with the tenant filter written out.
async fn run_explicit(
    owner: &mut PgConnection,
    tenant: Uuid,
    prepared: bool,
) -> Result<(Duration, Breakdown)> {
    let started = Instant::now();
    let sql = if prepared {
        EXPLICIT_QUERY
    } else {
        EXPLICIT_QUERY_UNPREPARED
    };
    let rows: Breakdown = sqlx::query_as(sql)
        .bind(tenant)
        .persistent(prepared)
        .fetch_all(&mut *owner)
        .await?;
    Ok((started.elapsed(), rows))
}

impl Subject {
    async fn measure(
        &mut self,
        variant: Variant,
        app: &mut PgConnection,
        owner: &mut PgConnection,
    ) -> Result<()> {
        match variant {
            Variant::Rls => {
                let (query, tx, _) = run_rls(app, self.id).await?;
                self.rls_query.push(query);
                self.rls_tx.push(tx);
            }
            Variant::Explicit => self
                .explicit
                .push(run_explicit(owner, self.id, true).await?.0),
            Variant::ExplicitCustom => self
                .explicit_custom
                .push(run_explicit(owner, self.id, false).await?.0),
        }
        Ok(())
    }
}

async fn explain_rls(app: &mut PgConnection, tenant: Uuid) -> Result<Vec<String>> {
    let mut tx = app.begin().await?;
    sqlx::query("select set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS) {RLS_QUERY}"))
        .persistent(false)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(plan)
}

/// The plan for this tenant's value (what an unprepared query gets).
async fn explain_explicit_custom(owner: &mut PgConnection, tenant: Uuid) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS) {EXPLICIT_QUERY}"))
            .bind(tenant)
            .persistent(false)
            .fetch_all(&mut *owner)
            .await?,
    )
}

/// The generic plan of the prepared statement: planned without knowing the
/// tenant, as the RLS statement always is.
async fn explain_explicit_generic(owner: &mut PgConnection, tenant: Uuid) -> Result<Vec<String>> {
    owner
        .execute(
            format!(
                "PREPARE bench_explicit(uuid) AS {EXPLICIT_QUERY}; \
                 SET plan_cache_mode = force_generic_plan"
            )
            .as_str(),
        )
        .await?;
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_explicit('{tenant}')"
    ))
    .persistent(false)
    .fetch_all(&mut *owner)
    .await?;
    owner
        .execute("RESET plan_cache_mode; DEALLOCATE bench_explicit")
        .await?;
    Ok(plan)
}

/// What a plan does with the tenant predicate, in a few words.
struct PlanFacts {
    tenant_index_cond: bool,
    seq_scan: bool,
    jit: bool,
    rows_removed_by_filter: i64,
    execution_ms: f64,
}

impl PlanFacts {
    fn of(plan: &[String]) -> PlanFacts {
        let number_after = |line: &str, key: &str| -> Option<f64> {
            let rest = &line[line.find(key)? + key.len()..];
            rest.trim()
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .next()?
                .parse()
                .ok()
        };
        PlanFacts {
            tenant_index_cond: plan.iter().any(|l| l.contains("Index Cond: (tenant_id = ")),
            seq_scan: plan.iter().any(|l| l.contains("Seq Scan on audit_log")),
            jit: plan.iter().any(|l| l.trim_start().starts_with("JIT:")),
            rows_removed_by_filter: plan
                .iter()
                .filter_map(|l| number_after(l, "Rows Removed by Filter:"))
                .sum::<f64>() as i64,
            execution_ms: plan
                .iter()
                .find_map(|l| number_after(l, "Execution Time:"))
                .unwrap_or(f64::NAN),
        }
    }

    fn describe(&self) -> String {
        format!(
            "tenant predicate as index condition: {}; seq scan: {}; JIT: {}; rows removed by filter: {}; execution {:.2} ms",
            yes(self.tenant_index_cond),
            yes(self.seq_scan),
            yes(self.jit),
            self.rows_removed_by_filter,
            self.execution_ms
        )
    }

    fn json(&self) -> Value {
        json!({
            "tenant_index_cond": self.tenant_index_cond,
            "seq_scan": self.seq_scan,
            "jit": self.jit,
            "rows_removed_by_filter": self.rows_removed_by_filter,
            "execution_ms": round2(self.execution_ms),
        })
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn print_plan(title: &str, plan: &[String]) {
    println!("--- {title}");
    for line in plan {
        println!("    {line}");
    }
    println!("    => {}", PlanFacts::of(plan).describe());
}

/// How often a connection's cached statement ran with a generic or a custom plan.
async fn plan_cache_counts(conn: &mut PgConnection, statement: &str) -> Result<(i64, i64)> {
    let counts: Option<(i64, i64)> = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
    )
    .bind(statement)
    .persistent(false)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(counts.unwrap_or((0, 0)))
}

async fn run(total_rows: u64, iterations: usize) -> Result<()> {
    let db = TestDatabase::create().await;
    let mut admin = db.admin().await;
    let server_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut admin)
        .await?;
    let rows = tenant_rows(total_rows);
    println!(
        "RLS overhead benchmark: PostgreSQL {server_version}, {} CPUs; seeding {TENANTS} tenants \
         and {total_rows} audit_log rows (largest tenant {}, median {}, smallest {}) …",
        std::thread::available_parallelism().map_or(0, usize::from),
        rows[0],
        rows[(TENANTS / 2 - 1) as usize],
        rows[(TENANTS - 1) as usize],
    );
    let started = Instant::now();
    seed(&mut admin, &rows).await.context("seed the dataset")?;
    let (table_size, index_size): (String, String) = sqlx::query_as(
        "SELECT pg_size_pretty(pg_table_size('audit_log')), \
                pg_size_pretty(pg_indexes_size('audit_log'))",
    )
    .fetch_one(&mut admin)
    .await?;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_log' ORDER BY indexname",
    )
    .fetch_all(&mut admin)
    .await?;
    println!(
        "seeded and VACUUM ANALYZEd in {:.1} s; audit_log heap {table_size}, indexes {index_size}: {}",
        started.elapsed().as_secs_f64(),
        indexes.join("; ")
    );
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM tenants ORDER BY slug")
        .fetch_all(&mut admin)
        .await?;
    ensure!(ids.len() == TENANTS as usize, "expected {TENANTS} tenants");
    admin.close().await?;

    // Fresh sessions for the measurement: the app role, and the superuser.
    let mut app = PgConnection::connect_with(&db.app_options())
        .await
        .context("connect as northstar_app")?;
    let mut owner = PgConnection::connect_with(&db.admin_options())
        .await
        .context("connect as the superuser")?;
    let is_superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut owner)
            .await?;
    ensure!(
        is_superuser,
        "DATABASE_URL must name a superuser (it bypasses RLS)"
    );

    let median_rank = TENANTS / 2;
    let mut subjects = Vec::new();
    for (label, rank) in [("largest", 1), ("median", median_rank)] {
        subjects.push(Subject {
            label,
            rank,
            id: ids[(rank - 1) as usize],
            rows: rows[(rank - 1) as usize],
            window_rows: 0,
            rls_query: Vec::with_capacity(iterations),
            rls_tx: Vec::with_capacity(iterations),
            explicit: Vec::with_capacity(iterations),
            explicit_custom: Vec::with_capacity(iterations),
        });
    }

    // The variants must agree, and each tenant must have data.
    for subject in &mut subjects {
        let (_, _, rls) = run_rls(&mut app, subject.id).await?;
        let (_, explicit) = run_explicit(&mut owner, subject.id, true).await?;
        let (_, custom) = run_explicit(&mut owner, subject.id, false).await?;
        ensure!(
            rls == explicit && rls == custom && !rls.is_empty(),
            "tenant #{}: RLS returned {rls:?}, explicit filter {explicit:?} / {custom:?}",
            subject.rank
        );
        subject.window_rows = rls.iter().map(|(_, n)| n).sum();
    }
    for _ in 0..WARM_UP {
        for subject in &subjects {
            run_rls(&mut app, subject.id).await?;
            run_explicit(&mut owner, subject.id, true).await?;
            run_explicit(&mut owner, subject.id, false).await?;
        }
    }

    // The plans, once each, on warm caches.
    let mut plans = Vec::new();
    for subject in &subjects {
        let rls = explain_rls(&mut app, subject.id).await?;
        let custom = explain_explicit_custom(&mut owner, subject.id).await?;
        plans.push((rls, custom));
    }
    let generic_plan = explain_explicit_generic(&mut owner, subjects[0].id).await?;

    // Interleaved; the order of the variants rotates, so that none always
    // finds the caches another just warmed.
    let order = [Variant::Rls, Variant::Explicit, Variant::ExplicitCustom];
    for i in 0..iterations {
        for (s, subject) in subjects.iter_mut().enumerate() {
            for j in 0..order.len() {
                let variant = order[(i + s + j) % order.len()];
                subject.measure(variant, &mut app, &mut owner).await?;
            }
        }
    }

    // Which plans the timed prepared statements ran with.
    let (rls_generic, rls_custom) = plan_cache_counts(&mut app, RLS_QUERY).await?;
    let (explicit_generic, explicit_custom) = plan_cache_counts(&mut owner, EXPLICIT_QUERY).await?;

    println!();
    println!("EXPLAIN (ANALYZE, BUFFERS), once each after warm-up:");
    for (subject, (rls, custom)) in subjects.iter().zip(&plans) {
        print_plan(
            &format!(
                "{} tenant (#{}): RLS as northstar_app, no tenant filter in the query",
                subject.label, subject.rank
            ),
            rls,
        );
        print_plan(
            &format!(
                "{} tenant (#{}): superuser, explicit tenant_id = $1, custom plan (planned for this tenant)",
                subject.label, subject.rank
            ),
            custom,
        );
    }
    print_plan(
        &format!(
            "{} tenant (#{}): superuser, explicit tenant_id = $1, generic plan (the prepared statement's after five runs)",
            subjects[0].label, subjects[0].rank
        ),
        &generic_plan,
    );
    println!(
        "plan cache over the timed runs: RLS statement {rls_generic} generic / {rls_custom} custom plans; \
         prepared explicit statement {explicit_generic} generic / {explicit_custom} custom plans"
    );

    println!();
    println!(
        "{iterations} interleaved iterations per variant and tenant, after {WARM_UP} warm-up; \
         query time unless noted"
    );
    println!(
        "{:<14} {:>8} {:>8}  {:<52} {:>8} {:>8} {:>8}",
        "tenant", "rows", "30 days", "variant", "p50 ms", "p95 ms", "mean ms"
    );
    let mut summary = Vec::new();
    for (subject, (rls_plan, custom_plan)) in subjects.iter().zip(&plans) {
        let rls = Stats::of(&subject.rls_query);
        let rls_tx = Stats::of(&subject.rls_tx);
        let explicit = Stats::of(&subject.explicit);
        let custom = Stats::of(&subject.explicit_custom);
        let name = format!("{} (#{})", subject.label, subject.rank);
        let lines = [
            (name.as_str(), "(a) RLS, app role, query only", &rls),
            (
                "",
                "(a) RLS, whole tx: begin, set_config, query, commit",
                &rls_tx,
            ),
            ("", "(b) explicit tenant_id, superuser, prepared", &explicit),
            (
                "",
                "(b') explicit tenant_id, superuser, unprepared",
                &custom,
            ),
        ];
        for (i, (tenant, variant, stats)) in lines.into_iter().enumerate() {
            let (rows, window) = if i == 0 {
                (subject.rows.to_string(), subject.window_rows.to_string())
            } else {
                (String::new(), String::new())
            };
            println!(
                "{tenant:<14} {rows:>8} {window:>8}  {variant:<52} {:>8.3} {:>8.3} {:>8.3}",
                stats.p50, stats.p95, stats.mean
            );
        }
        for (label, baseline) in [
            ("ratio (a) query / (b) prepared", &explicit),
            ("ratio (a) query / (b') unprepared", &custom),
        ] {
            println!(
                "{:<14} {:>8} {:>8}  {label:<52} {:>7.2}x {:>7.2}x {:>7.2}x",
                "",
                "",
                "",
                rls.p50 / baseline.p50,
                rls.p95 / baseline.p95,
                rls.mean / baseline.mean
            );
        }
        summary.push(json!({
            "tenant": subject.label,
            "rank": subject.rank,
            "rows": subject.rows,
            "rows_last_30_days": subject.window_rows,
            "rls_query_ms": rls.json(),
            "rls_tx_ms": rls_tx.json(),
            "explicit_prepared_ms": explicit.json(),
            "explicit_unprepared_ms": custom.json(),
            "ratio_p50": round2(rls.p50 / explicit.p50),
            "ratio_p95": round2(rls.p95 / explicit.p95),
            "ratio_vs_unprepared_p50": round2(rls.p50 / custom.p50),
            "ratio_vs_unprepared_p95": round2(rls.p95 / custom.p95),
            "rls_plan": PlanFacts::of(rls_plan).json(),
            "explicit_custom_plan": PlanFacts::of(custom_plan).json(),
        }));
    }
    let facts = PlanFacts::of(&plans[0].0);
    println!();
    println!(
        "plan: the RLS predicate {} an index condition on the (tenant_id, id) primary key; \
         `at` is a filter (no (tenant_id, at) index in the schema): {} of the largest tenant's \
         {} rows were read and discarded to count {}",
        if facts.tenant_index_cond {
            "is"
        } else {
            "is NOT"
        },
        facts.rows_removed_by_filter,
        subjects[0].rows,
        subjects[0].window_rows
    );
    println!(
        "{}",
        json!({
            "bench": "rls_overhead",
            "postgres": server_version,
            "cpus": std::thread::available_parallelism().map_or(0, usize::from),
            "tenants": TENANTS,
            "audit_rows": total_rows,
            "iterations": iterations,
            "warm_up": WARM_UP,
            "explicit_plan_cache": { "generic": explicit_generic, "custom": explicit_custom },
            "generic_explicit_plan": PlanFacts::of(&generic_plan).json(),
            "results": summary,
        })
    );

    app.close().await?;
    owner.close().await?;
    drop(db);
    Ok(())
}
