//! The private PostgreSQL cluster Northstar runs itself when no `DATABASE_URL`
//! is given.
//!
//! Northstar keeps all its data in PostgreSQL, but asking everyone who just
//! wants to try it (or run it on a laptop) to provision a server, roles and a
//! database first is a poor start. So without `DATABASE_URL` Northstar runs its
//! own cluster, from the locally installed server binaries (`initdb`,
//! `pg_ctl`), inside its data directory:
//!
//! ```text
//! <data_dir>/
//!   northstar.lock      exclusive flock held by the Northstar process using the cluster; holds its pid
//!   pg/                 mode 0700
//!     data/             PGDATA
//!     server.log        the postmaster's log
//!     .s.PGSQL.5432     the cluster's only way in: a Unix socket (TCP is off)
//! ```
//!
//! The lock makes sure one Northstar process at a time owns the cluster;
//! CLI commands run beside a server attach to its cluster instead
//! ([`EmbeddedCluster::attach_or_start`]). PostgreSQL refuses to run as root,
//! so when Northstar runs as root the cluster runs as the `postgres` system
//! user.

mod binaries;
mod layout;
mod runner;

use std::{
    ffi::OsStr,
    fmt,
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    os::unix::{
        ffi::OsStrExt,
        fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt},
        process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Output, Stdio},
};

use self::{
    binaries::{Binaries, find_binaries},
    layout::{Layout, Locked, RunAs, lock_data_dir, prepare_pg_dir, write_config},
    runner::Runner,
};
use nix::{
    errno::Errno,
    fcntl::{Flock, FlockArg},
    unistd::{Gid, Uid, User},
};
use sqlx::{
    Connection, PgConnection,
    postgres::{PgConnectOptions, PgSslMode},
};

/// The database Northstar's schema lives in.
const DATABASE: &str = "northstar";
/// The cluster's port; it only names the socket file, since TCP is off.
const PORT: u16 = 5432;
/// The oldest PostgreSQL major version Northstar supports.
const MIN_MAJOR: u32 = 15;
/// `sun_path` is 108 bytes, including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// How many lines of a failed command's output (and of the server log) an
/// error carries.
const TAIL_LINES: usize = 20;
/// `server.log` is moved aside to `server.log.1` at start once it is this big.
const MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;
/// `pg_ctl start`/`stop` wait at most this many seconds.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// The system user the cluster runs as when Northstar runs as root.
const PG_SYSTEM_USER: &str = "postgres";
/// Where Debian and Ubuntu install the server binaries (one directory per
/// major version); `/usr/bin` only has `pg_wrapper` links for client tools.
const DEBIAN_PG_LIB: &str = "/usr/lib/postgresql";
/// The line that makes `postgresql.conf` read Northstar's settings last.
const INCLUDE_LINE: &str = "include_if_exists = 'northstar.conf'";
/// Environment variables that would change what the server binaries do.
const PG_ENV_VARS: &[&str] = &[
    "PGDATA",
    "PGPORT",
    "PGHOST",
    "PGHOSTADDR",
    "PGUSER",
    "PGDATABASE",
    "PGOPTIONS",
];

/// Why the embedded cluster could not be started, attached to or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// Neither `PATH` nor `/usr/lib/postgresql/*/bin` has `initdb` and `pg_ctl`.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under \
         /usr/lib/postgresql/*/bin: install PostgreSQL 15 or newer \
         (Debian/Ubuntu: apt-get install postgresql)"
    )]
    BinariesNotFound,
    /// The only server binaries found are older than PostgreSQL 15.
    #[error(
        "PostgreSQL {major} found ({}) but Northstar needs PostgreSQL 15 or newer: \
         install it (Debian/Ubuntu: apt-get install postgresql) or put its bin directory first on PATH",
        .path.display()
    )]
    VersionTooOld {
        /// The `pg_ctl` that was found.
        path: PathBuf,
        /// Its major version.
        major: u32,
    },
    /// `--version` printed something that is not a PostgreSQL version.
    #[error("could not tell the PostgreSQL version of {}: it printed {output:?}", .path.display())]
    UnknownVersion {
        /// The binary asked.
        path: PathBuf,
        /// What it printed.
        output: String,
    },
    /// Another process holds the data directory's lock.
    #[error(
        "data directory {} is in use by another Northstar process ({}); \
         stop it or choose another NORTHSTAR_DATA_DIR",
        .data_dir.display(), describe_pid(*.pid)
    )]
    InUse {
        /// The data directory.
        data_dir: PathBuf,
        /// The lock holder's pid, as written in `northstar.lock`, if readable.
        pid: Option<u32>,
    },
    /// The cluster's socket path is longer than Unix sockets allow.
    #[error(
        "the embedded PostgreSQL socket path {} is {len} bytes long, more than the {MAX_SOCKET_PATH} \
         a Unix socket allows: choose a shorter NORTHSTAR_DATA_DIR",
        .path.display()
    )]
    SocketPathTooLong {
        /// The socket path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// Running as root, but there is no `postgres` user to run the cluster as.
    #[error(
        "Northstar runs as root, which PostgreSQL refuses, and there is no `postgres` system user \
         to run the embedded cluster as: create one (Debian/Ubuntu: apt-get install postgresql) \
         or run Northstar as a non-root user"
    )]
    NoPostgresUser,
    /// Running as root, and the `postgres` user cannot reach the data directory.
    #[error(
        "the embedded PostgreSQL runs as user postgres (Northstar runs as root), which cannot \
         traverse {}: allow it (chmod o+x) or choose another NORTHSTAR_DATA_DIR",
        .dir.display()
    )]
    NotTraversable {
        /// The first directory on the way that `postgres` may not enter.
        dir: PathBuf,
    },
    /// A file system operation failed.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        error: io::Error,
    },
    /// `initdb` or `pg_ctl` failed.
    #[error("`{command}` failed ({status}); last output:\n{output}")]
    Command {
        /// The command line.
        command: String,
        /// How it exited.
        status: String,
        /// The last lines of its output (and of the server log, if relevant).
        output: String,
    },
    /// Talking to the started cluster failed.
    #[error("{context}: {error}")]
    Database {
        /// What was being done.
        context: String,
        /// The failure.
        error: sqlx::Error,
    },
}

fn describe_pid(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_owned(),
    }
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedError {
    let context = context.into();
    move |error| EmbeddedError::Io { context, error }
}

/// Northstar's PostgreSQL cluster in its data directory: either started (and
/// owned) by this process, or attached to the one a running Northstar owns.
///
/// Call [`EmbeddedCluster::stop`] on shutdown. Merely dropping the value
/// releases the data directory's lock but leaves the cluster running; the next
/// [`EmbeddedCluster::start`] then stops and restarts it.
pub struct EmbeddedCluster {
    /// The data directory, canonical.
    data_dir: PathBuf,
    /// `<data_dir>/pg`, also the socket directory.
    pg_dir: PathBuf,
    /// Present if this process started the cluster (and holds the lock).
    owned: Option<Owned>,
}

/// What a process that started the cluster keeps.
struct Owned {
    /// `northstar.lock`, locked; unlocked on drop.
    _lock: Flock<File>,
    /// How to run `pg_ctl` against the cluster.
    runner: Runner,
}

impl fmt::Debug for EmbeddedCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedCluster")
            .field("data_dir", &self.data_dir)
            .field("attached", &self.owned.is_none())
            .finish_non_exhaustive()
    }
}

impl EmbeddedCluster {
    /// Name of the cluster's bootstrap superuser (use with connect_options for migrations).
    pub const SUPERUSER: &'static str = "postgres";

    /// Takes the data directory's lock, initialises the cluster on first use, starts it,
    /// and makes sure the database `northstar` exists. Fails if another process holds the lock.
    pub async fn start(data_dir: &Path) -> Result<Self, EmbeddedError> {
        Self::open(data_dir, false).await
    }

    /// For CLI commands run beside a server: if a running Northstar holds the data dir's lock and
    /// its cluster is up, attach to it (stop() is then a no-op); otherwise behave as `start`.
    pub async fn attach_or_start(data_dir: &Path) -> Result<Self, EmbeddedError> {
        Self::open(data_dir, true).await
    }

    /// Connection options for `user` to the database `northstar` over the cluster's Unix socket.
    pub fn connect_options(&self, user: &str) -> PgConnectOptions {
        socket_options(&self.pg_dir, user, DATABASE)
    }

    /// Stops the cluster cleanly (`pg_ctl stop -m fast`) if this process started it, and releases the lock.
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        let Some(owned) = self.owned else {
            return Ok(());
        };
        let layout = Layout::new(&self.data_dir);
        if !layout.postmaster_pid().exists() {
            tracing::warn!(
                data_dir = %self.data_dir.display(),
                "embedded PostgreSQL was already stopped"
            );
            return Ok(());
        }
        owned.runner.stop().await?;
        tracing::info!(data_dir = %self.data_dir.display(), "embedded PostgreSQL stopped");
        // `owned._lock` is dropped here, releasing the data directory.
        Ok(())
    }

    /// Test support (behind `#[cfg(feature = "testing")]`): makes sure the cluster is stopped when the
    /// current process exits, even without calling stop().
    ///
    /// Spawns a detached watchdog shell that polls this process with `kill -0`
    /// and, once it is gone, sends the postmaster `SIGINT` (what
    /// `pg_ctl stop -m fast` sends) if `postmaster.pid` still names the
    /// postmaster running now. The watchdog signals the postmaster itself
    /// rather than running `pg_ctl`: as root, `pg_ctl` must run as `postgres`,
    /// and a watchdog running as `postgres` could not `kill -0` a root process.
    /// Once the postmaster is gone, the watchdog deletes the data directory:
    /// this is for throwaway clusters only. Does nothing for an attached
    /// cluster, which this process does not own.
    #[cfg(feature = "testing")]
    pub fn discard_when_process_exits(&self) {
        if self.owned.is_none() {
            return;
        }
        let pid_file = Layout::new(&self.data_dir).postmaster_pid();
        let postmaster = match fs::read_to_string(&pid_file) {
            Ok(text) => text.lines().next().unwrap_or_default().trim().to_owned(),
            Err(error) => {
                tracing::warn!(%error, "cannot read postmaster.pid; no watchdog for the embedded cluster");
                return;
            }
        };
        // The outer shell backgrounds the watchdog and exits at once, so the
        // watchdog is re-parented and nobody has to wait for it.
        let script = r#"(
            while kill -0 "$1" 2>/dev/null; do sleep 1; done
            pm=$(head -n 1 "$2" 2>/dev/null) || exit 0
            [ "$pm" = "$3" ] || exit 0
            kill -INT "$pm"
            while kill -0 "$pm" 2>/dev/null; do sleep 1; done
            rm -rf "$4"
        ) </dev/null >/dev/null 2>&1 &"#;
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg("northstar-pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(&pid_file)
            .arg(&postmaster)
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => tracing::warn!(%status, "embedded PostgreSQL watchdog did not start"),
            Err(error) => tracing::warn!(%error, "embedded PostgreSQL watchdog did not start"),
        }
    }

    async fn open(data_dir: &Path, attach: bool) -> Result<Self, EmbeddedError> {
        let data_dir = data_dir.to_path_buf();
        let locked = blocking(move || lock_data_dir(&data_dir)).await?;
        let (layout, lock) = match locked {
            Locked::Ours { layout, lock } => (layout, lock),
            Locked::Theirs { layout, pid } => {
                if attach && layout.cluster_is_up() {
                    tracing::info!(
                        data_dir = %layout.data_dir.display(),
                        server_pid = pid,
                        "attached to the embedded PostgreSQL of a running Northstar"
                    );
                    return Ok(EmbeddedCluster {
                        pg_dir: layout.pg_dir,
                        data_dir: layout.data_dir,
                        owned: None,
                    });
                }
                return Err(EmbeddedError::InUse {
                    data_dir: layout.data_dir,
                    pid,
                });
            }
        };

        let binaries = find_binaries().await?;
        let setup_layout = layout.clone();
        let run_as = blocking(move || prepare_pg_dir(&setup_layout)).await?;
        if let Some(user) = &run_as {
            tracing::info!(
                "Northstar runs as root; the embedded PostgreSQL cluster runs as user {}",
                user.name
            );
        }
        let runner = Runner {
            binaries,
            run_as,
            layout: layout.clone(),
        };

        if !layout.pg_version().exists() {
            runner.initdb().await?;
        }
        let config_layout = layout.clone();
        let config_owner = runner.run_as.clone();
        blocking(move || write_config(&config_layout, config_owner.as_ref())).await?;

        if layout.postmaster_pid().exists() && runner.is_running().await? {
            tracing::warn!(
                data_dir = %layout.data_dir.display(),
                "embedded PostgreSQL is still running from an earlier Northstar process; restarting it"
            );
            runner.stop().await?;
        }
        runner.start().await?;

        let cluster = EmbeddedCluster {
            data_dir: layout.data_dir.clone(),
            pg_dir: layout.pg_dir.clone(),
            owned: Some(Owned {
                _lock: lock,
                runner,
            }),
        };
        if let Err(error) = cluster.ensure_database().await {
            if let Err(stop_error) = cluster.stop().await {
                tracing::warn!(error = %stop_error, "could not stop the embedded PostgreSQL");
            }
            return Err(error);
        }
        tracing::info!(
            data_dir = %layout.data_dir.display(),
            socket = %layout.socket().display(),
            "embedded PostgreSQL started"
        );
        Ok(cluster)
    }

    /// Creates the database `northstar` unless it exists.
    async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let context = "could not create the database northstar in the embedded PostgreSQL";
        let database_error = |error| EmbeddedError::Database {
            context: context.to_owned(),
            error,
        };
        let options = socket_options(&self.pg_dir, Self::SUPERUSER, "postgres");
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(database_error)?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DATABASE)
                .fetch_one(&mut conn)
                .await
                .map_err(database_error)?;
        if !exists {
            sqlx::query("CREATE DATABASE northstar")
                .execute(&mut conn)
                .await
                .map_err(database_error)?;
            tracing::info!("created the database northstar");
        }
        conn.close().await.map_err(database_error)
    }
}

fn socket_options(pg_dir: &Path, user: &str, database: &str) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .socket(pg_dir)
        .port(PORT)
        .username(user)
        .database(database)
        .ssl_mode(PgSslMode::Disable)
}

/// Runs blocking file system work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EmbeddedError> + Send + 'static,
) -> Result<T, EmbeddedError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        io_error("embedded PostgreSQL setup task failed")(io::Error::other(error))
    })?
}
