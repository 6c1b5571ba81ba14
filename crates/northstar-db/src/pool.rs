use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{DbError, embedded::EmbeddedCluster, roles};

/// Where the data lives: a PostgreSQL server named by `DATABASE_URL`, or the
/// cluster Northstar runs itself in its data directory.
pub enum DatabaseTarget {
    /// An existing server; the options are the administrative connection
    /// (migrations); the app connects to the same server as `northstar_app`.
    Server(PgConnectOptions),
    /// The embedded cluster, stopped by [`DatabaseTarget::shutdown`].
    Embedded(EmbeddedCluster),
}

impl DatabaseTarget {
    /// Uses `database_url` when given; otherwise starts (or, with `attach`,
    /// joins a running server's) embedded cluster in `data_dir`.
    pub async fn open(
        database_url: Option<&str>,
        data_dir: &Path,
        attach: bool,
    ) -> Result<Self, DbError> {
        match database_url {
            Some(url) => Ok(DatabaseTarget::Server(
                PgConnectOptions::from_str(url).map_err(DbError::Other)?,
            )),
            None if attach => Ok(DatabaseTarget::Embedded(
                EmbeddedCluster::attach_or_start(data_dir).await?,
            )),
            None => Ok(DatabaseTarget::Embedded(
                EmbeddedCluster::start(data_dir).await?,
            )),
        }
    }

    /// The administrative connection: owner of the schema, runs migrations.
    pub fn admin_options(&self) -> PgConnectOptions {
        match self {
            DatabaseTarget::Server(options) => options.clone(),
            DatabaseTarget::Embedded(cluster) => {
                cluster.connect_options(EmbeddedCluster::SUPERUSER)
            }
        }
    }

    /// The app's connection: same server and database, as `northstar_app`,
    /// with `password` or none (never the administrative one).
    pub fn app_options(&self, password: Option<&str>) -> PgConnectOptions {
        self.admin_options()
            .username(roles::APP_ROLE)
            .password(password.unwrap_or_default())
    }

    /// Stops the embedded cluster, if this process started it.
    pub async fn shutdown(self) -> Result<(), DbError> {
        match self {
            DatabaseTarget::Server(_) => Ok(()),
            DatabaseTarget::Embedded(cluster) => Ok(cluster.stop().await?),
        }
    }
}

/// Opens the app's pool. Every connection gets a `statement_timeout` and an
/// `idle_in_transaction_session_timeout`, so neither a runaway query nor a
/// transaction abandoned mid-flight can hold a connection for long.
pub async fn connect_app_pool(
    options: PgConnectOptions,
    max_connections: u32,
    statement_timeout: Duration,
) -> Result<PgPool, DbError> {
    let timeout_ms = statement_timeout.as_millis().to_string();
    let options = options.options([
        ("statement_timeout", timeout_ms.as_str()),
        ("idle_in_transaction_session_timeout", "60000"),
        ("application_name", "northstar"),
    ]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(DbError::Unavailable)?;
    Ok(pool)
}
