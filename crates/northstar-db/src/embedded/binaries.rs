//! Finding PostgreSQL's server binaries and their version.

use super::*;

/// The server binaries to use.
#[derive(Debug)]
pub(super) struct Binaries {
    pub(super) initdb: PathBuf,
    pub(super) pg_ctl: PathBuf,
}

/// Finds `initdb` and `pg_ctl` of PostgreSQL 15 or newer: on `PATH` first,
/// then under `/usr/lib/postgresql/<major>/bin`, highest major first.
pub(super) async fn find_binaries() -> Result<Binaries, EmbeddedError> {
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

pub(super) fn binary_candidates() -> Vec<Binaries> {
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

pub(super) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
}

/// The major version `binary --version` reports.
pub(super) async fn version_of(binary: &Path) -> Result<u32, EmbeddedError> {
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
pub(super) fn parse_major(version: &str) -> Option<u32> {
    let (_, rest) = version.split_once("(PostgreSQL)")?;
    let number = rest.split_whitespace().next()?;
    let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
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
}
