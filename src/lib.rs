//! Holdfast keeps a subscription business's customers: verified Stripe webhooks into a
//! lifecycle store, failed-payment recovery, cancel-flow saves and retention metrics.

pub mod alerts;
pub mod cancel_flow;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod digest;
pub mod domain;
pub mod health;
pub mod mail;
pub mod metrics;
pub mod nps;
pub mod reactions;
pub mod recap;
pub mod replay;
pub mod reports;
pub mod startup;
pub mod store;
pub mod stripe_api;
pub mod sync;
pub mod telemetry;
pub mod upgrade;
pub mod web;
pub mod webhook;
pub mod workers;
