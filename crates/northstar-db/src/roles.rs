//! The two database roles and the migrations they run under.
//!
//! - `northstar_owner` (no login, `BYPASSRLS`) owns every table and the
//!   narrow `SECURITY DEFINER` functions. Migrations run as it, through
//!   `SET ROLE` from the administrative connection in `DATABASE_URL`.
//! - `northstar_app` (login; not superuser, not owner, no `BYPASSRLS`) is what
//!   the running server connects as, so Row Level Security always applies.
//!
//! Roles are cluster-wide; creating them is idempotent and tolerates several
//! processes bootstrapping the same cluster at once.

use sqlx::PgConnection;

use crate::DbError;

/// Role that owns the schema; migrations run as it.
pub const OWNER_ROLE: &str = "northstar_owner";
/// Role the running app connects as.
pub const APP_ROLE: &str = "northstar_app";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const BOOTSTRAP: &str = r#"
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'northstar_owner') THEN
        BEGIN
            CREATE ROLE northstar_owner NOLOGIN BYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'northstar_app') THEN
        BEGIN
            CREATE ROLE northstar_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'northstar_owner', 'MEMBER') THEN
        EXECUTE format('GRANT northstar_owner TO %I', current_user);
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO northstar_app', current_database());
END $$;
GRANT USAGE, CREATE ON SCHEMA public TO northstar_owner;
GRANT USAGE ON SCHEMA public TO northstar_app;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
"#;

/// Creates the roles when missing, sets the app role's password when one is
/// configured, and applies every pending migration as the owner role.
///
/// `admin` must be a superuser: creating a `BYPASSRLS` role, granting on the
/// database and setting role passwords require it.
pub async fn bootstrap_and_migrate(
    admin: &mut PgConnection,
    app_password: Option<&str>,
) -> Result<(), DbError> {
    sqlx::raw_sql(BOOTSTRAP).execute(&mut *admin).await?;
    if let Some(password) = app_password {
        // ALTER ROLE takes no bind parameters; quote the literal server-side.
        let statement: String =
            sqlx::query_scalar("select format('ALTER ROLE northstar_app PASSWORD %L', $1::text)")
                .bind(password)
                .fetch_one(&mut *admin)
                .await?;
        sqlx::raw_sql(&statement).execute(&mut *admin).await?;
    }
    sqlx::raw_sql("SET ROLE northstar_owner")
        .execute(&mut *admin)
        .await?;
    let applied = MIGRATOR.run(&mut *admin).await;
    sqlx::raw_sql("RESET ROLE").execute(&mut *admin).await?;
    applied?;
    Ok(())
}

/// A digest of the migrations, so test templates built from an older schema
/// are never reused.
pub fn migrations_fingerprint() -> String {
    let mut text = String::new();
    for migration in MIGRATOR.iter() {
        text.push_str(&migration.version.to_string());
        text.push_str(&migration.sql);
    }
    let digest = crate::secret_token::digest(&text);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
