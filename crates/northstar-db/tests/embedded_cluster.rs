//! The embedded cluster against the real PostgreSQL server binaries: start,
//! lock, attach, stop, restart, and recovery from a cluster left running.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use nix::{sys::signal, unistd::Pid};
use northstar_db::embedded::{EmbeddedCluster, EmbeddedError};
use sqlx::{Connection, PgConnection};

/// A fresh directory under /tmp, traversable by the `postgres` user. On drop
/// it stops any postmaster still running in it (also when a test panics) and
/// removes it.
struct TempDataDir(PathBuf);

impl TempDataDir {
    fn new(tag: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let path = PathBuf::from(format!("/tmp/ns-emb-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir(&path).expect("create temp dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDataDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn pgdata(&self) -> PathBuf {
        self.0.join("pg/data")
    }

    fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.pgdata().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }
}

impl Drop for TempDataDir {
    fn drop(&mut self) {
        if let Some(pid) = self.postmaster_pid() {
            // SIGINT is PostgreSQL's fast shutdown, what `pg_ctl stop -m fast` sends.
            let _ = signal::kill(Pid::from_raw(pid), signal::Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.pgdata().join("postmaster.pid").exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

async fn query_one(cluster: &EmbeddedCluster, sql: &str) -> i32 {
    let mut conn = PgConnection::connect_with(&cluster.connect_options(EmbeddedCluster::SUPERUSER))
        .await
        .expect("connect over the socket");
    let value: i32 = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect("query");
    conn.close().await.expect("close");
    value
}

async fn execute(cluster: &EmbeddedCluster, sql: &str) {
    let mut conn = PgConnection::connect_with(&cluster.connect_options(EmbeddedCluster::SUPERUSER))
        .await
        .expect("connect over the socket");
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .expect("execute");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn starts_locks_attaches_stops_and_restarts() {
    let dir = TempDataDir::new("cycle");

    // First start initialises the cluster and creates the database.
    let first = EmbeddedCluster::start(dir.path())
        .await
        .expect("first start");
    #[cfg(feature = "testing")]
    first.discard_when_process_exits();
    assert_eq!(query_one(&first, "SELECT 1").await, 1);
    let database: String = {
        let mut conn =
            PgConnection::connect_with(&first.connect_options(EmbeddedCluster::SUPERUSER))
                .await
                .expect("connect");
        sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut conn)
            .await
            .expect("current_database")
    };
    assert_eq!(database, "northstar");
    execute(
        &first,
        "CREATE TABLE marker (n int); INSERT INTO marker VALUES (42)",
    )
    .await;
    let pg_version_mtime = fs::metadata(dir.pgdata().join("PG_VERSION"))
        .and_then(|meta| meta.modified())
        .expect("PG_VERSION exists");
    let postmaster = dir.postmaster_pid().expect("postmaster running");
    let lock_pid = fs::read_to_string(dir.path().join("northstar.lock")).expect("lock file");
    assert_eq!(lock_pid.trim(), std::process::id().to_string());

    // A second start on the same directory is refused and leaves the cluster alone.
    let err = EmbeddedCluster::start(dir.path())
        .await
        .expect_err("second start must fail");
    assert!(
        matches!(&err, EmbeddedError::InUse { pid: Some(pid), .. } if *pid == std::process::id()),
        "unexpected error: {err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("is in use by another Northstar process")
            && message.contains(&format!("pid {}", std::process::id()))
            && message.contains("NORTHSTAR_DATA_DIR"),
        "unexpected message: {message}"
    );
    assert_eq!(dir.postmaster_pid(), Some(postmaster));
    assert_eq!(query_one(&first, "SELECT 1").await, 1);

    // attach_or_start joins the running cluster; stopping it is a no-op.
    let attached = EmbeddedCluster::attach_or_start(dir.path())
        .await
        .expect("attach");
    assert_eq!(query_one(&attached, "SELECT n FROM marker").await, 42);
    attached.stop().await.expect("stop attached");
    assert_eq!(dir.postmaster_pid(), Some(postmaster));
    assert_eq!(query_one(&first, "SELECT 1").await, 1);

    first.stop().await.expect("stop");
    assert_eq!(dir.postmaster_pid(), None, "postmaster.pid left behind");

    // Starting again re-uses the initialised cluster.
    let second = EmbeddedCluster::start(dir.path())
        .await
        .expect("second start");
    #[cfg(feature = "testing")]
    second.discard_when_process_exits();
    assert_eq!(query_one(&second, "SELECT n FROM marker").await, 42);
    let mtime_again = fs::metadata(dir.pgdata().join("PG_VERSION"))
        .and_then(|meta| meta.modified())
        .expect("PG_VERSION exists");
    assert_eq!(mtime_again, pg_version_mtime, "cluster was re-initialised");
    let config = fs::read_to_string(dir.pgdata().join("postgresql.conf")).expect("config");
    assert_eq!(
        config
            .matches("include_if_exists = 'northstar.conf'")
            .count(),
        1
    );

    // A process that dies without stop() leaves the postmaster running (here:
    // dropping the value releases the lock); the next start restarts it.
    let orphan = dir.postmaster_pid().expect("postmaster running");
    drop(second);
    let third = EmbeddedCluster::start(dir.path())
        .await
        .expect("start over a left-over postmaster");
    let restarted = dir.postmaster_pid().expect("postmaster running");
    assert_ne!(restarted, orphan, "left-over postmaster was not restarted");
    assert_eq!(query_one(&third, "SELECT n FROM marker").await, 42);
    third.stop().await.expect("final stop");
    assert_eq!(dir.postmaster_pid(), None, "postmaster.pid left behind");
}

#[tokio::test]
async fn rejects_a_socket_path_too_long() {
    let dir = TempDataDir::new("long");
    let data_dir = dir.path().join("x".repeat(100));
    let err = EmbeddedCluster::start(&data_dir)
        .await
        .expect_err("socket path too long");
    assert!(
        matches!(err, EmbeddedError::SocketPathTooLong { .. }),
        "unexpected error: {err:?}"
    );
    assert!(
        !data_dir.join("pg").exists(),
        "created pg/ despite the error"
    );
}
