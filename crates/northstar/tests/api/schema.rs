//! The schema guard: reads the catalog of a freshly migrated database and
//! fails when a tenant-scoped table is not protected the one way DESIGN §2
//! prescribes, or when the app role could get around Row Level Security.
//!
//! Each rule is a function returning violations ("<object>: <what is
//! missing>"), so a failure names the table and the fix. The last tests run
//! the same functions over deliberately careless objects, to prove the guard
//! can fail.

use std::collections::BTreeSet;

use northstar_db::{
    roles::{APP_ROLE, OWNER_ROLE},
    testing::TestDatabase,
};
use sqlx::{Connection, PgConnection};

/// A tenant-scoped table and the column holding its tenant.
pub(crate) struct TenantTable {
    /// The table, as `regclass` text (unqualified in `public`).
    pub(crate) name: String,
    /// `tenant_id`, or `id` for `tenants` itself.
    pub(crate) tenant_column: &'static str,
}

/// Unique indexes allowed not to lead with the tenant column: the global
/// namespaces that exist by design.
const GLOBAL_UNIQUE_INDEXES: &[(&str, &str)] = &[
    // Slugs appear in URLs: one namespace for all tenants (0001_foundation.sql).
    ("tenants", "tenants_slug_key"),
];

/// Tenant tables without a primary key by design, each of whose indexes
/// must lead with the tenant column instead: `events` is append-only and
/// its dedupe key lives in `event_message_ids` (ADR 0015).
const KEYLESS_TABLES: &[&str] = &["events"];

/// Predefined roles whose membership grants data access past the grants.
const BROAD_PREDEFINED_ROLES: &[&str] = &[
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
];

/// Every tenant-scoped table: each table (not partition) outside the system
/// schemas with a `tenant_id` column, plus `tenants`.
pub(crate) async fn tenant_tables(conn: &mut PgConnection) -> Vec<TenantTable> {
    let names: Vec<(String, bool)> = sqlx::query_as(
        r"SELECT c.oid::regclass::text, n.nspname = 'public' AND c.relname = 'tenants'
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
            AND ((n.nspname = 'public' AND c.relname = 'tenants')
                 OR EXISTS (SELECT FROM pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                              AND a.attnum > 0 AND NOT a.attisdropped))
          ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .expect("list tenant-scoped tables");
    names
        .into_iter()
        .map(|(name, is_tenants)| TenantTable {
            name,
            tenant_column: if is_tenants { "id" } else { "tenant_id" },
        })
        .collect()
}

/// Whether a policy expression compares `column` with `current_tenant_id()`:
/// both appear in it as whole identifiers.
fn is_tenant_bound(expression: Option<&str>, column: &str) -> bool {
    let Some(expression) = expression else {
        return false;
    };
    let words: BTreeSet<&str> = expression
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .collect();
    words.contains(column) && words.contains("current_tenant_id")
}

type PolicyRow = (String, String, bool, Option<String>, Option<String>, bool);

/// What a tenant-scoped table lacks: forced RLS, a tenant policy for every
/// command, and keys that lead with (or include) the tenant column.
/// The indexes of a table without a primary key that do not lead with its
/// tenant column, or the lack of any index.
async fn keyless_index_violations(
    conn: &mut PgConnection,
    name: &str,
    column: &str,
) -> Vec<String> {
    let firsts: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT ic.relname::text,
                (SELECT a.attname::text FROM pg_attribute a
                 WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0])
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
         WHERE i.indrelid = $1::regclass ORDER BY 1",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .expect("read indexes");
    if firsts.is_empty() {
        return vec![format!("{name}: has neither a primary key nor an index")];
    }
    firsts
        .into_iter()
        .filter(|(_, first)| first.as_deref() != Some(column))
        .map(|(index, _)| format!("{name}: index {index} does not lead with {column}"))
        .collect()
}

async fn tenant_table_violations(conn: &mut PgConnection) -> Vec<String> {
    let tables = tenant_tables(conn).await;
    let tenant_names: Vec<(&str, &str)> = tables
        .iter()
        .map(|t| (t.name.as_str(), t.tenant_column))
        .collect();
    let mut violations = Vec::new();
    for table in &tables {
        let name = table.name.as_str();
        let column = table.tenant_column;

        let (enabled, forced): (bool, bool) = sqlx::query_as(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass",
        )
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .expect("read RLS flags");
        if !enabled {
            violations.push(format!("{name}: row level security is not enabled"));
        }
        if !forced {
            violations.push(format!(
                "{name}: row level security is not forced (the owner would bypass it)"
            ));
        }

        let policies: Vec<PolicyRow> = sqlx::query_as(
            "SELECT polname::text, polcmd::text, polpermissive,
                    pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid),
                    0 = ANY (polroles)
                      OR EXISTS (SELECT FROM unnest(polroles) r
                                 WHERE CASE WHEN r = 0 THEN false ELSE pg_has_role($2, r, 'MEMBER') END)
             FROM pg_policy WHERE polrelid = $1::regclass ORDER BY polname",
        )
        .bind(name)
        .bind(APP_ROLE)
        .fetch_all(&mut *conn)
        .await
        .expect("read policies");
        let isolating = policies
            .iter()
            .any(|(_, cmd, permissive, using, check, applies)| {
                cmd == "*"
                    && *permissive
                    && *applies
                    && is_tenant_bound(using.as_deref(), column)
                    && is_tenant_bound(check.as_deref(), column)
            });
        if !isolating {
            violations.push(format!(
                "{name}: no permissive policy FOR ALL (applying to {APP_ROLE}) whose USING and \
                 WITH CHECK both compare {column} with current_tenant_id(); \
                 call enable_tenant_isolation('{name}')"
            ));
        }
        // Permissive policies are OR-ed: one that is not tenant-bound opens the table.
        for (policy, _, permissive, using, check, applies) in &policies {
            if !*permissive || !*applies {
                continue;
            }
            for (clause, expression) in [("USING", using), ("WITH CHECK", check)] {
                if expression.is_some() && !is_tenant_bound(expression.as_deref(), column) {
                    violations.push(format!(
                        "{name}: permissive policy {policy} has a {clause} clause that does not \
                         compare {column} with current_tenant_id(): {}",
                        expression.as_deref().unwrap_or_default()
                    ));
                }
            }
        }

        let primary_first: Option<Option<String>> = sqlx::query_scalar(
            "SELECT (SELECT a.attname::text FROM pg_attribute a
                     WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0])
             FROM pg_index i WHERE i.indrelid = $1::regclass AND i.indisprimary",
        )
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .expect("read the primary key");
        match primary_first {
            None if KEYLESS_TABLES.contains(&name) => {
                violations.extend(keyless_index_violations(conn, name, column).await);
            }
            None => violations.push(format!("{name}: has no primary key")),
            Some(first) if first.as_deref() != Some(column) => violations.push(format!(
                "{name}: {column} is not the first column of the primary key (it starts with {})",
                first.as_deref().unwrap_or("an expression")
            )),
            Some(_) => {}
        }

        let uniques: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT ic.relname::text, pg_get_indexdef(i.indexrelid),
                    (SELECT a.attname::text FROM pg_attribute a
                     WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0])
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
             WHERE i.indrelid = $1::regclass AND i.indisunique ORDER BY 1",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .expect("read unique indexes");
        for (index, definition, first) in uniques {
            let allowed = GLOBAL_UNIQUE_INDEXES.contains(&(name, index.as_str()));
            if first.as_deref() != Some(column) && !allowed {
                violations.push(format!(
                    "{name}: unique index {index} does not lead with {column}; unique checks \
                     bypass RLS and reveal other tenants' values ({definition})"
                ));
            }
        }

        let foreign_keys: Vec<(String, String, Vec<String>, Vec<String>)> = sqlx::query_as(
            "SELECT con.conname::text, con.confrelid::regclass::text,
                    ARRAY(SELECT a.attname::text
                          FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
                          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                          ORDER BY k.ord),
                    ARRAY(SELECT a.attname::text
                          FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
                          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
                          ORDER BY k.ord)
             FROM pg_constraint con
             WHERE con.conrelid = $1::regclass AND con.contype = 'f' ORDER BY 1",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .expect("read foreign keys");
        for (constraint, referenced, local, remote) in foreign_keys {
            let Some(&(_, remote_column)) =
                tenant_names.iter().find(|(t, _)| *t == referenced.as_str())
            else {
                continue; // A global table: nothing to co-locate.
            };
            let pairs_tenants = local
                .iter()
                .zip(&remote)
                .any(|(l, r)| l == column && r == remote_column);
            if !pairs_tenants {
                violations.push(format!(
                    "{name}: foreign key {constraint} ({}) references tenant-scoped {referenced} \
                     ({}) without matching {column} to {referenced}.{remote_column}",
                    local.join(", "),
                    remote.join(", ")
                ));
            }
        }
    }
    violations
}

/// Views and materialized views the app can read run with their owner's
/// rights unless `security_invoker`; materialized views have no RLS at all.
/// Partitions are reached through their parent only.
async fn bypass_path_violations(conn: &mut PgConnection) -> Vec<String> {
    let mut violations = Vec::new();
    let views: Vec<(String, String, bool)> = sqlx::query_as(
        r"SELECT c.oid::regclass::text, c.relkind::text,
                 coalesce(lower(option_value) IN ('true', 'on', '1', 'yes'), false)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_options_to_table(c.reloptions) o ON o.option_name = 'security_invoker'
          WHERE c.relkind IN ('v', 'm')
            AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
            AND (has_table_privilege($1, c.oid, 'SELECT, INSERT, UPDATE, DELETE')
                 OR has_any_column_privilege($1, c.oid, 'SELECT, INSERT, UPDATE'))
          ORDER BY 1",
    )
    .bind(APP_ROLE)
    .fetch_all(&mut *conn)
    .await
    .expect("list views");
    for (view, kind, invoker) in views {
        if kind == "m" {
            violations.push(format!(
                "{view}: {APP_ROLE} can read this materialized view, which RLS does not protect"
            ));
        } else if !invoker {
            violations.push(format!(
                "{view}: {APP_ROLE} can use this view, which is not security_invoker \
                 (it would read tenant tables with its owner's rights)"
            ));
        }
    }
    let partitions: Vec<String> = sqlx::query_scalar(
        r"SELECT c.oid::regclass::text
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relispartition AND c.relkind IN ('r', 'p')
            AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
            AND (has_table_privilege($1, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')
                 OR has_any_column_privilege($1, c.oid, 'SELECT, INSERT, UPDATE'))
          ORDER BY 1",
    )
    .bind(APP_ROLE)
    .fetch_all(&mut *conn)
    .await
    .expect("list partitions");
    for partition in partitions {
        violations.push(format!(
            "{partition}: {APP_ROLE} has privileges on a partition, where the parent's \
             policies do not apply; grant on the parent only"
        ));
    }
    violations
}

/// What makes `role` able to get around RLS: role attributes, ownership of
/// anything in this database, or membership of a role that has either.
async fn role_violations(conn: &mut PgConnection, role: &str) -> Vec<String> {
    let mut violations = Vec::new();
    let attributes: Option<(bool, bool, bool, bool, bool)> = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(role)
    .fetch_optional(&mut *conn)
    .await
    .expect("read role attributes");
    let Some((superuser, bypass, create_role, create_db, replication)) = attributes else {
        return vec![format!("{role}: the role does not exist")];
    };
    for (has, what) in [
        (superuser, "is a superuser"),
        (bypass, "has BYPASSRLS"),
        (create_role, "has CREATEROLE"),
        (create_db, "has CREATEDB"),
        (replication, "has REPLICATION"),
    ] {
        if has {
            violations.push(format!("{role}: {what}"));
        }
    }

    let owned: Vec<String> = sqlx::query_scalar(
        r"WITH me AS (SELECT oid FROM pg_roles WHERE rolname = $1)
          SELECT 'relation ' || c.oid::regclass::text
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relowner = (SELECT oid FROM me)
            AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
          UNION ALL
          SELECT 'function ' || p.oid::regprocedure::text
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE p.proowner = (SELECT oid FROM me)
            AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
          UNION ALL
          SELECT 'schema ' || n.nspname FROM pg_namespace n WHERE n.nspowner = (SELECT oid FROM me)
          UNION ALL
          SELECT 'database ' || d.datname FROM pg_database d
          WHERE d.datname = current_database() AND d.datdba = (SELECT oid FROM me)
          ORDER BY 1",
    )
    .bind(role)
    .fetch_all(&mut *conn)
    .await
    .expect("list owned objects");
    for object in owned {
        violations.push(format!(
            "{role}: owns {object} (owners skip unforced RLS and can alter policies)"
        ));
    }

    // pg_has_role(…, 'MEMBER') follows pg_auth_members transitively, whether
    // or not the grants inherit: SET ROLE works either way.
    let memberships: Vec<(String, bool, bool, bool)> = sqlx::query_as(
        "SELECT r.rolname::text, r.rolsuper, r.rolbypassrls,
                EXISTS (SELECT FROM pg_class c WHERE c.relowner = r.oid
                        AND c.relnamespace <> 'pg_catalog'::regnamespace
                        AND c.relnamespace <> 'information_schema'::regnamespace)
         FROM pg_roles r
         WHERE r.rolname <> $1 AND pg_has_role($1, r.oid, 'MEMBER')
         ORDER BY 1",
    )
    .bind(role)
    .fetch_all(&mut *conn)
    .await
    .expect("list role memberships");
    for (granted, superuser, bypass, owns) in memberships {
        let mut why = Vec::new();
        if granted == OWNER_ROLE {
            why.push("the schema owner role");
        }
        if superuser {
            why.push("a superuser");
        }
        if bypass {
            why.push("BYPASSRLS");
        }
        if owns {
            why.push("owns relations here");
        }
        if BROAD_PREDEFINED_ROLES.contains(&granted.as_str()) {
            why.push("reads or writes past the grants");
        }
        if !why.is_empty() {
            violations.push(format!(
                "{role}: is a member of {granted} ({}), so SET ROLE {granted} gets around RLS",
                why.join(", ")
            ));
        }
    }
    violations
}

/// `SECURITY DEFINER` functions in `public` run as their owner, which
/// bypasses RLS: each must pin a `search_path` ending in `pg_temp`, name only
/// schemas the app cannot create in, and not be executable by PUBLIC.
async fn security_definer_violations(conn: &mut PgConnection) -> (usize, Vec<String>) {
    let functions: Vec<(String, Option<Vec<String>>, bool)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text, p.proconfig,
                EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                        WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
         FROM pg_proc p
         WHERE p.prosecdef AND p.pronamespace = 'public'::regnamespace ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("list SECURITY DEFINER functions");
    let count = functions.len();
    let mut violations = Vec::new();
    for (function, config, public_execute) in functions {
        if public_execute {
            violations.push(format!(
                "{function}: SECURITY DEFINER and executable by PUBLIC \
                 (REVOKE ALL ON FUNCTION … FROM PUBLIC)"
            ));
        }
        let search_path = config
            .unwrap_or_default()
            .into_iter()
            .find_map(|setting| setting.strip_prefix("search_path=").map(str::to_owned));
        let Some(search_path) = search_path else {
            violations.push(format!(
                "{function}: SECURITY DEFINER without a pinned search_path \
                 (SET search_path = public, pg_temp)"
            ));
            continue;
        };
        let schemas: Vec<String> = search_path
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_owned())
            .collect();
        if schemas.last().map(String::as_str) != Some("pg_temp") {
            violations.push(format!(
                "{function}: search_path '{search_path}' does not end with pg_temp \
                 (otherwise temporary objects are searched first)"
            ));
        }
        for schema in schemas.iter().filter(|s| s.as_str() != "pg_temp") {
            let writable: Option<bool> = sqlx::query_scalar(
                "SELECT has_schema_privilege($1, oid, 'CREATE') FROM pg_namespace WHERE nspname = $2",
            )
            .bind(APP_ROLE)
            .bind(schema)
            .fetch_optional(&mut *conn)
            .await
            .expect("read schema privileges");
            if writable == Some(true) {
                violations.push(format!(
                    "{function}: its search_path names schema {schema}, where {APP_ROLE} may create objects"
                ));
            }
        }
    }
    (count, violations)
}

/// Privileges the app must never hold: any on the migrations table,
/// TRUNCATE (which RLS does not filter) anywhere, CREATE on any schema.
async fn privilege_violations(conn: &mut PgConnection) -> Vec<String> {
    let mut violations = Vec::new();
    let migrations: Option<(bool, bool)> = sqlx::query_as(
        "SELECT has_table_privilege($1, t, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'),
                has_any_column_privilege($1, t, 'SELECT, INSERT, UPDATE, REFERENCES')
         FROM to_regclass('public._sqlx_migrations') t WHERE t IS NOT NULL",
    )
    .bind(APP_ROLE)
    .fetch_optional(&mut *conn)
    .await
    .expect("read privileges on _sqlx_migrations");
    match migrations {
        None => violations.push(
            "_sqlx_migrations: not found, so the check of the app's privileges on it means nothing"
                .to_owned(),
        ),
        Some((table, columns)) => {
            if table || columns {
                violations.push(format!(
                    "_sqlx_migrations: {APP_ROLE} has privileges on the migrations table"
                ));
            }
        }
    }
    let truncatable: Vec<String> = sqlx::query_scalar(
        "SELECT c.oid::regclass::text FROM pg_class c
         WHERE c.relkind IN ('r', 'p') AND has_table_privilege($1, c.oid, 'TRUNCATE') ORDER BY 1",
    )
    .bind(APP_ROLE)
    .fetch_all(&mut *conn)
    .await
    .expect("list truncatable tables");
    for table in truncatable {
        violations.push(format!(
            "{table}: {APP_ROLE} has TRUNCATE, which empties the table without RLS"
        ));
    }
    let creatable: Vec<String> = sqlx::query_scalar(
        r"SELECT nspname::text FROM pg_namespace
          WHERE has_schema_privilege($1, oid, 'CREATE')
            AND nspname NOT LIKE 'pg\_temp\_%' AND nspname NOT LIKE 'pg\_toast\_temp\_%'
          ORDER BY 1",
    )
    .bind(APP_ROLE)
    .fetch_all(&mut *conn)
    .await
    .expect("list schemas the app can create in");
    for schema in creatable {
        violations.push(format!(
            "schema {schema}: {APP_ROLE} has CREATE (no DDL for the app)"
        ));
    }
    violations
}

fn assert_none(violations: &[String], what: &str) {
    assert!(
        violations.is_empty(),
        "{what}:\n  - {}",
        violations.join("\n  - ")
    );
}

fn assert_reported(violations: &[String], expected: &[&str]) {
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|e| !violations.iter().any(|v| v.contains(**e)))
        .collect();
    assert!(
        missing.is_empty(),
        "the guard did not report {missing:?}; it reported:\n  - {}",
        violations.join("\n  - ")
    );
}

#[tokio::test]
async fn every_tenant_table_has_forced_rls_a_tenant_policy_and_tenant_led_keys() {
    let db = TestDatabase::create().await;
    let mut admin = db.admin().await;

    let found: BTreeSet<String> = tenant_tables(&mut admin)
        .await
        .into_iter()
        .map(|t| t.name)
        .collect();
    // The foundation's tenant tables, so the checks below cannot pass on nothing.
    for table in ["tenants", "memberships", "api_keys", "audit_log"] {
        assert!(
            found.contains(table),
            "{table} was not discovered as tenant-scoped; found {found:?}"
        );
    }
    // Global tables stay global: a tenant_id there needs a design decision.
    for table in ["users", "sessions", "user_tokens", "_sqlx_migrations"] {
        assert!(
            !found.contains(table),
            "{table} is global but was discovered as tenant-scoped"
        );
    }

    let violations = tenant_table_violations(&mut admin).await;
    assert_none(&violations, "tenant-scoped tables are not protected");
    let violations = bypass_path_violations(&mut admin).await;
    assert_none(&violations, "paths around RLS");
}

#[tokio::test]
async fn the_app_role_is_no_superuser_owner_or_rls_bypasser() {
    let db = TestDatabase::create().await;
    let mut admin = db.admin().await;
    let violations = role_violations(&mut admin, APP_ROLE).await;
    assert_none(&violations, "the app role can get around RLS");

    // And from the app's own connection: it is the app role, RLS applies to
    // it, and it cannot become the owner.
    let mut app = PgConnection::connect_with(&db.app_options())
        .await
        .expect("connect as the app role");
    let (user, superuser, row_security): (String, String, String) = sqlx::query_as(
        "SELECT current_user::text, current_setting('is_superuser'), current_setting('row_security')",
    )
    .fetch_one(&mut app)
    .await
    .expect("read the session");
    assert_eq!(user, APP_ROLE, "the app pool connects as the wrong role");
    assert_eq!(superuser, "off", "the app connection is a superuser");
    assert_eq!(
        row_security, "on",
        "row_security is not on for the app role"
    );
    let set_role = sqlx::query(&format!("SET ROLE {OWNER_ROLE}"))
        .execute(&mut app)
        .await;
    match set_role {
        Err(sqlx::Error::Database(e)) => assert_eq!(
            e.code().as_deref(),
            Some("42501"),
            "SET ROLE {OWNER_ROLE} failed, but not with permission denied: {e}"
        ),
        other => panic!("{APP_ROLE} could SET ROLE {OWNER_ROLE}: {other:?}"),
    }
}

#[tokio::test]
async fn security_definer_functions_pin_search_path_and_are_not_public() {
    let db = TestDatabase::create().await;
    let mut admin = db.admin().await;
    let (count, violations) = security_definer_violations(&mut admin).await;
    assert!(
        count > 0,
        "no SECURITY DEFINER function found in public: the cross-tenant look-ups of \
         0001_foundation.sql should be, so this check would mean nothing"
    );
    assert_none(&violations, "SECURITY DEFINER functions are unsafe");
}

#[tokio::test]
async fn the_app_role_has_no_migration_truncate_or_ddl_privileges() {
    let db = TestDatabase::create().await;
    let mut admin = db.admin().await;
    let violations = privilege_violations(&mut admin).await;
    assert_none(&violations, "the app role holds privileges it must not");
}

/// The guard itself can fail: a careless migration, applied to a test
/// database of its own, is reported table by table.
#[tokio::test]
async fn the_guard_reports_a_careless_migration() {
    let db = TestDatabase::create().await;
    let mut admin = db.admin().await;
    sqlx::raw_sql(&format!(
        r"
        SET ROLE {OWNER_ROLE};
        -- No RLS; a primary key, a unique index and a foreign key without tenant_id.
        CREATE TABLE widgets (
            tenant_id uuid NOT NULL REFERENCES tenants (id),
            id uuid PRIMARY KEY,
            slug text UNIQUE,
            key_tenant_id uuid,
            key_id uuid,
            FOREIGN KEY (key_tenant_id, key_id) REFERENCES api_keys (tenant_id, id)
        );
        -- RLS enabled but not forced; a SELECT-only tenant policy and a leaky one.
        CREATE TABLE gadgets (tenant_id uuid, id uuid, PRIMARY KEY (tenant_id, id));
        ALTER TABLE gadgets ENABLE ROW LEVEL SECURITY;
        CREATE POLICY own ON gadgets FOR SELECT USING (tenant_id = (SELECT current_tenant_id()));
        CREATE POLICY everyone ON gadgets USING (true);
        -- Forced RLS on the parent, but the app is granted a partition.
        CREATE TABLE trail (tenant_id uuid, id bigint, PRIMARY KEY (tenant_id, id))
            PARTITION BY HASH (tenant_id);
        SELECT enable_tenant_isolation('trail');
        CREATE TABLE trail_0 PARTITION OF trail FOR VALUES WITH (MODULUS 1, REMAINDER 0);
        GRANT SELECT ON trail_0 TO {APP_ROLE};
        -- Keyless by design, but given an index that does not lead with tenant_id.
        CREATE INDEX events_type_idx ON events (type);
        -- A view that reads tenant rows with its owner's rights.
        CREATE VIEW member_counts AS SELECT tenant_id, count(*) FROM memberships GROUP BY 1;
        GRANT SELECT ON member_counts TO {APP_ROLE};
        -- SECURITY DEFINER functions: unpinned and public; pg_temp searched first.
        CREATE FUNCTION audit_count() RETURNS bigint LANGUAGE sql SECURITY DEFINER
            AS 'SELECT count(*) FROM public.audit_log';
        CREATE FUNCTION key_count() RETURNS bigint LANGUAGE sql SECURITY DEFINER
            SET search_path = pg_temp, public AS 'SELECT count(*) FROM api_keys';
        REVOKE ALL ON FUNCTION key_count() FROM PUBLIC;
        RESET ROLE;
        -- Privileges the app must not have.
        GRANT SELECT ON _sqlx_migrations TO {APP_ROLE};
        GRANT TRUNCATE ON memberships TO {APP_ROLE};
        GRANT CREATE ON SCHEMA public TO {APP_ROLE};
        CREATE TABLE app_owned (id int);
        ALTER TABLE app_owned OWNER TO {APP_ROLE};
        "
    ))
    .execute(&mut admin)
    .await
    .expect("apply the careless migration");

    let tables = tenant_table_violations(&mut admin).await;
    assert_reported(
        &tables,
        &[
            "widgets: row level security is not enabled",
            "widgets: row level security is not forced",
            "widgets: no permissive policy FOR ALL",
            "widgets: tenant_id is not the first column of the primary key (it starts with id)",
            "widgets: unique index widgets_slug_key does not lead with tenant_id",
            "widgets: foreign key widgets_key_tenant_id_key_id_fkey (key_tenant_id, key_id) \
             references tenant-scoped api_keys",
            "gadgets: row level security is not forced",
            "gadgets: no permissive policy FOR ALL",
            "gadgets: permissive policy everyone has a USING clause",
            "events: index events_type_idx does not lead with tenant_id",
        ],
    );
    for sound in [
        "tenants:",
        "memberships:",
        "api_keys:",
        "audit_log:",
        "trail:",
    ] {
        assert!(
            !tables.iter().any(|v| v.starts_with(sound)),
            "the guard blames a sound table ({sound}): {tables:#?}"
        );
    }
    assert!(
        !tables.iter().any(|v| v.contains("widgets_tenant_id_fkey")),
        "a foreign key that includes tenant_id was reported: {tables:#?}"
    );
    assert!(
        !tables
            .iter()
            .any(|v| v.starts_with("events:") && !v.contains("events_type_idx")),
        "the guard blames events for more than its careless index: {tables:#?}"
    );

    let bypass = bypass_path_violations(&mut admin).await;
    assert_reported(
        &bypass,
        &[
            "member_counts: northstar_app can use this view, which is not security_invoker",
            "trail_0: northstar_app has privileges on a partition",
        ],
    );

    let (_, functions) = security_definer_violations(&mut admin).await;
    assert_reported(
        &functions,
        &[
            "audit_count(): SECURITY DEFINER and executable by PUBLIC",
            "audit_count(): SECURITY DEFINER without a pinned search_path",
            "key_count(): search_path 'pg_temp, public' does not end with pg_temp",
            "key_count(): its search_path names schema public, where northstar_app may create",
        ],
    );
    // member_tenant is sound, except that public is now writable by the app.
    assert!(
        functions
            .iter()
            .filter(|v| v.starts_with("member_tenant("))
            .all(|v| v.contains("where northstar_app may create objects")),
        "a sound function was reported: {functions:#?}"
    );

    let privileges = privilege_violations(&mut admin).await;
    assert_reported(
        &privileges,
        &[
            "_sqlx_migrations: northstar_app has privileges on the migrations table",
            "memberships: northstar_app has TRUNCATE",
            "schema public: northstar_app has CREATE",
        ],
    );

    let role = role_violations(&mut admin, APP_ROLE).await;
    assert_reported(&role, &["northstar_app: owns relation app_owned"]);
}

/// The role checks can fail: the administrative role is everything the app
/// role must not be.
#[tokio::test]
async fn the_guard_reports_a_privileged_role() {
    let db = TestDatabase::create().await;
    let mut admin = db.admin().await;
    let me: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut admin)
        .await
        .expect("current user");
    let violations = role_violations(&mut admin, &me).await;
    assert_reported(
        &violations,
        &[
            &format!("{me}: is a superuser"),
            &format!("{me}: owns database "),
            &format!("{me}: is a member of {OWNER_ROLE} (the schema owner role"),
        ],
    );
    let missing = role_violations(&mut admin, "northstar_no_such_role").await;
    assert_reported(
        &missing,
        &["northstar_no_such_role: the role does not exist"],
    );
}
