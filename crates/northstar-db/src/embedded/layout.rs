//! The data directory: its paths, its lock, the `pg/` directory's owner and
//! the cluster's configuration file.

use super::*;

/// Paths under the (canonical) data directory.
#[derive(Clone)]
pub(super) struct Layout {
    pub(super) data_dir: PathBuf,
    pub(super) pg_dir: PathBuf,
    pub(super) pgdata: PathBuf,
}

impl Layout {
    pub(super) fn new(data_dir: &Path) -> Self {
        let pg_dir = data_dir.join("pg");
        Layout {
            data_dir: data_dir.to_path_buf(),
            pgdata: pg_dir.join("data"),
            pg_dir,
        }
    }

    pub(super) fn lock_file(&self) -> PathBuf {
        self.data_dir.join("northstar.lock")
    }

    pub(super) fn server_log(&self) -> PathBuf {
        self.pg_dir.join("server.log")
    }

    pub(super) fn socket(&self) -> PathBuf {
        self.pg_dir.join(format!(".s.PGSQL.{PORT}"))
    }

    pub(super) fn pg_version(&self) -> PathBuf {
        self.pgdata.join("PG_VERSION")
    }

    pub(super) fn postmaster_pid(&self) -> PathBuf {
        self.pgdata.join("postmaster.pid")
    }

    /// Whether a postmaster has the data directory and its socket exists.
    pub(super) fn cluster_is_up(&self) -> bool {
        self.postmaster_pid().is_file()
            && fs::symlink_metadata(self.socket()).is_ok_and(|meta| meta.file_type().is_socket())
    }
}

/// The outcome of trying to lock the data directory.
pub(super) enum Locked {
    /// We hold the lock.
    Ours { layout: Layout, lock: Flock<File> },
    /// Another process (or another handle in this one) holds it.
    Theirs { layout: Layout, pid: Option<u32> },
}

/// Creates the data directory if missing, checks the socket path fits and
/// tries to take `northstar.lock`. Touches nothing else.
pub(super) fn lock_data_dir(data_dir: &Path) -> Result<Locked, EmbeddedError> {
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
pub(super) struct RunAs {
    pub(super) name: String,
    pub(super) uid: Uid,
    pub(super) gid: Gid,
}

/// Creates `pg/` (0700), and as root hands it to `postgres` after checking
/// that user can reach it. Returns the user to run the binaries as.
pub(super) fn prepare_pg_dir(layout: &Layout) -> Result<Option<RunAs>, EmbeddedError> {
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
pub(super) fn check_traversable(dir: &Path, user: &RunAs) -> Result<(), EmbeddedError> {
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
pub(super) fn write_config(layout: &Layout, owner: Option<&RunAs>) -> Result<(), EmbeddedError> {
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
pub(super) fn quote_config(value: &OsStr) -> Vec<u8> {
    let mut quoted = Vec::with_capacity(value.len());
    for &byte in value.as_bytes() {
        if byte == b'\'' || byte == b'\\' {
            quoted.push(byte);
        }
        quoted.push(byte);
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_config_strings() {
        assert_eq!(quote_config(OsStr::new("/tmp/a'b\\c")), b"/tmp/a''b\\\\c");
    }
}
