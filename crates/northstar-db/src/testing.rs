//! Test support: a throwaway database per test, created from the migrations.
//!
//! The server is the one in `DATABASE_URL` (a superuser connection), or, when
//! that is unset, an embedded cluster this process starts in a temporary
//! directory and that stops when the process exits. Migrations run once per
//! process into a template database named after their fingerprint; each test
//! database is a copy of it, dropped when the [`TestDatabase`] is.

use std::{str::FromStr, time::Duration};

use sqlx::{
    Connection, Executor, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::{embedded::EmbeddedCluster, roles};

/// A database of one's own, migrated, with pools for the app role and the
/// administrative (superuser) role.
pub struct TestDatabase {
    name: String,
    server: PgConnectOptions,
    app_pool: PgPool,
}

static SERVER: OnceCell<PgConnectOptions> = OnceCell::const_new();
static EMBEDDED: OnceCell<EmbeddedCluster> = OnceCell::const_new();
static TEMPLATE: OnceCell<String> = OnceCell::const_new();

async fn server() -> PgConnectOptions {
    SERVER
        .get_or_init(|| async {
            match std::env::var("DATABASE_URL") {
                Ok(url) => {
                    PgConnectOptions::from_str(&url).expect("DATABASE_URL is not a valid URL")
                }
                Err(_) => {
                    let cluster = EMBEDDED
                        .get_or_init(|| async {
                            let dir = std::env::temp_dir()
                                .join(format!("northstar-test-pg-{}", std::process::id()));
                            let cluster = EmbeddedCluster::start(&dir).await.expect(
                                "start a throwaway PostgreSQL cluster (or set DATABASE_URL)",
                            );
                            cluster.discard_when_process_exits();
                            cluster
                        })
                        .await;
                    cluster.connect_options(EmbeddedCluster::SUPERUSER)
                }
            }
        })
        .await
        .clone()
}

async fn template(server: &PgConnectOptions) -> String {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("northstar_tmpl_{}", roles::migrations_fingerprint());
            let mut admin = PgConnection::connect_with(server)
                .await
                .expect("connect to DATABASE_URL");
            // Serialise template builds across concurrently running test processes.
            admin
                .execute("SELECT pg_advisory_lock(7460214)")
                .await
                .expect("advisory lock");
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
                    .bind(&name)
                    .fetch_one(&mut admin)
                    .await
                    .expect("look for the template");
            if !exists {
                let stale: Vec<String> = sqlx::query_scalar(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'northstar\\_tmpl\\_%'",
                )
                .fetch_all(&mut admin)
                .await
                .expect("list stale templates");
                for old in stale {
                    admin
                        .execute(format!("DROP DATABASE IF EXISTS \"{old}\" WITH (FORCE)").as_str())
                        .await
                        .expect("drop a stale template");
                }
                let building = format!("{name}_building");
                admin
                    .execute(
                        format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)").as_str(),
                    )
                    .await
                    .expect("drop a half-built template");
                admin
                    .execute(format!("CREATE DATABASE \"{building}\"").as_str())
                    .await
                    .expect("create the template");
                let mut conn = PgConnection::connect_with(&server.clone().database(&building))
                    .await
                    .expect("connect to the template");
                roles::bootstrap_and_migrate(&mut conn, None)
                    .await
                    .expect("migrate the template");
                conn.close().await.expect("close the template connection");
                admin
                    .execute(format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"").as_str())
                    .await
                    .expect("publish the template");
            }
            admin
                .execute("SELECT pg_advisory_unlock(7460214)")
                .await
                .expect("advisory unlock");
            name
        })
        .await
        .clone()
}

impl TestDatabase {
    /// Creates a fresh, migrated database. Panics when it cannot: a test
    /// without its database cannot mean anything.
    pub async fn create() -> Self {
        let server = server().await;
        let template = template(&server).await;
        let name = format!("northstar_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect_with(&server)
            .await
            .expect("connect to DATABASE_URL");
        admin
            .execute(format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"").as_str())
            .await
            .expect("create the test database");
        admin.close().await.expect("close the admin connection");
        let app_options = server.clone().database(&name).username(roles::APP_ROLE);
        let app_pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(app_options)
            .await
            .expect("connect as northstar_app");
        TestDatabase {
            name,
            server,
            app_pool,
        }
    }

    /// A pool connected as `northstar_app`, the role the server uses.
    pub fn app_pool(&self) -> &PgPool {
        &self.app_pool
    }

    /// Connection options for the app role on this database.
    pub fn app_options(&self) -> PgConnectOptions {
        self.admin_options().username(roles::APP_ROLE)
    }

    /// Connection options for the administrative (superuser) role on this database.
    pub fn admin_options(&self) -> PgConnectOptions {
        self.server.clone().database(&self.name)
    }

    /// A connection as the administrative role, for fixtures and inspection.
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect_with(&self.admin_options())
            .await
            .expect("connect as admin")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; drop the database from a thread
        // with a runtime of its own, and wait for it. FORCE ends the pool's
        // connections.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect_with(&server).await {
                    let _ = admin
                        .execute(
                            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
                        )
                        .await;
                }
            });
        });
        let _ = dropped.join();
    }
}

impl TestDatabase {
    /// A `DATABASE_URL` for this database as the administrative role, for
    /// running the `northstar` binary against it.
    pub fn admin_url(&self) -> String {
        let options = self.admin_options();
        let user = options.get_username();
        let port = options.get_port();
        match options.get_socket() {
            Some(socket_dir) => format!(
                "postgres://{user}@localhost:{port}/{}?host={}",
                self.name,
                socket_dir.display()
            ),
            None => format!(
                "postgres://{user}@{}:{port}/{}",
                options.get_host(),
                self.name
            ),
        }
    }
}
