//! Pure business rules: no I/O. Everything here is a function of Stripe's JSON and time.

pub mod backfill;
pub mod catalog;
pub mod coupons;
pub mod event;
pub mod fields;
pub mod lift;
pub mod money;
pub mod month;
pub mod mrr;
pub mod poison;
pub mod pricing;
pub mod projection;
pub mod refunds;
pub mod snapshots;
pub mod timeline;
pub mod watermark;
