//! Northstar's database layer.
//!
//! Everything that touches PostgreSQL lives here: the roles and migrations
//! ([`roles`]), the pools the app uses ([`Database`]), the cluster Northstar
//! runs itself when no `DATABASE_URL` is given ([`embedded`]), and the
//! repositories.
//!
//! Tenant isolation is PostgreSQL's job, not this crate's: every tenant-scoped
//! table has forced Row Level Security keyed on the transaction setting
//! `app.tenant_id`. Repository functions for tenant data take a [`TenantTx`],
//! a transaction whose first statement set that tenant; the only way to get
//! one is [`TenantTx::begin`]. Queries that must cross tenants (log-in, API key
//! authentication, the super-admin panel) go through a handful of narrow
//! `SECURITY DEFINER` functions declared in the first migration.

pub mod api_keys;
pub mod audit;
pub mod billing;
pub mod embedded;
mod error;
pub mod ingest;
pub mod jobs;
pub mod memberships;
mod pool;
pub mod product;
pub mod provisioning;
pub mod roles;
pub mod secret_token;
pub mod sessions;
mod tenant_tx;
pub mod tenants;
#[cfg(feature = "testing")]
pub mod testing;
pub mod users;

pub use error::DbError;
pub use pool::{DatabaseTarget, connect_app_pool};
pub use tenant_tx::TenantTx;
