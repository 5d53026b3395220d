//! Pure business rules: no I/O. Everything here is a function of Stripe's JSON and time.

pub mod backfill;
pub mod cancel;
pub mod catalog;
pub mod coupons;
pub mod dunning;
pub mod event;
pub mod fields;
pub mod lifecycle;
pub mod lift;
pub mod metrics;
pub mod money;
pub mod mrr;
pub mod poison;
pub mod pricing;
pub mod projection;
pub mod refunds;
pub mod saves;
pub mod snapshots;
pub mod watermark;
