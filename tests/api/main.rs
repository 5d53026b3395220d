//! Black-box tests through the real HTTP server, on SQLite (default) or Postgres
//! (`TEST_DATABASE=postgres` with `TEST_POSTGRES_URL`).

mod billing_portal;
mod cancel_browser;
mod cancel_flow;
mod cards;
mod dunning;
mod helpers;
mod ingestion_order;
mod mail_world;
mod observability;
mod outbox;
mod processes;
mod projection;
mod smtp_sink;
mod sync;
mod webhooks;
