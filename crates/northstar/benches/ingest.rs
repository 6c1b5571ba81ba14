//! Ingestion throughput, latency and overload behaviour, end to end: Segment
//! `POST /v1/batch` requests over a real socket into the real app (write-key
//! authentication, per-message validation, the bounded queue, the batch
//! writers' `COPY` + deduplicating insert, commit) against a fresh migrated
//! database, with the HTTP clients in the same process.
//!
//! Phases, in one run:
//!
//! 1. **sustained**: `C` clients post back to back for `D` seconds; events
//!    acknowledged per second (only `200`s count), acknowledgement latency,
//!    status counts, peak memory; then `count(*)` of `events` must equal the
//!    acknowledged count.
//! 2. **half load**: requests arrive open-loop (on a fixed schedule, whatever
//!    the answers) at 50 % of the sustained rate for `D` seconds: latency.
//! 3. **overload**: open-loop arrivals at 2× the sustained rate for the
//!    overload duration: `200`/`503`/`429`/other counts, peak memory (the
//!    queue is bounded in bytes), then **recovery**: a normal batch gets `200`
//!    and every acknowledged message of phases 2–3 is stored exactly once
//!    (and no refused one).
//! 4. **raw COPY baseline**: `TRUNCATE`, then the very messages acknowledged
//!    in phase 1, validated and encoded by the app's own code *before* timing,
//!    `COPY`ed straight into `events` as the superuser (no staging table, no
//!    dedupe, no RLS), with as many parallel streams (connections) as the app
//!    has writers and batches of the app's batch size. It runs last so that
//!    its ~1 KB-per-row buffers do not inflate the memory figures of the others.
//!    Then as many random 16-byte keys are `COPY`ed into `event_message_ids`:
//!    the least a deduplicating store adds per row.
//!
//! The **ceiling** line adds up what no design of the path avoids, in CPU per
//! event: the bench process's (intake, validation, encoding; the clients
//! too) and the rollup worker's in the sustained phase, and the PostgreSQL
//! CPU per row of the two raw `COPY`s; the machine's cores divided by that
//! sum is the most the path could reach, also shown against the raw rate.
//!
//! The dataset is generated before anything is measured, from a seed:
//! `NS_BENCH_BODIES` distinct request bodies of 100–300 Segment messages
//! (mostly `track`, some `page`/`screen`/`identify`/`group`/`alias`,
//! 0.5–2 KB each, nested properties, web and mobile `context`, power-law
//! users, `timestamp` within the last hour, a batch `sentAt`), under 500 KB
//! each. Request `n` sends body `n mod NS_BENCH_BODIES` with the first eight
//! hex digits of every `messageId` overwritten by `n`: ids stay unique for
//! the whole run, and a client spends one copy of the body (no JSON work)
//! per request.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench -p northstar --bench ingest
//! ```
//!
//! Without `DATABASE_URL` the test harness starts a throwaway cluster from
//! the local PostgreSQL binaries. Knobs (environment, or `--flag N`):
//!
//! | variable | flag | default | |
//! |---|---|---|---|
//! | `NS_BENCH_CLIENTS` | `--clients` | 8 | concurrent clients, sustained phase |
//! | `NS_BENCH_SECS` | `--secs` | 20 | seconds of the sustained and half-load phases |
//! | `NS_BENCH_OVERLOAD_SECS` | `--overload-secs` | 30 | seconds of overload (the issue's run: 60) |
//! | `NS_BENCH_WRITERS` | `--writers` | 2 | `NORTHSTAR_INGEST_WRITERS` |
//! | `NS_BENCH_BATCH_ROWS` | `--batch-rows` | 5000 | `NORTHSTAR_INGEST_BATCH_ROWS` |
//! | `NS_BENCH_QUEUE_BYTES` | `--queue-bytes` | 67108864 | `NORTHSTAR_INGEST_QUEUE_BYTES` |
//! | `NS_BENCH_ROLLUP_INTERVAL_MS` | `--rollup-interval-ms` | 1000 | `NORTHSTAR_ROLLUP_INTERVAL_MS` |
//! | `NS_BENCH_BODIES` | `--bodies` | 400 | distinct request bodies generated |
//! | `NS_BENCH_SEED` | `--seed` | 42 | dataset seed |
//! | `NS_BENCH_MAX_INFLIGHT` | `--max-inflight` | 2000 | open-loop requests in flight at most |
//! | `NS_BENCH_PHASES` | | `sustained,half,overload,raw` | a subset, e.g. `sustained,raw` for sweeps |
//! | `NS_BENCH_DB_SETTINGS` | | none | what-if: `name=value,…` set on the bench database before the app connects (`enable_nestloop=off`) |
//!
//! The writers' warnings and errors go to stderr (`RUST_LOG`, default
//! `northstar::ingest=warn`).
//!
//! Each phase also reports the CPU used (from `/proc`) by this process (app
//! and clients), by this database's PostgreSQL processes (and of those, by
//! the batch writers' and the rollup worker's, told apart by
//! `application_name`), and by the whole machine, per second and per
//! acknowledged event, and the peak resident set (`VmHWM`, reset at each
//! phase start).
//!
//! Timing is reported, never asserted. A wrong count in the database, or a
//! `200` that did not accept every message, fails the run.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

#[allow(
    dead_code,
    reason = "the harness's own cluster, not `main_with_database`, serves a run without DATABASE_URL"
)]
mod support;

use anyhow::{Context, Result, bail, ensure};
use chrono::{DateTime, SecondsFormat, Utc};
use northstar::ingest::{
    IngestSettings,
    message::{self, MissingMessageId, Receipt},
    pipeline::{Pipeline, PipelineSettings},
};
use northstar_db::{
    audit::Actor,
    connect_app_pool,
    ingest::{self, CopyRows, EVENTS_COLUMNS, EventRow, MessageType},
    product::inbox,
    provisioning::{self, ProvisionOutcome, ProvisionRequest},
    testing::TestDatabase,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use reqwest::{StatusCode, header};
use serde_json::{Map, Value, json};
use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use support::{ServedApp, Stats, round2};
use tokio::{sync::Semaphore, task::JoinSet};
use uuid::Uuid;

/// As `northstar serve` defaults: `NORTHSTAR_DB_POOL_SIZE`, `NORTHSTAR_STATEMENT_TIMEOUT_MS`.
const POOL_SIZE: u32 = 16;
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The app's limit on a batch request is 500 KB; stay under it.
const MAX_BODY_BYTES: usize = 490_000;
/// Users of the tenant's product; activity per user follows a power law.
const USERS: u64 = 200_000;
fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "northstar::ingest=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::read()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run(config))
}

// ---------------------------------------------------------------- settings

/// The run's knobs; see the module documentation.
#[derive(Debug, Clone)]
struct Config {
    clients: usize,
    secs: u64,
    overload_secs: u64,
    writers: usize,
    batch_rows: usize,
    queue_bytes: usize,
    bodies: usize,
    seed: u64,
    max_inflight: usize,
    rollup_interval: Duration,
    phases: Vec<String>,
    /// `(name, value)` PostgreSQL settings for the bench database.
    db_settings: Vec<(String, String)>,
}

impl Config {
    fn read() -> Result<Self> {
        let get = |flag: &str, variable: &str, default: u64| -> Result<u64> {
            Ok(support::option(flag, variable)?.unwrap_or(default))
        };
        let config = Config {
            clients: usize::try_from(get("--clients", "NS_BENCH_CLIENTS", 8)?)?,
            secs: get("--secs", "NS_BENCH_SECS", 20)?,
            overload_secs: get("--overload-secs", "NS_BENCH_OVERLOAD_SECS", 30)?,
            writers: usize::try_from(get("--writers", "NS_BENCH_WRITERS", 2)?)?,
            batch_rows: usize::try_from(get("--batch-rows", "NS_BENCH_BATCH_ROWS", 5000)?)?,
            queue_bytes: usize::try_from(get(
                "--queue-bytes",
                "NS_BENCH_QUEUE_BYTES",
                67_108_864,
            )?)?,
            bodies: usize::try_from(get("--bodies", "NS_BENCH_BODIES", 400)?)?,
            seed: get("--seed", "NS_BENCH_SEED", 42)?,
            max_inflight: usize::try_from(get("--max-inflight", "NS_BENCH_MAX_INFLIGHT", 2000)?)?,
            rollup_interval: Duration::from_millis(get(
                "--rollup-interval-ms",
                "NS_BENCH_ROLLUP_INTERVAL_MS",
                1000,
            )?),
            db_settings: std::env::var("NS_BENCH_DB_SETTINGS")
                .unwrap_or_default()
                .split(',')
                .filter(|pair| !pair.trim().is_empty())
                .map(|pair| {
                    pair.split_once('=')
                        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
                        .with_context(|| {
                            format!("NS_BENCH_DB_SETTINGS: {pair:?} is not name=value")
                        })
                })
                .collect::<Result<_>>()?,
            phases: std::env::var("NS_BENCH_PHASES")
                .unwrap_or_else(|_| "sustained,half,overload,raw".into())
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
        };
        ensure!(
            config.clients > 0 && config.secs > 0,
            "clients and seconds must be positive"
        );
        ensure!((1..=32).contains(&config.writers), "writers: 1 to 32");
        ensure!(
            config.batch_rows > 0 && config.bodies > 0,
            "batch rows and bodies must be positive"
        );
        for phase in &config.phases {
            ensure!(
                ["sustained", "half", "overload", "raw"].contains(&phase.as_str()),
                "NS_BENCH_PHASES: unknown phase {phase:?}"
            );
        }
        ensure!(
            config.runs("sustained") || !(config.runs("half") || config.runs("overload")),
            "the half-load and overload phases are paced by the sustained phase's rate"
        );
        Ok(config)
    }

    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

// ----------------------------------------------------------------- dataset

/// One pre-generated request body.
struct Template {
    bytes: Vec<u8>,
    /// Where each message's `messageId` starts: eight hex digits to overwrite.
    id_offsets: Vec<usize>,
    /// Each message's bytes within `bytes`.
    messages: Vec<std::ops::Range<usize>>,
    sent_at: DateTime<Utc>,
}

impl Template {
    /// The body as request `seq` sends it.
    fn body(&self, seq: u32) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        let hex = format!("{seq:08x}");
        for &at in &self.id_offsets {
            bytes[at..at + 8].copy_from_slice(hex.as_bytes());
        }
        bytes
    }
}

struct Dataset {
    templates: Vec<Template>,
}

impl Dataset {
    fn template(&self, seq: u32) -> &Template {
        &self.templates[seq as usize % self.templates.len()]
    }

    fn messages(&self, seq: u32) -> u64 {
        self.template(seq).messages.len() as u64
    }
}

const WEB_USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
];
const LOCALES: &[&str] = &[
    "en-US", "en-US", "en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "pt-BR", "ja-JP", "nl-NL",
];
const TIMEZONES: &[&str] = &[
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Tokyo",
    "America/Sao_Paulo",
];
const PAGES: &[(&str, &str, &str)] = &[
    ("/", "Home", "Acme Shop: outdoor gear"),
    ("/pricing", "Pricing", "Pricing | Acme"),
    ("/products", "Products", "All products | Acme Shop"),
    (
        "/products/trail-runner-3",
        "Product",
        "Trail Runner 3 | Acme Shop",
    ),
    (
        "/blog/how-we-scaled-postgres",
        "Blog",
        "How we scaled Postgres | Acme Blog",
    ),
    (
        "/docs/getting-started",
        "Docs",
        "Getting started | Acme Docs",
    ),
    ("/checkout", "Checkout", "Checkout | Acme Shop"),
    ("/account/settings", "Account", "Settings | Acme"),
];
const REFERRERS: &[&str] = &[
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://t.co/x8Yq2LmPz",
    "",
    "https://www.bing.com/search?q=trail+running+shoes",
    "https://shop.acme.example/products",
];
const SCREENS: &[&str] = &[
    "Home",
    "Product Detail",
    "Cart",
    "Search Results",
    "Profile",
    "Order History",
];
const CATEGORIES: &[&str] = &[
    "Shoes",
    "Outerwear",
    "Accessories",
    "Electronics",
    "Books",
    "Home & Kitchen",
];
const BRANDS: &[&str] = &[
    "Acme",
    "Northwind",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
];
const FEATURES: &[&str] = &[
    "dashboard_export",
    "saved_search",
    "dark_mode",
    "bulk_edit",
    "share_link",
];
const TRACK_EVENTS: &[(&str, u32)] = &[
    ("Product Viewed", 30),
    ("Product Added", 10),
    ("Products Searched", 12),
    ("Checkout Started", 4),
    ("Order Completed", 4),
    ("Signed In", 8),
    ("Signed Up", 2),
    ("Video Playback Started", 6),
    ("Feature Used", 14),
    ("Button Clicked", 10),
];

/// Deterministic Segment traffic of one tenant's product.
struct Generator {
    rng: StdRng,
}

impl Generator {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.gen_range(0..items.len())]
    }

    fn kind(&mut self) -> MessageType {
        match self.rng.gen_range(0..100) {
            0..78 => MessageType::Track,
            78..87 => MessageType::Page,
            87..93 => MessageType::Screen,
            93..97 => MessageType::Identify,
            97..99 => MessageType::Group,
            _ => MessageType::Alias,
        }
    }

    /// A user rank from 1 to `USERS`, log-uniform: user 1 is about as active
    /// as users 2–3 together, or as users 1,000–2,700.
    fn user(&mut self) -> u64 {
        let u: f64 = self.rng.r#gen();
        ((USERS as f64).powf(u) as u64).clamp(1, USERS)
    }

    fn price(&mut self) -> f64 {
        f64::from(self.rng.gen_range(499_u32..25_000)) / 100.0
    }

    fn product(&mut self) -> Value {
        let id = self.rng.gen_range(1..5000);
        json!({
            "product_id": format!("p_{id:05}"),
            "sku": format!("SKU-{:04}-{}", id % 9973, ["S", "M", "L", "XL"][id % 4]),
            "name": format!("{} {} {}", self.pick(BRANDS), self.pick(&["Trail", "City", "Summit", "Harbor"]), id % 97),
            "category": self.pick(CATEGORIES),
            "brand": self.pick(BRANDS),
            "price": self.price(),
            "quantity": self.rng.gen_range(1..4),
            "image_url": format!("https://cdn.acme.example/img/p_{id:05}/main.jpg"),
        })
    }

    fn web_context(&mut self, user: u64) -> Value {
        let (path, _, title) = *self.pick(PAGES);
        let search = if self.rng.gen_bool(0.2) {
            "?utm_source=newsletter&utm_medium=email"
        } else {
            ""
        };
        let mut context = json!({
            "library": { "name": "analytics.js", "version": "next-1.64.0" },
            "ip": ip(user),
            "userAgent": self.pick(WEB_USER_AGENTS),
            "locale": self.pick(LOCALES),
            "timezone": self.pick(TIMEZONES),
            "page": {
                "path": path,
                "referrer": self.pick(REFERRERS),
                "search": search,
                "title": title,
                "url": format!("https://shop.acme.example{path}{search}"),
            },
        });
        if !search.is_empty() {
            context["campaign"] =
                json!({ "name": "winter_sale", "source": "newsletter", "medium": "email" });
        }
        context
    }

    fn mobile_context(&mut self, user: u64) -> Value {
        let ios = self.rng.gen_bool(0.55);
        let build = self.rng.gen_range(400..420);
        json!({
            "library": if ios {
                json!({ "name": "analytics-swift", "version": "1.6.1" })
            } else {
                json!({ "name": "analytics-kotlin", "version": "1.16.3" })
            },
            "ip": ip(user),
            "userAgent": if ios {
                format!("AcmeShop/4.{build} CFNetwork/1568.200.51 Darwin/24.1.0")
            } else {
                format!("Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.{build})")
            },
            "locale": self.pick(LOCALES),
            "timezone": self.pick(TIMEZONES),
            "app": { "name": "Acme Shop", "version": format!("4.{build}.0"), "build": build.to_string() },
            "device": {
                "id": device_id(user),
                "manufacturer": if ios { "Apple" } else { "Google" },
                "model": if ios { "iPhone15,2" } else { "Pixel 8" },
                "type": if ios { "ios" } else { "android" },
            },
            "os": { "name": if ios { "iOS" } else { "Android" }, "version": if ios { "18.1" } else { "14" } },
            "network": { "wifi": self.rng.gen_bool(0.6), "cellular": self.rng.gen_bool(0.4) },
            "screen": { "width": 390, "height": 844, "density": 3 },
        })
    }

    fn track_properties(&mut self, event: &str) -> Value {
        match event {
            "Product Viewed" | "Product Added" => {
                let mut product = self.product();
                product["position"] = json!(self.rng.gen_range(1..40));
                product["currency"] = json!("USD");
                product
            }
            "Products Searched" => json!({
                "query": self.pick(&["trail shoes", "rain jacket", "usb-c cable", "cast iron pan", "headlamp"]),
                "filters": {
                    "category": self.pick(CATEGORIES),
                    "price_range": [self.rng.gen_range(0..50), self.rng.gen_range(50..400)],
                    "in_stock": self.rng.gen_bool(0.7),
                },
                "results": self.rng.gen_range(0..500),
            }),
            "Checkout Started" | "Order Completed" => {
                let products: Vec<Value> = (0..self.rng.gen_range(1..4))
                    .map(|_| self.product())
                    .collect();
                let revenue: f64 = products.iter().filter_map(|p| p["price"].as_f64()).sum();
                let mut order = json!({
                    "order_id": format!("ord_{:08}", self.rng.gen_range(0..100_000_000)),
                    "revenue": (revenue * 100.0).round() / 100.0,
                    "shipping": 4.99,
                    "tax": (revenue * 8.0).round() / 100.0,
                    "currency": "USD",
                    "products": products,
                });
                if self.rng.gen_bool(0.3) {
                    order["coupon"] = json!("WINTER15");
                    order["discount"] = json!((revenue * 15.0).round() / 100.0);
                }
                order
            }
            "Signed In" | "Signed Up" => json!({
                "method": self.pick(&["password", "google", "github", "magic_link"]),
                "plan": self.pick(&["free", "pro", "team"]),
                "experiment": { "id": "onboarding_v7", "variant": self.pick(&["control", "short_form"]) },
            }),
            "Video Playback Started" => json!({
                "session_id": format!("vs_{:010}", self.rng.gen_range(0..u32::MAX)),
                "content_asset_id": format!("asset_{}", self.rng.gen_range(100..999)),
                "position": self.rng.gen_range(0..600),
                "total_length": self.rng.gen_range(60..3600),
                "bitrate": self.rng.gen_range(800..6000),
                "livestream": false,
                "video_player": "html5",
                "quality": self.pick(&["720p", "1080p", "4k"]),
            }),
            "Feature Used" => json!({
                "feature": self.pick(FEATURES),
                "count": self.rng.gen_range(1..20),
                "duration_ms": self.rng.gen_range(50..30_000),
                "flags": ["beta", self.pick(&["ui-v2", "fast-path", "new-nav"])],
                "settings": {
                    "theme": self.pick(&["light", "dark", "system"]),
                    "density": "comfortable",
                    "notifications": { "email": self.rng.gen_bool(0.5), "push": self.rng.gen_bool(0.3) },
                },
            }),
            _ => json!({
                "button_id": format!("btn-{}", self.rng.gen_range(1..60)),
                "label": self.pick(&["Buy now", "Learn more", "Subscribe", "Add to wishlist"]),
                "section": self.pick(&["hero", "footer", "sidebar", "modal"]),
            }),
        }
    }

    /// One message; its `messageId` starts with eight zeros that each
    /// request overwrites. Aims at `target` bytes by listing more
    /// recommendations (or interests) in its properties.
    fn message(&mut self, index: usize, sent_at: DateTime<Utc>) -> Value {
        let kind = self.kind();
        let user = self.user();
        let identified =
            matches!(kind, MessageType::Identify | MessageType::Alias) || self.rng.gen_bool(0.6);
        let ago = chrono::Duration::milliseconds(self.rng.gen_range(0..3_600_000));
        let message_id = format!(
            "00000000-{index:04x}-4{:03x}-{:04x}-{:012x}",
            self.rng.gen_range(0..0x1000_u32),
            self.rng.gen_range(0x8000..0xc000_u32),
            self.rng.gen_range(0..0x1_0000_0000_0000_u64)
        );
        let context = if kind == MessageType::Screen {
            self.mobile_context(user)
        } else {
            self.web_context(user)
        };
        let mut message = json!({
            "messageId": message_id,
            "anonymousId": device_id(user),
            "timestamp": (sent_at - ago).to_rfc3339_opts(SecondsFormat::Millis, true),
            "context": context,
        });
        if identified {
            message["userId"] = json!(user_id(user));
        }
        let (properties_key, mut properties) = match kind {
            MessageType::Track => {
                let event = weighted(&mut self.rng, TRACK_EVENTS);
                message["event"] = json!(event);
                ("properties", self.track_properties(event))
            }
            MessageType::Page => {
                let (path, name, title) = *self.pick(PAGES);
                message["name"] = json!(name);
                let properties = json!({
                    "path": path,
                    "title": title,
                    "url": format!("https://shop.acme.example{path}"),
                    "referrer": self.pick(REFERRERS),
                    "search": "",
                });
                ("properties", properties)
            }
            MessageType::Screen => {
                message["name"] = json!(self.pick(SCREENS));
                let properties = json!({
                    "previous_screen": self.pick(SCREENS),
                    "load_time_ms": self.rng.gen_range(40..2500),
                });
                ("properties", properties)
            }
            MessageType::Identify => {
                let traits = json!({
                    "email": format!("{}@example.com", user_id(user)),
                    "name": format!("User {user}"),
                    "plan": self.pick(&["free", "pro", "team", "enterprise"]),
                    "logins": self.rng.gen_range(1..500),
                    "created_at": (sent_at - chrono::Duration::days(self.rng.gen_range(1..900)))
                        .to_rfc3339_opts(SecondsFormat::Secs, true),
                    "company": { "id": format!("acct_{:05}", user % 3000), "name": format!("Company {}", user % 3000), "employee_count": self.rng.gen_range(1..5000) },
                    "address": { "city": self.pick(&["Berlin", "Austin", "Lyon", "Osaka"]), "country": self.pick(&["DE", "US", "FR", "JP"]) },
                });
                ("traits", traits)
            }
            MessageType::Group => {
                let account = user % 3000;
                message["groupId"] = json!(format!("acct_{account:05}"));
                let traits = json!({
                    "name": format!("Company {account}"),
                    "industry": self.pick(&["Retail", "Software", "Logistics", "Media"]),
                    "employees": self.rng.gen_range(1..5000),
                    "plan": self.pick(&["pro", "team", "enterprise"]),
                    "website": format!("https://company{account}.example"),
                });
                ("traits", traits)
            }
            MessageType::Alias => {
                message["previousId"] = json!(device_id(user));
                ("", Value::Null)
            }
        };
        message["type"] = json!(kind.as_str());
        if kind == MessageType::Alias {
            return message;
        }
        let target = self.rng.gen_range(520..1950);
        let mut size = serde_json::to_vec(&message).map_or(0, |m| m.len())
            + serde_json::to_vec(&properties).map_or(0, |p| p.len())
            + properties_key.len()
            + 4;
        if size < target {
            let list_key = if kind == MessageType::Identify || kind == MessageType::Group {
                "interests"
            } else {
                "recommendations"
            };
            let mut list = Vec::new();
            size += list_key.len() + 5;
            while size < target {
                let item = if list_key == "interests" {
                    json!({ "topic": self.pick(CATEGORIES), "score": f64::from(self.rng.gen_range(0..1000_u32)) / 1000.0, "source": "onsite" })
                } else {
                    json!({ "product_id": format!("p_{:05}", self.rng.gen_range(1..5000)), "score": f64::from(self.rng.gen_range(0..10_000_u32)) / 10_000.0, "rank": list.len() + 1, "reason": self.pick(&["similar_items", "bought_together", "trending"]) })
                };
                size += serde_json::to_vec(&item).map_or(0, |i| i.len()) + 1;
                list.push(item);
            }
            properties[list_key] = Value::Array(list);
        }
        message[properties_key] = properties;
        message
    }

    /// One request body of 100–300 messages, under `MAX_BODY_BYTES`.
    fn body(&mut self, now: DateTime<Utc>) -> Result<Template> {
        let sent_at = now - chrono::Duration::milliseconds(self.rng.gen_range(0..5000));
        let count = self.rng.gen_range(100..=300);
        let tail = format!(
            "],\"sentAt\":\"{}\"}}",
            sent_at.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        let mut bytes = b"{\"batch\":[".to_vec();
        let mut id_offsets = Vec::with_capacity(count);
        let mut messages = Vec::with_capacity(count);
        for index in 0..count {
            let message = serde_json::to_vec(&self.message(index, sent_at))?;
            if bytes.len() + message.len() + 1 + tail.len() > MAX_BODY_BYTES {
                break;
            }
            if index > 0 {
                bytes.push(b',');
            }
            let key = b"\"messageId\":\"";
            let at = message
                .windows(key.len())
                .position(|w| w == key)
                .context("a generated message without messageId")?;
            id_offsets.push(bytes.len() + at + key.len());
            messages.push(bytes.len()..bytes.len() + message.len());
            bytes.extend_from_slice(&message);
        }
        bytes.extend_from_slice(tail.as_bytes());
        Ok(Template {
            bytes,
            id_offsets,
            messages,
            sent_at,
        })
    }
}

fn weighted<'a>(rng: &mut StdRng, items: &[(&'a str, u32)]) -> &'a str {
    items
        .choose_weighted(rng, |(_, weight)| *weight)
        .map_or(items[0].0, |(item, _)| item)
}

fn user_id(user: u64) -> String {
    format!("u_{user:07}")
}

/// A stable browser or device id per user.
fn device_id(user: u64) -> String {
    Uuid::from_u64_pair(
        user.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        user.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) | 1,
    )
    .hyphenated()
    .to_string()
}

fn ip(user: u64) -> String {
    let h = user.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    format!(
        "{}.{}.{}.{}",
        23 + h % 180,
        (h >> 8) % 256,
        (h >> 16) % 256,
        1 + (h >> 24) % 254
    )
}

fn generate(config: &Config) -> Result<Dataset> {
    let mut generator = Generator {
        rng: StdRng::seed_from_u64(config.seed),
    };
    let now = Utc::now();
    let templates = (0..config.bodies)
        .map(|_| generator.body(now))
        .collect::<Result<Vec<_>>>()?;
    Ok(Dataset { templates })
}

// ------------------------------------------------------------ measurement

/// One request's outcome.
struct Sample {
    seq: u32,
    /// `None`: the request failed before a status (connection error).
    status: Option<u16>,
    retry_after: bool,
    latency: Duration,
    /// Messages a `200` accepted.
    accepted: u64,
    /// A `200` that accepted fewer messages than sent (the dataset is meant to be valid).
    partial: bool,
}

/// What requests share.
struct Client {
    http: reqwest::Client,
    url: String,
    write_key: String,
    dataset: Dataset,
    next_seq: AtomicU32,
}

impl Client {
    fn next_seq(&self) -> u32 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Posts request `seq`'s body; the latency covers sending it and reading
    /// the whole answer.
    async fn send(&self, seq: u32) -> Sample {
        let body = self.dataset.template(seq).body(seq);
        let sent = self.dataset.messages(seq);
        let started = Instant::now();
        let response = self
            .http
            .post(&self.url)
            .basic_auth(&self.write_key, Some(""))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let mut sample = Sample {
            seq,
            status: None,
            retry_after: false,
            latency: Duration::ZERO,
            accepted: 0,
            partial: false,
        };
        let Ok(response) = response else {
            sample.latency = started.elapsed();
            return sample;
        };
        let status = response.status();
        sample.retry_after = response.headers().contains_key(header::RETRY_AFTER);
        let bytes = response.bytes().await;
        sample.latency = started.elapsed();
        let Ok(bytes) = bytes else {
            return sample;
        };
        sample.status = Some(status.as_u16());
        if status == StatusCode::OK {
            let accepted = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["accepted"].as_u64())
                .unwrap_or(0);
            sample.accepted = accepted;
            sample.partial = accepted != sent;
        }
        sample
    }
}

/// CPU seconds used, from `/proc`.
#[derive(Clone, Copy, Default)]
struct Usage {
    /// This process: the app and the clients.
    process: f64,
    /// This database's PostgreSQL backends (writers, pool, checks), the WAL
    /// writer, checkpointer and background writer.
    postgres: f64,
    /// Of `postgres`: the batch writers' backends.
    writers: f64,
    /// Of `postgres`: the rollup worker's backend.
    rollup_worker: f64,
    /// The whole machine, busy (not idle or iowait), in CPU seconds.
    machine_busy: f64,
}

/// CPU seconds used so far, by process.
struct Snapshot {
    process: f64,
    /// CPU seconds and `application_name` by server process.
    postgres: BTreeMap<i32, (f64, String)>,
    machine_busy: f64,
}

impl Snapshot {
    /// Takes one; `server` names this benchmark's database.
    async fn take(server: &PgConnectOptions) -> Snapshot {
        let pids: Vec<(i32, String)> = match PgConnection::connect_with(server).await {
            Ok(mut conn) => {
                let pids = sqlx::query_as(
                    "SELECT pid, application_name FROM pg_stat_activity \
                     WHERE datname = current_database() \
                        OR backend_type IN ('walwriter', 'checkpointer', 'background writer')",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap_or_default();
                let _ = conn.close().await;
                pids
            }
            Err(_) => Vec::new(),
        };
        let mut machine_busy = f64::NAN;
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().next()
        {
            let values: Vec<f64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            let total: f64 = values.iter().take(8).sum();
            let idle =
                values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
            machine_busy = (total - idle) / TICKS_PER_SECOND;
        }
        Snapshot {
            process: process_cpu("self").unwrap_or(f64::NAN),
            postgres: pids
                .into_iter()
                .filter_map(|(pid, name)| Some((pid, (process_cpu(&pid.to_string())?, name))))
                .collect(),
            machine_busy,
        }
    }

    /// What was used since `earlier`: processes that started since count
    /// whole; those that ended since are lost.
    fn since(&self, earlier: &Snapshot) -> Usage {
        let used = |named: Option<&str>| -> f64 {
            self.postgres
                .iter()
                .filter(|(_, (_, name))| named.is_none_or(|n| n == name))
                .map(|(pid, (now, _))| now - earlier.postgres.get(pid).map_or(0.0, |e| e.0))
                .sum()
        };
        Usage {
            process: self.process - earlier.process,
            postgres: used(None),
            writers: used(Some(ingest::APPLICATION_NAME)),
            rollup_worker: used(Some(inbox::APPLICATION_NAME)),
            machine_busy: self.machine_busy - earlier.machine_busy,
        }
    }
}

const TICKS_PER_SECOND: f64 = 100.0;

fn process_cpu(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// A `/proc/self/status` figure in MiB.
fn memory_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets the peak resident set size (VmHWM) to the current one.
fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The largest ingestion-queue occupancy seen while it runs.
struct QueueWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<(Duration, f64)>)>,
}

impl QueueWatch {
    /// Samples the queue every 5 ms and the resident set every 100 ms.
    fn start(pipeline: Pipeline) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = Arc::clone(&stop);
            async move {
                let started = Instant::now();
                let (mut peak, mut rss, mut tick) = (0, Vec::new(), 0_u32);
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(pipeline.queued_bytes());
                    if tick % 20 == 0 {
                        rss.push((started.elapsed(), memory_mib("VmRSS:")));
                    }
                    tick += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (peak, rss)
            }
        });
        QueueWatch { stop, task }
    }

    /// The queue's peak in bytes and the largest RSS of each quarter of the
    /// time watched.
    async fn finish(self, wall: Duration) -> (usize, [f64; 4]) {
        self.stop.store(true, Ordering::Relaxed);
        let (peak, rss) = self.task.await.unwrap_or_default();
        let mut quarters = [0.0_f64; 4];
        for (at, mib) in rss {
            let quarter = ((at.as_secs_f64() / wall.as_secs_f64() * 4.0) as usize).min(3);
            quarters[quarter] = quarters[quarter].max(mib);
        }
        (peak, quarters)
    }
}

/// A phase's figures.
struct Phase {
    name: &'static str,
    wall: Duration,
    samples: Vec<Sample>,
    /// Messages in the requests the schedule offered (open loop), sent or not.
    offered_events: u64,
    /// Open loop: requests not sent because `max_inflight` were in flight.
    not_sent: u64,
    /// Open loop: the dispatcher's worst lateness behind its schedule.
    worst_lag: Duration,
    max_inflight: usize,
    cpu: Usage,
    rss_start_mib: f64,
    peak_mib: f64,
    peak_reset: bool,
    queue_peak_bytes: usize,
    /// The largest resident set in each quarter of the phase, MiB.
    rss_quarters: [f64; 4],
    /// Open loop: how long the schedule offered requests.
    schedule: Duration,
}

impl Phase {
    fn acked_events(&self) -> u64 {
        self.samples.iter().map(|s| s.accepted).sum()
    }

    fn rate(&self) -> f64 {
        self.acked_events() as f64 / self.wall.as_secs_f64()
    }

    fn count(&self, status: Option<u16>) -> usize {
        self.samples.iter().filter(|s| s.status == status).count()
    }

    fn other(&self) -> usize {
        self.samples
            .iter()
            .filter(|s| !matches!(s.status, Some(200 | 429 | 503)))
            .count()
    }

    fn latency(&self, status: u16) -> Stats {
        let latencies: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| s.status == Some(status))
            .map(|s| s.latency)
            .collect();
        Stats::of(&latencies)
    }

    fn statuses(&self) -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for sample in &self.samples {
            let key = sample.status.map_or("error".into(), |s| s.to_string());
            *counts.entry(key).or_default() += 1;
        }
        counts
            .iter()
            .map(|(status, n)| format!("{status}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn print(&self, config: &Config) {
        let ok = self.latency(200);
        let cores = |cpu: f64| cpu / self.wall.as_secs_f64();
        println!(
            "  {}: {:.1} s, {} requests ({}), {} events acknowledged = {:.0} events/s",
            self.name,
            self.wall.as_secs_f64(),
            self.samples.len(),
            self.statuses(),
            self.acked_events(),
            self.rate()
        );
        if self.offered_events > 0 {
            println!(
                "    offered {} events = {:.0} events/s; {} requests not sent (client at {} in flight); \
                 most in flight {}; dispatcher at worst {:.1} ms late",
                self.offered_events,
                self.offered_events as f64 / self.schedule.as_secs_f64(),
                self.not_sent,
                config.max_inflight,
                self.max_inflight,
                self.worst_lag.as_secs_f64() * 1e3
            );
        }
        println!(
            "    200 latency ms: p50 {:.1}, p99 {:.1}, max {:.1} (n = {})",
            ok.p50, ok.p99, ok.max, ok.n
        );
        let refused = self.latency(503);
        if refused.n > 0 {
            let with_retry_after = self
                .samples
                .iter()
                .filter(|s| s.status == Some(503) && s.retry_after)
                .count();
            println!(
                "    503 latency ms: p50 {:.1}, p99 {:.1}; {with_retry_after} of {} with Retry-After",
                refused.p50, refused.p99, refused.n
            );
        }
        println!(
            "    CPU cores: bench process (app + clients) {:.2}, postgres {:.2} (writers {:.2}, rollup worker {:.2}), \
             machine busy {:.2}",
            cores(self.cpu.process),
            cores(self.cpu.postgres),
            cores(self.cpu.writers),
            cores(self.cpu.rollup_worker),
            cores(self.cpu.machine_busy)
        );
        let acked = self.acked_events().max(1) as f64;
        println!(
            "    CPU µs per acknowledged event: bench process {:.1}, writers {:.1}, rollup worker {:.1}, \
             other postgres {:.1}",
            self.cpu.process * 1e6 / acked,
            self.cpu.writers * 1e6 / acked,
            self.cpu.rollup_worker * 1e6 / acked,
            (self.cpu.postgres - self.cpu.writers - self.cpu.rollup_worker) * 1e6 / acked,
        );
        println!(
            "    memory: RSS at start {:.0} MiB, peak (VmHWM{}) {:.0} MiB, largest RSS by quarter of the phase \
             {:.0} / {:.0} / {:.0} / {:.0} MiB; queue peak {:.1} of {:.1} MiB",
            self.rss_start_mib,
            if self.peak_reset {
                ", reset at start"
            } else {
                " since process start"
            },
            self.peak_mib,
            self.rss_quarters[0],
            self.rss_quarters[1],
            self.rss_quarters[2],
            self.rss_quarters[3],
            self.queue_peak_bytes as f64 / 1_048_576.0,
            config.queue_bytes as f64 / 1_048_576.0
        );
    }
}

/// Starts measuring a phase: CPU, memory, queue.
struct Meter {
    started: Instant,
    usage: Snapshot,
    server: PgConnectOptions,
    rss_start_mib: f64,
    peak_reset: bool,
    queue: QueueWatch,
}

impl Meter {
    async fn start(bench: &Bench) -> Self {
        let peak_reset = reset_peak_memory();
        let usage = Snapshot::take(&bench.server).await;
        Meter {
            started: Instant::now(),
            usage,
            server: bench.server.clone(),
            rss_start_mib: memory_mib("VmRSS:"),
            peak_reset,
            queue: QueueWatch::start(bench.pipeline.clone()),
        }
    }

    async fn finish(self, name: &'static str, samples: Vec<Sample>) -> Phase {
        let wall = self.started.elapsed();
        let cpu = Snapshot::take(&self.server).await.since(&self.usage);
        let (queue_peak_bytes, rss_quarters) = self.queue.finish(wall).await;
        Phase {
            name,
            wall,
            samples,
            offered_events: 0,
            not_sent: 0,
            worst_lag: Duration::ZERO,
            max_inflight: 0,
            cpu,
            rss_start_mib: self.rss_start_mib,
            peak_mib: memory_mib("VmHWM:"),
            peak_reset: self.peak_reset,
            queue_peak_bytes,
            rss_quarters,
            schedule: wall,
        }
    }
}

/// The app under test, its clients, and its database.
struct Bench {
    client: Arc<Client>,
    pipeline: Pipeline,
    /// This database, as the superuser.
    server: PgConnectOptions,
}

/// `clients` clients posting back to back for `secs`; the phase ends when
/// the last answer arrives.
async fn closed_loop(
    name: &'static str,
    bench: &Bench,
    clients: usize,
    secs: Duration,
) -> Result<Phase> {
    let client = &bench.client;
    let meter = Meter::start(bench).await;
    let end = Instant::now() + secs;
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let client = Arc::clone(client);
        tasks.spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < end {
                samples.push(client.send(client.next_seq()).await);
            }
            samples
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = tasks.join_next().await {
        samples.extend(done.context("a client task")?);
    }
    Ok(meter.finish(name, samples).await)
}

/// Requests dispatched on a fixed schedule offering `rate` events per
/// second for `secs`, whatever the answers (as many independent SDKs do),
/// at most `max_inflight` at once; the phase ends when the last answer arrives.
async fn open_loop(
    name: &'static str,
    bench: &Bench,
    rate: f64,
    secs: Duration,
    max_inflight: usize,
) -> Result<Phase> {
    let client = &bench.client;
    let meter = Meter::start(bench).await;
    let start = Instant::now();
    let end = start + secs;
    let inflight = Arc::new(Semaphore::new(max_inflight));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = JoinSet::new();
    let (mut due, mut offered, mut not_sent, mut worst_lag, mut most) =
        (start, 0_u64, 0_u64, Duration::ZERO, 0_usize);
    while due < end {
        tokio::time::sleep_until(due.into()).await;
        worst_lag = worst_lag.max(Instant::now().saturating_duration_since(due));
        let seq = client.next_seq();
        let messages = client.dataset.messages(seq);
        offered += messages;
        due += Duration::from_secs_f64(messages as f64 / rate);
        let Ok(permit) = Arc::clone(&inflight).try_acquire_owned() else {
            not_sent += 1;
            continue;
        };
        most = most.max(max_inflight - inflight.available_permits());
        let (client, samples) = (Arc::clone(client), Arc::clone(&samples));
        tasks.spawn(async move {
            let sample = client.send(seq).await;
            drop(permit);
            if let Ok(mut samples) = samples.lock() {
                samples.push(sample);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let samples = std::mem::take(&mut *samples.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let mut phase = meter.finish(name, samples).await;
    phase.offered_events = offered;
    phase.not_sent = not_sent;
    phase.worst_lag = worst_lag;
    phase.max_inflight = most;
    phase.schedule = secs;
    Ok(phase)
}

// --------------------------------------------------------------- checking

/// What the database holds, as the superuser.
struct Stored {
    events: i64,
    distinct_ids: i64,
    message_ids: i64,
    /// Writer transactions that inserted them (distinct `xmin`).
    batches: i64,
    /// Requests whose stored row count differs from what was acknowledged.
    mismatched_requests: i64,
}

/// Compares `events` with the acknowledged requests of `samples`.
async fn check_stored(admin: &mut PgConnection, samples: &[&Sample]) -> Result<Stored> {
    let (seqs, counts): (Vec<i64>, Vec<i64>) = samples
        .iter()
        .filter(|s| s.status == Some(200))
        .map(|s| {
            (
                i64::from(s.seq),
                i64::try_from(s.accepted).unwrap_or(i64::MAX),
            )
        })
        .unzip();
    let (events, distinct_ids, batches): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT message_id), count(DISTINCT xmin::text) FROM events",
    )
    .fetch_one(&mut *admin)
    .await?;
    let message_ids: i64 = sqlx::query_scalar("SELECT count(*) FROM event_message_ids")
        .fetch_one(&mut *admin)
        .await?;
    // Each request's messages carry its number in their first eight hex digits.
    let mismatched_requests: i64 = sqlx::query_scalar(
        "WITH acked AS (SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS a(seq, n)),
              stored AS (SELECT ('x' || left(message_id, 8))::bit(32)::bigint AS seq, count(*) AS n
                         FROM events GROUP BY 1)
         SELECT count(*) FROM acked FULL JOIN stored USING (seq)
         WHERE acked.n IS DISTINCT FROM stored.n",
    )
    .bind(&seqs)
    .bind(&counts)
    .fetch_one(&mut *admin)
    .await?;
    Ok(Stored {
        events,
        distinct_ids,
        message_ids,
        batches,
        mismatched_requests,
    })
}

fn ensure_stored_exactly_once(stored: &Stored, acknowledged: u64, what: &str) -> Result<()> {
    println!(
        "    stored: {} events ({} distinct message ids, {} dedupe keys) in {} writer transactions \
         (mean {:.0} rows); acknowledged {acknowledged}; requests whose rows differ from their answer: {}",
        stored.events,
        stored.distinct_ids,
        stored.message_ids,
        stored.batches,
        stored.events as f64 / stored.batches.max(1) as f64,
        stored.mismatched_requests
    );
    ensure!(
        u64::try_from(stored.events)? == acknowledged
            && stored.distinct_ids == stored.events
            && stored.message_ids == stored.events
            && stored.mismatched_requests == 0,
        "{what}: the database does not hold exactly the acknowledged messages"
    );
    Ok(())
}

// -------------------------------------------------------------- raw COPY

/// The messages of `seqs` as the app would store them, encoded for `COPY`,
/// in batches of `batch_rows`.
fn encode_raw(
    dataset: &Dataset,
    seqs: &[u32],
    tenant_id: Uuid,
    batch_rows: usize,
) -> Result<(Vec<CopyRows>, u64)> {
    let receipt = Receipt {
        tenant_id,
        received_at: Utc::now(),
        retention_days: 760,
        client_ip: Some([127, 0, 0, 1].into()),
    };
    // Validate each distinct message once; a request's rows differ only in their id.
    let rows: Vec<Vec<EventRow>> = dataset
        .templates
        .iter()
        .map(|template| {
            template
                .messages
                .iter()
                .map(|range| {
                    message::from_text(
                        &template.bytes[range.clone()],
                        None,
                        Some(template.sent_at),
                        &receipt,
                        MissingMessageId::Random,
                    )
                    .map_err(|r| anyhow::anyhow!("a generated message is invalid: {r:?}"))
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let mut batches = Vec::new();
    let mut batch = CopyRows::new();
    let (mut in_batch, mut total) = (0, 0_u64);
    for &seq in seqs {
        let hex = format!("{seq:08x}");
        for row in &rows[seq as usize % rows.len()] {
            let mut row = row.clone();
            row.message_id.replace_range(0..8, &hex);
            row.encode(&mut batch);
            in_batch += 1;
            total += 1;
            if in_batch == batch_rows {
                batches.push(std::mem::take(&mut batch));
                in_batch = 0;
            }
        }
    }
    if in_batch > 0 {
        batches.push(batch);
    }
    Ok((batches, total))
}

/// `rows` dedupe keys of `tenant_id` (`tenant_id, message_hash`) in
/// batches of `batch_rows`: random keys, as a message id's MD5 is.
fn encode_keys(tenant_id: Uuid, rows: u64, batch_rows: usize) -> Vec<CopyRows> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut batches = Vec::new();
    let mut left = rows;
    while left > 0 {
        let count = left.min(batch_rows as u64);
        left -= count;
        let mut batch = CopyRows::new();
        for _ in 0..count {
            batch.start_row(2);
            batch.uuid(tenant_id);
            batch.uuid(Uuid::from_bytes(rng.r#gen()));
        }
        batches.push(batch);
    }
    batches
}

/// `streams` connections run `statement` (a `COPY … FROM STDIN`) for the
/// batches, each taking the next one left; answers the time and the CPU used
/// (measured while the connections, and so their server processes, are open).
async fn raw_copy(
    db: &TestDatabase,
    statement: &str,
    batches: Arc<Vec<CopyRows>>,
    streams: usize,
) -> Result<(Duration, Usage)> {
    let mut connections = Vec::new();
    for _ in 0..streams {
        connections.push(db.admin().await);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let before = Snapshot::take(&db.admin_options()).await;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for mut conn in connections {
        let (batches, next) = (Arc::clone(&batches), Arc::clone(&next));
        let statement = statement.to_owned();
        tasks.spawn(async move {
            while let Some(batch) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                let mut copy = conn.copy_in_raw(&statement).await?;
                for part in batch.finished() {
                    copy.send(part).await?;
                }
                copy.finish().await?;
            }
            Ok::<_, sqlx::Error>(conn)
        });
    }
    let mut connections = Vec::new();
    while let Some(done) = tasks.join_next().await {
        connections.push(
            done.context("a COPY stream")?
                .with_context(|| statement.to_owned())?,
        );
    }
    let elapsed = started.elapsed();
    let used = Snapshot::take(&db.admin_options()).await.since(&before);
    for conn in connections {
        conn.close().await?;
    }
    Ok((elapsed, used))
}

// -------------------------------------------------------------------- run

async fn run(config: Config) -> Result<()> {
    println!("ingest benchmark: {config:?}");
    let generating = Instant::now();
    let dataset = generate(&config)?;
    let sizes: Vec<usize> = dataset
        .templates
        .iter()
        .flat_map(|t| t.messages.iter().map(|r| r.len()))
        .collect();
    let body_sizes: Vec<usize> = dataset.templates.iter().map(|t| t.bytes.len()).collect();
    let messages = sizes.len();
    println!(
        "dataset: {} bodies, {messages} messages in {:.1} s; message bytes min {} / mean {:.0} / max {}; \
         messages per body mean {:.0}; body bytes mean {:.0} / max {}",
        dataset.templates.len(),
        generating.elapsed().as_secs_f64(),
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().sum::<usize>() as f64 / messages as f64,
        sizes.iter().max().copied().unwrap_or(0),
        messages as f64 / dataset.templates.len() as f64,
        body_sizes.iter().sum::<usize>() as f64 / body_sizes.len() as f64,
        body_sizes.iter().max().copied().unwrap_or(0),
    );

    // A fresh database, a tenant on a plan whose rate never bites, and the app.
    let db = TestDatabase::create().await;
    let mut admin = db.admin().await;
    for (name, value) in &config.db_settings {
        ensure!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'),
            "NS_BENCH_DB_SETTINGS: {name:?} is not a setting name"
        );
        let database: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut admin)
            .await?;
        let value = value.replace('\'', "''");
        sqlx::query(&format!(
            "ALTER DATABASE \"{database}\" SET {name} = '{value}'"
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("set {name} on the bench database"))?;
        println!("what-if: {name} = {value} on the bench database");
    }
    let server_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut admin)
        .await?;
    let provisioned = provisioning::provision_tenant(
        db.app_pool(),
        &ProvisionRequest {
            slug: "bench-ingest",
            name: "Bench ingest",
            plan: Some("enterprise"),
            owner_email: "owner@bench-ingest.test",
            owner_name: "Bench Owner",
            owner_password_hash: None,
            actor: &Actor::cli(),
        },
    )
    .await
    .map_err(|err| anyhow::anyhow!("provision the tenant: {err:?}"))?;
    let ProvisionOutcome::Created(tenant) = provisioned else {
        bail!("the bench tenant already existed");
    };
    let pool = connect_app_pool(db.app_options(), POOL_SIZE, STATEMENT_TIMEOUT)
        .await
        .context("connect as northstar_app")?;
    let app = ServedApp::start(
        pool,
        IngestSettings {
            pipeline: PipelineSettings {
                queue_bytes: config.queue_bytes,
                writers: config.writers,
                batch_rows: config.batch_rows,
                rollup_interval: config.rollup_interval,
            },
            rates: "free=1000,enterprise=10000000"
                .parse()
                .map_err(anyhow::Error::msg)?,
        },
    )
    .await?;
    let pipeline = app.state.ingest.pipeline.clone();
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(usize::MAX)
            .build()
            .context("HTTP client")?,
        url: format!("{}/v1/batch", app.base),
        write_key: tenant.write_key.secret.clone(),
        dataset,
        next_seq: AtomicU32::new(0),
    });
    let bench = Bench {
        client: Arc::clone(&client),
        pipeline: pipeline.clone(),
        server: db.admin_options(),
    };
    println!(
        "PostgreSQL {server_version}, {} CPUs, app at {}, {} writers, batches of at most {} rows, \
         queue {} bytes",
        std::thread::available_parallelism().map_or(0, usize::from),
        app.base,
        config.writers,
        config.batch_rows,
        config.queue_bytes
    );

    let secs = Duration::from_secs(config.secs);
    let mut report = Report::default();

    // Warm-up: connections, partitions, caches. Stored, counted in the check.
    let warm_up = closed_loop("warm-up", &bench, config.clients, Duration::from_secs(2)).await?;

    if config.runs("sustained") {
        let sustained = closed_loop("sustained", &bench, config.clients, secs).await?;
        sustained.print(&config);
        let all: Vec<&Sample> = warm_up.samples.iter().chain(&sustained.samples).collect();
        let acked = warm_up.acked_events() + sustained.acked_events();
        let stored = check_stored(&mut admin, &all).await?;
        ensure_stored_exactly_once(&stored, acked, "sustained")?;
        report.batches = Some((stored.batches, stored.events));
        report.sustained = Some(sustained);
        report.rollup_backlog = Some(rollup_backlog(&mut admin).await?);
    }
    sqlx::query("TRUNCATE events, event_message_ids")
        .execute(&mut admin)
        .await?;

    let rate = report.sustained.as_ref().map_or(0.0, Phase::rate);
    let mut after: Vec<Phase> = Vec::new();
    if config.runs("half") {
        let half = open_loop("half load", &bench, rate / 2.0, secs, config.max_inflight).await?;
        half.print(&config);
        after.push(half);
    }
    if config.runs("overload") {
        let overload = open_loop(
            "overload",
            &bench,
            rate * 2.0,
            Duration::from_secs(config.overload_secs),
            config.max_inflight,
        )
        .await?;
        overload.print(&config);
        // Recovery: once the queue has drained, a normal batch is stored.
        let drained = Instant::now();
        while pipeline.queued_bytes() > 0 && drained.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let recovery = client.send(client.next_seq()).await;
        println!(
            "  recovery: queue drained {:.0} ms after the last answer; the next batch got {} in {:.1} ms",
            drained.elapsed().as_secs_f64() * 1e3,
            recovery
                .status
                .map_or("no answer".into(), |s| s.to_string()),
            recovery.latency.as_secs_f64() * 1e3
        );
        ensure!(
            recovery.status == Some(200),
            "no recovery after the overload"
        );
        report.recovery = Some(recovery);
        after.push(overload);
    }
    if !after.is_empty() {
        let all: Vec<&Sample> = after
            .iter()
            .flat_map(|p| &p.samples)
            .chain(report.recovery.as_ref())
            .collect();
        let acked = all
            .iter()
            .filter(|s| s.status == Some(200))
            .map(|s| s.accepted)
            .sum();
        let stored = check_stored(&mut admin, &all).await?;
        ensure_stored_exactly_once(&stored, acked, "half load + overload + recovery")?;
    }
    report.half = after
        .iter()
        .position(|p| p.name == "half load")
        .map(|i| after.remove(i));
    report.overload = after.pop();

    let partial: usize = [&report.sustained, &report.half, &report.overload]
        .iter()
        .filter_map(|p| p.as_ref())
        .flat_map(|p| &p.samples)
        .filter(|s| s.partial)
        .count();
    ensure!(
        partial == 0,
        "{partial} answers accepted fewer messages than sent"
    );

    if config.runs("raw") {
        sqlx::query("TRUNCATE events, event_message_ids")
            .execute(&mut admin)
            .await?;
        // The very messages the sustained phase got acknowledged (or, without
        // it, as many requests as 2 s of 8 clients might send).
        let seqs: Vec<u32> = match &report.sustained {
            Some(phase) => phase
                .samples
                .iter()
                .filter(|s| s.status == Some(200))
                .map(|s| s.seq)
                .collect(),
            None => (0..500).collect(),
        };
        let encoding = Instant::now();
        let (batches, rows) =
            encode_raw(&client.dataset, &seqs, tenant.tenant.id, config.batch_rows)?;
        let encoded_bytes: usize = batches.iter().map(CopyRows::len).sum();
        println!(
            "  raw COPY: {rows} rows ({:.0} MiB) encoded in {:.1} s, untimed",
            encoded_bytes as f64 / 1_048_576.0,
            encoding.elapsed().as_secs_f64()
        );
        let statement = format!("COPY events ({EVENTS_COLUMNS}) FROM STDIN WITH (FORMAT binary)");
        let (elapsed, used) = raw_copy(&db, &statement, Arc::new(batches), config.writers).await?;
        ensure_count(&mut admin, "events", rows).await?;
        let wall = elapsed.as_secs_f64();
        println!(
            "  raw COPY: {rows} rows in {wall:.1} s = {:.0} rows/s with {} streams; CPU cores: postgres {:.2}, \
             machine busy {:.2}",
            rows as f64 / wall,
            config.writers,
            used.postgres / wall,
            used.machine_busy / wall
        );
        report.raw = Some((rows, elapsed, used));

        // The least a deduplicating store adds: one unique key per row.
        let keys = encode_keys(tenant.tenant.id, rows, config.batch_rows);
        let (keys_elapsed, keys_used) = raw_copy(
            &db,
            "COPY event_message_ids (tenant_id, message_hash) FROM STDIN WITH (FORMAT binary)",
            Arc::new(keys),
            config.writers,
        )
        .await?;
        ensure_count(&mut admin, "event_message_ids", rows).await?;
        println!(
            "  raw dedupe keys COPY: {rows} random 16-byte keys in {:.1} s = {:.0} rows/s; postgres µs per row: \
             events {:.1}, keys {:.1}",
            keys_elapsed.as_secs_f64(),
            rows as f64 / keys_elapsed.as_secs_f64(),
            used.postgres * 1e6 / rows as f64,
            keys_used.postgres * 1e6 / rows as f64,
        );
        report.raw_keys_cpu = Some(keys_used.postgres / rows as f64);
    }

    report.print(&config, &server_version);

    app.stop().await?;
    admin.close().await?;
    drop(client);
    drop(db);
    Ok(())
}

/// Everything the final table shows.
#[derive(Default)]
struct Report {
    sustained: Option<Phase>,
    half: Option<Phase>,
    overload: Option<Phase>,
    recovery: Option<Sample>,
    /// Raw `COPY` of events: rows, time, CPU.
    raw: Option<(u64, Duration, Usage)>,
    /// Raw `COPY` of one dedupe key per row: PostgreSQL CPU seconds per row.
    raw_keys_cpu: Option<f64>,
    /// Sustained phase: writer transactions and rows.
    batches: Option<(i64, i64)>,
    /// After the sustained phase: calls left in the rollup inbox, and how
    /// long the rollup worker took to apply them.
    rollup_backlog: Option<(i64, Duration)>,
}

/// Fails unless `table` holds `rows` rows.
async fn ensure_count(admin: &mut PgConnection, table: &str, rows: u64) -> Result<()> {
    let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(admin)
        .await?;
    ensure!(
        u64::try_from(count)? == rows,
        "raw COPY stored {count} rows of {rows} in {table}"
    );
    Ok(())
}

/// What the machine could reach if ingest cost no more than its parts that
/// no design avoids: the app's intake (HTTP, validation, encoding; with the
/// in-process clients), storing each row (raw `COPY`), one dedupe key per
/// row, and the rollups.
struct Ceiling {
    micros: f64,
    cores: usize,
    rate: f64,
    over_raw: f64,
}

impl Report {
    fn ceiling(&self) -> Option<Ceiling> {
        let sustained = self.sustained.as_ref()?;
        let (rows, wall, raw) = self.raw?;
        let acked = sustained.acked_events().max(1) as f64;
        let per_event = (sustained.cpu.process + sustained.cpu.rollup_worker) / acked
            + raw.postgres / rows as f64
            + self.raw_keys_cpu?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let rate = cores as f64 / per_event;
        Some(Ceiling {
            micros: per_event * 1e6,
            cores,
            rate,
            over_raw: rate / (rows as f64 / wall.as_secs_f64()),
        })
    }
}

/// The calls in the rollup inbox now, and the time until the rollup worker
/// has applied them all (at most ten minutes).
async fn rollup_backlog(admin: &mut PgConnection) -> Result<(i64, Duration)> {
    let started = Instant::now();
    let backlog: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(calls), 0)::bigint FROM rollup_inbox")
            .fetch_one(&mut *admin)
            .await?;
    loop {
        let left: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM rollup_inbox)")
            .fetch_one(&mut *admin)
            .await?;
        if !left || started.elapsed() > Duration::from_secs(600) {
            let applied_in = started.elapsed();
            println!(
                "  rollups: {backlog} calls in the inbox at the end, applied {:.1} s later",
                applied_in.as_secs_f64()
            );
            return Ok((backlog, applied_in));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Report {
    fn print(&self, config: &Config, server_version: &str) {
        let raw_rate = self
            .raw
            .map(|(rows, wall, _)| rows as f64 / wall.as_secs_f64());
        let sustained_rate = self.sustained.as_ref().map(Phase::rate);
        let ratio = sustained_rate.zip(raw_rate).map(|(s, r)| s / r);
        println!();
        println!(
            "### ingest: {} clients, {} writers, batches ≤ {} rows, queue {} MiB, PostgreSQL {server_version}",
            config.clients,
            config.writers,
            config.batch_rows,
            config.queue_bytes / 1_048_576
        );
        for (name, value) in &config.db_settings {
            println!("what-if: `{name} = {value}` on the bench database");
        }
        println!();
        println!(
            "| phase | s | events/s | 200 p50 / p99 / max ms | 200 / 503 / 429 / other | peak MiB (VmHWM, incl. clients) | CPU cores app+clients / postgres |"
        );
        println!("|---|---|---|---|---|---|---|");
        for phase in [&self.sustained, &self.half, &self.overload]
            .into_iter()
            .flatten()
        {
            let ok = phase.latency(200);
            let wall = phase.wall.as_secs_f64();
            let rate = if phase.offered_events > 0 {
                format!(
                    "{:.0} of {:.0} offered",
                    phase.rate(),
                    phase.offered_events as f64 / phase.schedule.as_secs_f64()
                )
            } else {
                format!("{:.0}", phase.rate())
            };
            println!(
                "| {} | {wall:.1} | {rate} | {:.1} / {:.1} / {:.1} | {} / {} / {} / {} | {:.0} | {:.2} / {:.2} |",
                phase.name,
                ok.p50,
                ok.p99,
                ok.max,
                phase.count(Some(200)),
                phase.count(Some(503)),
                phase.count(Some(429)),
                phase.other(),
                phase.peak_mib,
                phase.cpu.process / wall,
                phase.cpu.postgres / wall,
            );
        }
        if let Some((rows, wall, _)) = self.raw {
            println!(
                "| raw COPY, {} streams | {:.1} | {:.0} rows/s ({rows} rows) | | | | |",
                config.writers,
                wall.as_secs_f64(),
                rows as f64 / wall.as_secs_f64()
            );
        }
        println!();
        if let Some(ratio) = ratio {
            println!(
                "sustained / raw COPY = {ratio:.2}  (target ≥ 0.5; sustained target ≥ 50,000 events/s)"
            );
        }
        if let Some(ceiling) = self.ceiling() {
            println!(
                "ceiling: the sustained phase's app and rollup worker CPU per event, plus raw COPY's \
                 postgres CPU per row for the event and one dedupe key, is {:.1} µs; on {} cores that is \
                 at most {:.0} events/s = {:.2} × raw COPY",
                ceiling.micros, ceiling.cores, ceiling.rate, ceiling.over_raw
            );
        }
        if let Some((batches, rows)) = self.batches {
            println!(
                "sustained: {batches} writer transactions, mean {:.0} rows each",
                rows as f64 / batches.max(1) as f64
            );
        }
        if let Some((backlog, applied_in)) = self.rollup_backlog {
            println!(
                "sustained: {backlog} calls awaited the rollup worker at the end, applied {:.1} s later",
                applied_in.as_secs_f64()
            );
        }
        if let Some(recovery) = &self.recovery {
            println!(
                "recovery after overload: {} in {:.1} ms",
                recovery
                    .status
                    .map_or("no answer".into(), |s| s.to_string()),
                recovery.latency.as_secs_f64() * 1e3
            );
        }
        let phase_json = |phase: &Option<Phase>| {
            phase.as_ref().map(|p| {
                json!({
                    "secs": round2(p.wall.as_secs_f64()),
                    "events_per_s": p.rate().round(),
                    "offered_per_s": (p.offered_events as f64 / p.schedule.as_secs_f64()).round(),
                    "rss_mib_by_quarter": p.rss_quarters.map(f64::round),
                    "ok_ms": p.latency(200).json(),
                    "status_200": p.count(Some(200)),
                    "status_503": p.count(Some(503)),
                    "status_429": p.count(Some(429)),
                    "other": p.other(),
                    "peak_mib": p.peak_mib.round(),
                    "queue_peak_mib": round2(p.queue_peak_bytes as f64 / 1_048_576.0),
                    "cpu_process": round2(p.cpu.process / p.wall.as_secs_f64()),
                    "cpu_postgres": round2(p.cpu.postgres / p.wall.as_secs_f64()),
                    "cpu_writers": round2(p.cpu.writers / p.wall.as_secs_f64()),
                    "cpu_rollup_worker": round2(p.cpu.rollup_worker / p.wall.as_secs_f64()),
                })
            })
        };
        let mut summary = Map::new();
        summary.insert("bench".into(), json!("ingest"));
        summary.insert("clients".into(), json!(config.clients));
        summary.insert("writers".into(), json!(config.writers));
        summary.insert("batch_rows".into(), json!(config.batch_rows));
        summary.insert("queue_bytes".into(), json!(config.queue_bytes));
        summary.insert("sustained".into(), json!(phase_json(&self.sustained)));
        summary.insert("half".into(), json!(phase_json(&self.half)));
        summary.insert("overload".into(), json!(phase_json(&self.overload)));
        summary.insert(
            "rollup_backlog".into(),
            json!(self.rollup_backlog.map(|(calls, applied_in)| json!({
                "calls": calls,
                "applied_in_s": round2(applied_in.as_secs_f64()),
            }))),
        );
        summary.insert("raw_rows_per_s".into(), json!(raw_rate.map(f64::round)));
        summary.insert("sustained_over_raw".into(), json!(ratio.map(round2)));
        summary.insert(
            "ceiling".into(),
            json!(self.ceiling().map(|c| json!({
                "micros_per_event": round2(c.micros),
                "events_per_s": c.rate.round(),
                "over_raw": round2(c.over_raw),
            }))),
        );
        println!("{}", Value::Object(summary));
    }
}
