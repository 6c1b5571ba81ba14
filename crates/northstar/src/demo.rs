//! `northstar demo`: two demo tenants (`acme`, `globex`), an owner each and
//! a super-admin, all with one password. Re-running reuses what exists and
//! resets the passwords to the configured one.

use anyhow::Context;
use northstar_db::{audit::Actor, provisioning::ProvisionOutcome, users};

use crate::{provision::NewTenant, state::AppState};

/// The demo's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Password of every demo account.
    #[arg(
        long,
        env = "NORTHSTAR_DEMO_PASSWORD",
        default_value = "northstar-demo",
        hide_env_values = true
    )]
    pub demo_password: String,
}

const SUPERADMIN_EMAIL: &str = "admin@example.com";
const TENANTS: &[(&str, &str, &str)] = &[
    ("acme", "Acme Analytics", "owner@acme.example.com"),
    ("globex", "Globex Cloud", "owner@globex.example.com"),
];

/// Provisions the demo tenants and accounts, idempotently.
pub async fn provision(state: &AppState, options: &DemoOptions) -> anyhow::Result<()> {
    let hash = state.passwords.hash(&options.demo_password).await?;
    let mut conn = state.pool.acquire().await?;
    let (admin, _) =
        users::find_or_create(&mut conn, SUPERADMIN_EMAIL, "Demo super-admin", Some(&hash)).await?;
    users::set_password(&mut *conn, admin.id, &hash).await?;
    users::set_superadmin(&mut *conn, admin.id, true).await?;
    drop(conn);
    let actor = Actor {
        label: "demo".into(),
        user_id: None,
        request_id: None,
    };
    for (slug, name, owner_email) in TENANTS {
        let request = NewTenant {
            slug: (*slug).into(),
            name: (*name).into(),
            owner_email: (*owner_email).into(),
            owner_name: Some(format!("{name} owner")),
            owner_password: Some(options.demo_password.clone()),
            plan: Some("growth".into()),
        };
        let outcome = crate::provision::provision(&state.pool, &state.passwords, &request, &actor)
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))
            .with_context(|| format!("provisioning demo tenant {slug}"))?;
        match outcome {
            ProvisionOutcome::Created(done) => {
                tracing::info!(tenant = slug, "demo tenant created");
                println!("Write key for {slug}: {}", done.write_key.secret);
            }
            ProvisionOutcome::AlreadyExists(_) => {
                let owner = users::find_by_email(&state.pool, owner_email)
                    .await?
                    .context("demo owner missing")?;
                users::set_password(&state.pool, owner.id, &hash).await?;
            }
            ProvisionOutcome::SlugTaken => {
                anyhow::bail!("slug {slug} belongs to a tenant that is not the demo's")
            }
        }
    }
    Ok(())
}

/// Tells the person who ran `northstar demo` where to go and how to sign in.
pub fn print_welcome(origin: &str, options: &DemoOptions) {
    let password = &options.demo_password;
    println!();
    println!("Northstar demo is running at {origin}");
    println!("  API docs:      {origin}/api/docs");
    println!("  Super-admin:   {SUPERADMIN_EMAIL} / {password}");
    for (slug, _, owner) in TENANTS {
        println!("  {slug:<6} owner:  {owner} / {password}");
    }
    println!("Stop with Ctrl-C.");
}
