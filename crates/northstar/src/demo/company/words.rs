//! The demo company's vocabulary: names, places, pages and browsers the
//! generator picks from, so that generated data reads like a real product's.

/// Where customers are: their currency, VAT and a time zone with its usual
/// offset (daylight saving is ignored: it only shifts working hours).
pub(super) struct Country {
    /// ISO 3166-1 alpha-2 code.
    pub code: &'static str,
    /// Relative weight among customers of a North American company.
    pub weight_americas: u32,
    /// Relative weight among customers of a European company.
    pub weight_europe: u32,
    /// The currency invoices are in.
    pub currency: Currency,
    /// VAT charged on top of the price, in basis points (EU only).
    pub vat_basis_points: i64,
    /// An IANA time zone of the country.
    pub time_zone: &'static str,
    /// That zone's standard offset from UTC, in minutes.
    pub utc_offset_minutes: i64,
    /// The browser locale.
    pub locale: &'static str,
    /// The company-name suffix and web domain ending used there.
    pub legal_suffix: &'static str,
    /// Top-level domain of companies there.
    pub tld: &'static str,
}

/// The currencies the demo company sells in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Currency {
    /// US dollars.
    Usd,
    /// Euros.
    Eur,
    /// Pounds sterling.
    Gbp,
}

impl Currency {
    /// Every currency, in price-table order.
    pub const ALL: [Currency; 3] = [Currency::Usd, Currency::Eur, Currency::Gbp];

    /// The ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
        }
    }

    /// The column of this currency in price tables.
    pub fn index(self) -> usize {
        match self {
            Currency::Usd => 0,
            Currency::Eur => 1,
            Currency::Gbp => 2,
        }
    }
}

const fn country(
    code: &'static str,
    weights: (u32, u32),
    currency: Currency,
    vat_basis_points: i64,
    zone: (&'static str, i64),
    locale: &'static str,
    legal: (&'static str, &'static str),
) -> Country {
    Country {
        code,
        weight_americas: weights.0,
        weight_europe: weights.1,
        currency,
        vat_basis_points,
        time_zone: zone.0,
        utc_offset_minutes: zone.1,
        locale,
        legal_suffix: legal.0,
        tld: legal.1,
    }
}

/// Customer countries. The United States appear three times, once per
/// main time zone.
pub(super) const COUNTRIES: &[Country] = &[
    country(
        "US",
        (26, 6),
        Currency::Usd,
        0,
        ("America/New_York", -300),
        "en-US",
        ("Inc.", "com"),
    ),
    country(
        "US",
        (14, 3),
        Currency::Usd,
        0,
        ("America/Chicago", -360),
        "en-US",
        ("Inc.", "com"),
    ),
    country(
        "US",
        (16, 4),
        Currency::Usd,
        0,
        ("America/Los_Angeles", -480),
        "en-US",
        ("Inc.", "io"),
    ),
    country(
        "CA",
        (8, 2),
        Currency::Usd,
        0,
        ("America/Toronto", -300),
        "en-CA",
        ("Inc.", "ca"),
    ),
    country(
        "GB",
        (9, 14),
        Currency::Gbp,
        0,
        ("Europe/London", 0),
        "en-GB",
        ("Ltd", "co.uk"),
    ),
    country(
        "DE",
        (5, 20),
        Currency::Eur,
        1900,
        ("Europe/Berlin", 60),
        "de-DE",
        ("GmbH", "de"),
    ),
    country(
        "FR",
        (4, 12),
        Currency::Eur,
        2000,
        ("Europe/Paris", 60),
        "fr-FR",
        ("SAS", "fr"),
    ),
    country(
        "NL",
        (3, 8),
        Currency::Eur,
        2100,
        ("Europe/Amsterdam", 60),
        "nl-NL",
        ("B.V.", "nl"),
    ),
    country(
        "ES",
        (2, 6),
        Currency::Eur,
        2100,
        ("Europe/Madrid", 60),
        "es-ES",
        ("S.L.", "es"),
    ),
    country(
        "IT",
        (2, 5),
        Currency::Eur,
        2200,
        ("Europe/Rome", 60),
        "it-IT",
        ("S.r.l.", "it"),
    ),
    country(
        "IE",
        (1, 4),
        Currency::Eur,
        2300,
        ("Europe/Dublin", 0),
        "en-IE",
        ("Ltd", "ie"),
    ),
    country(
        "SE",
        (1, 4),
        Currency::Eur,
        2500,
        ("Europe/Stockholm", 60),
        "sv-SE",
        ("AB", "se"),
    ),
    country(
        "AT",
        (1, 3),
        Currency::Eur,
        2000,
        ("Europe/Vienna", 60),
        "de-AT",
        ("GmbH", "at"),
    ),
    country(
        "CH",
        (1, 3),
        Currency::Eur,
        0,
        ("Europe/Zurich", 60),
        "de-CH",
        ("AG", "ch"),
    ),
    country(
        "AU",
        (5, 2),
        Currency::Usd,
        0,
        ("Australia/Sydney", 600),
        "en-AU",
        ("Pty Ltd", "com.au"),
    ),
    country(
        "BR",
        (2, 1),
        Currency::Usd,
        0,
        ("America/Sao_Paulo", -180),
        "pt-BR",
        ("Ltda.", "com.br"),
    ),
    country(
        "IN",
        (3, 2),
        Currency::Usd,
        0,
        ("Asia/Kolkata", 330),
        "en-IN",
        ("Pvt Ltd", "in"),
    ),
    country(
        "JP",
        (2, 1),
        Currency::Usd,
        0,
        ("Asia/Tokyo", 540),
        "ja-JP",
        ("K.K.", "jp"),
    ),
    country(
        "SG",
        (1, 1),
        Currency::Usd,
        0,
        ("Asia/Singapore", 480),
        "en-SG",
        ("Pte Ltd", "sg"),
    ),
];

/// Names of the product the demo company sells.
pub(super) const PRODUCTS: &[&str] = &[
    "Beacon", "Lumen", "Quarry", "Tidal", "Keystone", "Meridian", "Parallax", "Foundry", "Compass",
    "Helix", "Sextant", "Lantern",
];

pub(super) const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Alan",
    "Amara",
    "Ana",
    "Arjun",
    "Ben",
    "Camille",
    "Carlos",
    "Chen",
    "Chloe",
    "Daniel",
    "Elena",
    "Emma",
    "Farah",
    "Felix",
    "Grace",
    "Hannah",
    "Hiro",
    "Ines",
    "Isaac",
    "Jamal",
    "Julia",
    "Karin",
    "Kwame",
    "Lars",
    "Laura",
    "Leila",
    "Liam",
    "Lucas",
    "Maya",
    "Mateo",
    "Mia",
    "Nadia",
    "Noah",
    "Olivia",
    "Omar",
    "Priya",
    "Rafael",
    "Sara",
    "Sofia",
    "Tariq",
    "Theo",
    "Valentina",
    "Wei",
    "Yuki",
    "Zoe",
];

pub(super) const LAST_NAMES: &[&str] = &[
    "Andersen", "Bauer", "Bianchi", "Brown", "Chen", "Costa", "Dubois", "Fischer", "Garcia",
    "Hansen", "Ito", "Jansen", "Johnson", "Kim", "Kowalski", "Lambert", "Lee", "Martin", "Meyer",
    "Moreau", "Murphy", "Nakamura", "Nguyen", "Novak", "O'Brien", "Okafor", "Patel", "Rossi",
    "Santos", "Schmidt", "Silva", "Singh", "Smith", "Suzuki", "Taylor", "Van Dijk", "Wagner",
    "Walker", "Weber", "Williams", "Yilmaz", "Zhang",
];

pub(super) const COMPANY_WORDS: &[&str] = &[
    "Atlas", "Aurora", "Birch", "Blue", "Bright", "Cedar", "Clear", "Copper", "Crest", "Delta",
    "Ember", "Fern", "Granite", "Green", "Harbor", "Horizon", "Iron", "Juniper", "Kite", "Lark",
    "Maple", "Nimbus", "North", "Nova", "Oak", "Orbit", "Pine", "Pixel", "Quartz", "Red", "River",
    "Sage", "Silver", "Sparrow", "Summit", "Swift", "Tandem", "Vector", "Willow", "Zephyr",
];

pub(super) const COMPANY_KINDS: &[&str] = &[
    "Analytics",
    "Bio",
    "Cloud",
    "Commerce",
    "Energy",
    "Finance",
    "Foods",
    "Freight",
    "Games",
    "Health",
    "Labs",
    "Learning",
    "Logistics",
    "Media",
    "Mobility",
    "Retail",
    "Robotics",
    "Security",
    "Studio",
    "Systems",
    "Travel",
    "Works",
];

pub(super) const INDUSTRIES: &[&str] = &[
    "Software",
    "E-commerce",
    "Healthcare",
    "Financial services",
    "Education",
    "Logistics",
    "Media",
    "Manufacturing",
    "Travel",
    "Marketing agency",
];

pub(super) const JOB_TITLES: &[&str] = &[
    "Head of Growth",
    "Product Manager",
    "Data Analyst",
    "CTO",
    "Founder",
    "Marketing Lead",
    "Engineering Manager",
    "Customer Success Lead",
    "VP Product",
    "Operations Manager",
];

pub(super) const WEB_USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
];

/// The `userAgentData` (client hints) analytics.js adds for each browser of
/// [`WEB_USER_AGENTS`], in the same order; empty where the browser sends none.
pub(super) const USER_AGENT_DATA: &[&str] = &[
    r#"{"brands":[{"brand":"Google Chrome","version":"131"},{"brand":"Chromium","version":"131"},{"brand":"Not_A Brand","version":"24"}],"mobile":false,"platform":"macOS"}"#,
    r#"{"brands":[{"brand":"Google Chrome","version":"131"},{"brand":"Chromium","version":"131"},{"brand":"Not_A Brand","version":"24"}],"mobile":false,"platform":"Windows"}"#,
    "",
    "",
    r#"{"brands":[{"brand":"Microsoft Edge","version":"131"},{"brand":"Chromium","version":"131"},{"brand":"Not_A Brand","version":"24"}],"mobile":false,"platform":"Windows"}"#,
    r#"{"brands":[{"brand":"Google Chrome","version":"130"},{"brand":"Chromium","version":"130"},{"brand":"Not?A_Brand","version":"99"}],"mobile":false,"platform":"Linux"}"#,
    "",
];

/// Marketing-site pages: name, path and weight among anonymous page views.
pub(super) const MARKETING_PAGES: &[(&str, &str, u32)] = &[
    ("Home", "/", 34),
    ("Pricing", "/pricing", 18),
    ("Docs", "/docs/getting-started", 14),
    ("Blog", "/blog/saas-metrics-that-matter", 12),
    ("Features", "/features", 9),
    ("Customers", "/customers", 5),
    ("Integrations", "/integrations", 4),
    ("Changelog", "/changelog", 4),
];

pub(super) const REFERRERS: &[&str] = &[
    "",
    "",
    "https://www.google.com/",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://news.ycombinator.com/",
    "https://www.linkedin.com/",
    "https://t.co/",
    "https://www.producthunt.com/",
    "https://duckduckgo.com/",
];

/// In-app pages: name and path prefix.
pub(super) const APP_PAGES: &[(&str, &str)] = &[
    ("Home", "/home"),
    ("Dashboard", "/dashboards"),
    ("Reports", "/reports"),
    ("Data Sources", "/sources"),
    ("Alerts", "/alerts"),
    ("Team Settings", "/settings/team"),
    ("Billing", "/settings/billing"),
    ("Integrations", "/integrations"),
];

/// Feature-usage events, most used first (their weights fall as a power law).
pub(super) const FEATURES: &[&str] = &[
    "Dashboard Viewed",
    "Report Viewed",
    "Filter Applied",
    "Chart Created",
    "Export Downloaded",
    "Comment Added",
    "Alert Created",
    "Integration Connected",
    "API Key Created",
];

pub(super) const DASHBOARD_NAMES: &[&str] = &[
    "Weekly KPIs",
    "Revenue overview",
    "Marketing funnel",
    "Ops daily",
    "Board metrics",
    "Churn watch",
    "Product usage",
    "Sales pipeline",
    "Support SLA",
    "Cohort retention",
];

pub(super) const METRICS: &[&str] = &[
    "revenue",
    "orders",
    "signups",
    "active_users",
    "conversion_rate",
    "churn_rate",
    "avg_order_value",
    "sessions",
    "tickets_open",
];

pub(super) const DATA_SOURCES: &[&str] = &[
    "postgres",
    "snowflake",
    "bigquery",
    "stripe",
    "hubspot",
    "salesforce",
    "google_sheets",
    "segment",
    "mysql",
    "redshift",
];

pub(super) const INTEGRATIONS: &[(&str, &str)] = &[
    ("Slack", "messaging"),
    ("Microsoft Teams", "messaging"),
    ("Salesforce", "crm"),
    ("HubSpot", "crm"),
    ("Stripe", "billing"),
    ("Zapier", "automation"),
    ("GitHub", "engineering"),
    ("Jira", "engineering"),
];

pub(super) const TICKET_SUBJECTS: &[(&str, &str)] = &[
    ("Dashboard not loading", "bug"),
    ("Data source sync is failing", "bug"),
    ("How do I share a dashboard with a client?", "how_to"),
    ("Invoice address needs to change", "billing"),
    ("Charged twice this month", "billing"),
    ("Export to CSV times out", "bug"),
    ("Can we get SSO?", "feature_request"),
    ("Numbers differ from our database", "data_quality"),
    ("How do alerts work with Slack?", "how_to"),
    ("Add a teammate without a new seat?", "billing"),
    ("API rate limit questions", "how_to"),
    ("Chart colours after the update", "bug"),
];

pub(super) const SUPPORT_AGENTS: &[&str] = &[
    "agent_maria",
    "agent_tom",
    "agent_aiko",
    "agent_samuel",
    "agent_fatima",
];
