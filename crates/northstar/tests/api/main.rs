//! Northstar's integration tests: one binary, a fresh database per test,
//! the app in-process (`oneshot`) except where a real socket matters.

mod support;

mod admin;
mod auth;
mod billing_api;
mod billing_stripe;
mod cli;
mod config_docs;
mod cross_tenant;
mod demo_data;
mod ingest_crash;
mod ingest_errors;
mod ingest_identity;
mod ingest_import;
mod ingest_posthog;
mod ingest_segment;
mod ingest_storage;
mod members;
mod openapi;
mod problems;
mod product_metrics;
mod revenue_cohorts;
mod revenue_metrics;
mod rls;
mod rollup_inbox;
mod schema;
