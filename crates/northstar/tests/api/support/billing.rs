//! A tenant's owner writing billing data through the billing API.

use serde_json::{Value, json};

use super::{Persona, TestApp, TestTenant};

/// The owner of tenant `acme`, who writes billing data and reads dashboards.
pub struct Billing {
    pub owner: Persona,
    pub tenant: TestTenant,
    pub slug: String,
}

impl Billing {
    pub async fn new(app: &TestApp) -> Self {
        let tenant = app.tenant("acme").await;
        Billing {
            owner: app.owner(&tenant).await,
            slug: tenant.slug.clone(),
            tenant,
        }
    }

    /// POSTs to the tenant's billing `path`; it must be accepted.
    pub async fn post(&self, path: &str, body: Value) {
        post(&self.owner, &self.slug, path, body).await;
    }

    pub async fn customer(&self, id: &str) {
        self.post("customers", json!({ "external_id": id, "name": id }))
            .await;
    }

    /// An invoice dated at its first line's service period start.
    pub async fn invoice(&self, id: &str, customer: &str, currency: &str, lines: Vec<Value>) {
        self.post(
            "invoices",
            json!({
                "external_id": id, "customer_external_id": customer,
                "date": lines[0]["service_period_start"], "currency": currency,
                "line_items": lines,
            }),
        )
        .await;
    }
}

/// `owner` POSTs to tenant `slug`'s billing `path`; it must be accepted.
pub async fn post(owner: &Persona, slug: &str, path: &str, body: Value) {
    let response = owner
        .post(&format!("/api/v1/tenants/{slug}/billing/{path}"), body)
        .await;
    assert_eq!(response.status, 200, "{path}: {}", response.body);
}
