//! Exchange rates into the tenant's reporting currency, loaded by the
//! tenant. A line is converted at the latest rate on or before its service
//! period's start day (UTC), or the earliest rate after it when the tenant
//! loaded none that early. Rates are stored with the reporting currency they
//! are quoted in, and only those quoted in the current one are used: after
//! a change of reporting currency, rates must be loaded again.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use crate::{DbError, TenantTx};

/// One day's rate of one currency.
#[derive(Debug, Clone, Deserialize, Serialize, FromRow, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRate {
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// The first day the rate applies.
    pub day: NaiveDate,
    /// Units of the reporting currency per unit of `currency` (positive).
    pub rate: f64,
}

/// Stores `rates`, quoted in the tenant's reporting currency, replacing
/// those of the same currency and day.
pub async fn put(tx: &mut TenantTx, rates: &[ExchangeRate]) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO exchange_rates (tenant_id, quote_currency, currency, day, rate)
         SELECT current_tenant_id(), t.reporting_currency, r.*
         FROM unnest($1::text[], $2::date[], $3::float8[]) AS r CROSS JOIN tenants t
         ON CONFLICT (tenant_id, quote_currency, currency, day) DO UPDATE SET rate = excluded.rate",
    )
    .bind(rates.iter().map(|r| r.currency.clone()).collect::<Vec<_>>())
    .bind(rates.iter().map(|r| r.day).collect::<Vec<_>>())
    .bind(rates.iter().map(|r| r.rate).collect::<Vec<_>>())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Every rate of `currency` (every currency when `None`) quoted in the
/// reporting currency, by currency and day.
pub async fn list(tx: &mut TenantTx, currency: Option<&str>) -> Result<Vec<ExchangeRate>, DbError> {
    Ok(sqlx::query_as(
        "SELECT r.currency, r.day, r.rate::float8 AS rate
         FROM exchange_rates r JOIN tenants t ON r.quote_currency = t.reporting_currency
         WHERE $1::text IS NULL OR r.currency = $1 ORDER BY r.currency, r.day",
    )
    .bind(currency)
    .fetch_all(tx.conn())
    .await?)
}

/// Invoice currencies other than the reporting currency for which no rate
/// is loaded: their lines count for nothing until one is. The currencies
/// are found by skipping from one to the next through
/// `billing_invoices_currency_idx`: one index probe per currency, however
/// many invoices there are.
pub async fn missing_currencies(tx: &mut TenantTx) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "WITH RECURSIVE currencies AS (
             (SELECT currency FROM billing_invoices ORDER BY currency LIMIT 1)
             UNION ALL
             SELECT (SELECT i.currency FROM billing_invoices i
                     WHERE i.currency > c.currency ORDER BY i.currency LIMIT 1)
             FROM currencies c WHERE c.currency IS NOT NULL
         )
         SELECT c.currency FROM currencies c CROSS JOIN tenants t
         WHERE c.currency <> t.reporting_currency
           AND NOT EXISTS (SELECT 1 FROM exchange_rates r
                           WHERE r.currency = c.currency AND r.quote_currency = t.reporting_currency)
         ORDER BY 1",
    )
    .fetch_all(tx.conn())
    .await?)
}
