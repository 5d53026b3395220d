//! HTTP faces other than the webhook: health, metrics, request ids, and (later) the owner API
//! and pages.

pub mod activity;
pub mod auth;
pub mod billing;
pub mod body_budget;
pub mod cancel;
pub mod client_ip;
pub mod comeback;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod home;
pub mod metrics;
pub mod nps;
pub mod observed;
pub mod quarantine;
pub mod request_id;
pub mod security_headers;
pub mod summary;
pub mod unsubscribe;
