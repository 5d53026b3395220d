//! Holdfast keeps a subscription business's customers: verified Stripe webhooks into a
//! lifecycle store, failed-payment recovery, cancel-flow saves and retention metrics.

pub mod cancel;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod dunning;
pub mod figures;
pub mod health;
pub mod ingest;
pub mod lifecycle;
pub mod mail;
pub mod metrics;
pub mod owner;
pub mod settings;
pub mod startup;
pub mod store;
pub mod stripe_api;
pub mod sync;
pub mod telemetry;
pub mod web;
pub mod workers;
