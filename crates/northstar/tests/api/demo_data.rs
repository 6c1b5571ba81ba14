//! The demo's generated company, loaded into a fresh tenant, as the API
//! shows it: revenue on the dashboard, every event counted, and a second
//! load that changes nothing.

use chrono::{Duration, Utc};
use northstar::demo::{
    company::{Company, CompanyShape, Market},
    load,
};
use serde_json::Value;

use crate::support::{Persona, TestApp};

async fn revenue(owner: &Persona, slug: &str, query: &str) -> Value {
    let response = owner
        .get(&format!("/api/v1/tenants/{slug}/dashboard/revenue?{query}"))
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    response.body
}

async fn stored_events(owner: &Persona, slug: &str) -> (i64, i64) {
    let response = owner
        .get(&format!("/api/v1/tenants/{slug}/ingestion/stats"))
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    let count = |field: &str| response.body[field].as_i64().unwrap_or(-1);
    (count("stored"), count("duplicate"))
}

#[tokio::test]
async fn a_loaded_company_fills_the_revenue_dashboard_and_loads_idempotently() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("demo-co").await;
    let owner = app.owner(&tenant).await;
    let shape = CompanyShape {
        customers: 60,
        days: 120,
        end: Utc::now(),
        market: Market::NorthAmerica,
        events_per_user_day: 2.0,
    };
    let seed = 2024;
    let generated = Company::generate(&shape, seed).event_count();
    let pool = app.db.app_pool();
    assert!(!load::has_billing(pool, tenant.id).await.expect("check"));

    let first = load::load_company(pool, tenant.id, &shape, seed, false)
        .await
        .expect("first load");
    assert_eq!(first.customers, 60);
    assert!(first.invoices > 60, "{first:?}");
    assert_eq!((first.events, first.events_stored), (generated, generated));
    assert!(load::has_billing(pool, tenant.id).await.expect("check"));

    // The whole history, on the tenant's days (it is now in New York).
    let from = shape.start().date_naive() - Duration::days(1);
    let to = shape.end.date_naive() + Duration::days(1);
    let query = format!("from={from}&to={to}&granularity=month&compare=none");
    let before = revenue(&owner, &tenant.slug, &query).await;
    let (kpis, movements) = (&before["kpis"], &before["movements"]);
    let amount = |v: &Value| v.as_f64().unwrap_or(-1.0);
    assert!(amount(&kpis["mrr"]) > 0.0, "{before}");
    assert!(amount(&movements["new_business"]) > 0.0, "{before}");
    assert!(amount(&movements["churn"]) >= 0.0, "{before}");
    assert_eq!(before["currency"], "USD");
    assert_eq!(before["missing_exchange_rates"], serde_json::json!([]));
    assert_eq!(
        stored_events(&owner, &tenant.slug).await,
        (i64::try_from(generated).expect("count"), 0)
    );

    let second = load::load_company(pool, tenant.id, &shape, seed, false)
        .await
        .expect("second load");
    assert_eq!((second.events, second.events_stored), (generated, 0));
    assert_eq!(second.invoices, first.invoices);
    let after = revenue(&owner, &tenant.slug, &query).await;
    assert_eq!(after, before);
    let duplicates = i64::try_from(generated).expect("count");
    assert_eq!(
        stored_events(&owner, &tenant.slug).await,
        (duplicates, duplicates)
    );
}
