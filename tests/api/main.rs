//! Black-box tests through the real HTTP server, on SQLite (default) or Postgres
//! (`TEST_DATABASE=postgres` with `TEST_POSTGRES_URL`).

mod dashboard;
mod helpers;
mod ingestion_order;
mod metrics_truth;
mod projection;
mod summary_api;
mod webhooks;
