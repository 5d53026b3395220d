//! Per-variant results of the A/B experiments: save rate from `cancel_sessions`, recovery from
//! `dunning_cases`, each counted over the experiment's whole life (rows carry the experiment
//! name and variant they began in). Same SQL on both backends.

use std::collections::BTreeMap;

use super::conn::fetch;
use super::{Store, StoreError};

const SESSIONS: &str = "SELECT variant, CASE WHEN outcome IS NOT NULL THEN outcome \
     WHEN deadline_at <= $2 THEN 'abandoned' ELSE 'in_progress' END AS o, COUNT(*) \
     FROM cancel_sessions WHERE experiment = $1 AND started_at IS NOT NULL AND variant IS NOT NULL GROUP BY variant, o";
/// Amounts only in one currency (`$2`): money in different currencies is never added up.
const CASES: &str = "SELECT variant, status, COUNT(*), \
     CAST(COALESCE(SUM(CASE WHEN LOWER(COALESCE(currency, 'usd')) = $2 THEN recovered_amount END), 0) AS BIGINT) \
     FROM dunning_cases WHERE experiment = $1 AND variant IS NOT NULL GROUP BY variant, status";

/// Cancel-flow sessions of one variant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveCounts {
    /// paused + downgraded + discounted.
    pub saved: i64,
    pub canceled: i64,
    pub abandoned: i64,
    pub in_progress: i64,
}

/// Dunning cases of one variant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryCounts {
    pub recovered: i64,
    pub lost: i64,
    pub open: i64,
    pub recovered_amount: i64,
}

impl Store {
    /// Sessions per variant and outcome of save-offer experiment `name`, at `now`.
    pub async fn save_offer_results(&self, name: &str, now: i64) -> Result<BTreeMap<String, SaveCounts>, StoreError> {
        let rows = self.with_conn(async |c| fetch!(c, fetch_all, (String, String, i64), SESSIONS, name, now)).await?;
        let mut out: BTreeMap<String, SaveCounts> = BTreeMap::new();
        for (variant, outcome, n) in rows {
            let v = out.entry(variant).or_default();
            match outcome.as_str() {
                "paused" | "downgraded" | "discounted" => v.saved += n,
                "canceled" => v.canceled += n,
                "abandoned" => v.abandoned += n,
                // A scheduled cancellation undone: no offer was made, so it says nothing
                // about either variant's offers.
                "resumed" => {}
                _ => v.in_progress += n,
            }
        }
        Ok(out)
    }

    /// Dunning cases per variant and status of email experiment `name`, with the amounts
    /// recovered in `currency` (lowercase).
    pub async fn recovery_results(&self, name: &str, currency: &str) -> Result<BTreeMap<String, RecoveryCounts>, StoreError> {
        let rows = self.with_conn(async |c| fetch!(c, fetch_all, (String, String, i64, i64), CASES, name, currency)).await?;
        let mut out: BTreeMap<String, RecoveryCounts> = BTreeMap::new();
        for (variant, status, n, amount) in rows {
            let v = out.entry(variant).or_default();
            match status.as_str() {
                "recovered" => {
                    v.recovered += n;
                    v.recovered_amount += amount;
                }
                "lost" => v.lost += n,
                _ => v.open += n,
            }
        }
        Ok(out)
    }
}
