//! Retention metrics as `docs/metrics.md` defines them: pure functions over a loaded
//! [`Timeline`] (no I/O). `report::compute` walks the history once per currency;
//! `summary` turns a month of it into the owner summary's JSON.

pub mod maintained;
pub mod month;
pub mod report;
pub mod summary;
pub mod table;
pub mod timeline;

pub use month::Month;
pub use report::{Report, compute};
pub use summary::{MonthlyJson, Summary};
pub use timeline::Timeline;

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
