//! Per-variant results of the A/B experiments: save rate from `cancel_sessions`, recovery from
//! `dunning_cases`, each counted over the experiment's whole life (rows carry the experiment
//! name and variant they began in). Same SQL on both backends.

use std::collections::BTreeMap;

use crate::store::conn::fetch;
use crate::store::{Store, StoreError};

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

/// Each lifecycle series with an arm: whether its outcome happened (`ok`) and whether its
/// window has passed (`mature`). `$1` campaign, `$2` the window in seconds, `$3` now.
const SERIES_PAYING: &str = "SELECT ls.arm, \
     CAST(CASE WHEN s.id IS NOT NULL AND s.status NOT IN ('incomplete', 'incomplete_expired') \
     AND (s.ended_at IS NULL OR s.ended_at > ls.started_at + $2) THEN 1 ELSE 0 END AS BIGINT) AS ok, \
     CAST(CASE WHEN ls.started_at + $2 <= $3 THEN 1 ELSE 0 END AS BIGINT) AS mature, COUNT(*) \
     FROM lifecycle_series ls LEFT JOIN subscriptions s ON s.id = ls.subscription \
     WHERE ls.campaign = $1 AND ls.arm IS NOT NULL GROUP BY ls.arm, ok, mature";
const SERIES_REACTIVATED: &str = "SELECT ls.arm, \
     CAST(CASE WHEN EXISTS (SELECT 1 FROM subscriptions s WHERE s.customer = ls.customer AND s.created > ls.started_at \
     AND s.created <= ls.started_at + $2) THEN 1 ELSE 0 END AS BIGINT) AS ok, \
     CAST(CASE WHEN ls.started_at + $2 <= $3 THEN 1 ELSE 0 END AS BIGINT) AS mature, COUNT(*) \
     FROM lifecycle_series ls WHERE ls.campaign = $1 AND ls.arm IS NOT NULL GROUP BY ls.arm, ok, mature";
const SERIES_ACTIVE_AGAIN: &str = "SELECT ls.arm, \
     CAST(CASE WHEN EXISTS (SELECT 1 FROM activity_daily d WHERE d.customer = ls.customer AND d.count > 0 \
     AND d.day > ls.started_at / 86400 AND d.day <= (ls.started_at + $2) / 86400) THEN 1 ELSE 0 END AS BIGINT) AS ok, \
     CAST(CASE WHEN ls.started_at + $2 <= $3 THEN 1 ELSE 0 END AS BIGINT) AS mature, COUNT(*) \
     FROM lifecycle_series ls WHERE ls.campaign = $1 AND ls.arm IS NOT NULL GROUP BY ls.arm, ok, mature";
/// Save-offer sessions by variant: still subscribed `$2` seconds after the session began.
const SAVE_RETENTION: &str = "SELECT c.variant, \
     CAST(CASE WHEN s.id IS NOT NULL AND (s.ended_at IS NULL OR s.ended_at > c.started_at + $2) THEN 1 ELSE 0 END AS BIGINT) AS ok, \
     CAST(CASE WHEN c.started_at + $2 <= $3 THEN 1 ELSE 0 END AS BIGINT) AS mature, COUNT(*) \
     FROM cancel_sessions c LEFT JOIN subscriptions s ON s.id = c.subscription \
     WHERE c.experiment = $1 AND c.variant IS NOT NULL AND c.started_at IS NOT NULL \
     AND (c.outcome IS NULL OR c.outcome <> 'resumed') GROUP BY c.variant, ok, mature";

/// The outcome each lifecycle campaign is measured on, and its window in days.
pub fn series_outcome(campaign: &str) -> Option<(&'static str, i64)> {
    match campaign {
        "onboarding" | "trial_onboarding" => Some(("paying_at_day_60", 60)),
        "winback" => Some(("reactivated_within_90_days", 90)),
        "reengagement" => Some(("active_again_within_14_days", 14)),
        _ => None,
    }
}

/// Rows of (arm, ok, mature, n) as arm counts: decided once the window passed, or as soon as
/// the outcome happened when `early` (a reactivation or a return can't be undone).
fn tally(rows: Vec<(String, i64, i64, i64)>, early: bool) -> BTreeMap<String, crate::cancel::ArmCounts> {
    let mut out: BTreeMap<String, crate::cancel::ArmCounts> = BTreeMap::new();
    for (arm, ok, mature, n) in rows {
        let c = out.entry(arm).or_default();
        if mature == 1 || (early && ok == 1) {
            c.decided += n;
            c.successes += ok * n;
        } else {
            c.undecided += n;
        }
    }
    out
}

impl Store {
    /// Each arm of lifecycle campaign `campaign` on its outcome (`series_outcome`) at `now`.
    pub async fn series_outcomes(
        &self,
        campaign: &str,
        now: i64,
    ) -> Result<BTreeMap<String, crate::cancel::ArmCounts>, StoreError> {
        let Some((_, days)) = series_outcome(campaign) else { return Ok(BTreeMap::new()) };
        let (sql, early) = match campaign {
            "winback" => (SERIES_REACTIVATED, true),
            "reengagement" => (SERIES_ACTIVE_AGAIN, true),
            _ => (SERIES_PAYING, false),
        };
        let window = days * 86_400;
        let rows = self.with_conn(async |c| fetch!(c, fetch_all, (String, i64, i64, i64), sql, campaign, window, now)).await?;
        Ok(tally(rows, early))
    }

    /// Each variant of save-offer experiment `name`: still subscribed `days` after the
    /// session began (decided once that many days passed).
    pub async fn save_retention(
        &self,
        name: &str,
        days: i64,
        now: i64,
    ) -> Result<BTreeMap<String, crate::cancel::ArmCounts>, StoreError> {
        let window = days * 86_400;
        let rows =
            self.with_conn(async |c| fetch!(c, fetch_all, (String, i64, i64, i64), SAVE_RETENTION, name, window, now)).await?;
        Ok(tally(rows, false))
    }

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
