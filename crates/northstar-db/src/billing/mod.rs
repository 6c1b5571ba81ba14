//! Billing data and the revenue it produces.
//!
//! Billing is modelled as ChartMogul's import API models it: customers,
//! plans, and invoices whose line items carry a service period. Writes go
//! through [`customers`], [`plans`], [`invoices`] and [`exchange_rates`];
//! after each write the caller recomputes the affected customers' MRR
//! movements with [`rollup`], in the same transaction, so the revenue
//! rollups ([`revenue`] and [`cohorts`] read them) never lag the data they
//! summarise.

pub mod cohorts;
pub mod customers;
pub mod exchange_rates;
pub mod invoices;
pub mod movements;
pub mod normalise;
pub mod plans;
pub mod revenue;
pub mod rollup;
pub mod stripe_secrets;

use crate::DbError;

/// A billing write that cannot be applied as given.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// An invoice or cancellation names a customer that does not exist.
    #[error("no customer with external id {0:?}")]
    UnknownCustomer(String),
    /// Line item `line` (0-based) names a plan that does not exist.
    #[error("line item {line}: no plan with external id {plan:?}")]
    UnknownPlan {
        /// The first line item naming it.
        line: usize,
        /// The plan's external id.
        plan: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for BillingError {
    fn from(err: sqlx::Error) -> Self {
        BillingError::Db(err.into())
    }
}
