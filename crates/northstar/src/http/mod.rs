//! The HTTP layer: routes, extractors, handlers by resource, and the one
//! error type they share.

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod billing;
pub mod caller;
pub mod dashboard;
pub mod error;
pub mod extract_json;
pub mod health;
pub mod import;
pub mod ingest_request;
pub mod ingestion;
pub mod members;
pub mod posthog;
mod router;
pub mod segment;
pub mod session_cookie;
pub mod stripe_webhook;
pub mod tenant_scope;
pub mod tenants;

pub use router::{build_router, openapi};
