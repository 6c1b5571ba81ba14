//! Running `initdb` and `pg_ctl` as the right user, with errors that carry
//! the tail of their output and of the server log.

use super::*;

/// Runs the server binaries against one cluster, as the right user.
pub(super) struct Runner {
    pub(super) binaries: Binaries,
    pub(super) run_as: Option<RunAs>,
    pub(super) layout: Layout,
}

impl Runner {
    pub(super) fn command(&self, program: &Path) -> std::process::Command {
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

    pub(super) fn pg_ctl(&self, args: &[&OsStr]) -> std::process::Command {
        let mut cmd = self.command(&self.binaries.pg_ctl);
        cmd.arg("-D").arg(&self.layout.pgdata).args(args);
        cmd
    }

    pub(super) async fn initdb(&self) -> Result<(), EmbeddedError> {
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

    pub(super) async fn start(&self) -> Result<(), EmbeddedError> {
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

    pub(super) async fn stop(&self) -> Result<(), EmbeddedError> {
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
    pub(super) async fn is_running(&self) -> Result<bool, EmbeddedError> {
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
pub(super) async fn output_of(
    cmd: std::process::Command,
) -> Result<(Output, String), EmbeddedError> {
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
pub(super) async fn check(
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

pub(super) fn tail_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// The last lines of a file that may be large; empty if unreadable.
pub(super) fn tail_file(path: &Path) -> String {
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
    fn keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
        assert_eq!(tail_lines("", 5), "");
    }
}
