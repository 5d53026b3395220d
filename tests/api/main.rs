//! Black-box tests through the real HTTP server, on SQLite (default) or Postgres
//! (`TEST_DATABASE=postgres` with `TEST_POSTGRES_URL`).

mod cancel_browser;
mod cancel_flow;
mod helpers;
mod ingestion_order;
mod projection;
mod webhooks;
