//! Failed-payment recovery: a case per failed invoice, a cadence of emails with a one-click
//! update-payment link, card-expiry warnings, and the recovery attributed when the invoice is
//! paid.
//!
//! - `rules`: which events matter, when a case opens and closes, the cadence (no I/O);
//! - `reactions`: the deciders the projector runs for a batch of events;
//! - `storage`: cases and cards, written from a reaction plan;
//! - `update_payment`: `GET /billing/update`, the link in the emails.

pub mod config;
pub mod reactions;
pub mod rules;
pub mod storage;
pub mod update_payment;

// What the other features use of this one.
pub use self::config::EmailExperiment;
pub use self::update_payment::BillingPortal;
