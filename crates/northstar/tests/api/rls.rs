//! The RLS suite: connected as `northstar_app`, for every tenant-scoped
//! table, tenant A can neither read, insert, update nor delete tenant B's
//! rows, and without tenant context nothing is visible or writable.
//!
//! The tables come from the catalog ([`crate::schema::tenant_tables`]); each
//! needs a [`Fixture`] below, or every test here fails with "add fixtures for
//! <table>". Rows are seeded as the administrative role (which bypasses RLS),
//! one per table and tenant; every check runs in its own transaction, as the
//! app role, and is followed by an administrative read proving that the other
//! tenant's rows did not change.

use std::collections::{BTreeMap, BTreeSet};

use northstar_db::{TenantTx, memberships, roles::APP_ROLE, testing::TestDatabase};
use serde_json::Value;
use sqlx::{Connection, PgConnection, Postgres, Transaction, postgres::PgPoolOptions};
use uuid::Uuid;

use crate::schema::tenant_tables;

/// How to write and change rows of one tenant-scoped table.
struct Fixture {
    table: &'static str,
    /// The column RLS compares with the transaction's tenant.
    tenant_column: &'static str,
    /// Inserts one row: `$1` is its tenant, `$2` a user who is no member of it.
    insert: &'static str,
    /// A `SET` clause that changes every row it applies to.
    set: &'static str,
    /// Whether the app role is granted UPDATE / DELETE (checked against the catalog).
    app_may_update: bool,
    app_may_delete: bool,
}

/// In dependency order: `tenants` first.
const FIXTURES: &[Fixture] = &[
    Fixture {
        table: "tenants",
        tenant_column: "id",
        insert: "INSERT INTO tenants (id, slug, name)
                 VALUES ($1, 'rls-' || $2::uuid::text, 'RLS fixture')",
        set: "name = name || ' (changed)'",
        app_may_update: true,
        app_may_delete: false,
    },
    Fixture {
        table: "memberships",
        tenant_column: "tenant_id",
        insert: "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'viewer')",
        set: "created_at = created_at - interval '1 day'",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "api_keys",
        tenant_column: "tenant_id",
        insert: "INSERT INTO api_keys (tenant_id, id, kind, name, prefix, key_hash, created_by)
                 VALUES ($1, gen_random_uuid(), 'write', 'RLS fixture', 'ns_w_rls',
                         sha256(convert_to($2::uuid::text, 'UTF8')), $2)",
        set: "name = name || ' (changed)'",
        app_may_update: true,
        app_may_delete: false,
    },
    Fixture {
        table: "audit_log",
        tenant_column: "tenant_id",
        insert: "INSERT INTO audit_log (tenant_id, actor, actor_user_id, action)
                 VALUES ($1, 'cli', $2, 'rls.fixture')",
        set: "action = action || ' (changed)'",
        app_may_update: false,
        app_may_delete: false,
    },
    Fixture {
        table: "events",
        tenant_column: "tenant_id",
        insert: "INSERT INTO events (tenant_id, time, message_id, type, received_at)
                 VALUES ($1, now(), 'rls-' || $2::uuid::text, 'track', now())",
        set: "event = coalesce(event, '') || ' (changed)'",
        app_may_update: false,
        app_may_delete: true,
    },
    Fixture {
        table: "event_message_ids",
        tenant_column: "tenant_id",
        insert: "INSERT INTO event_message_ids (tenant_id, message_hash)
                 VALUES ($1, md5($2::uuid::text)::uuid)",
        set: "message_hash = md5(message_hash::text)::uuid",
        app_may_update: false,
        app_may_delete: true,
    },
    Fixture {
        table: "profiles",
        tenant_column: "tenant_id",
        insert: "INSERT INTO profiles (tenant_id, user_id, first_seen, last_seen)
                 VALUES ($1, 'u-' || $2::uuid::text, now(), now())",
        set: "traits = traits || '{\"changed\": true}'",
        app_may_update: true,
        app_may_delete: false,
    },
    Fixture {
        table: "accounts",
        tenant_column: "tenant_id",
        insert: "INSERT INTO accounts (tenant_id, group_id, first_seen, last_seen)
                 VALUES ($1, 'g-' || $2::uuid::text, now(), now())",
        set: "traits = traits || '{\"changed\": true}'",
        app_may_update: true,
        app_may_delete: false,
    },
    Fixture {
        table: "account_members",
        tenant_column: "tenant_id",
        insert: "INSERT INTO account_members (tenant_id, group_id, member_id, first_seen)
                 VALUES ($1, 'g', 'm-' || $2::uuid::text, now())",
        set: "first_seen = first_seen - interval '1 day'",
        app_may_update: true,
        app_may_delete: false,
    },
    Fixture {
        table: "identity_links",
        tenant_column: "tenant_id",
        insert: "INSERT INTO identity_links (tenant_id, alias_id, person_id, linked_at)
                 VALUES ($1, 'a-' || $2::uuid::text, 'p', now())",
        set: "person_id = person_id || ' (changed)'",
        app_may_update: true,
        app_may_delete: false,
    },
    Fixture {
        table: "ingest_counters",
        tenant_column: "tenant_id",
        insert: "INSERT INTO ingest_counters (tenant_id, day, outcome, reason, count)
                 VALUES ($1, current_date, 'rejected', 'rls-' || $2::uuid::text, 1)",
        set: "count = count + 1",
        app_may_update: true,
        app_may_delete: false,
    },
    // Billing (0003_billing.sql). Rows that need a customer or an invoice
    // take the tenant's through a sub-select, which sees nothing of another
    // tenant: the row then fails the RLS check before any other constraint.
    // Keys that `$2` does not already vary take a day derived from it, so
    // the control insert misses the seeded row.
    Fixture {
        table: "billing_customers",
        tenant_column: "tenant_id",
        insert: "INSERT INTO billing_customers (tenant_id, external_id)
                 VALUES ($1, 'cus-' || $2::uuid::text)",
        set: "name = coalesce(name, '') || ' (changed)'",
        app_may_update: true,
        app_may_delete: false,
    },
    Fixture {
        table: "billing_plans",
        tenant_column: "tenant_id",
        insert: "INSERT INTO billing_plans (tenant_id, external_id, name, interval_unit, interval_count)
                 VALUES ($1, 'plan-' || $2::uuid::text, 'RLS fixture', 'month', 1)",
        set: "name = name || ' (changed)'",
        app_may_update: true,
        app_may_delete: false,
    },
    Fixture {
        table: "billing_invoices",
        tenant_column: "tenant_id",
        insert: "INSERT INTO billing_invoices (tenant_id, external_id, customer_id, issued_at,
                                               currency, source)
                 VALUES ($1, 'inv-' || $2::uuid::text,
                         (SELECT id FROM billing_customers WHERE tenant_id = $1 ORDER BY id LIMIT 1),
                         now(), 'USD', 'api')",
        set: "source = source || ' (changed)'",
        app_may_update: true,
        app_may_delete: false,
    },
    Fixture {
        table: "billing_line_items",
        tenant_column: "tenant_id",
        insert: "INSERT INTO billing_line_items (tenant_id, invoice_id, position, kind, amount_minor)
                 VALUES ($1,
                         (SELECT id FROM billing_invoices WHERE tenant_id = $1 ORDER BY id LIMIT 1),
                         ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int,
                         'one_time', 100)",
        set: "description = coalesce(description, '') || ' (changed)'",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "billing_subscription_cancellations",
        tenant_column: "tenant_id",
        insert: "INSERT INTO billing_subscription_cancellations
                     (tenant_id, customer_id, subscription_external_id, cancelled_at)
                 VALUES ($1,
                         (SELECT id FROM billing_customers WHERE tenant_id = $1 ORDER BY id LIMIT 1),
                         'sub-' || $2::uuid::text, now())",
        set: "cancelled_at = cancelled_at - interval '1 day'",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "exchange_rates",
        tenant_column: "tenant_id",
        insert: "INSERT INTO exchange_rates (tenant_id, quote_currency, currency, day, rate)
                 VALUES ($1, 'USD', 'EUR',
                         DATE '2000-01-01' + ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int,
                         1.1)",
        set: "rate = rate * 2",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "stripe_webhook_secrets",
        tenant_column: "tenant_id",
        insert: "INSERT INTO stripe_webhook_secrets (tenant_id, secret)
                 VALUES ($1, 'whsec_rls_' || $2::uuid::text)",
        set: "revoked_at = now()",
        app_may_update: true,
        app_may_delete: false,
    },
    Fixture {
        table: "stripe_webhook_events",
        tenant_column: "tenant_id",
        insert: "INSERT INTO stripe_webhook_events (tenant_id, event_id, event_type)
                 VALUES ($1, 'evt_rls_' || $2::uuid::text, 'invoice.paid')",
        set: "event_type = event_type || ' (changed)'",
        app_may_update: false,
        app_may_delete: false,
    },
    Fixture {
        table: "mrr_movements",
        tenant_column: "tenant_id",
        insert: "INSERT INTO mrr_movements (tenant_id, customer_id, day, kind, mrr_before,
                                            mrr_after, movement, fx_drift)
                 VALUES ($1,
                         (SELECT id FROM billing_customers WHERE tenant_id = $1 ORDER BY id LIMIT 1),
                         DATE '2000-01-01' + ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int,
                         'new_business', 0, 100, 100, 0)",
        set: "movement = movement + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "mrr_daily",
        tenant_column: "tenant_id",
        insert: "INSERT INTO mrr_daily (tenant_id, day, new_business, new_customers)
                 VALUES ($1,
                         DATE '2000-01-01' + ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int,
                         100, 1)",
        set: "new_business = new_business + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    // Product and support rollups (0004_product_rollups.sql).
    Fixture {
        table: "activity_days",
        tenant_column: "tenant_id",
        insert: "INSERT INTO activity_days (tenant_id, person_id, day)
                 VALUES ($1, 'p-' || $2::uuid::text, current_date)",
        set: "day = day + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "active_users",
        tenant_column: "tenant_id",
        insert: "INSERT INTO active_users (tenant_id, window_kind, day, users)
                 VALUES ($1, 'day', DATE '2000-01-01' + ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int, 1)",
        set: "users = users + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "event_counts",
        tenant_column: "tenant_id",
        insert: "INSERT INTO event_counts (tenant_id, day, type, name, count)
                 VALUES ($1, current_date, 'track', 'e-' || $2::uuid::text, 1)",
        set: "count = count + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "event_firsts",
        tenant_column: "tenant_id",
        insert: "INSERT INTO event_firsts (tenant_id, person_id, event, first_at)
                 VALUES ($1, 'p-' || $2::uuid::text, 'Signed Up', now())",
        set: "first_at = first_at - interval '1 day'",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "event_adopters",
        tenant_column: "tenant_id",
        insert: "INSERT INTO event_adopters (tenant_id, day, event, adopters)
                 VALUES ($1, current_date, 'e-' || $2::uuid::text, 1)",
        set: "adopters = adopters + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "onboarding",
        tenant_column: "tenant_id",
        insert: "INSERT INTO onboarding (tenant_id, person_id, signed_up_at, signup_day, step_times)
                 VALUES ($1, 'p-' || $2::uuid::text, now(), current_date, '{}')",
        set: "completed_at = now()",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "tickets",
        tenant_column: "tenant_id",
        insert: "INSERT INTO tickets (tenant_id, ticket_id, created_at, created_day)
                 VALUES ($1, 't-' || $2::uuid::text, now(), current_date)",
        set: "resolved_at = now()",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "ticket_counts",
        tenant_column: "tenant_id",
        insert: "INSERT INTO ticket_counts (tenant_id, day, opened)
                 VALUES ($1, DATE '2000-01-01' + ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int, 1)",
        set: "opened = opened + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    // Dashboard rollups (0006_dashboard_rollups.sql).
    Fixture {
        table: "onboarding_days",
        tenant_column: "tenant_id",
        insert: "INSERT INTO onboarding_days (tenant_id, signup_day, signups, completed, step_counts,
                                             completion_seconds)
                 VALUES ($1, DATE '2000-01-01' + ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int,
                         1, 1, '{1}', '{60}')",
        set: "signups = signups + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "ticket_days",
        tenant_column: "tenant_id",
        insert: "INSERT INTO ticket_days (tenant_id, created_day, first_response_seconds,
                                         resolution_seconds)
                 VALUES ($1, DATE '2000-01-01' + ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int,
                         '{60}', '{3600}')",
        set: "resolution_seconds = resolution_seconds || 7200::float8",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "trial_days",
        tenant_column: "tenant_id",
        insert: "INSERT INTO trial_days (tenant_id, day, trials, converted)
                 VALUES ($1, DATE '2000-01-01' + ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int,
                         2, 1)",
        set: "trials = trials + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    // One row per customer, and the tenant has one: a second insert
    // changes it.
    Fixture {
        table: "trial_customers",
        tenant_column: "tenant_id",
        insert: "INSERT INTO trial_customers AS t (tenant_id, customer_id, day, converted)
                 VALUES ($1,
                         (SELECT id FROM billing_customers WHERE tenant_id = $1 ORDER BY id LIMIT 1),
                         DATE '2000-01-01' + ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int,
                         false)
                 ON CONFLICT (tenant_id, customer_id) DO UPDATE SET day = excluded.day",
        set: "converted = NOT converted",
        app_may_update: true,
        app_may_delete: true,
    },
    // Revenue cohorts (0005_revenue_cohorts.sql): months must be first days.
    Fixture {
        table: "revenue_cohorts",
        tenant_column: "tenant_id",
        insert: "INSERT INTO revenue_cohorts (tenant_id, cohort_month, month, customers, mrr)
                 VALUES ($1, DATE '2000-01-01',
                         (DATE '2000-01-01' + make_interval(months =>
                             ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int % 1000000))::date,
                         1, 100)",
        set: "mrr = mrr + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "revenue_cohort_days",
        tenant_column: "tenant_id",
        insert: "INSERT INTO revenue_cohort_days (tenant_id, cohort_month, day, customers, mrr)
                 VALUES ($1, DATE '2000-01-01',
                         DATE '2000-01-01' + ('x' || substr(md5($2::uuid::text), 1, 7))::bit(28)::int,
                         1, 100)",
        set: "mrr = mrr + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    // The rollup inbox (0009_inbox_runs.sql): written and emptied, never changed.
    Fixture {
        table: "rollup_inbox",
        tenant_column: "tenant_id",
        insert: "INSERT INTO rollup_inbox (tenant_id, calls, times, types, events, user_ids,
                                          anonymous_ids, previous_ids, properties)
                 VALUES ($1, 1, ARRAY[now()], ARRAY['track'], ARRAY['E'],
                         ARRAY['u-' || $2::uuid::text], ARRAY[NULL], ARRAY[NULL], ARRAY[NULL])",
        set: "times = times || now()",
        app_may_update: false,
        app_may_delete: true,
    },
    // Month rollups (0008_month_rollups.sql): months must be first days.
    Fixture {
        table: "event_counts_months",
        tenant_column: "tenant_id",
        insert: "INSERT INTO event_counts_months (tenant_id, month, type, name, count)
                 VALUES ($1, DATE '2000-01-01', 'track', 'e-' || $2::uuid::text, 1)",
        set: "count = count + 1",
        app_may_update: true,
        app_may_delete: true,
    },
    Fixture {
        table: "event_adopters_months",
        tenant_column: "tenant_id",
        insert: "INSERT INTO event_adopters_months (tenant_id, month, event, adopters)
                 VALUES ($1, DATE '2000-01-01', 'e-' || $2::uuid::text, 1)",
        set: "adopters = adopters + 1",
        app_may_update: true,
        app_may_delete: true,
    },
];

impl Fixture {
    /// `tenants` holds one row per tenant, keyed by the tenant id itself.
    fn is_tenant_root(&self) -> bool {
        self.tenant_column == "id"
    }
}

/// The transaction's tenant context.
#[derive(Clone, Debug)]
enum Ctx {
    /// No `set_config` at all.
    Unset,
    /// `set_config('app.tenant_id', value, true)` as the first statement.
    Set(String),
}

impl Ctx {
    fn tenant(id: Uuid) -> Self {
        Ctx::Set(id.to_string())
    }
}

/// What a statement did.
#[derive(Debug)]
enum Outcome {
    Rows(u64),
    Failed { code: String, message: String },
}

/// Whether a statement that succeeded is committed (so that the
/// administrative read after it means something) or rolled back.
#[derive(Clone, Copy)]
enum Finish {
    Commit,
    Rollback,
}

async fn begin_as<'c>(conn: &'c mut PgConnection, ctx: &Ctx) -> Transaction<'c, Postgres> {
    let mut tx = conn.begin().await.expect("begin");
    if let Ctx::Set(value) = ctx {
        sqlx::query("select set_config('app.tenant_id', $1, true)")
            .bind(value)
            .execute(&mut *tx)
            .await
            .expect("set the tenant context");
    }
    tx
}

/// Runs one statement in a transaction of its own with context `ctx`.
async fn execute(
    conn: &mut PgConnection,
    ctx: &Ctx,
    sql: &str,
    binds: &[Uuid],
    finish: Finish,
) -> Outcome {
    let mut tx = begin_as(conn, ctx).await;
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    match query.execute(&mut *tx).await {
        Ok(done) => {
            match finish {
                Finish::Commit => tx.commit().await.expect("commit"),
                Finish::Rollback => tx.rollback().await.expect("roll back"),
            }
            Outcome::Rows(done.rows_affected())
        }
        Err(sqlx::Error::Database(e)) => {
            tx.rollback().await.expect("roll back");
            Outcome::Failed {
                code: e.code().map(|c| c.into_owned()).unwrap_or_default(),
                message: e.message().to_owned(),
            }
        }
        Err(other) => panic!("{sql}: {other}"),
    }
}

/// The rows `conn` sees in `table` (after `filter`), as one JSON array in a
/// stable order.
fn rows_sql(table: &str, filter: &str) -> String {
    format!(
        "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]'::jsonb)
         FROM {table} t {filter}"
    )
}

/// The rows the app sees in `table` in a transaction with context `ctx`.
async fn app_rows(
    conn: &mut PgConnection,
    ctx: &Ctx,
    table: &str,
    filter: &str,
    binds: &[Uuid],
) -> Value {
    let mut tx = begin_as(conn, ctx).await;
    let sql = rows_sql(table, filter);
    let mut query = sqlx::query_scalar(&sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    let rows: Value = query
        .fetch_one(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("read {table} as {APP_ROLE} with {ctx:?}: {e}"));
    tx.commit().await.expect("commit");
    rows
}

fn count(rows: &Value) -> u64 {
    rows.as_array().map_or(0, |r| r.len() as u64)
}

/// A tenant-scoped database with two tenants and one row per table each.
struct World {
    db: TestDatabase,
    admin: PgConnection,
    app: PgConnection,
    a: Uuid,
    b: Uuid,
    /// A user who is a member of no tenant.
    spare: Uuid,
    fixtures: Vec<&'static Fixture>,
}

impl World {
    async fn new() -> Self {
        let db = TestDatabase::create().await;
        let mut admin = db.admin().await;
        let fixtures = fixtures_for_catalog(&mut admin).await;
        assert_grants_match_fixtures(&mut admin, &fixtures).await;
        // Events are partitioned by time: the fixtures write today.
        sqlx::query(
            "SELECT ensure_event_partitions(now() - interval '1 day', now() + interval '1 day')",
        )
        .execute(&mut admin)
        .await
        .expect("create today's event partition");

        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (user_a, user_b, spare) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for (user, email) in [
            (user_a, "a@rls.test"),
            (user_b, "b@rls.test"),
            (spare, "spare@rls.test"),
        ] {
            sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
                .bind(user)
                .bind(email)
                .execute(&mut admin)
                .await
                .expect("seed a user");
        }
        for fixture in &fixtures {
            for (tenant, user) in [(a, user_a), (b, user_b)] {
                sqlx::query(fixture.insert)
                    .bind(tenant)
                    .bind(user)
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|e| panic!("seed {} as admin: {e}", fixture.table));
            }
        }

        let mut app = PgConnection::connect_with(&db.app_options())
            .await
            .expect("connect as the app role");
        let user: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut app)
            .await
            .expect("current user");
        assert_eq!(user, APP_ROLE, "the RLS suite must run as the app role");

        let mut world = World {
            db,
            admin,
            app,
            a,
            b,
            spare,
            fixtures,
        };
        for tenant in [a, b] {
            for (table, rows) in world.snapshot(tenant).await {
                assert_eq!(count(&rows), 1, "{table}: seeding gave {tenant} {rows}");
            }
        }
        world
    }

    /// A tenant's rows, read as the administrative role, table by table.
    async fn snapshot(&mut self, tenant: Uuid) -> BTreeMap<&'static str, Value> {
        let mut snapshot = BTreeMap::new();
        for fixture in &self.fixtures {
            let sql = rows_sql(
                fixture.table,
                &format!("WHERE t.{} = $1", fixture.tenant_column),
            );
            let rows: Value = sqlx::query_scalar(&sql)
                .bind(tenant)
                .fetch_one(&mut self.admin)
                .await
                .expect("read as admin");
            snapshot.insert(fixture.table, rows);
        }
        snapshot
    }

    /// Every row of every tenant table, read as the administrative role.
    async fn everything(&mut self) -> BTreeMap<&'static str, Value> {
        let mut snapshot = BTreeMap::new();
        for fixture in &self.fixtures {
            let rows: Value = sqlx::query_scalar(&rows_sql(fixture.table, ""))
                .fetch_one(&mut self.admin)
                .await
                .expect("read as admin");
            snapshot.insert(fixture.table, rows);
        }
        snapshot
    }

    /// Asserts, as the administrative role, that `tenant`'s rows are still `before`.
    async fn assert_unchanged(
        &mut self,
        tenant: Uuid,
        before: &BTreeMap<&'static str, Value>,
        after_what: &str,
    ) {
        let now = self.snapshot(tenant).await;
        for (table, rows) in before {
            assert_eq!(
                now.get(table),
                Some(rows),
                "{table}: tenant {tenant}'s rows changed after {after_what}"
            );
        }
    }

    /// Asserts, as the administrative role, that no tenant row changed.
    async fn assert_nothing_changed(
        &mut self,
        before: &BTreeMap<&'static str, Value>,
        after_what: &str,
    ) {
        let now = self.everything().await;
        for (table, rows) in before {
            assert_eq!(
                now.get(table),
                Some(rows),
                "{table}: rows changed after {after_what}"
            );
        }
    }
}

/// The fixtures of the catalog's tenant-scoped tables, which must be exactly
/// the tables [`FIXTURES`] covers.
async fn fixtures_for_catalog(admin: &mut PgConnection) -> Vec<&'static Fixture> {
    let discovered = tenant_tables(admin).await;
    let names: BTreeSet<&str> = discovered.iter().map(|t| t.name.as_str()).collect();
    let covered: BTreeSet<&str> = FIXTURES.iter().map(|f| f.table).collect();
    let mut problems: Vec<String> = names
        .difference(&covered)
        .map(|t| format!("add fixtures for {t} (tests/api/rls.rs, FIXTURES)"))
        .collect();
    problems.extend(covered.difference(&names).map(|t| {
        format!("the fixture for {t} matches no tenant-scoped table: remove or rename it")
    }));
    for table in &discovered {
        let fixture = FIXTURES.iter().find(|f| f.table == table.name);
        if let Some(fixture) = fixture.filter(|f| f.tenant_column != table.tenant_column) {
            problems.push(format!(
                "the fixture for {} names tenant column {}, the catalog {}",
                table.name, fixture.tenant_column, table.tenant_column
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "tenant-scoped tables and RLS fixtures differ:\n  - {}",
        problems.join("\n  - ")
    );
    FIXTURES.iter().collect()
}

/// The grants the fixtures expect are the catalog's: SELECT and INSERT on
/// every tenant table (or nothing here would mean anything), UPDATE and
/// DELETE as the fixture says.
async fn assert_grants_match_fixtures(admin: &mut PgConnection, fixtures: &[&Fixture]) {
    for fixture in fixtures {
        for (privilege, expected) in [
            ("SELECT", true),
            ("INSERT", true),
            ("UPDATE", fixture.app_may_update),
            ("DELETE", fixture.app_may_delete),
        ] {
            let granted: bool = sqlx::query_scalar("SELECT has_table_privilege($1, $2, $3)")
                .bind(APP_ROLE)
                .bind(fixture.table)
                .bind(privilege)
                .fetch_one(&mut *admin)
                .await
                .expect("read a privilege");
            assert_eq!(
                granted,
                expected,
                "{}: {APP_ROLE} {} {privilege}, but its RLS fixture says otherwise; \
                 update the fixture if the grant is intended",
                fixture.table,
                if granted { "has" } else { "lacks" },
            );
        }
    }
}

fn expect_rows(outcome: &Outcome, rows: u64, table: &str, what: &str) {
    match outcome {
        Outcome::Rows(n) if *n == rows => {}
        other => panic!("{table}: {what}: expected {rows} row(s) affected, got {other:?}"),
    }
}

fn expect_rls_violation(outcome: &Outcome, table: &str, what: &str) {
    match outcome {
        Outcome::Failed { code, message }
            if code == "42501"
                && message.starts_with("new row violates row-level security policy")
                && message.contains(&format!("\"{table}\"")) => {}
        other => panic!(
            "{table}: {what}: expected the RLS WITH CHECK violation (42501, new row violates \
             row-level security policy), got {other:?}"
        ),
    }
}

fn expect_permission_denied(outcome: &Outcome, table: &str, what: &str) {
    match outcome {
        Outcome::Failed { code, message }
            if code == "42501" && message == &format!("permission denied for table {table}") => {}
        other => panic!("{table}: {what}: expected permission denied, got {other:?}"),
    }
}

/// `rows` affected where the app may write; permission denied where it may not.
fn expect_write(outcome: &Outcome, granted: bool, rows: u64, table: &str, what: &str) {
    if granted {
        expect_rows(outcome, rows, table, what);
    } else {
        expect_permission_denied(outcome, table, what);
    }
}

#[tokio::test]
async fn every_tenant_table_in_the_catalog_has_rls_fixtures() {
    let db = TestDatabase::create().await;
    let mut admin = db.admin().await;
    let fixtures = fixtures_for_catalog(&mut admin).await;
    assert!(
        fixtures.len() >= 4,
        "the foundation alone has four tenant tables"
    );
    assert_grants_match_fixtures(&mut admin, &fixtures).await;
}

#[tokio::test]
async fn a_tenant_reads_its_own_rows_and_none_of_another_tenants() {
    let mut w = World::new().await;
    for (me, other) in [(w.a, w.b), (w.b, w.a)] {
        let own = w.snapshot(me).await;
        for fixture in w.fixtures.clone() {
            let table = fixture.table;
            let seen = app_rows(&mut w.app, &Ctx::tenant(me), table, "", &[]).await;
            assert!(
                count(&seen) > 0,
                "{table}: tenant {me} sees none of its rows"
            );
            assert_eq!(
                Some(&seen),
                own.get(table),
                "{table}: tenant {me} must see exactly its own rows"
            );
            let filter = format!("WHERE t.{} = $1", fixture.tenant_column);
            let theirs = app_rows(&mut w.app, &Ctx::tenant(me), table, &filter, &[other]).await;
            assert_eq!(
                count(&theirs),
                0,
                "{table}: tenant {me} sees rows of {other}: {theirs}"
            );

            // Switching row security off makes the query fail, never bypass.
            let mut tx = begin_as(&mut w.app, &Ctx::tenant(me)).await;
            sqlx::query("SET LOCAL row_security = off")
                .execute(&mut *tx)
                .await
                .expect("set row_security");
            let bypass = sqlx::query(&format!("SELECT * FROM {table}"))
                .execute(&mut *tx)
                .await;
            match bypass {
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("42501")
                        && e.message()
                            .starts_with("query would be affected by row-level security") => {}
                other => panic!("{table}: row_security = off did not fail the query: {other:?}"),
            }
            tx.rollback().await.expect("roll back");
        }
    }
}

#[tokio::test]
async fn a_tenant_can_neither_update_nor_delete_another_tenants_rows() {
    let mut w = World::new().await;
    for (me, other) in [(w.a, w.b), (w.b, w.a)] {
        let before = w.snapshot(other).await;
        let mine = w.snapshot(me).await;
        let ctx = Ctx::tenant(me);
        for fixture in w.fixtures.clone() {
            let (table, column, set) = (fixture.table, fixture.tenant_column, fixture.set);
            let own = count(&mine[table]);

            // Controls: the same statements reach the tenant's own rows.
            let sql = format!("UPDATE {table} SET {set} WHERE {column} = $1");
            let outcome = execute(&mut w.app, &ctx, &sql, &[me], Finish::Rollback).await;
            expect_write(
                &outcome,
                fixture.app_may_update,
                own,
                table,
                "UPDATE of own rows",
            );
            let sql = format!("DELETE FROM {table} WHERE {column} = $1");
            let outcome = execute(&mut w.app, &ctx, &sql, &[me], Finish::Rollback).await;
            expect_write(
                &outcome,
                fixture.app_may_delete,
                own,
                table,
                "DELETE of own rows",
            );

            let sql = format!("UPDATE {table} SET {set} WHERE {column} = $1");
            let outcome = execute(&mut w.app, &ctx, &sql, &[other], Finish::Commit).await;
            let what = "UPDATE of another tenant's rows";
            expect_write(&outcome, fixture.app_may_update, 0, table, what);
            w.assert_unchanged(other, &before, &format!("{what} on {table}"))
                .await;

            // Without a WHERE clause the statement reaches the own rows only.
            let sql = format!("UPDATE {table} SET {set}");
            let outcome = execute(&mut w.app, &ctx, &sql, &[], Finish::Commit).await;
            let what = "UPDATE of every row";
            expect_write(&outcome, fixture.app_may_update, own, table, what);
            w.assert_unchanged(other, &before, &format!("{what} on {table}"))
                .await;

            let sql = format!("DELETE FROM {table} WHERE {column} = $1");
            let outcome = execute(&mut w.app, &ctx, &sql, &[other], Finish::Commit).await;
            let what = "DELETE of another tenant's rows";
            expect_write(&outcome, fixture.app_may_delete, 0, table, what);
            w.assert_unchanged(other, &before, &format!("{what} on {table}"))
                .await;

            // Rolled back, to keep the own rows for the next checks: the count
            // proves it reached no other row.
            let sql = format!("DELETE FROM {table}");
            let outcome = execute(&mut w.app, &ctx, &sql, &[], Finish::Rollback).await;
            let what = "DELETE of every row";
            expect_write(&outcome, fixture.app_may_delete, own, table, what);
            w.assert_unchanged(other, &before, &format!("{what} on {table}"))
                .await;
        }
    }
}

#[tokio::test]
async fn a_tenant_cannot_insert_rows_for_another_tenant() {
    let mut w = World::new().await;
    let before = w.everything().await;
    for (me, other) in [(w.a, w.b), (w.b, w.a)] {
        let ctx = Ctx::tenant(me);
        for fixture in w.fixtures.clone() {
            let table = fixture.table;
            let spare = w.spare;

            // Control: the same insert for the transaction's own tenant works
            // (for `tenants`, a new tenant inserting itself, as provisioning does).
            let (own_ctx, own) = if fixture.is_tenant_root() {
                let new = Uuid::now_v7();
                (Ctx::tenant(new), new)
            } else {
                (ctx.clone(), me)
            };
            let outcome = execute(
                &mut w.app,
                &own_ctx,
                fixture.insert,
                &[own, spare],
                Finish::Rollback,
            )
            .await;
            expect_rows(&outcome, 1, table, "INSERT for the own tenant");

            let what = "INSERT for another tenant";
            let outcome = execute(
                &mut w.app,
                &ctx,
                fixture.insert,
                &[other, spare],
                Finish::Commit,
            )
            .await;
            expect_rls_violation(&outcome, table, what);
            w.assert_nothing_changed(&before, &format!("{what} on {table}"))
                .await;

            let what = "INSERT for a tenant that does not exist";
            let unknown = Uuid::now_v7();
            let outcome = execute(
                &mut w.app,
                &ctx,
                fixture.insert,
                &[unknown, spare],
                Finish::Commit,
            )
            .await;
            expect_rls_violation(&outcome, table, what);
            w.assert_nothing_changed(&before, &format!("{what} on {table}"))
                .await;
        }
    }
}

#[tokio::test]
async fn a_tenant_cannot_move_its_rows_to_another_tenant() {
    let mut w = World::new().await;
    let before = w.everything().await;
    for (me, other) in [(w.a, w.b), (w.b, w.a)] {
        let ctx = Ctx::tenant(me);
        for fixture in w.fixtures.clone() {
            let (table, column) = (fixture.table, fixture.tenant_column);
            let sql = format!("UPDATE {table} SET {column} = $2 WHERE {column} = $1");
            for (target, what) in [
                (other, "UPDATE of the tenant column to another tenant"),
                (
                    Uuid::now_v7(),
                    "UPDATE of the tenant column to an unknown tenant",
                ),
            ] {
                let outcome = execute(&mut w.app, &ctx, &sql, &[me, target], Finish::Commit).await;
                if fixture.app_may_update {
                    expect_rls_violation(&outcome, table, what);
                } else {
                    expect_permission_denied(&outcome, table, what);
                }
                w.assert_nothing_changed(&before, &format!("{what} on {table}"))
                    .await;
            }
        }
    }
}

#[tokio::test]
async fn without_tenant_context_nothing_is_visible_or_writable() {
    let mut w = World::new().await;
    let before = w.everything().await;

    // A connection that never had a tenant: the setting does not exist.
    let mut fresh = PgConnection::connect_with(&w.db.app_options())
        .await
        .expect("connect as the app role");
    let setting: Option<String> =
        sqlx::query_scalar("SELECT current_setting('app.tenant_id', true)")
            .fetch_one(&mut fresh)
            .await
            .expect("read the setting");
    assert_eq!(
        setting, None,
        "a new connection already has a tenant context"
    );
    for fixture in w.fixtures.clone() {
        let visible: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", fixture.table))
            .fetch_one(&mut fresh)
            .await
            .expect("count outside a transaction");
        assert_eq!(
            visible, 0,
            "{}: rows visible outside any transaction without tenant context",
            fixture.table
        );
    }

    let contexts = [
        ("no set_config on a new connection", Ctx::Unset),
        ("app.tenant_id = ''", Ctx::Set(String::new())),
        ("a tenant that does not exist", Ctx::tenant(Uuid::now_v7())),
        ("no set_config after an earlier set_config", Ctx::Unset),
    ];
    for (label, ctx) in contexts {
        for fixture in w.fixtures.clone() {
            let table = fixture.table;
            let seen = app_rows(&mut fresh, &ctx, table, "", &[]).await;
            assert_eq!(
                count(&seen),
                0,
                "{table}: rows visible with {label}: {seen}"
            );

            // Neither an existing tenant's row nor a new tenant's row goes in.
            let spare = w.spare;
            for tenant in [w.a, Uuid::now_v7()] {
                if fixture.is_tenant_root() && tenant == w.a {
                    continue; // Would also collide with A's own row.
                }
                let what = format!("INSERT with {label}");
                let outcome = execute(
                    &mut fresh,
                    &ctx,
                    fixture.insert,
                    &[tenant, spare],
                    Finish::Commit,
                )
                .await;
                expect_rls_violation(&outcome, table, &what);
                w.assert_nothing_changed(&before, &format!("{what} on {table}"))
                    .await;
            }

            let what = format!("UPDATE of every row with {label}");
            let sql = format!("UPDATE {table} SET {}", fixture.set);
            let outcome = execute(&mut fresh, &ctx, &sql, &[], Finish::Commit).await;
            expect_write(&outcome, fixture.app_may_update, 0, table, &what);
            w.assert_nothing_changed(&before, &format!("{what} on {table}"))
                .await;

            let what = format!("DELETE of every row with {label}");
            let sql = format!("DELETE FROM {table}");
            let outcome = execute(&mut fresh, &ctx, &sql, &[], Finish::Commit).await;
            expect_write(&outcome, fixture.app_may_delete, 0, table, &what);
            w.assert_nothing_changed(&before, &format!("{what} on {table}"))
                .await;
        }
    }

    // A malformed setting fails the statement instead of matching anything.
    for fixture in w.fixtures.clone() {
        let mut tx = begin_as(&mut fresh, &Ctx::Set("not-a-uuid".into())).await;
        let result = sqlx::query(&format!("SELECT * FROM {}", fixture.table))
            .fetch_all(&mut *tx)
            .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("22P02") => {}
            other => panic!(
                "{}: a malformed app.tenant_id did not fail the query: {other:?}",
                fixture.table
            ),
        }
        tx.rollback().await.expect("roll back");
    }
}

#[tokio::test]
async fn tenant_context_does_not_outlive_its_transaction() {
    let mut w = World::new().await;
    // One connection, so every acquire below gets the same one back.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(w.db.app_options())
        .await
        .expect("pool of one app connection");
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("backend pid");
    let a_rows = w.snapshot(w.a).await;
    let fixtures = w.fixtures.clone();

    // Nothing visible, on the same connection, outside any transaction and
    // in a transaction without set_config.
    let assert_context_gone = |after: &'static str| {
        let pool = pool.clone();
        let fixtures = fixtures.clone();
        async move {
            let mut conn = pool.acquire().await.expect("acquire");
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await
                .expect("backend pid");
            assert_eq!(pid, backend, "the pool handed out another connection");
            let setting: Option<String> =
                sqlx::query_scalar("SELECT current_setting('app.tenant_id', true)")
                    .fetch_one(&mut *conn)
                    .await
                    .expect("read the setting");
            assert!(
                setting.as_deref().unwrap_or_default().is_empty(),
                "app.tenant_id is still {setting:?} after {after}"
            );
            for fixture in &fixtures {
                let sql = format!("SELECT count(*) FROM {}", fixture.table);
                let visible: i64 = sqlx::query_scalar(&sql)
                    .fetch_one(&mut *conn)
                    .await
                    .expect("count");
                assert_eq!(
                    visible, 0,
                    "{}: rows visible outside the transaction after {after}",
                    fixture.table
                );
                let seen = app_rows(&mut conn, &Ctx::Unset, fixture.table, "", &[]).await;
                assert_eq!(
                    count(&seen),
                    0,
                    "{}: rows visible in a new transaction after {after}",
                    fixture.table
                );
            }
        }
    };

    for finish in [Finish::Commit, Finish::Rollback] {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("select set_config('app.tenant_id', $1, true)")
            .bind(w.a.to_string())
            .execute(&mut *tx)
            .await
            .expect("set the tenant context");
        for fixture in &fixtures {
            let rows: Value = sqlx::query_scalar(&rows_sql(fixture.table, ""))
                .fetch_one(&mut *tx)
                .await
                .expect("read in the tenant transaction");
            assert_eq!(
                Some(&rows),
                a_rows.get(fixture.table),
                "{}: the tenant transaction does not see A's rows",
                fixture.table
            );
        }
        match finish {
            Finish::Commit => {
                tx.commit().await.expect("commit");
                assert_context_gone("a committed tenant transaction").await;
            }
            Finish::Rollback => {
                tx.rollback().await.expect("roll back");
                assert_context_gone("a rolled-back tenant transaction").await;
            }
        }
    }

    // set_config(…, true) outside a transaction lasts for its own statement only.
    let value: String = sqlx::query_scalar("select set_config('app.tenant_id', $1, true)")
        .bind(w.a.to_string())
        .fetch_one(&pool)
        .await
        .expect("set_config outside a transaction");
    assert_eq!(value, w.a.to_string());
    assert_context_gone("set_config outside a transaction").await;

    // The product's own path: TenantTx.
    let mut tx = TenantTx::begin(&pool, w.a)
        .await
        .expect("tenant transaction");
    let members = memberships::list(&mut tx).await.expect("list members");
    assert_eq!(
        members.len(),
        1,
        "TenantTx for A should see A's one member: {members:?}"
    );
    tx.commit().await.expect("commit");
    assert_context_gone("a committed TenantTx").await;

    let mut tx = TenantTx::begin(&pool, w.a)
        .await
        .expect("tenant transaction");
    let members = memberships::list(&mut tx).await.expect("list members");
    assert_eq!(
        members.len(),
        1,
        "TenantTx for A should see A's one member: {members:?}"
    );
    drop(tx);
    assert_context_gone("a TenantTx dropped without commit").await;

    let everything = w.everything().await;
    assert_eq!(count(&everything["memberships"]), 2, "the fixtures changed");
}
