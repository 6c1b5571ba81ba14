//! `TestApp`: the real router over a throwaway database, and personas that
//! call it as a signed-in user, an API key, or nobody.

#![allow(
    dead_code,
    reason = "each test module uses a different part of the support"
)]

pub mod billing;

use std::{
    io::Write,
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use governor::Quota;
use http_body_util::BodyExt;
use northstar::{
    AppState,
    auth::{
        passwords::Passwords,
        throttle::{self, LoginThrottle},
    },
    build_router,
    config::HttpSettings,
    ingest::{
        IngestSettings,
        pipeline::{PipelineSettings, Writers},
    },
};
use northstar_db::{
    audit::Actor,
    memberships::Role,
    provisioning::{self, ProvisionOutcome, ProvisionRequest},
    testing::TestDatabase,
    users,
};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use std::num::NonZeroU32;
use tower::ServiceExt;
use uuid::Uuid;

/// The password of every persona.
pub const PASSWORD: &str = "correct horse battery staple";
/// The public origin the test app believes it is served at.
pub const ORIGIN: &str = "https://northstar.test";

/// The app over its own database.
pub struct TestApp {
    /// The database; dropped (and with it the database) after the app.
    pub db: TestDatabase,
    /// The state the router was built from.
    pub state: AppState,
    /// The ingestion writers (aborted when the app is dropped).
    pub writers: Option<Writers>,
    router: Router,
}

/// An HTTP response, its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestResponse {
    /// The `code` of a problem body.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// The values of `field` in the objects of the array at `array`
    /// (for example the `action` of every audit-log entry).
    pub fn pluck(&self, array: &str, field: &str) -> Vec<String> {
        self.body[array]
            .as_array()
            .unwrap_or_else(|| panic!("no array {array:?} in {}", self.text))
            .iter()
            .filter_map(|item| item[field].as_str().map(str::to_owned))
            .collect()
    }

    /// The header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        use argon2::{
            Argon2, PasswordHasher,
            password_hash::{SaltString, rand_core::OsRng},
        };
        Argon2::default()
            .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
            .expect("hash")
            .to_string()
    })
}

/// Settings as in production: HTTPS origin, Secure cookies.
pub fn test_settings() -> HttpSettings {
    HttpSettings {
        public_origin: ORIGIN.into(),
        secure_cookies: true,
        max_body_bytes: 64 * 1024,
        session_idle: Duration::from_secs(3600),
        session_max: Duration::from_secs(24 * 3600),
        ingest: IngestSettings {
            pipeline: PipelineSettings {
                rollup_interval: Duration::from_millis(20),
                ..PipelineSettings::DEFAULT
            },
            ..IngestSettings::default()
        },
    }
}

/// The production bursts, refilled hourly instead of per minute, so that a
/// slow test run cannot refill a bucket mid-test.
fn slow_refill_throttle() -> LoginThrottle {
    let per_hour = |n: u32| Quota::per_hour(NonZeroU32::new(n).expect("non-zero"));
    LoginThrottle::new(
        per_hour(throttle::ATTEMPTS_PER_ACCOUNT_PER_MINUTE),
        per_hour(throttle::ATTEMPTS_PER_ADDRESS_PER_MINUTE),
    )
}

impl TestApp {
    /// The app over a fresh database, with production-like settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(test_settings()).await
    }

    /// The app with custom settings.
    pub async fn spawn_with(settings: HttpSettings) -> Self {
        let db = TestDatabase::create().await;
        let passwords = Passwords::new().expect("password hasher");
        let (mut state, writers) = AppState::new(db.app_pool().clone(), settings, passwords);
        state.login_throttle = std::sync::Arc::new(slow_refill_throttle());
        let router = build_router(state.clone());
        TestApp {
            db,
            state,
            writers: Some(writers),
            router,
        }
    }

    /// Sends a request through the router in-process.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send(&self.router, request).await
    }

    /// Nobody: no cookie, no key.
    pub fn anonymous(&self) -> Persona {
        Persona {
            router: self.router.clone(),
            email: String::new(),
            user_id: None,
            cookie: None,
            csrf: None,
            bearer: None,
        }
    }

    /// A user with the persona password, created if needed.
    pub async fn user(&self, email: &str) -> Uuid {
        let mut conn = self.db.app_pool().acquire().await.expect("connection");
        let (user, _) = users::find_or_create(&mut conn, email, "Test user", Some(password_hash()))
            .await
            .expect("create user");
        user.id
    }

    /// Signs `email` in (creating the user) and returns the persona.
    pub async fn sign_in(&self, email: &str) -> Persona {
        let user_id = self.user(email).await;
        let mut persona = self.anonymous();
        let response = persona
            .post(
                "/api/v1/auth/login",
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "log-in failed: {}",
            response.text
        );
        persona.cookie = Some(session_cookie(&response.headers).expect("session cookie"));
        persona.csrf = response.body["csrf_token"].as_str().map(str::to_owned);
        persona.email = email.to_owned();
        persona.user_id = Some(user_id);
        persona
    }

    /// A signed-in platform super-admin.
    pub async fn superadmin(&self) -> Persona {
        let email = "root@platform.test";
        let id = self.user(email).await;
        users::set_superadmin(self.db.app_pool(), id, true)
            .await
            .expect("make super-admin");
        self.sign_in(email).await
    }

    /// Provisions tenant `slug` whose owner is `owner@<slug>.test`.
    pub async fn tenant(&self, slug: &str) -> TestTenant {
        let owner_email = format!("owner@{slug}.test");
        self.user(&owner_email).await;
        let outcome = provisioning::provision_tenant(
            self.db.app_pool(),
            &ProvisionRequest {
                slug,
                name: &format!("Tenant {slug}"),
                plan: None,
                owner_email: &owner_email,
                owner_name: "Owner",
                owner_password_hash: None,
                actor: &Actor::cli(),
            },
        )
        .await
        .expect("provision");
        let ProvisionOutcome::Created(done) = outcome else {
            panic!("tenant {slug} already exists");
        };
        TestTenant {
            slug: slug.to_owned(),
            id: done.tenant.id,
            write_key: done.write_key.secret,
        }
    }

    /// Signs in the owner of `tenant`.
    pub async fn owner(&self, tenant: &TestTenant) -> Persona {
        self.sign_in(&format!("owner@{}.test", tenant.slug)).await
    }

    /// A new user with `role` in `tenant`, signed in.
    pub async fn member(&self, tenant: &TestTenant, role: Role) -> Persona {
        let role_name = role.as_str();
        let email = format!(
            "{role_name}-{}@{}.test",
            Uuid::new_v4().simple(),
            tenant.slug
        );
        let user_id = self.user(&email).await;
        let mut tx = northstar_db::TenantTx::begin(self.db.app_pool(), tenant.id)
            .await
            .expect("tenant tx");
        northstar_db::memberships::add(&mut tx, user_id, role)
            .await
            .expect("add member");
        tx.commit().await.expect("commit");
        self.sign_in(&email).await
    }

    /// A persona authenticating with a new secret key of `role` in `tenant`.
    pub async fn secret_key(&self, tenant: &TestTenant, role: Role) -> Persona {
        let mut tx = northstar_db::TenantTx::begin(self.db.app_pool(), tenant.id)
            .await
            .expect("tenant tx");
        let key = northstar_db::api_keys::create(
            &mut tx,
            northstar_db::api_keys::KeyKind::Secret,
            "test key",
            Some(role),
            None,
        )
        .await
        .expect("create key");
        tx.commit().await.expect("commit");
        let mut persona = self.anonymous();
        persona.bearer = Some(key.secret);
        persona
    }
}

/// A provisioned tenant.
pub struct TestTenant {
    pub slug: String,
    pub id: Uuid,
    pub write_key: String,
}

/// Someone calling the API.
#[derive(Clone)]
pub struct Persona {
    router: Router,
    pub email: String,
    pub user_id: Option<Uuid>,
    /// `name=value` of the session cookie.
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
}

impl Persona {
    /// A request with this persona's credentials (and CSRF token).
    pub fn request(&self, method: Method, path: &str, body: Option<Value>) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(cookie) = &self.cookie {
            builder = builder.header(header::COOKIE, cookie);
        }
        if let Some(csrf) = &self.csrf {
            builder = builder.header("x-csrf-token", csrf);
        }
        if let Some(bearer) = &self.bearer {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        }
        .expect("request")
    }

    /// Sends any request through the router.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send(&self.router, request).await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(self.request(Method::GET, path, None)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.send(self.request(Method::POST, path, Some(body)))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> TestResponse {
        self.send(self.request(Method::PATCH, path, Some(body)))
            .await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.send(self.request(Method::DELETE, path, None)).await
    }
}

async fn send(router: &Router, request: Request<Body>) -> TestResponse {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    TestResponse {
        status,
        headers,
        body,
        text,
    }
}

/// `name=value` of the session cookie a response sets.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("northstar_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// An SDK sending with a write key, the way Segment's libraries do: the key
/// as the basic-auth user name with an empty password.
#[derive(Clone)]
pub struct Sdk {
    router: Router,
    pub write_key: String,
}

impl Sdk {
    /// Posts JSON to `path` with basic auth.
    pub async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.post_bytes(path, body.to_string().into_bytes(), &[])
            .await
    }

    /// Posts raw bytes with basic auth and extra headers.
    pub async fn post_bytes(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:", self.write_key));
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Basic {auth}"))
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        send(
            &self.router,
            builder.body(Body::from(body)).expect("request"),
        )
        .await
    }
}

/// A stored event, as read back by the superuser (past RLS).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub tenant_id: Uuid,
    pub time: chrono::DateTime<chrono::Utc>,
    pub message_id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub event: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub group_id: Option<String>,
    pub previous_id: Option<String>,
    pub properties: Option<Value>,
    pub context: Option<Value>,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TestApp {
    /// An SDK with `write_key`.
    pub fn sdk(&self, write_key: &str) -> Sdk {
        Sdk {
            router: self.router.clone(),
            write_key: write_key.to_owned(),
        }
    }

    /// Every stored event of every tenant, oldest first, read past RLS.
    pub async fn events(&self) -> Vec<StoredEvent> {
        let mut admin = self.db.admin().await;
        sqlx::query_as(
            "SELECT tenant_id, time, message_id, type, event, user_id, anonymous_id, group_id,
                    previous_id, properties::jsonb AS properties, context::jsonb AS context,
                    received_at, sent_at
             FROM events ORDER BY time, message_id",
        )
        .fetch_all(&mut admin)
        .await
        .expect("read events")
    }

    /// Waits until the rollup worker has applied every stored call and
    /// run every requested rebuild.
    pub async fn rollups_applied(&self) {
        wait_for_rollups(&self.db.admin_options()).await;
    }

    /// The month rollups' rows that differ from their days summed per
    /// month (`event_counts_months`, `event_adopters_months`), past RLS;
    /// zeros count as missing rows.
    pub async fn month_rollup_mismatches(&self) -> Vec<Value> {
        self.rows(
            "WITH counts AS (
                 SELECT tenant_id, date_trunc('month', day::timestamp)::date AS month,
                        type || ' ' || name AS key, sum(count)::bigint AS n
                 FROM event_counts GROUP BY 1, 2, 3
             ), count_months AS (
                 SELECT tenant_id, month, type || ' ' || name AS key, count AS n
                 FROM event_counts_months
             ), adopters AS (
                 SELECT tenant_id, date_trunc('month', day::timestamp)::date AS month,
                        event AS key, sum(adopters)::bigint AS n
                 FROM event_adopters GROUP BY 1, 2, 3
             ), adopter_months AS (
                 SELECT tenant_id, month, event AS key, adopters AS n FROM event_adopters_months
             )
             SELECT 'counts' AS rollup, tenant_id, month, key, d.n AS days, m.n AS months
             FROM counts d FULL JOIN count_months m USING (tenant_id, month, key)
             WHERE coalesce(d.n, 0) <> coalesce(m.n, 0)
             UNION ALL
             SELECT 'adopters', tenant_id, month, key, d.n, m.n
             FROM adopters d FULL JOIN adopter_months m USING (tenant_id, month, key)
             WHERE coalesce(d.n, 0) <> coalesce(m.n, 0)",
        )
        .await
    }

    /// One JSON row per result row of `sql`, run as the superuser.
    pub async fn rows(&self, sql: &str) -> Vec<Value> {
        let mut admin = self.db.admin().await;
        sqlx::query_scalar(&format!(
            "SELECT coalesce(jsonb_agg(r), '[]') FROM ({sql}) r"
        ))
        .fetch_one(&mut admin)
        .await
        .map(|rows: Value| rows.as_array().cloned().unwrap_or_default())
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
    }
}

/// Runs the `northstar` binary against the test database, with `stdin` as
/// its standard input.
pub fn northstar(app: &TestApp, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_northstar"))
        .args(args)
        .env("DATABASE_URL", app.db.admin_url())
        .env("NORTHSTAR_LOG", "warn")
        .env("NORTHSTAR_LOG_FORMAT", "json")
        .env_remove("DATABASE_APP_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run northstar");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

/// Waits until the database at `admin` (a superuser's options) has no
/// rollup work left: the inbox is empty and no rebuild is requested.
pub async fn wait_for_rollups(admin: &PgConnectOptions) {
    let mut conn = PgConnection::connect_with(admin).await.expect("connect");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM rollup_inbox)
                 OR EXISTS (SELECT 1 FROM tenants WHERE rollups_rebuild_requested)",
        )
        .fetch_one(&mut conn)
        .await
        .expect("read the rollup inbox");
        if !pending {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rollup worker did not empty the inbox within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
