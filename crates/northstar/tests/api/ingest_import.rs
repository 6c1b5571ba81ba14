//! Bulk import: NDJSON and CSV bodies streamed into a tenant over HTTP, and
//! `northstar import` reading files. Every line ends stored or reported by
//! number; a re-import stores nothing twice.

use std::{convert::Infallible, path::Path, process::Output};

use axum::{
    body::Body,
    http::{HeaderValue, Method, Request, StatusCode, header},
};
use bytes::Bytes;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use northstar_db::memberships::Role;
use serde_json::json;

use crate::support::{Persona, StoredEvent, TestApp, TestResponse, TestTenant, northstar};

const NDJSON: &str = "/api/v1/tenants/acme/events/import";

fn csv_path(query: &str) -> String {
    format!("/api/v1/tenants/acme/events/import/csv?{query}")
}

/// Posts `body` with `content_type` as `persona`.
async fn upload(
    persona: &Persona,
    path: &str,
    content_type: &'static str,
    body: Body,
) -> TestResponse {
    let (mut parts, _) = persona.request(Method::POST, path, None).into_parts();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    persona.send(Request::from_parts(parts, body)).await
}

async fn ndjson(persona: &Persona, body: impl Into<String>) -> TestResponse {
    upload(
        persona,
        NDJSON,
        "application/x-ndjson",
        Body::from(body.into()),
    )
    .await
}

async fn csv(persona: &Persona, query: &str, body: impl Into<String>) -> TestResponse {
    upload(
        persona,
        &csv_path(query),
        "text/csv",
        Body::from(body.into()),
    )
    .await
}

/// `(line, field, code)` of every listed error of an import report.
fn errors(response: &TestResponse) -> Vec<(u64, String, String)> {
    response.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {}", response.text))
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().expect("line"),
                e["field"].as_str().expect("field").to_owned(),
                e["code"].as_str().expect("code").to_owned(),
            )
        })
        .collect()
}

fn counts(response: &TestResponse) -> (u64, u64, u64) {
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let count = |key: &str| response.body[key].as_u64().expect(key);
    (count("lines"), count("accepted"), count("rejected"))
}

fn line_error(at: u64, field: &str, code: &str) -> (u64, String, String) {
    (at, field.to_owned(), code.to_owned())
}

async fn events_of(app: &TestApp, tenant: &TestTenant) -> Vec<StoredEvent> {
    let mut events: Vec<_> = app
        .events()
        .await
        .into_iter()
        .filter(|e| e.tenant_id == tenant.id)
        .collect();
    events.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    events
}

fn user_ids(events: &[StoredEvent]) -> Vec<&str> {
    events.iter().filter_map(|e| e.user_id.as_deref()).collect()
}

/// A time `hours` ago, to the millisecond, as ISO 8601 text and as stored.
fn hours_ago(hours: i64) -> (String, DateTime<Utc>) {
    let text = (Utc::now() - Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let time = DateTime::parse_from_rfc3339(&text)
        .expect("time")
        .with_timezone(&Utc);
    (text, time)
}

#[tokio::test]
async fn ndjson_lines_are_stored_or_reported_by_number_and_stored_once() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let editor = app.secret_key(&acme, Role::Editor).await;
    let (when, time) = hours_ago(5);
    let body = [
        json!({
            "type": "track", "userId": "u1", "event": "Signed Up",
            "properties": {"plan": "pro"}, "timestamp": when,
        })
        .to_string(),
        json!({"type": "track", "userId": "u2"}).to_string(),
        String::new(),
        "{\"type\": \"track\",".to_owned(),
        json!({"type": "identify", "userId": "u3", "traits": {"name": "Ada"}}).to_string(),
        json!({
            "type": "track", "userId": "u4", "event": "Old",
            "timestamp": "2001-01-01T00:00:00Z",
        })
        .to_string(),
    ]
    .join("\r\n");
    let first = ndjson(&editor, body.clone()).await;
    assert_eq!(counts(&first), (5, 2, 3));
    assert_eq!(
        errors(&first),
        [
            line_error(2, "event", "missing_field"),
            line_error(4, "message", "malformed_json"),
            line_error(6, "timestamp", "timestamp_out_of_range"),
        ]
    );
    assert_eq!(first.body["errors"][0]["reason"], "is required");
    assert_eq!(first.body["errors_truncated"], false);

    let events = events_of(&app, &acme).await;
    assert_eq!(user_ids(&events), ["u1", "u3"]);
    assert_eq!(events[0].event.as_deref(), Some("Signed Up"));
    assert_eq!(events[0].time, time);
    assert_eq!(events[0].properties, Some(json!({"plan": "pro"})));
    assert_eq!(events[1].kind, "identify");
    assert_eq!(events[1].properties, Some(json!({"name": "Ada"})));

    // The same file again: the same report, nothing stored twice, even for
    // the line without a timestamp (its time is the import's).
    let second = ndjson(&editor, body).await;
    assert_eq!(counts(&second), (5, 2, 3));
    assert_eq!(events_of(&app, &acme).await.len(), 2);
    let outcomes = app
        .rows(&format!(
            "SELECT outcome, sum(count)::int AS n FROM ingest_counters
             WHERE tenant_id = '{}' GROUP BY outcome ORDER BY outcome",
            acme.id
        ))
        .await;
    assert_eq!(
        outcomes,
        [
            json!({"outcome": "duplicate", "n": 2}),
            json!({"outcome": "rejected", "n": 6}),
            json!({"outcome": "stored", "n": 2}),
        ]
    );
}

#[tokio::test]
async fn importing_needs_the_editor_role_in_the_tenant() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let line = json!({"type": "track", "userId": "u1", "event": "Signed Up"}).to_string();
    let header_and_row = "user,event\nu1,Signed Up\n";

    let viewer = app.member(&acme, Role::Viewer).await;
    let refused = ndjson(&viewer, line.clone()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.code(), "forbidden");
    // The role is checked before the mapping.
    let refused = csv(&viewer, "event_column=nope", header_and_row).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);

    let outsider = app.owner(&globex).await;
    let hidden = ndjson(&outsider, line.clone()).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.text);
    let hidden = csv(
        &outsider,
        "event_column=event&user_id_column=user",
        header_and_row,
    )
    .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.text);
    assert!(app.events().await.is_empty());

    let editor = app.member(&acme, Role::Editor).await;
    assert_eq!(counts(&ndjson(&editor, line).await), (1, 1, 0));
}

#[tokio::test]
async fn a_line_over_32_kb_is_rejected_and_its_neighbours_kept() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let editor = app.secret_key(&acme, Role::Editor).await;
    let line = |user: &str, note: &str| {
        json!({"type": "track", "userId": user, "event": "Noted", "properties": {"note": note}})
            .to_string()
    };
    let body = [
        line("u1", "short"),
        line("u2", &"x".repeat(40 * 1024)),
        line("u3", "short"),
    ]
    .join("\n");
    // Sent in small chunks, so that the long line spans many of them.
    let chunks: Vec<Result<Bytes, Infallible>> = body
        .as_bytes()
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let response = upload(
        &editor,
        NDJSON,
        "application/x-ndjson",
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
    .await;
    assert_eq!(counts(&response), (3, 2, 1));
    assert_eq!(
        errors(&response),
        [line_error(2, "message", "message_too_large")]
    );
    assert_eq!(user_ids(&events_of(&app, &acme).await), ["u1", "u3"]);
}

#[tokio::test]
async fn a_body_of_several_megabytes_streams_through() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let editor = app.secret_key(&acme, Role::Editor).await;
    let lines = 20_000;
    let filler = "y".repeat(200);
    let body: String = (0..lines)
        .map(|i| {
            let mut line = json!({
                "type": "track", "userId": format!("user-{i}"), "event": "Viewed",
                "properties": {"filler": filler},
            })
            .to_string();
            line.push('\n');
            line
        })
        .collect();
    assert!(body.len() > 5_000_000, "{} bytes", body.len());
    let chunks: Vec<Result<Bytes, Infallible>> = body
        .as_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let response = upload(
        &editor,
        NDJSON,
        "application/x-ndjson",
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
    .await;
    assert_eq!(counts(&response), (lines, lines, 0));
    let stored = app
        .rows(&format!(
            "SELECT count(*)::int AS n, count(DISTINCT user_id)::int AS users FROM events
             WHERE tenant_id = '{}'",
            acme.id
        ))
        .await;
    assert_eq!(stored, [json!({"n": lines, "users": lines})]);
}

#[tokio::test]
async fn the_http_report_lists_the_first_thousand_rejected_lines() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let editor = app.secret_key(&acme, Role::Editor).await;
    let body = "{}\n".repeat(1001);
    let response = ndjson(&editor, body).await;
    assert_eq!(counts(&response), (1001, 0, 1001));
    let listed = errors(&response);
    assert_eq!(listed.len(), 1000);
    assert_eq!(listed[999], line_error(1000, "type", "missing_field"));
    assert_eq!(response.body["errors_truncated"], true);
}

#[tokio::test]
async fn csv_columns_map_to_message_fields_and_other_columns_to_typed_properties() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let editor = app.secret_key(&acme, Role::Editor).await;
    let (when1, time1) = hours_ago(30);
    let (when2, time2) = hours_ago(2);
    let body = format!(
        "user,event,when,plan,seats,trial,note,empty,code\r\n\
         u1,Signed Up,{when1},pro,3,true,\"a, \"\"b\"\"\r\nc\",,007\r\n\
         42,Upgraded,{when2},team,2.5,false,plain,,12345678901234567890123\r\n"
    );
    let query = "event_column=event&user_id_column=user&timestamp_column=when";
    let response = csv(&editor, query, body.clone()).await;
    assert_eq!(counts(&response), (2, 2, 0));
    let events = events_of(&app, &acme).await;
    assert_eq!(user_ids(&events), ["42", "u1"]);
    let (upgraded, signed_up) = (&events[0], &events[1]);
    assert_eq!(signed_up.kind, "track");
    assert_eq!(signed_up.event.as_deref(), Some("Signed Up"));
    assert_eq!(signed_up.time, time1);
    assert_eq!(
        signed_up.properties,
        Some(json!({
            "plan": "pro", "seats": 3, "trial": true, "note": "a, \"b\"\r\nc", "code": "007",
        }))
    );
    assert_eq!(upgraded.time, time2);
    assert_eq!(
        upgraded.properties,
        Some(json!({
            "plan": "team", "seats": 2.5, "trial": false, "note": "plain",
            "code": "12345678901234567890123",
        }))
    );

    // Again: nothing is stored twice.
    assert_eq!(counts(&csv(&editor, query, body).await), (2, 2, 0));
    assert_eq!(events_of(&app, &acme).await.len(), 2);

    // Identify: chosen columns become traits.
    let identify = csv(
        &editor,
        "type=identify&user_id_column=id&anonymous_id_column=anon&properties_columns=name,%20age",
        "id,anon,name,age,ignored\nu7,,Ada,36,x\n,a-1,Bob,,y\n",
    )
    .await;
    assert_eq!(counts(&identify), (2, 2, 0));
    // Page: one name for every row.
    let page = csv(
        &editor,
        "type=page&event=Pricing&anonymous_id_column=visitor",
        "visitor,path\nv1,/pricing\n",
    )
    .await;
    assert_eq!(counts(&page), (1, 1, 0));
    let mut people: Vec<_> = events_of(&app, &acme)
        .await
        .into_iter()
        .filter(|e| e.kind != "track")
        .map(|e| (e.kind, e.user_id, e.anonymous_id, e.event, e.properties))
        .collect();
    people.sort_by(|a, b| a.2.cmp(&b.2).then(a.1.cmp(&b.1)));
    assert_eq!(
        people,
        [
            (
                "identify".to_owned(),
                Some("u7".to_owned()),
                None,
                None,
                Some(json!({"name": "Ada", "age": 36}))
            ),
            (
                "identify".to_owned(),
                None,
                Some("a-1".to_owned()),
                None,
                Some(json!({"name": "Bob"}))
            ),
            (
                "page".to_owned(),
                None,
                Some("v1".to_owned()),
                Some("Pricing".to_owned()),
                Some(json!({"path": "/pricing"}))
            ),
        ]
    );
}

#[tokio::test]
async fn a_csv_mapping_that_does_not_fit_is_a_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let editor = app.secret_key(&acme, Role::Editor).await;
    let body = "user,event\nu1,Signed Up\n";
    for (query, field, reason) in [
        (
            "event_column=nope&user_id_column=user",
            "event_column",
            "the header row has no column \"nope\" (it has \"user\", \"event\")",
        ),
        (
            "user_id_column=user",
            "event_column",
            "a track import needs `event_column` (the column of event names) or `event` (one \
             name for every row)",
        ),
        (
            "event_column=event&user_id_column=user&properties_columns=plan",
            "properties_columns",
            "the header row has no column \"plan\" (it has \"user\", \"event\")",
        ),
        (
            "type=identify&event_column=event&user_id_column=user",
            "event_column",
            "does not apply to identify imports",
        ),
        (
            "type=alias&user_id_column=user",
            "type",
            "unknown variant `alias`, expected one of `track`, `page`, `screen`, `identify`, \
             `group`",
        ),
    ] {
        let response = csv(&editor, query, body).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            response.text
        );
        assert_eq!(response.code(), "validation_failed");
        assert_eq!(
            response.body["errors"],
            json!([{"field": field, "reason": reason}]),
            "{query}"
        );
    }
    let typo = csv(&editor, "event_colum=event&user_id_column=user", body).await;
    assert_eq!(typo.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        typo.body["errors"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("unknown field `event_colum`")),
        "{}",
        typo.text
    );
    let empty = csv(&editor, "event_column=event&user_id_column=user", "").await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.body["errors"][0]["field"], "header");
    assert!(app.events().await.is_empty());
}

#[tokio::test]
async fn bad_csv_rows_are_reported_by_line_and_column() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let editor = app.secret_key(&acme, Role::Editor).await;
    let (when, _) = hours_ago(1);
    let huge = "z".repeat(33 * 1024);
    let body = format!(
        "user,event,when,plan\n\
         u1,Signed Up,{when},pro\n\
         u2,Signed Up,yesterday,pro\n\
         u3,\"Multi\nline\",{when},pro\n\
         ,Signed Up,{when},pro\n\
         u5,Signed Up,{when}\n\
         u6,,{when},pro\n\
         u7,Old,2001-01-01T00:00:00Z,pro\n\
         u8,Signed Up,{when},{huge}\n\
         u9,Signed Up,{when},\"nul\0\"\n\
         u10,Signed Up,{when},pro\n"
    );
    let response = csv(
        &editor,
        "event_column=event&user_id_column=user&timestamp_column=when",
        body,
    )
    .await;
    assert_eq!(counts(&response), (10, 3, 7));
    assert_eq!(
        errors(&response),
        [
            line_error(3, "when", "invalid_timestamp"),
            line_error(6, "user", "missing_identity"),
            line_error(7, "record", "wrong_field_count"),
            line_error(8, "event", "missing_field"),
            line_error(9, "when", "timestamp_out_of_range"),
            line_error(10, "message", "message_too_large"),
            line_error(11, "plan", "nul_character"),
        ]
    );
    assert_eq!(
        response.body["errors"][2]["reason"],
        "has 3 fields; the header row has 4"
    );
    let events = events_of(&app, &acme).await;
    assert_eq!(user_ids(&events), ["u1", "u10", "u3"]);
    assert_eq!(events[2].event.as_deref(), Some("Multi\nline"));
}

/// Standard output, and the `line N: …` reports of standard error.
fn outcome(output: &Output) -> (String, Vec<String>) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let reported = stderr
        .lines()
        .filter(|l| l.starts_with("line "))
        .map(str::to_owned)
        .collect();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        reported,
    )
}

/// A scratch directory, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("northstar-import-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).expect("scratch directory");
        ScratchDir(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write file");
        path_text(&path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_owned()
}

#[tokio::test]
async fn the_cli_imports_an_ndjson_file_and_reports_every_rejected_line() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let scratch = ScratchDir::new();
    let valid = |user: &str| json!({"type": "track", "userId": user, "event": "Imported"});
    let mut lines = vec![valid("u1").to_string()];
    lines.extend((0..1200).map(|_| json!({"type": "track", "userId": "nobody"}).to_string()));
    lines.push(valid("u2").to_string());
    let file = scratch.file("events.ndjson", &lines.join("\n"));

    let output = northstar(&app, &["import", &file, "--tenant", "acme"], None);
    let (stdout, reported) = outcome(&output);
    assert_eq!(stdout, "1202 lines: 2 accepted, 1200 rejected.\n");
    assert_eq!(
        reported.len(),
        1200,
        "every line, past the HTTP report's 1000"
    );
    assert_eq!(reported[0], "line 2: event: is required");
    assert_eq!(reported[1199], "line 1201: event: is required");
    assert_eq!(user_ids(&events_of(&app, &acme).await), ["u1", "u2"]);

    let unknown = northstar(&app, &["import", &file, "--tenant", "nope"], None);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no tenant \"nope\""));
}

#[tokio::test]
async fn the_cli_imports_csv_from_standard_input_with_a_mapping() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let (when, time) = hours_ago(3);
    let csv = format!("user,event,when,plan\nu1,Signed Up,{when},pro\nu2,Signed Up,soon,pro\n");
    let mapping = [
        "--event-column",
        "event",
        "--user-id-column",
        "user",
        "--timestamp-column",
        "when",
    ];
    let mut args = vec!["import", "-", "--format", "csv", "--tenant", "acme"];
    args.extend(mapping);
    let (stdout, reported) = outcome(&northstar(&app, &args, Some(&csv)));
    assert_eq!(stdout, "2 lines: 1 accepted, 1 rejected.\n");
    assert_eq!(
        reported,
        [
            "line 3: when: must be an ISO 8601 date-time with a UTC offset, like \
          2026-05-01T12:00:00.000Z"
        ]
    );
    let events = events_of(&app, &acme).await;
    assert_eq!(user_ids(&events), ["u1"]);
    assert_eq!(events[0].time, time);
    assert_eq!(events[0].properties, Some(json!({"plan": "pro"})));

    // A file named .csv is read as CSV; a mapping that does not fit stops
    // the import before any row.
    let scratch = ScratchDir::new();
    let file = scratch.file("events.csv", &csv);
    let bad = northstar(
        &app,
        &[
            "import",
            &file,
            "--tenant",
            "acme",
            "--event-column",
            "name",
            "--user-id-column",
            "user",
        ],
        None,
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--event-column: the header row has no column \"name\""),
        "{stderr}"
    );
    assert_eq!(events_of(&app, &acme).await.len(), 1);
}
