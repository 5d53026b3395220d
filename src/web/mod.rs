//! HTTP faces other than the webhook: health, metrics, request ids, and (later) the owner API
//! and pages.

pub mod auth;
pub mod body_budget;
pub mod client_ip;
pub mod error;
pub mod health;
pub mod home;
pub mod metrics;
pub mod pages;
pub mod rate_limit;
pub mod request_id;
pub mod security_headers;
