//! Billing plans, idempotent by external id.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A plan as sent by the tenant's billing system.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// The billing system's id; sending it again updates the plan.
    pub external_id: String,
    /// Display name.
    pub name: String,
    /// `day`, `week`, `month` or `year`.
    pub interval_unit: String,
    /// Units per billing interval (1 or more): 3 months is quarterly.
    pub interval_count: i32,
}

/// A stored plan.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Plan {
    /// Northstar's id.
    pub id: Uuid,
    /// The billing system's id.
    pub external_id: String,
    /// Display name.
    pub name: String,
    /// `day`, `week`, `month` or `year`.
    pub interval_unit: String,
    /// Units per billing interval.
    pub interval_count: i32,
    /// First time Northstar saw the plan.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, external_id, name, interval_unit, interval_count, created_at, updated_at";

/// Creates or replaces the plan with `input.external_id`.
pub async fn upsert(tx: &mut TenantTx, input: &PlanInput) -> Result<Plan, DbError> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO billing_plans (tenant_id, external_id, name, interval_unit, interval_count)
         VALUES (current_tenant_id(), $1, $2, $3, $4)
         ON CONFLICT (tenant_id, external_id) DO UPDATE SET
             name = excluded.name, interval_unit = excluded.interval_unit,
             interval_count = excluded.interval_count, updated_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(&input.external_id)
    .bind(&input.name)
    .bind(&input.interval_unit)
    .bind(input.interval_count)
    .fetch_one(tx.conn())
    .await?)
}

/// Every plan, by external id.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<Plan>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM billing_plans ORDER BY external_id"
    ))
    .fetch_all(tx.conn())
    .await?)
}
