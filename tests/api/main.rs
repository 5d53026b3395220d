//! Black-box tests through the real HTTP server, on SQLite (default) or Postgres
//! (`TEST_DATABASE=postgres` with `TEST_POSTGRES_URL`).

mod crash_safety;
mod helpers;
mod ingestion_order;
mod log_scan;
mod outage;
mod process;
mod projection;
mod security;
mod webhooks;
