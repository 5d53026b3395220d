//! What the owner sees and hears: the dashboard, who left and why, the weekly digest and the
//! alerts, and what observe-only mode held back.
//!
//! - `dashboard/`: the server-rendered pages, their login session and charts;
//! - `views`: one customer whole, search, and the "who" lists;
//! - `digest/`, `alerts/`: what reaches the owner without looking, with their storage;
//! - `config`: `HOLDFAST_OWNER_EMAIL`, digest and alert settings;
//! - `observed`, `quarantine`: owner API views of held-back actions and unprojectable events.

pub mod alerts;
pub mod config;
pub mod dashboard;
pub mod digest;
pub mod observed;
pub mod quarantine;
pub mod views;
