//! The owner's retention figures, as `docs/metrics.md` defines them: MRR and its movements,
//! churn, NRR, LTV, cohorts, recoveries and saves.
//!
//! - pure: `report::compute` walks a [`Timeline`] once per currency, `summary` turns a month
//!   of it into the summary's JSON, `table` into text, `maintained` is one customer's share,
//!   `lift` the holdouts' arithmetic;
//! - `storage` and `breakdowns`: the figures maintained in the projector's transaction;
//! - `reports` and `experiments`: what the owner reads; `http`: `/api/summary` and friends;
//! - `config`: sample sizes and the acquisition channel key.

pub mod breakdowns;
pub mod config;
pub mod experiments;
pub mod http;
pub mod maintained;
pub mod report;
pub mod reports;
pub mod storage;
pub mod summary;
pub mod table;

// What the other features use of this one.
pub use self::breakdowns::{COHORT_MONTHS, ChannelGroup, MONTH_SECS, PlanGroup};
pub(crate) use self::breakdowns::{channel_groups, plan_groups};
pub use self::config::FigureSettings;
pub use self::http::currency_param;
pub use self::reports::{Parts, Reports};
pub use self::summary::{CancelFlowJson, CohortJson};

pub use crate::domain::month::Month;
pub use crate::domain::timeline::Timeline;
pub use report::{Report, compute};
pub use summary::{MonthlyJson, Summary};

/// The currency a summary defaults to: the one with the most MRR at `at`, then the one
/// named first; `usd` for an empty history.
pub fn default_currency(timeline: &Timeline, at: i64) -> String {
    let mut best: Option<(f64, String)> = None;
    for currency in timeline.currencies() {
        let mrr: f64 = timeline
            .subscriptions
            .iter()
            .filter(|s| s.currency == currency)
            .filter_map(|s| s.states_at(&[at])[0].map(|st| timeline.mrr_of(s, st, at)))
            .sum();
        if best.as_ref().is_none_or(|(b, _)| mrr > *b) {
            best = Some((mrr, currency));
        }
    }
    best.map(|(_, c)| c).unwrap_or_else(|| "usd".to_owned())
}
