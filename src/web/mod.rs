//! HTTP faces other than the webhook: health and (later) the owner API and pages.

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod summary;
