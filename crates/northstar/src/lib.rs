//! Northstar: multi-tenant SaaS analytics in one binary.
//!
//! A request's path through this crate: [`http::build_router`] routes it;
//! the [`http::caller`] extractors authenticate it (session cookie with CSRF
//! protection, or a secret API key); [`http::tenant_scope::TenantScope`]
//! checks membership and opens a tenant-scoped transaction, through which the
//! handler in `http/<resource>.rs` calls the repositories of `northstar_db`,
//! where PostgreSQL's Row Level Security has the last word. Errors leave
//! through [`http::error::ApiError`] as problem details.
//!
//! [`cli`] is the `northstar` command; [`server`] runs `serve` and `demo`.

pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod ingest;
pub mod jobs;
pub mod provision;
pub mod server;
pub mod state;
mod telemetry;

pub use http::build_router;
pub use state::AppState;
