//! The `northstar` command: one binary, roles as subcommands.
//!
//! Operator commands (`migrate`, `tenant …`, `user …`, `import`) work
//! against the same database as a running server: the one in
//! `DATABASE_URL`, or the embedded cluster of the data directory (joining a
//! running server's, or starting it for the duration of the command).

use std::{
    io::{IsTerminal, Read},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use bytes::Bytes;
use chrono::Utc;
use clap::{Parser, Subcommand};
use futures_util::Stream;
use indicatif::{ProgressBar, ProgressStyle};
use northstar_db::{
    DatabaseTarget, TenantTx,
    audit::Actor,
    billing::rollup,
    connect_app_pool,
    memberships::{self, Role},
    product,
    tenants::{self, TenantStatus},
    users,
};
use serde_json::json;
use sqlx::PgPool;

use crate::{
    auth::passwords::{Passwords, check_new_password},
    config::{DatabaseConfig, LogConfig, ServerConfig},
    demo::DemoOptions,
    http::{
        admin::{ProvisionResponse, set_tenant_status},
        members::looks_like_email,
    },
    ingest::{
        csv_import::{self, CsvImportError, CsvMapping, MappingError},
        import::{self, Importer},
        message::Receipt,
        pipeline::{Pipeline, PipelineSettings},
    },
    provision::NewTenant,
    server, telemetry,
};

/// Northstar: multi-tenant SaaS analytics.
#[derive(Debug, Parser)]
#[command(name = "northstar", version)]
pub struct Cli {
    #[command(flatten)]
    database: DatabaseConfig,
    #[command(flatten)]
    log: LogConfig,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the REST API, ingestion, the docs and the web UI.
    Serve(ServerConfig),
    /// Provision demo tenants and accounts, load a generated SaaS company
    /// (billing and product events) into each new one, print how to sign
    /// in, and serve.
    Demo {
        #[command(flatten)]
        server: ServerConfig,
        #[command(flatten)]
        demo: DemoOptions,
    },
    /// Create the database roles and apply pending migrations.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Import events into a tenant from an NDJSON or CSV file. Prints a
    /// summary, and every rejected line (on standard error).
    Import(ImportArgs),
    /// Recompute rollups from raw data.
    #[command(subcommand)]
    Rollups(RollupsCommand),
}

#[derive(Debug, Subcommand)]
enum RollupsCommand {
    /// Recompute a tenant's revenue rollups (MRR movements and daily
    /// totals) from its billing data, and its product and support rollups
    /// from its stored events, in one transaction.
    Rebuild {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
    },
}

/// `northstar import`: what to read, into which tenant, and for CSV how.
#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// The file to import, or `-` for standard input (with `--format`).
    file: PathBuf,
    /// The tenant's slug.
    #[arg(long)]
    tenant: String,
    /// `ndjson` (one Segment message, with its `type`, per line) or `csv`
    /// (a header row naming the columns, then one message per row).
    /// Default: from the file's extension (.ndjson, .jsonl or .csv).
    #[arg(long, value_enum)]
    format: Option<ImportFormat>,
    #[command(flatten)]
    mapping: CsvMapping,
}

/// The formats `northstar import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ImportFormat {
    /// One Segment message per line.
    Ndjson,
    /// A header row, then one message per row, mapped by the CSV flags.
    Csv,
}

/// Bytes read from the file at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Provision a tenant with its owner and a write key (printed once).
    Create {
        /// URL name: lowercase letters, digits and hyphens.
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// The owner's email: an existing user, or a new account.
        #[arg(long)]
        owner_email: String,
        /// A new owner's display name.
        #[arg(long)]
        owner_name: Option<String>,
        /// Plan: free, starter, growth or enterprise.
        #[arg(long)]
        plan: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List every tenant.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Suspend a tenant: its members and keys are refused.
    Suspend {
        /// The tenant.
        #[arg(long)]
        slug: String,
    },
    /// Reactivate a suspended tenant.
    Reactivate {
        /// The tenant.
        #[arg(long)]
        slug: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user (or update the password of an existing one).
    Create {
        /// Email address.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from the first line of standard input. Without
        /// it, a one-time set-password token is printed.
        #[arg(long)]
        password_stdin: bool,
        /// Make the user a platform super-admin.
        #[arg(long)]
        superadmin: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Add an existing user to a tenant with a role.
    Add {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// owner, admin, editor or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
}

fn parse_role(value: &str) -> Result<Role, String> {
    serde_json::from_value(json!(value))
        .map_err(|_| "expected owner, admin, editor or viewer".to_owned())
}

/// Parses the command line, runs the command, and reports an error chain.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(server) => server::run(&cli.database, &server, None).await,
        Command::Demo { server, demo } => server::run(&cli.database, &server, Some(&demo)).await,
        command => {
            if let Command::Import(args) = &command {
                // Refuse bad flags before opening (maybe starting) the database.
                args.format()?;
            }
            let target = server::open_database(&cli.database, true).await?;
            let result = operate(&cli.database, &target, command).await;
            target.shutdown().await?;
            result
        }
    }
}

async fn operate(
    db: &DatabaseConfig,
    target: &DatabaseTarget,
    command: Command,
) -> anyhow::Result<()> {
    server::migrate(target, db).await?;
    if matches!(command, Command::Migrate) {
        println!("Migrations applied.");
        return Ok(());
    }
    let password = db.database_app_password.as_ref().map(|p| p.expose());
    let pool = connect_app_pool(target.app_options(password), 2, Duration::from_secs(60))
        .await
        .context("connecting as northstar_app")?;
    match command {
        Command::Tenant(command) => tenant(&pool, command).await,
        Command::User(command) => user(&pool, command).await,
        Command::Import(args) => import_file(&pool, args).await,
        Command::Rollups(RollupsCommand::Rebuild { tenant }) => {
            rebuild_rollups(&pool, &tenant).await
        }
        Command::Serve(_) | Command::Demo { .. } | Command::Migrate => Ok(()),
    }
}

async fn tenant(pool: &PgPool, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create {
            slug,
            name,
            owner_email,
            owner_name,
            plan,
            json,
        } => {
            let request = NewTenant {
                slug,
                name,
                owner_email,
                owner_name,
                owner_password: None,
                plan,
            };
            let passwords = Passwords::new()?;
            let outcome = crate::provision::provision(pool, &passwords, &request, &Actor::cli())
                .await
                .map_err(api_error)?;
            let response = ProvisionResponse::from_outcome(outcome).with_context(|| {
                format!("the slug {:?} belongs to another tenant", request.slug)
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&response)?);
            } else if let (Some(owner), Some(key)) = (&response.owner, &response.write_key) {
                println!(
                    "Created tenant {} ({}).",
                    response.tenant.slug, response.tenant.name
                );
                println!(
                    "Owner: {}{}",
                    owner.user.email,
                    if owner.created { " (new account)" } else { "" }
                );
                if let Some(token) = &owner.set_password_token {
                    println!("Owner's one-time set-password token: {token}");
                }
                println!("Write key (shown once): {}", key.secret);
            } else {
                println!(
                    "Tenant {} already exists with this owner; nothing created.",
                    response.tenant.slug
                );
            }
            Ok(())
        }
        TenantCommand::List { json } => {
            let tenants = tenants::platform_list(pool).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tenants)?);
            } else {
                println!(
                    "{:<24} {:<32} {:<10} {:<10} {:>7}",
                    "SLUG", "NAME", "STATUS", "PLAN", "MEMBERS"
                );
                for t in tenants {
                    println!(
                        "{:<24} {:<32} {:<10} {:<10} {:>7}",
                        t.slug,
                        t.name,
                        t.status.as_str(),
                        t.plan,
                        t.member_count
                    );
                }
            }
            Ok(())
        }
        TenantCommand::Suspend { slug } => {
            change_status(pool, &slug, TenantStatus::Suspended).await
        }
        TenantCommand::Reactivate { slug } => {
            change_status(pool, &slug, TenantStatus::Active).await
        }
    }
}

async fn rebuild_rollups(pool: &PgPool, slug: &str) -> anyhow::Result<()> {
    let tenant_id = tenants::platform_id_by_slug(pool, slug)
        .await?
        .with_context(|| format!("no tenant {slug:?}"))?;
    let started = std::time::Instant::now();
    let mut tx = TenantTx::begin(pool, tenant_id).await?;
    let customers = rollup::rebuild(&mut tx).await?;
    tx.commit().await?;
    let calls = product::rebuild(pool, tenant_id).await?;
    let plural = if customers == 1 { "" } else { "s" };
    println!(
        "Rebuilt the rollups of {slug}: revenue from {customers} customer{plural}, \
         product and support from {calls} calls, in {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn change_status(pool: &PgPool, slug: &str, status: TenantStatus) -> anyhow::Result<()> {
    set_tenant_status(pool, slug, status, &Actor::cli())
        .await
        .map_err(api_error)?
        .with_context(|| format!("no tenant {slug:?}"))?;
    println!("Tenant {slug} is now {}.", status.as_str());
    Ok(())
}

async fn user(pool: &PgPool, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            email,
            name,
            password_stdin,
            superadmin,
            json,
        } => {
            let email = email.trim();
            anyhow::ensure!(
                looks_like_email(email),
                "--email: {email:?} is not an email address"
            );
            let hash = if password_stdin {
                let mut input = String::new();
                std::io::stdin()
                    .read_to_string(&mut input)
                    .context("reading the password from stdin")?;
                let password = input.lines().next().unwrap_or_default();
                check_new_password(password)
                    .map_err(|reason| anyhow::anyhow!("password {reason}"))?;
                Some(Passwords::new()?.hash(password).await?)
            } else {
                None
            };
            let mut conn = pool.acquire().await?;
            let (user, created) =
                users::find_or_create(&mut conn, email, name.trim(), hash.as_deref()).await?;
            if let Some(hash) = &hash {
                users::set_password(&mut *conn, user.id, hash).await?;
            }
            if superadmin {
                users::set_superadmin(&mut *conn, user.id, true).await?;
            }
            let token = match hash {
                None => Some(users::issue_set_password_token(&mut *conn, user.id).await?),
                Some(_) => None,
            };
            let user = users::get(&mut *conn, user.id)
                .await?
                .context("user vanished")?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "user": user, "created": created, "set_password_token": token,
                    }))?
                );
            } else {
                println!(
                    "{} user {}{}.",
                    if created { "Created" } else { "Updated" },
                    user.email,
                    if user.is_superadmin {
                        " (super-admin)"
                    } else {
                        ""
                    }
                );
                if let Some(token) = token {
                    println!("One-time set-password token: {token}");
                }
            }
            Ok(())
        }
        UserCommand::Add {
            email,
            tenant,
            role,
        } => {
            let user = users::find_by_email(pool, &email).await?.with_context(|| {
                format!("no user with email {email:?}: create it with `northstar user create`")
            })?;
            let tenant_id = tenants::platform_id_by_slug(pool, &tenant)
                .await?
                .with_context(|| format!("no tenant {tenant:?}"))?;
            let mut tx = TenantTx::begin(pool, tenant_id).await?;
            let member = memberships::add(&mut tx, user.id, role)
                .await?
                .with_context(|| format!("{email} is already a member of {tenant}"))?;
            northstar_db::audit::record(
                &mut tx,
                &Actor::cli(),
                "member.added",
                Some(&member.email),
                json!({ "role": role }),
            )
            .await?;
            tx.commit().await?;
            println!("Added {} to {tenant}.", member.email);
            Ok(())
        }
    }
}

impl ImportArgs {
    /// The file's format, once the flags are checked.
    fn format(&self) -> anyhow::Result<ImportFormat> {
        let format = match self.format {
            Some(format) => format,
            None => {
                let extension = self
                    .file
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase());
                match extension.as_deref() {
                    Some("csv") => ImportFormat::Csv,
                    Some("ndjson" | "jsonl") => ImportFormat::Ndjson,
                    _ => anyhow::bail!(
                        "cannot tell the format of {} from its name: pass --format ndjson or \
                         --format csv",
                        self.file.display()
                    ),
                }
            }
        };
        match format {
            ImportFormat::Csv => self.mapping.check().map_err(mapping_error)?,
            ImportFormat::Ndjson => anyhow::ensure!(
                self.mapping == CsvMapping::default(),
                "the CSV mapping flags (--type, --event-column, …) apply to CSV files only"
            ),
        }
        Ok(format)
    }
}

/// Imports a file through a pipeline of its own, then drains it.
async fn import_file(pool: &PgPool, args: ImportArgs) -> anyhow::Result<()> {
    let format = args.format()?;
    let tenant_id = tenants::platform_id_by_slug(pool, &args.tenant)
        .await?
        .with_context(|| format!("no tenant {:?}", args.tenant))?;
    let mut tx = TenantTx::begin(pool, tenant_id).await?;
    let tenant = tenants::current(&mut tx).await?;
    tx.commit().await?;
    if tenant.status == TenantStatus::Suspended {
        anyhow::bail!("tenant {} is suspended; reactivate it first", tenant.slug);
    }
    let retention_days = tenant.event_retention_days;
    let stdin = args.file.as_os_str() == "-";
    let (input, size): (Box<dyn Read + Send>, _) = if stdin {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let bar = progress_bar(size)?;
    let receipt = Receipt {
        tenant_id,
        received_at: Utc::now(),
        retention_days,
        client_ip: None,
    };
    let (pipeline, writers) = Pipeline::start(
        pool.connect_options().as_ref().clone(),
        &PipelineSettings::DEFAULT,
    );
    let printer = bar.clone();
    let importer = Importer::new(&pipeline, receipt).on_rejection(move |error| {
        printer.suspend(|| eprintln!("line {}: {}: {}", error.line, error.field, error.reason));
    });
    let input = read_in_background(input);
    let progress = |bytes| bar.inc(bytes);
    let outcome = match format {
        ImportFormat::Ndjson => import::ndjson(importer, input, progress)
            .await
            .map_err(anyhow::Error::new),
        ImportFormat::Csv => csv_import::csv(importer, &args.mapping, input, progress)
            .await
            .map_err(|err| match err {
                CsvImportError::Mapping(errors) => mapping_error(errors),
                CsvImportError::Import(err) => anyhow::Error::new(err),
            }),
    };
    bar.finish_and_clear();
    writers.drain().await;
    let report = outcome.with_context(|| format!("importing {}", args.file.display()))?;
    println!(
        "{} lines: {} accepted, {} rejected.",
        report.lines, report.accepted, report.rejected
    );
    Ok(())
}

/// A bar over the bytes read, on standard error when it is a terminal.
fn progress_bar(size: Option<u64>) -> anyhow::Result<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return Ok(ProgressBar::hidden());
    }
    Ok(match size {
        Some(size) => ProgressBar::new(size).with_style(ProgressStyle::with_template(
            "{wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )?),
        None => ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
            "{spinner} {bytes} {bytes_per_sec}",
        )?),
    })
}

/// Reads `input` in chunks on a blocking thread, a few chunks ahead of the
/// importer.
fn read_in_background(
    mut input: Box<dyn Read + Send>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Unpin {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut chunk = vec![0; READ_CHUNK_BYTES];
            let read = match input.read(&mut chunk) {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    let _ = sender.blocking_send(Err(err));
                    break;
                }
            };
            chunk.truncate(read);
            if sender.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                // The import stopped.
                break;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ))
}

/// A CSV mapping error, with the flags at fault.
fn mapping_error(errors: Vec<MappingError>) -> anyhow::Error {
    let errors: Vec<String> = errors
        .into_iter()
        .map(|e| match e.parameter {
            "header" => format!("the header row: {}", e.reason),
            parameter => format!("--{}: {}", parameter.replace('_', "-"), e.reason),
        })
        .collect();
    anyhow::anyhow!("{}", errors.join("; "))
}

fn api_error(err: crate::http::error::ApiError) -> anyhow::Error {
    match err {
        crate::http::error::ApiError::Validation(fields) => anyhow::anyhow!(
            "{}",
            fields
                .iter()
                .map(|f| format!("--{}: {}", f.field.replace('_', "-"), f.reason))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::Error::new(other),
    }
}
