//! Lifecycle state: product activity, at-risk episodes, and the series the lifecycle
//! reactions' plans start and stop. Same SQL on both backends (`$N`, BIGINT/TEXT, portable
//! upserts with CASE instead of MIN/LEAST).
//!
//! `activity`: the product activity batches; `at_risk`: the episodes and the scheduler's
//! candidates; `series`: the lifecycle series; `subscriptions`: the subscription reads the
//! lifecycle needs; `annual`: the annual-plan offer.
/// Subscription statuses that mean "still a customer".
macro_rules! live {
    () => {
        "('active', 'trialing', 'past_due', 'unpaid')"
    };
}

mod activity;
mod annual;
mod at_risk;
mod series;
mod subscriptions;

pub use self::activity::{ActivitySum, BATCH_KEY_SECS, BatchKey, LOW_NPS_HOLD_SECS, Recorded, add_activity, fingerprint};
pub use self::annual::{AnnualCandidate, AnnualOfferRow};
pub use self::at_risk::{AtRiskCounts, AtRiskCustomer, Candidate, NewEpisode, open_episode};
pub use self::series::{SeriesRow, start_many, start_series, stop_one, stop_series};
pub use self::subscriptions::other_live_subscriptions;
