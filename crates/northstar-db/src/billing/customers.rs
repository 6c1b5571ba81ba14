//! Billing customers, idempotent by the billing system's external id.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A customer as sent by the tenant's billing system.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// The billing system's id; sending it again updates the customer.
    pub external_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Billing email.
    pub email: Option<String>,
    /// Company name.
    pub company: Option<String>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<String>,
    /// The product user (Segment `userId`) this customer is.
    pub user_id: Option<String>,
    /// Custom attributes, for segmentation.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// When the customer became a lead; kept if already known and absent here.
    pub lead_created_at: Option<DateTime<Utc>>,
    /// When the customer's free trial started; kept if already known and absent here.
    pub free_trial_started_at: Option<DateTime<Utc>>,
}

/// A stored customer.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Customer {
    /// Northstar's id.
    pub id: Uuid,
    /// The billing system's id.
    pub external_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Billing email.
    pub email: Option<String>,
    /// Company name.
    pub company: Option<String>,
    /// Country code.
    pub country: Option<String>,
    /// The product user this customer is.
    pub user_id: Option<String>,
    /// Custom attributes.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// When the customer became a lead.
    pub lead_created_at: Option<DateTime<Utc>>,
    /// When the free trial started.
    pub free_trial_started_at: Option<DateTime<Utc>>,
    /// First time Northstar saw the customer.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, external_id, name, email, company, country, user_id, attributes, \
                       lead_created_at, free_trial_started_at, created_at, updated_at";

/// Creates or replaces the customer with `input.external_id`. Its trial
/// start may change: the caller recomputes the customer
/// ([`super::rollup::recompute_customers`]) or at least counts its trial
/// again ([`super::rollup::recount_trials`]).
pub async fn upsert(tx: &mut TenantTx, input: &CustomerInput) -> Result<Customer, DbError> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO billing_customers (tenant_id, external_id, name, email, company, country,
                                        user_id, attributes, lead_created_at, free_trial_started_at)
         VALUES (current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (tenant_id, external_id) DO UPDATE SET
             name = excluded.name, email = excluded.email, company = excluded.company,
             country = excluded.country, user_id = excluded.user_id,
             attributes = excluded.attributes,
             lead_created_at = coalesce(excluded.lead_created_at, billing_customers.lead_created_at),
             free_trial_started_at = coalesce(excluded.free_trial_started_at,
                                              billing_customers.free_trial_started_at),
             updated_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(&input.external_id)
    .bind(&input.name)
    .bind(&input.email)
    .bind(&input.company)
    .bind(&input.country)
    .bind(&input.user_id)
    .bind(sqlx::types::Json(&input.attributes))
    .bind(input.lead_created_at)
    .bind(input.free_trial_started_at)
    .fetch_one(tx.conn())
    .await?)
}

/// Records that the customer's free trial started at `at`, unless an earlier
/// start is already known. The caller counts its trial again, as for
/// [`upsert`].
pub async fn mark_trial_started(
    tx: &mut TenantTx,
    customer_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE billing_customers
         SET free_trial_started_at = least(free_trial_started_at, $2), updated_at = now()
         WHERE id = $1",
    )
    .bind(customer_id)
    .bind(at)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The customer with this external id.
pub async fn find(tx: &mut TenantTx, external_id: &str) -> Result<Option<Customer>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM billing_customers WHERE external_id = $1"
    ))
    .bind(external_id)
    .fetch_optional(tx.conn())
    .await?)
}

/// Up to `limit` customers with an external id after `after`, by external id.
pub async fn list(
    tx: &mut TenantTx,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Customer>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM billing_customers
         WHERE $1::text IS NULL OR external_id > $1
         ORDER BY external_id LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(tx.conn())
    .await?)
}

/// Every customer's id, for a rebuild.
pub async fn all_ids(tx: &mut TenantTx) -> Result<Vec<Uuid>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM billing_customers ORDER BY id")
            .fetch_all(tx.conn())
            .await?,
    )
}
