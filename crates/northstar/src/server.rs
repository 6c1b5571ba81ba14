//! `northstar serve` and `northstar demo`: open the database (starting the
//! embedded cluster when there is no `DATABASE_URL`), migrate, serve until
//! SIGINT or SIGTERM, then stop the cluster cleanly.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use northstar_db::{DatabaseTarget, connect_app_pool, roles};
use sqlx::{Connection, PgConnection};
use tokio::net::TcpListener;

use crate::{
    auth::passwords::Passwords,
    build_router,
    config::{DatabaseConfig, ServerConfig},
    demo, jobs,
    state::AppState,
};

/// Opens the database the configuration names, with `attach` letting CLI
/// commands share a running server's embedded cluster.
pub async fn open_database(db: &DatabaseConfig, attach: bool) -> anyhow::Result<DatabaseTarget> {
    let url = db.database_url.as_ref().map(|url| url.expose().to_owned());
    Ok(DatabaseTarget::open(url.as_deref(), &db.data_dir, attach).await?)
}

/// Creates the roles and applies pending migrations.
pub async fn migrate(target: &DatabaseTarget, db: &DatabaseConfig) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect_with(&target.admin_options())
        .await
        .context("connecting with DATABASE_URL to run migrations")?;
    let password = db.database_app_password.as_ref().map(|p| p.expose());
    roles::bootstrap_and_migrate(&mut admin, password)
        .await
        .context("applying migrations")?;
    admin.close().await.ok();
    Ok(())
}

/// Runs the server (and, with `demo`, provisions the demo first) until a
/// shutdown signal; always stops the embedded cluster before returning.
pub async fn run(
    db: &DatabaseConfig,
    server: &ServerConfig,
    demo: Option<&demo::DemoOptions>,
) -> anyhow::Result<()> {
    let settings = server.http_settings()?;
    if !settings.secure_cookies {
        tracing::warn!(
            public_origin = %settings.public_origin,
            "plain-HTTP public URL on loopback: cookies are not Secure; development only"
        );
    }
    let target = open_database(db, false).await?;
    let served = async {
        migrate(&target, db).await?;
        let password = db.database_app_password.as_ref().map(|p| p.expose());
        let pool = connect_app_pool(
            target.app_options(password),
            server.db_pool_size,
            Duration::from_millis(server.statement_timeout_ms),
        )
        .await
        .context("connecting as northstar_app")?;
        let passwords = Passwords::new()?;
        let listener = TcpListener::bind(server.bind)
            .await
            .with_context(|| format!("binding NORTHSTAR_BIND={}", server.bind))?;
        if let Some(options) = demo {
            demo::provision(&pool, &passwords, options).await?;
            demo::print_welcome(&settings.public_origin, options);
        }
        let (state, writers) = AppState::new(pool, settings, passwords);
        let housekeeping = spawn_housekeeping(&state);
        let jobs = jobs::spawn_runner(state.pool.clone());
        tracing::info!(address = %server.bind, public_origin = %state.settings.public_origin, "serving");
        let served = axum::serve(
            listener,
            build_router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP");
        housekeeping.abort();
        jobs.abort();
        // Every acknowledged message is already committed; this writes what
        // was queued for requests still being answered.
        writers.drain().await;
        served
    }
    .await;
    tracing::info!("shutting down");
    let stopped = target.shutdown().await;
    served?;
    stopped?;
    Ok(())
}

/// Once a minute: forget idle throttle buckets and delete dead sessions.
fn spawn_housekeeping(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let idle = chrono::Duration::from_std(state.settings.session_idle)
            .unwrap_or(chrono::Duration::MAX);
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            state.login_throttle.forget_idle();
            state.ingest.limits.forget_idle();
            if let Err(err) = northstar_db::sessions::delete_expired(&state.pool, idle).await {
                tracing::warn!(error = %err, "could not delete expired sessions");
            }
        }
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}
