//! The `northstar` binary as an operator runs it: CLI commands against the
//! server's database, and `serve` over a real socket until SIGTERM.

use std::{
    process::{Command, Output, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use crate::support::{TestApp, northstar};

fn json_out(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[tokio::test]
async fn operators_provision_and_manage_from_the_command_line() {
    let app = TestApp::spawn().await;
    let create = [
        "tenant",
        "create",
        "--slug",
        "cli-co",
        "--name",
        "CLI Co",
        "--owner-email",
        "ops@cli.test",
        "--json",
    ];
    let created = json_out(&northstar(&app, &create, None));
    assert_eq!(created["created"], true);
    assert!(
        created["write_key"]["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("ns_wk_"))
    );
    let repeated = json_out(&northstar(&app, &create, None));
    assert_eq!(repeated["created"], false);
    assert_eq!(repeated["tenant"]["id"], created["tenant"]["id"]);

    let bad = northstar(
        &app,
        &[
            "tenant",
            "create",
            "--slug",
            "Bad_Slug",
            "--name",
            "x",
            "--owner-email",
            "a@b.test",
        ],
        None,
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--slug: may contain only lowercase letters"),
        "{stderr}"
    );

    let user = json_out(&northstar(
        &app,
        &[
            "user",
            "create",
            "--email",
            "root@ops.test",
            "--password-stdin",
            "--superadmin",
            "--json",
        ],
        Some("a strong operator password\n"),
    ));
    assert_eq!(user["user"]["is_superadmin"], true);
    assert!(user["set_password_token"].is_null());
    let added = northstar(
        &app,
        &[
            "user",
            "add",
            "--email",
            "root@ops.test",
            "--tenant",
            "cli-co",
            "--role",
            "viewer",
        ],
        None,
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    let suspended = northstar(&app, &["tenant", "suspend", "--slug", "cli-co"], None);
    assert!(suspended.status.success());
    let list = json_out(&northstar(&app, &["tenant", "list", "--json"], None));
    assert_eq!(list[0]["slug"], "cli-co");
    assert_eq!(list[0]["status"], "suspended");
    assert_eq!(list[0]["member_count"], 2);

    // The password set on the command line signs in through the API.
    let login = app
        .anonymous()
        .post(
            "/api/v1/auth/login",
            json!({ "email": "root@ops.test", "password": "a strong operator password" }),
        )
        .await;
    assert_eq!(login.status, axum::http::StatusCode::OK, "{}", login.text);
    assert_eq!(login.body["user"]["is_superadmin"], true);
}

#[tokio::test]
async fn serve_answers_over_a_socket_and_stops_on_sigterm() {
    let app = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port();
    let bind = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_northstar"))
        .arg("serve")
        .env("DATABASE_URL", app.db.admin_url())
        .env("NORTHSTAR_BIND", &bind)
        .env("NORTHSTAR_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start northstar serve");
    let client = reqwest::Client::new();
    let base = format!("http://{bind}");
    let mut ready = None;
    // Wait for readiness: the only way to know the server is up.
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            ready = Some(response.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, Some(reqwest::StatusCode::OK));
    let problem = client
        .post(format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("request");
    assert_eq!(problem.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(problem.headers().contains_key("x-request-id"));

    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let output = tokio::task::spawn_blocking(move || server.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(output.success(), "northstar serve exited with {output}");
}
