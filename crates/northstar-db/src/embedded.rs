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

/// Paths under the (canonical) data directory.
#[derive(Clone)]
struct Layout {
    data_dir: PathBuf,
    pg_dir: PathBuf,
    pgdata: PathBuf,
}

impl Layout {
    fn new(data_dir: &Path) -> Self {
        let pg_dir = data_dir.join("pg");
        Layout {
            data_dir: data_dir.to_path_buf(),
            pgdata: pg_dir.join("data"),
            pg_dir,
        }
    }

    fn lock_file(&self) -> PathBuf {
        self.data_dir.join("northstar.lock")
    }

    fn server_log(&self) -> PathBuf {
        self.pg_dir.join("server.log")
    }

    fn socket(&self) -> PathBuf {
        self.pg_dir.join(format!(".s.PGSQL.{PORT}"))
    }

    fn pg_version(&self) -> PathBuf {
        self.pgdata.join("PG_VERSION")
    }

    fn postmaster_pid(&self) -> PathBuf {
        self.pgdata.join("postmaster.pid")
    }

    /// Whether a postmaster has the data directory and its socket exists.
    fn cluster_is_up(&self) -> bool {
        self.postmaster_pid().is_file()
            && fs::symlink_metadata(self.socket()).is_ok_and(|meta| meta.file_type().is_socket())
    }
}

/// The outcome of trying to lock the data directory.
enum Locked {
    /// We hold the lock.
    Ours { layout: Layout, lock: Flock<File> },
    /// Another process (or another handle in this one) holds it.
    Theirs { layout: Layout, pid: Option<u32> },
}

/// Creates the data directory if missing, checks the socket path fits and
/// tries to take `northstar.lock`. Touches nothing else.
fn lock_data_dir(data_dir: &Path) -> Result<Locked, EmbeddedError> {
    fs::create_dir_all(data_dir).map_err(io_error(format!(
        "could not create the data directory {}",
        data_dir.display()
    )))?;
    let data_dir = fs::canonicalize(data_dir).map_err(io_error(format!(
        "could not resolve the data directory {}",
        data_dir.display()
    )))?;
    let layout = Layout::new(&data_dir);
    let socket = layout.socket();
    let len = socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(EmbeddedError::SocketPathTooLong { path: socket, len });
    }

    let lock_path = layout.lock_file();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&lock_path)
        .map_err(io_error(format!("could not open {}", lock_path.display())))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let pid = format!("{}\n", std::process::id());
            lock.set_len(0)
                .and_then(|()| lock.seek(SeekFrom::Start(0)))
                .and_then(|_| lock.write_all(pid.as_bytes()))
                .map_err(io_error(format!("could not write {}", lock_path.display())))?;
            Ok(Locked::Ours { layout, lock })
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            Ok(Locked::Theirs { layout, pid })
        }
        Err((_, errno)) => Err(io_error(format!("could not lock {}", lock_path.display()))(
            errno.into(),
        )),
    }
}

/// The user the server binaries run as, when not the current one.
#[derive(Clone)]
struct RunAs {
    name: String,
    uid: Uid,
    gid: Gid,
}

/// Creates `pg/` (0700), and as root hands it to `postgres` after checking
/// that user can reach it. Returns the user to run the binaries as.
fn prepare_pg_dir(layout: &Layout) -> Result<Option<RunAs>, EmbeddedError> {
    let run_as = if nix::unistd::geteuid().is_root() {
        let user = User::from_name(PG_SYSTEM_USER)
            .map_err(|errno| io_error("could not look up the postgres system user")(errno.into()))?
            .ok_or(EmbeddedError::NoPostgresUser)?;
        let run_as = RunAs {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
        };
        check_traversable(&layout.data_dir, &run_as)?;
        Some(run_as)
    } else {
        None
    };

    let pg_dir = &layout.pg_dir;
    match fs::DirBuilder::new().mode(0o700).create(pg_dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => {
            return Err(io_error(format!("could not create {}", pg_dir.display()))(
                error,
            ));
        }
    }
    // The socket's only protection besides its own mode: keep others out.
    fs::set_permissions(pg_dir, fs::Permissions::from_mode(0o700)).map_err(io_error(format!(
        "could not set the mode of {}",
        pg_dir.display()
    )))?;
    if let Some(user) = &run_as {
        nix::unistd::chown(pg_dir, Some(user.uid), Some(user.gid)).map_err(|errno| {
            io_error(format!(
                "could not hand {} to user {}",
                pg_dir.display(),
                user.name
            ))(errno.into())
        })?;
    }

    let log = layout.server_log();
    if fs::metadata(&log).is_ok_and(|meta| meta.len() > MAX_LOG_BYTES) {
        fs::rename(&log, layout.pg_dir.join("server.log.1"))
            .map_err(io_error(format!("could not rotate {}", log.display())))?;
    }

    // initdb cleans up after itself when it fails, but not when it is killed.
    if layout.pgdata.exists() && !layout.pg_version().exists() {
        tracing::warn!(
            pgdata = %layout.pgdata.display(),
            "removing an incompletely initialised PostgreSQL cluster"
        );
        fs::remove_dir_all(&layout.pgdata).map_err(io_error(format!(
            "could not remove the incomplete cluster {}",
            layout.pgdata.display()
        )))?;
    }
    Ok(run_as)
}

/// Checks `user` may enter `dir` and every directory above it.
fn check_traversable(dir: &Path, user: &RunAs) -> Result<(), EmbeddedError> {
    for dir in dir.ancestors() {
        let meta =
            fs::metadata(dir).map_err(io_error(format!("could not inspect {}", dir.display())))?;
        let mode = meta.mode();
        let allowed = mode & 0o001 != 0
            || (meta.uid() == user.uid.as_raw() && mode & 0o100 != 0)
            || (meta.gid() == user.gid.as_raw() && mode & 0o010 != 0);
        if !allowed {
            return Err(EmbeddedError::NotTraversable {
                dir: dir.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Writes `northstar.conf` and makes `postgresql.conf` include it.
fn write_config(layout: &Layout, owner: Option<&RunAs>) -> Result<(), EmbeddedError> {
    let main_conf = layout.pgdata.join("postgresql.conf");
    let text = fs::read_to_string(&main_conf)
        .map_err(io_error(format!("could not read {}", main_conf.display())))?;
    if !text.lines().any(|line| line.trim() == INCLUDE_LINE) {
        let mut file = OpenOptions::new()
            .append(true)
            .open(&main_conf)
            .map_err(io_error(format!("could not open {}", main_conf.display())))?;
        let separator = if text.ends_with('\n') { "" } else { "\n" };
        write!(
            file,
            "{separator}\n# Added by Northstar: its settings, rewritten at every start.\n{INCLUDE_LINE}\n"
        )
        .map_err(io_error(format!("could not write {}", main_conf.display())))?;
    }

    let mut conf = Vec::new();
    conf.extend_from_slice(
        b"# Written by Northstar at every start: edits here are lost.\n\
          # Included last by postgresql.conf; use ALTER SYSTEM to override.\n\
          \n\
          # No TCP: the only way in is the Unix socket in the 0700 directory below,\n\
          # which is what makes initdb's trust authentication safe.\n\
          listen_addresses = ''\n",
    );
    conf.extend_from_slice(format!("port = {PORT}\n").as_bytes());
    conf.extend_from_slice(b"unix_socket_directories = '");
    conf.extend_from_slice(&quote_config(layout.pg_dir.as_os_str()));
    conf.extend_from_slice(
        b"'\n\
          unix_socket_permissions = 0700\n\
          \n\
          # Modest settings, fit for a laptop.\n\
          max_connections = 100\n\
          shared_buffers = 128MB\n\
          fsync = on\n",
    );
    let path = layout.pgdata.join("northstar.conf");
    fs::write(&path, conf).map_err(io_error(format!("could not write {}", path.display())))?;
    if let Some(user) = owner {
        nix::unistd::chown(&path, Some(user.uid), Some(user.gid)).map_err(|errno| {
            io_error(format!(
                "could not hand {} to user {}",
                path.display(),
                user.name
            ))(errno.into())
        })?;
    }
    Ok(())
}

/// Escapes a value for a single-quoted `postgresql.conf` string.
fn quote_config(value: &OsStr) -> Vec<u8> {
    let mut quoted = Vec::with_capacity(value.len());
    for &byte in value.as_bytes() {
        if byte == b'\'' || byte == b'\\' {
            quoted.push(byte);
        }
        quoted.push(byte);
    }
    quoted
}

/// The server binaries to use.
#[derive(Debug)]
struct Binaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

/// Finds `initdb` and `pg_ctl` of PostgreSQL 15 or newer: on `PATH` first,
/// then under `/usr/lib/postgresql/<major>/bin`, highest major first.
async fn find_binaries() -> Result<Binaries, EmbeddedError> {
    let candidates = blocking(|| Ok(binary_candidates())).await?;
    let mut too_old = None;
    for candidate in candidates {
        let major = version_of(&candidate.pg_ctl)
            .await?
            .min(version_of(&candidate.initdb).await?);
        if major >= MIN_MAJOR {
            tracing::debug!(?candidate, major, "using these PostgreSQL server binaries");
            return Ok(candidate);
        }
        too_old.get_or_insert(EmbeddedError::VersionTooOld {
            path: candidate.pg_ctl,
            major,
        });
    }
    Err(too_old.unwrap_or(EmbeddedError::BinariesNotFound))
}

fn binary_candidates() -> Vec<Binaries> {
    let mut candidates = Vec::new();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = |name: &str| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|file| is_executable(file))
    };
    if let (Some(initdb), Some(pg_ctl)) = (on_path("initdb"), on_path("pg_ctl")) {
        candidates.push(Binaries { initdb, pg_ctl });
    }

    let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir(DEBIAN_PG_LIB)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    for (_, bin) in versioned {
        let (initdb, pg_ctl) = (bin.join("initdb"), bin.join("pg_ctl"));
        if is_executable(&initdb) && is_executable(&pg_ctl) {
            candidates.push(Binaries { initdb, pg_ctl });
        }
    }
    candidates
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
}

/// The major version `binary --version` reports.
async fn version_of(binary: &Path) -> Result<u32, EmbeddedError> {
    let output = tokio::process::Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(io_error(format!(
            "could not run {} --version",
            binary.display()
        )))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_major(&text).ok_or_else(|| EmbeddedError::UnknownVersion {
        path: binary.to_path_buf(),
        output: text.trim().to_owned(),
    })
}

/// Parses `pg_ctl (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)` into 15.
fn parse_major(version: &str) -> Option<u32> {
    let (_, rest) = version.split_once("(PostgreSQL)")?;
    let number = rest.split_whitespace().next()?;
    let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Runs the server binaries against one cluster, as the right user.
struct Runner {
    binaries: Binaries,
    run_as: Option<RunAs>,
    layout: Layout,
}

impl Runner {
    fn command(&self, program: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        cmd.current_dir(&self.layout.pg_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in PG_ENV_VARS {
            cmd.env_remove(var);
        }
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid.as_raw())
                .gid(user.gid.as_raw())
                .env("HOME", &self.layout.pg_dir)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        cmd
    }

    fn pg_ctl(&self, args: &[&OsStr]) -> std::process::Command {
        let mut cmd = self.command(&self.binaries.pg_ctl);
        cmd.arg("-D").arg(&self.layout.pgdata).args(args);
        cmd
    }

    async fn initdb(&self) -> Result<(), EmbeddedError> {
        tracing::info!(
            pgdata = %self.layout.pgdata.display(),
            "initialising the embedded PostgreSQL cluster"
        );
        let mut cmd = self.command(&self.binaries.initdb);
        // Trust authentication is safe here: TCP is off (listen_addresses = ''),
        // and the only socket lives in a 0700 directory with mode 0700 itself,
        // so only the cluster's own user (and root) can connect.
        cmd.arg("-D").arg(&self.layout.pgdata).args([
            "-U",
            EmbeddedCluster::SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-instructions",
        ]);
        let (output, command) = output_of(cmd).await?;
        check(output, &command, None).await.map(drop)
    }

    async fn start(&self) -> Result<(), EmbeddedError> {
        let log = self.layout.server_log();
        let cmd = self.pg_ctl(&[
            OsStr::new("-l"),
            log.as_os_str(),
            OsStr::new("-w"),
            OsStr::new("-t"),
            OsStr::new(PG_CTL_TIMEOUT_SECS),
            OsStr::new("start"),
        ]);
        let (output, command) = output_of(cmd).await?;
        check(output, &command, Some(&log)).await.map(drop)
    }

    async fn stop(&self) -> Result<(), EmbeddedError> {
        let cmd = self.pg_ctl(&[
            OsStr::new("-m"),
            OsStr::new("fast"),
            OsStr::new("-w"),
            OsStr::new("-t"),
            OsStr::new(PG_CTL_TIMEOUT_SECS),
            OsStr::new("stop"),
        ]);
        let (output, command) = output_of(cmd).await?;
        check(output, &command, Some(&self.layout.server_log()))
            .await
            .map(drop)
    }

    /// Whether a postmaster is running for the data directory (`pg_ctl status`).
    async fn is_running(&self) -> Result<bool, EmbeddedError> {
        let (output, command) = output_of(self.pg_ctl(&[OsStr::new("status")])).await?;
        match output.status.code() {
            Some(0) => Ok(true),
            // 3: not running; 4: no accessible data directory.
            Some(3 | 4) => Ok(false),
            _ => check(output, &command, None).await.map(|_| false),
        }
    }
}

/// Runs `cmd`, returning its output and its command line.
async fn output_of(cmd: std::process::Command) -> Result<(Output, String), EmbeddedError> {
    let mut command = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        command.push(' ');
        command.push_str(&arg.to_string_lossy());
    }
    tracing::debug!(%command, "running");
    let output = tokio::process::Command::from(cmd)
        .output()
        .await
        .map_err(io_error(format!("could not run {command}")))?;
    Ok((output, command))
}

/// Turns a failed command into an error carrying the tail of its output and
/// of the server log.
async fn check(
    output: Output,
    command: &str,
    server_log: Option<&Path>,
) -> Result<Output, EmbeddedError> {
    if output.status.success() {
        return Ok(output);
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let mut tail = tail_lines(&text, TAIL_LINES);
    if let Some(log) = server_log {
        let log = log.to_path_buf();
        let log_name = log.display().to_string();
        let log_tail = blocking(move || Ok(tail_file(&log))).await?;
        if !log_tail.is_empty() {
            tail.push_str(&format!("\n--- last lines of {log_name} ---\n{log_tail}"));
        }
    }
    Err(EmbeddedError::Command {
        command: command.to_owned(),
        status: output.status.to_string(),
        output: tail,
    })
}

fn tail_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// The last lines of a file that may be large; empty if unreadable.
fn tail_file(path: &Path) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(tail_lines(&String::from_utf8_lossy(&bytes), TAIL_LINES))
    };
    read().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_versions() {
        assert_eq!(
            parse_major("pg_ctl (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("initdb (PostgreSQL) 17.2"), Some(17));
        assert_eq!(parse_major("pg_ctl (PostgreSQL) 18beta1"), Some(18));
        assert_eq!(parse_major("pg_ctl (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("something else 15.2"), None);
    }

    #[test]
    fn quotes_config_strings() {
        assert_eq!(quote_config(OsStr::new("/tmp/a'b\\c")), b"/tmp/a''b\\\\c");
    }

    #[test]
    fn keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
        assert_eq!(tail_lines("", 5), "");
    }
}
