//! Renders planned happenings as Segment messages: names, properties and
//! context shaped like analytics.js sends them (0.5–2 KB each), with stable
//! message ids.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use northstar_db::ingest::{EventRow, MessageType};
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::{
    Account, Company, DemoRng, Member, ONBOARDING_STEPS, SIGNUP_EVENT, Stream,
    events::{Happening, Planned, Planner, TicketStage, millis},
    json::Object,
    pick, splitmix, sub_seed,
    words::{self, FEATURES},
};

/// The analytics.js library every event claims to come from.
const LIBRARY: &str = r#"{"name":"analytics.js","version":"next-1.64.0"}"#;

/// The company's events as rows of one tenant, in time order.
pub struct Events<'a> {
    planner: Planner<'a>,
    company: &'a Company,
    rng: DemoRng,
    tenant_id: Uuid,
    id_key: (u64, u64),
    emitted: u64,
}

/// A rendered message, before it becomes a row.
struct Message {
    kind: MessageType,
    event: String,
    user_id: Option<String>,
    anonymous_id: String,
    group_id: Option<String>,
    properties: String,
    context: String,
}

impl<'a> Events<'a> {
    pub(super) fn new(company: &'a Company, tenant_id: Uuid) -> Self {
        Events {
            planner: Planner::new(company),
            company,
            rng: DemoRng::seed_from_u64(sub_seed(company.seed, Stream::EventRender, 0)),
            tenant_id,
            id_key: (
                sub_seed(company.seed, Stream::MessageIds, 0),
                sub_seed(company.seed, Stream::MessageIds, 1),
            ),
            emitted: 0,
        }
    }

    /// The `n`th event's message id: stable, so that storing the stream
    /// again stores nothing twice, and unique (`splitmix` is a bijection).
    fn message_id(&self, n: u64) -> String {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&splitmix(self.id_key.0.wrapping_add(n)).to_be_bytes());
        bytes[8..].copy_from_slice(&splitmix(self.id_key.1.wrapping_add(n)).to_be_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn render(&mut self, planned: Planned) -> EventRow {
        let time = planned.time;
        let message_id = self.message_id(self.emitted);
        self.emitted += 1;
        let message = match planned.what {
            Happening::Visit {
                visitor,
                page,
                referrer,
            } => self.visit(visitor, page, referrer),
            Happening::LeadVisit { account, page } => self.lead_visit(account, page),
            Happening::Identify { account, member } => self.identify(account, member, time),
            Happening::SignedUp { account, member } => self.signed_up(account, member, time),
            Happening::Group { account, member } => self.group(account, member, time),
            Happening::Onboarding {
                account,
                member,
                step,
            } => self.onboarding(account, member, step),
            Happening::Invite { account, invitee } => self.invite(account, 0, invitee),
            Happening::Feature {
                account,
                member,
                feature,
            } => self.feature(account, member, feature),
            Happening::AppPage {
                account,
                member,
                page,
            } => self.app_page(account, member, page),
            Happening::Ticket {
                account,
                member,
                ticket,
                stage,
            } => self.ticket(account, member, ticket, stage),
        };
        let sent_at = time + Duration::milliseconds(20) + millis(&mut self.rng, 900);
        let received_at = sent_at + Duration::milliseconds(30) + millis(&mut self.rng, 400);
        let named = matches!(
            message.kind,
            MessageType::Track | MessageType::Page | MessageType::Screen
        );
        EventRow {
            tenant_id: self.tenant_id,
            time,
            message_id,
            kind: message.kind,
            event: named.then_some(message.event),
            user_id: message.user_id,
            anonymous_id: Some(message.anonymous_id),
            group_id: message.group_id,
            previous_id: None,
            properties: Some(message.properties),
            context: Some(message.context),
            received_at,
            sent_at: Some(sent_at),
        }
    }

    fn account(&self, account: u32) -> &'a Account {
        &self.company.accounts[account as usize]
    }

    fn lower_product(&self) -> String {
        self.company.product.to_lowercase()
    }

    /// A marketing page: its name, properties and context.
    fn marketing(&mut self, page: u8, referrer: &str, visitor: Visitor<'_>) -> Message {
        let (name, path, _) =
            words::MARKETING_PAGES[usize::from(page) % words::MARKETING_PAGES.len()];
        let product = self.company.product;
        let campaign = self.rng.gen_bool(0.15);
        let search = if campaign {
            "?utm_source=newsletter&utm_medium=email&utm_campaign=spring_launch"
        } else {
            ""
        };
        let url = format!("https://www.{}.example{path}{search}", self.lower_product());
        let title = format!("{name} | {product}: analytics for SaaS teams");
        let page = Object::new()
            .str("path", path)
            .str("referrer", referrer)
            .str("search", search)
            .str("title", &title)
            .str("url", &url)
            .finish();
        let mut context = Object::new()
            .raw("library", LIBRARY)
            .str("ip", &visitor.ip)
            .str("userAgent", words::WEB_USER_AGENTS[visitor.browser]);
        if !words::USER_AGENT_DATA[visitor.browser].is_empty() {
            context = context.raw("userAgentData", words::USER_AGENT_DATA[visitor.browser]);
        }
        context = context
            .str("locale", visitor.locale)
            .str("timezone", visitor.time_zone)
            .raw("page", &page);
        if campaign {
            context = context.raw(
                "campaign",
                r#"{"name":"spring_launch","source":"newsletter","medium":"email"}"#,
            );
        }
        Message {
            kind: MessageType::Page,
            event: name.to_owned(),
            user_id: None,
            anonymous_id: visitor.anonymous_id,
            group_id: None,
            properties: page,
            context: context.finish(),
        }
    }

    fn visit(&mut self, visitor: u64, page: u8, referrer: u8) -> Message {
        let hash = splitmix(self.id_key.0 ^ visitor.rotate_left(32));
        let country = &words::COUNTRIES[((hash >> 16) % words::COUNTRIES.len() as u64) as usize];
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&hash.to_be_bytes());
        bytes[8..].copy_from_slice(&splitmix(hash).to_be_bytes());
        let referrer = words::REFERRERS[usize::from(referrer) % words::REFERRERS.len()];
        let visitor = Visitor {
            anonymous_id: uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .to_string(),
            ip: ip(hash),
            browser: (hash % words::WEB_USER_AGENTS.len() as u64) as usize,
            locale: country.locale,
            time_zone: country.time_zone,
        };
        self.marketing(page, referrer, visitor)
    }

    fn lead_visit(&mut self, account: u32, page: u8) -> Message {
        let a = self.account(account);
        let owner = &a.members[0];
        let referrer = if page == 1 { "" } else { words::REFERRERS[2] };
        let visitor = Visitor {
            anonymous_id: owner.anonymous_id.clone(),
            ip: member_ip(owner),
            browser: owner.browser,
            locale: a.country.locale,
            time_zone: a.country.time_zone,
        };
        self.marketing(page, referrer, visitor)
    }

    /// The context of a user's event in the app, on the page `name` at `path`.
    fn app_context(&self, a: &Account, m: &Member, name: &str, path: &str) -> (String, String) {
        let title = format!("{name} · {}", self.company.product);
        let url = format!("https://app.{}.example{path}", self.lower_product());
        let page = Object::new()
            .str("path", path)
            .str("referrer", "")
            .str("search", "")
            .str("title", &title)
            .str("url", &url)
            .finish();
        let mut context = Object::new()
            .raw("library", LIBRARY)
            .str("ip", &member_ip(m))
            .str("userAgent", words::WEB_USER_AGENTS[m.browser]);
        if !words::USER_AGENT_DATA[m.browser].is_empty() {
            context = context.raw("userAgentData", words::USER_AGENT_DATA[m.browser]);
        }
        let context = context
            .str("locale", a.country.locale)
            .str("timezone", a.country.time_zone)
            .str("groupId", &a.external_id)
            .raw("page", &page)
            .finish();
        (context, page)
    }

    /// A message of a user in the app.
    fn user_message(
        &self,
        kind: MessageType,
        (account, member): (u32, u16),
        event: &str,
        path: &str,
        properties: String,
    ) -> Message {
        let a = self.account(account);
        let m = &a.members[usize::from(member)];
        Message {
            kind,
            event: event.to_owned(),
            user_id: Some(m.user_id.clone()),
            anonymous_id: m.anonymous_id.clone(),
            group_id: (kind == MessageType::Group).then(|| a.external_id.clone()),
            properties,
            context: self.app_context(a, m, event, path).0,
        }
    }

    /// A track event of a user in the app.
    fn track(
        &self,
        account: u32,
        member: u16,
        event: &str,
        path: &str,
        properties: Object,
    ) -> Message {
        self.user_message(
            MessageType::Track,
            (account, member),
            event,
            path,
            properties.finish(),
        )
    }

    fn identify(&mut self, account: u32, member: u16, time: DateTime<Utc>) -> Message {
        let a = self.account(account);
        let m = &a.members[usize::from(member)];
        let company = Object::new()
            .str("id", &a.external_id)
            .str("name", &a.company)
            .finish();
        let traits = Object::new()
            .str("email", &m.email)
            .str("name", &format!("{} {}", m.first_name, m.last_name))
            .str("first_name", m.first_name)
            .str("last_name", m.last_name)
            .str("title", m.title)
            .str("plan", a.plan_at(time))
            .str("role", if member == 0 { "owner" } else { "member" })
            .raw("company", &company)
            .str("created_at", &rfc3339(m.joined))
            .finish();
        let id = (account, member);
        self.user_message(MessageType::Identify, id, "Welcome", "/welcome", traits)
    }

    fn signed_up(&mut self, account: u32, member: u16, time: DateTime<Utc>) -> Message {
        let a = self.account(account);
        let owner_trial = a.trial && member == 0;
        let method = if member > 0 {
            "invite"
        } else {
            pick(
                &mut self.rng,
                &["email", "google", "google", "github", "microsoft"],
            )
        };
        let experiment = Object::new()
            .str("id", "signup_form_v3")
            .str("variant", pick(&mut self.rng, &["control", "short_form"]))
            .finish();
        let properties = Object::new()
            .str("method", method)
            .str("plan", a.plan_at(time))
            .num("trial", owner_trial)
            .num("trial_days", if owner_trial { 14 } else { 0 })
            .str("account_id", &a.external_id)
            .str("role", if member == 0 { "owner" } else { "member" })
            .raw("experiment", &experiment);
        self.track(account, member, SIGNUP_EVENT, "/signup", properties)
    }

    fn group(&mut self, account: u32, member: u16, time: DateTime<Utc>) -> Message {
        let a = self.account(account);
        let traits = Object::new()
            .str("name", &a.company)
            .str("plan", a.plan_at(time))
            .num("employees", a.employees)
            .str("industry", a.industry)
            .str("website", &format!("https://www.{}", a.domain))
            .str("country", a.country.code)
            .str("created_at", &rfc3339(a.signup))
            .finish();
        let id = (account, member);
        self.user_message(MessageType::Group, id, "Welcome", "/welcome", traits)
    }

    fn onboarding(&mut self, account: u32, member: u16, step: u8) -> Message {
        let a = self.account(account);
        let rng = &mut self.rng;
        let (path, properties) = match step {
            0 => (
                "/projects/new",
                Object::new()
                    .str("project_id", &format!("prj_{:08x}", rng.r#gen::<u32>()))
                    .str(
                        "project_name",
                        &format!("{} metrics", a.company.split(' ').next().unwrap_or("Team")),
                    )
                    .str(
                        "template",
                        pick(rng, &["blank", "saas_kpis", "ecommerce", "marketing"]),
                    ),
            ),
            1 => (
                "/sources/new",
                Object::new()
                    .str("source_id", &format!("src_{:08x}", rng.r#gen::<u32>()))
                    .str("source_type", pick(rng, words::DATA_SOURCES))
                    .num("tables", rng.gen_range(1..60))
                    .str(
                        "sync_frequency",
                        pick(rng, &["hourly", "daily", "every_15_minutes"]),
                    ),
            ),
            2 => {
                // The owner's first invitation is the first teammate's, if
                // they joined.
                let first_invite = a.members[0].onboarding[2];
                let first_teammate = a
                    .members
                    .iter()
                    .skip(1)
                    .position(|t| member == 0 && t.invited_at == first_invite);
                if let Some(index) = first_teammate {
                    return self.invite(account, member, index as u16 + 1);
                }
                let email =
                    format!("{}@{}", pick(rng, words::FIRST_NAMES), a.domain).to_lowercase();
                (
                    "/settings/team",
                    Object::new()
                        .str("invitee_email", &email)
                        .str("invitee_role", "editor")
                        .str("invite_method", "email"),
                )
            }
            _ => (
                "/dashboards",
                Object::new()
                    .str("dashboard_id", &format!("dsh_{:08x}", rng.r#gen::<u32>()))
                    .str("dashboard_name", pick(rng, words::DASHBOARD_NAMES))
                    .str("share_type", pick(rng, &["link", "email", "slack"]))
                    .num("recipients", rng.gen_range(1..6)),
            ),
        };
        let event = ONBOARDING_STEPS[usize::from(step).min(ONBOARDING_STEPS.len() - 1)];
        self.track(account, member, event, path, properties)
    }

    /// `inviter` invites teammate `invitee`.
    fn invite(&mut self, account: u32, inviter: u16, invitee: u16) -> Message {
        let a = self.account(account);
        let email = a
            .members
            .get(usize::from(invitee))
            .map_or("", |m| m.email.as_str());
        let properties = Object::new()
            .str("invitee_email", email)
            .str(
                "invitee_role",
                pick(&mut self.rng, &["editor", "viewer", "admin"]),
            )
            .str("invite_method", "email");
        self.track(
            account,
            inviter,
            ONBOARDING_STEPS[2],
            "/settings/team",
            properties,
        )
    }

    fn feature(&mut self, account: u32, member: u16, feature: u8) -> Message {
        let event = FEATURES[usize::from(feature) % FEATURES.len()];
        let rng = &mut self.rng;
        let dashboard = format!("dsh_{:06x}", rng.gen_range(0..0x40_0000_u32));
        let id = |rng: &mut DemoRng, prefix: &str| {
            format!("{prefix}_{:06x}", rng.gen_range(0..0x40_0000_u32))
        };
        let range = pick(
            rng,
            &[
                "last_7_days",
                "last_30_days",
                "this_quarter",
                "last_12_months",
            ],
        );
        let dashboard_path = format!("/dashboards/{dashboard}");
        let (path, properties) = match event {
            "Dashboard Viewed" => {
                let filters: Vec<String> = (0..rng.gen_range(0..4))
                    .map(|_| {
                        Object::new()
                            .str("field", pick(rng, words::METRICS))
                            .str("operator", "equals")
                            .str("value", pick(rng, words::INDUSTRIES))
                            .finish()
                    })
                    .collect();
                (
                    dashboard_path,
                    Object::new()
                        .str("dashboard_id", &dashboard)
                        .str("dashboard_name", pick(rng, words::DASHBOARD_NAMES))
                        .num("widget_count", rng.gen_range(2..24))
                        .str("date_range", range)
                        .num("load_time_ms", rng.gen_range(120..4000))
                        .raw("filters", &format!("[{}]", filters.join(",")))
                        .str(
                            "source",
                            pick(
                                rng,
                                &["navigation", "email_digest", "shared_link", "search"],
                            ),
                        ),
                )
            }
            "Report Viewed" => {
                let report = id(rng, "rpt");
                let segments: Vec<&str> = (0..rng.gen_range(0..3))
                    .map(|_| pick(rng, words::INDUSTRIES))
                    .collect();
                (
                    format!("/reports/{report}"),
                    Object::new()
                        .str("report_id", &report)
                        .str(
                            "report_type",
                            pick(rng, &["funnel", "retention", "cohort", "table", "revenue"]),
                        )
                        .str("metric", pick(rng, words::METRICS))
                        .str("date_range", range)
                        .num("rows", rng.gen_range(5..5000))
                        .strs("segments", segments)
                        .num("load_time_ms", rng.gen_range(200..9000)),
                )
            }
            "Chart Created" => (
                dashboard_path,
                Object::new()
                    .str("chart_id", &id(rng, "cht"))
                    .str("dashboard_id", &dashboard)
                    .str(
                        "chart_type",
                        pick(rng, &["line", "bar", "area", "table", "number", "pie"]),
                    )
                    .str("metric", pick(rng, words::METRICS))
                    .str(
                        "breakdown",
                        pick(rng, &["country", "plan", "channel", "none"]),
                    )
                    .str("data_source", pick(rng, words::DATA_SOURCES)),
            ),
            "Filter Applied" => (
                dashboard_path,
                Object::new()
                    .str("dashboard_id", &dashboard)
                    .str("field", pick(rng, words::METRICS))
                    .str(
                        "operator",
                        pick(rng, &["equals", "greater_than", "contains", "between"]),
                    )
                    .str("date_range", range)
                    .num("results", rng.gen_range(0..20_000)),
            ),
            "Export Downloaded" => (
                "/reports".to_owned(),
                Object::new()
                    .str("export_id", &id(rng, "exp"))
                    .str("format", pick(rng, &["csv", "xlsx", "pdf", "png"]))
                    .num("rows", rng.gen_range(10..100_000))
                    .num("size_bytes", rng.gen_range(2_000..40_000_000)),
            ),
            "Alert Created" => (
                "/alerts/new".to_owned(),
                Object::new()
                    .str("alert_id", &id(rng, "alr"))
                    .str("metric", pick(rng, words::METRICS))
                    .str(
                        "condition",
                        pick(rng, &["drops_below", "rises_above", "changes_by"]),
                    )
                    .num("threshold", rng.gen_range(1..500))
                    .str("channel", pick(rng, &["email", "slack", "webhook"])),
            ),
            "Integration Connected" => {
                let (name, category) = pick(rng, words::INTEGRATIONS);
                (
                    "/integrations".to_owned(),
                    Object::new()
                        .str("integration", name)
                        .str("category", category)
                        .str("auth_method", "oauth"),
                )
            }
            "API Key Created" => (
                "/settings/api-keys".to_owned(),
                Object::new()
                    .str("key_id", &id(rng, "key"))
                    .str("scope", pick(rng, &["read", "write", "admin"]))
                    .num("expires_in_days", pick(rng, &[30, 90, 365])),
            ),
            _ => (
                dashboard_path,
                Object::new()
                    .str("comment_id", &id(rng, "cmt"))
                    .str("target_type", pick(rng, &["chart", "dashboard", "report"]))
                    .str("target_id", &dashboard)
                    .num("length", rng.gen_range(8..600))
                    .num("mentions", rng.gen_range(0..3)),
            ),
        };
        self.track(account, member, event, &path, properties)
    }

    fn app_page(&mut self, account: u32, member: u16, page: u8) -> Message {
        let a = self.account(account);
        let m = &a.members[usize::from(member)];
        let (name, prefix) = words::APP_PAGES[usize::from(page) % words::APP_PAGES.len()];
        let path = if prefix == "/dashboards" || prefix == "/reports" {
            format!("{prefix}/{:06x}", self.rng.gen_range(0..0x40_0000_u32))
        } else {
            prefix.to_owned()
        };
        let (context, page) = self.app_context(a, m, name, &path);
        Message {
            kind: MessageType::Page,
            event: name.to_owned(),
            user_id: Some(m.user_id.clone()),
            anonymous_id: m.anonymous_id.clone(),
            group_id: None,
            properties: page,
            context,
        }
    }

    fn ticket(&mut self, account: u32, member: u16, ticket: u32, stage: TicketStage) -> Message {
        let ticket_id = format!("tkt_{ticket:06}");
        let rng = &mut self.rng;
        let properties = Object::new().str("ticket_id", &ticket_id);
        let (event, properties) = match stage {
            TicketStage::Created => {
                let (subject, category) = pick(rng, words::TICKET_SUBJECTS);
                let priority = match rng.gen_range(0..100) {
                    0..30 => "low",
                    30..80 => "normal",
                    80..95 => "high",
                    _ => "urgent",
                };
                (
                    "Ticket Created",
                    properties
                        .str("subject", subject)
                        .str("priority", priority)
                        .str("category", category)
                        .str("channel", pick(rng, &["email", "chat", "web_form"])),
                )
            }
            TicketStage::AgentReply => (
                "Ticket Replied",
                properties
                    .str("author_type", "agent")
                    .str("agent_id", pick(rng, words::SUPPORT_AGENTS)),
            ),
            TicketStage::CustomerReply => {
                ("Ticket Replied", properties.str("author_type", "customer"))
            }
            TicketStage::Resolved => (
                "Ticket Resolved",
                properties.str(
                    "resolution",
                    pick(
                        rng,
                        &["solved", "solved", "solved", "workaround", "duplicate"],
                    ),
                ),
            ),
        };
        self.track(account, member, event, "/support", properties)
    }
}

impl Iterator for Events<'_> {
    type Item = EventRow;

    fn next(&mut self) -> Option<EventRow> {
        let planned = self.planner.next()?;
        Some(self.render(planned))
    }
}

/// Who views a marketing page.
struct Visitor<'a> {
    anonymous_id: String,
    ip: String,
    /// Index into the browser list.
    browser: usize,
    locale: &'a str,
    time_zone: &'a str,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A public-looking IPv4 address from a hash.
fn ip(hash: u64) -> String {
    format!(
        "{}.{}.{}.{}",
        23 + (hash >> 24) % 180,
        (hash >> 32) % 256,
        (hash >> 40) % 256,
        1 + (hash >> 48) % 254
    )
}

/// A user's address, the same for all their events.
fn member_ip(member: &Member) -> String {
    let hash = member
        .anonymous_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    ip(splitmix(hash))
}
