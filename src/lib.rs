//! Holdfast keeps a subscription business's customers: verified Stripe webhooks into a
//! lifecycle store, failed-payment recovery, cancel-flow saves and retention metrics.

pub mod cli;
pub mod config;
pub mod domain;
pub mod reports;
pub mod sim;
pub mod startup;
pub mod store;
pub mod stripe_api;
pub mod telemetry;
pub mod web;
pub mod webhook;
