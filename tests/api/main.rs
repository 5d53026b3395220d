//! Black-box tests through the real HTTP server, on SQLite (default) or Postgres
//! (`TEST_DATABASE=postgres` with `TEST_POSTGRES_URL`).

mod backup;
mod billing_portal;
mod brand;
mod cancel_browser;
mod cancel_flow;
mod cards;
mod crash_safety;
mod dashboard;
mod discounts;
mod dunning;
mod email_browser;
mod forget;
mod helpers;
mod ingestion_order;
mod lifecycle;
mod log_scan;
mod mail_world;
mod metrics_truth;
mod observability;
mod observe;
mod outage;
mod outbox;
mod process;
mod processes;
mod projection;
mod quick_start;
mod rate_limits;
mod requires;
mod resources;
mod security;
mod smtp_sink;
mod summary_api;
mod sync;
mod webhooks;
