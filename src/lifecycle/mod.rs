//! Lifecycle email: onboarding, trial ending, win-back, re-engagement, the monthly value recap,
//! the NPS survey and the annual-plan offer, with one-click unsubscribe.
//!
//! - `rules`: which events start or stop a series, at-risk episodes (no I/O);
//! - `config`: campaigns, experiments and the annual offer; `context`: what the campaigns
//!   read (`Lifecycle`); `reactions`: the deciders;
//! - `storage`: activity, at-risk episodes and series; `activity`: `POST /api/activity`;
//! - `recap/`, `nps/`, `annual_offer/`: each campaign with its storage and pages;
//! - `reengagement`: the at-risk episode's series; `comeback`: the win-back link;
//!   `unsubscribe`: the RFC 8058 endpoint.

pub mod activity;
pub mod annual_offer;
pub mod comeback;
pub mod config;
pub mod context;
pub mod nps;
pub mod reactions;
pub mod recap;
pub mod reengagement;
pub mod rules;
pub mod storage;
pub mod unsubscribe;

// What the other features use of this one.
pub use self::config::{ExperimentKind, Experiments};
pub use self::nps::{Tally, category as nps_category};
pub use self::recap::config::NpsSettings;
pub use self::rules::TREATED;
