//! The raw counts behind the owner's figures for one month.

use crate::store::conn::fetch;
use crate::store::{Store, StoreError};

/// Raw counts behind the owner's figures, for one month `[from, to)` and currency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FigureCounts {
    /// Money recovered from failed payments closed in the month, and how many payments.
    pub recovered_amount: i64,
    pub recovered_payments: i64,
    /// Trials that ended in the month (up to now), and how many of them went on paying.
    pub trials_ended: i64,
    pub trials_converted: i64,
    /// Long-interval (yearly, or 3+ months) renewals paid in the month, and such subscriptions
    /// that ended in the month instead.
    pub renewed: i64,
    pub lapsed: i64,
    /// Live MRR by price (for MRR by plan).
    pub plans: Vec<PlanGroup>,
    /// Customers who ever subscribed, by the value of the acquisition channel's metadata.
    pub channels: Vec<ChannelGroup>,
    /// Cancel-flow sessions started in the month: saves by state now, and cancellations.
    pub saves_confirmed: i64,
    pub saves_reversed: i64,
    pub saves_pending: i64,
    pub sessions_canceled: i64,
    /// The time the counts were read at (cohort ages are measured to it).
    pub now: i64,
}

pub use crate::figures::{COHORT_MONTHS, ChannelGroup, MONTH_SECS, PlanGroup};

const RECOVERED_IN: &str = "SELECT CAST(COALESCE(SUM(COALESCE(recovered_amount, amount_due)), 0) AS BIGINT), COUNT(*) \
     FROM dunning_cases WHERE status = 'recovered' AND closed_at >= $1 AND closed_at < $2 AND lower(COALESCE(currency, '')) = $3";
const TRIALS_IN: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status IN ('active', 'past_due', 'unpaid', 'paused') \
     OR (ended_at IS NOT NULL AND ended_at > trial_end + 86400) THEN 1 ELSE 0 END), 0) AS BIGINT) FROM subscriptions \
     WHERE trial_end IS NOT NULL AND trial_end >= $1 AND trial_end < $2 AND trial_end <= $3 \
     AND lower(COALESCE(currency, '')) = $4";
/// Renewals of long-interval (yearly, or every 3+ months) subscriptions paid in `[$1, $2)`.
/// Driven by the month's invoices (`invoices_paid_or_created`), each checked by its items.
const RENEWED_IN: &str = "SELECT COUNT(*) FROM invoices v WHERE billing_reason = 'subscription_cycle' AND status = 'paid' \
     AND COALESCE(paid_at, created) >= $1 AND COALESCE(paid_at, created) < $2 AND EXISTS \
     (SELECT 1 FROM subscription_items i WHERE i.subscription_id = v.subscription AND (i.recurring_interval = 'year' \
     OR (i.recurring_interval = 'month' AND i.interval_count >= 3)))";
/// Long-interval subscriptions that ended in `[$1, $2)` instead of renewing.
const LAPSED_IN: &str = "SELECT COUNT(*) FROM subscriptions s WHERE ended_at >= $1 AND ended_at < $2 AND EXISTS \
     (SELECT 1 FROM subscription_items i WHERE i.subscription_id = s.id AND (i.recurring_interval = 'year' \
     OR (i.recurring_interval = 'month' AND i.interval_count >= 3)))";
/// Sessions started in `[$1, $2)`: confirmed, reversed and pending saves, and cancellations.
const SAVES_IN: &str = "SELECT CAST(COALESCE(SUM(CASE WHEN save_state = 'confirmed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN save_state = 'reversed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN save_state = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN outcome = 'canceled' THEN 1 ELSE 0 END), 0) AS BIGINT) \
     FROM cancel_sessions WHERE started_at IS NOT NULL AND started_at >= $1 AND started_at < $2";

impl Store {
    /// The counts behind the owner's figures for `[from, to)` in `currency` (lower case).
    /// `channel_key` is the customers' metadata key naming their acquisition channel.
    pub async fn figure_counts(
        &self,
        from: i64,
        to: i64,
        now: i64,
        currency: &str,
        channel_key: &str,
    ) -> Result<FigureCounts, StoreError> {
        self.with_conn(async |c| {
            let mut parts = crate::figures::Parts::start();
            let (recovered_amount, recovered_payments) = fetch!(c, fetch_one, (i64, i64), RECOVERED_IN, from, to, currency)?;
            parts.mark("recovered");
            let (trials_ended, trials_converted) = fetch!(c, fetch_one, (i64, i64), TRIALS_IN, from, to, now, currency)?;
            parts.mark("trials");
            let (renewed,) = fetch!(c, fetch_one, (i64,), RENEWED_IN, from, to)?;
            parts.mark("renewed");
            let (lapsed,) = fetch!(c, fetch_one, (i64,), LAPSED_IN, from, to)?;
            parts.mark("lapsed");
            let (saves_confirmed, saves_reversed, saves_pending, sessions_canceled) =
                fetch!(c, fetch_one, (i64, i64, i64, i64), SAVES_IN, from, to)?;
            parts.mark("saves");
            let plans = crate::figures::plan_groups(c, currency).await?;
            parts.mark("plans");
            let channels = crate::figures::channel_groups(c, channel_key, now).await?;
            parts.mark("channels");
            parts.log("figure_counts");
            Ok(FigureCounts {
                recovered_amount,
                recovered_payments,
                trials_ended,
                trials_converted,
                renewed,
                lapsed,
                plans,
                channels,
                saves_confirmed,
                saves_reversed,
                saves_pending,
                sessions_canceled,
                now,
            })
        })
        .await
    }
}
