//! `northstar demo`: two demo tenants (`acme`, `globex`), an owner each and
//! a super-admin, all with one password, and in each tenant a different
//! generated SaaS company ([`company`]) loaded by [`load`], so that the demo
//! opens on full dashboards. Re-running reuses what exists, resets the
//! passwords to the configured one, and loads a company only into a demo
//! tenant that has no billing customers yet.

pub mod company;
pub mod load;

use anyhow::Context;
use chrono::Utc;
use northstar_db::{audit::Actor, provisioning::ProvisionOutcome, tenants, users};
use sqlx::PgPool;

use crate::{auth::passwords::Passwords, provision::NewTenant};
use company::{CompanyShape, Market};

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
    /// Customers generated per demo tenant (trials and paying; 0: no data).
    #[arg(long, default_value_t = 1000)]
    pub customers: u32,
    /// Days of generated history, ending now.
    #[arg(long, default_value_t = 730, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// Seed of the generated companies: the same seed and sizes give the
    /// same data (each tenant's company also depends on its slug).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Mean product events of a user on a day they use the product: scales
    /// the event stream (350,000 to 450,000 events per 1,000 customers over
    /// two years at the default).
    #[arg(
        long,
        default_value_t = CompanyShape::DEFAULT_EVENTS_PER_USER_DAY,
        value_parser = parse_events_per_user_day
    )]
    pub events_per_user_day: f64,
}

fn parse_events_per_user_day(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(density) if (0.0..=1000.0).contains(&density) => Ok(density),
        _ => Err("expected a number from 0 to 1000".to_owned()),
    }
}

const SUPERADMIN_EMAIL: &str = "admin@example.com";

/// A demo tenant: who owns it and where its generated company is based.
struct DemoTenant {
    slug: &'static str,
    name: &'static str,
    owner_email: &'static str,
    market: Market,
}

const TENANTS: &[DemoTenant] = &[
    DemoTenant {
        slug: "acme",
        name: "Acme Analytics",
        owner_email: "owner@acme.example.com",
        market: Market::NorthAmerica,
    },
    DemoTenant {
        slug: "globex",
        name: "Globex Cloud",
        owner_email: "owner@globex.example.com",
        market: Market::Europe,
    },
];

/// Provisions the demo tenants and accounts, idempotently, then loads a
/// company into each demo tenant without billing data. Run it before the
/// server's ingestion pipeline starts: the loader applies the rollup inbox
/// with its own worker, and a second worker would wait on the same
/// tenant's lock.
pub async fn provision(
    pool: &PgPool,
    passwords: &Passwords,
    options: &DemoOptions,
) -> anyhow::Result<()> {
    let hash = passwords.hash(&options.demo_password).await?;
    let mut conn = pool.acquire().await?;
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
    for DemoTenant {
        slug,
        name,
        owner_email,
        ..
    } in TENANTS
    {
        let request = NewTenant {
            slug: (*slug).into(),
            name: (*name).into(),
            owner_email: (*owner_email).into(),
            owner_name: Some(format!("{name} owner")),
            owner_password: Some(options.demo_password.clone()),
            plan: Some("growth".into()),
        };
        let outcome = crate::provision::provision(pool, passwords, &request, &actor)
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))
            .with_context(|| format!("provisioning demo tenant {slug}"))?;
        match outcome {
            ProvisionOutcome::Created(done) => {
                tracing::info!(tenant = slug, "demo tenant created");
                println!("Write key for {slug}: {}", done.write_key.secret);
            }
            ProvisionOutcome::AlreadyExists(_) => {
                let owner = users::find_by_email(pool, owner_email)
                    .await?
                    .context("demo owner missing")?;
                users::set_password(pool, owner.id, &hash).await?;
            }
            ProvisionOutcome::SlugTaken => {
                anyhow::bail!("slug {slug} belongs to a tenant that is not the demo's")
            }
        }
    }
    load_companies(pool, options).await
}

/// Loads a generated company into every demo tenant that has no billing
/// customer yet, and prints what each load stored.
async fn load_companies(pool: &PgPool, options: &DemoOptions) -> anyhow::Result<()> {
    if options.customers == 0 {
        return Ok(());
    }
    for DemoTenant { slug, market, .. } in TENANTS {
        let tenant_id = tenants::platform_id_by_slug(pool, slug)
            .await?
            .with_context(|| format!("demo tenant {slug} missing"))?;
        if load::has_billing(pool, tenant_id).await? {
            continue;
        }
        let shape = CompanyShape {
            customers: options.customers,
            days: options.days,
            end: Utc::now(),
            market: *market,
            events_per_user_day: options.events_per_user_day,
        };
        println!(
            "Loading a generated company into {slug}: {} customers over {} days…",
            shape.customers, shape.days
        );
        let stats = load::load_company(
            pool,
            tenant_id,
            &shape,
            tenant_seed(slug, options.seed),
            true,
        )
        .await
        .with_context(|| format!("loading demo data into {slug}"))?;
        println!(
            "Loaded {slug}: {} customers, {} invoices, {} events in {:.1} s \
             (events {:.1} s, billing {:.1} s).",
            stats.customers,
            stats.invoices,
            stats.events,
            stats.total_time.as_secs_f64(),
            stats.events_time.as_secs_f64(),
            stats.billing_time.as_secs_f64(),
        );
    }
    Ok(())
}

/// The seed of a demo tenant's company: its slug's FNV-1a hash, mixed with
/// the `--seed` flag, so each tenant gets a different company.
fn tenant_seed(slug: &str, seed: u64) -> u64 {
    let hash = slug.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash ^ seed.rotate_left(17)
}

/// Tells the person who ran `northstar demo` where to go and how to sign in.
pub fn print_welcome(origin: &str, options: &DemoOptions) {
    let password = &options.demo_password;
    println!();
    println!("Northstar demo is running at {origin}");
    println!("  API docs:      {origin}/api/docs");
    println!("  Super-admin:   {SUPERADMIN_EMAIL} / {password}");
    for DemoTenant {
        slug, owner_email, ..
    } in TENANTS
    {
        println!("  {slug:<6} owner:  {owner_email} / {password}");
    }
    println!("Stop with Ctrl-C.");
}
