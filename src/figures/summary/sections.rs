//! The summary's optional sections: emails, at risk, experiments, saves, recovery
//! attribution, NPS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// NPS: promoters (9–10) minus detractors (0–6) as a percentage of the answers, −100 to 100;
/// `null` (and `too_few`) below the configured minimum sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NpsJson {
    /// The window: the 12 months `from_month`..=`to_month`.
    pub from_month: String,
    pub to_month: String,
    pub n: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    pub score: Option<f64>,
    pub min_sample: u64,
    pub too_few: bool,
    /// Each month of the window on its own, oldest first.
    pub by_month: Vec<NpsMonthJson>,
}

/// One month's NPS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NpsMonthJson {
    pub month: String,
    pub n: u64,
    pub score: Option<f64>,
    pub too_few: bool,
}

/// Recovered payments by attribution: paid before any email, after an email was sent, or
/// after the customer clicked the update-payment link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryAttributionJson {
    pub before_email: RecoveredJson,
    pub after_email: RecoveredJson,
    pub after_click: RecoveredJson,
}

/// Recovered payments and their amount (minor units).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveredJson {
    pub cases: u64,
    pub amount: u64,
}

/// Saves by state: `pending` until billing proves them (`confirmed`) or the subscription ends
/// or is set to cancel first (`reversed`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavesJson {
    pub pending: u64,
    pub confirmed: u64,
    pub reversed: u64,
    /// confirmed ÷ (confirmed + reversed); `null` while none is decided.
    pub confirmed_rate: Option<f64>,
    /// The MRR of the confirmed saves, in the summary's currency (minor units, before
    /// discounts, as the subscription stood when the save was confirmed).
    pub confirmed_saved_mrr: f64,
    /// Paused customers whose pause ended and who paid again ÷ pauses decided (resumed and
    /// paid, or ended/set to cancel first); `null` while none is decided.
    pub paused_resume_rate: Option<f64>,
    /// Counts per outcome (`paused`, `downgraded`, `discounted`, `resumed`).
    pub by_outcome: BTreeMap<String, SaveCountsJson>,
}

/// One outcome's saves by state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SaveCountsJson {
    pub pending: u64,
    pub confirmed: u64,
    pub reversed: u64,
}

/// The at-risk list and its size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AtRiskJson {
    /// Customers at risk now (the list holds at most the first 500, longest at risk first).
    pub count: u64,
    /// Episodes that ended because activity came back / because the customer stopped paying.
    pub reengaged: u64,
    pub ended: u64,
    pub customers: Vec<AtRiskCustomerJson>,
}

/// One at-risk customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AtRiskCustomerJson {
    pub customer: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// `inactive` or `activity_drop`.
    pub reason: String,
    /// Unix seconds: when the episode began.
    pub since: i64,
    pub last_activity_at: Option<i64>,
    pub recent_week: i64,
    pub baseline_week: i64,
}

/// One experiment's results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentJson {
    pub name: String,
    /// `save_offer` (cancel-flow offers), `email` (templates; measured on dunning recovery) or
    /// `lifecycle_email` (a lifecycle series with a holdout, named `lifecycle:<campaign>`; arms
    /// `treated` and `holdout`).
    pub kind: String,
    pub percent_b: u8,
    pub variants: Vec<VariantJson>,
    /// Share of customers held out (no offer; for email experiments no dunning email).
    #[serde(default)]
    pub holdout_percent: u8,
    /// Every arm (`a`, `b`, and `holdout` when there is one) measured on one outcome, with
    /// the difference against the holdout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arms: Vec<ArmJson>,
    /// Save-offer experiments: every arm on `retained_30d` and `retained_90d` (still
    /// subscribed that many days after the session), against the holdout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retention: Vec<ArmJson>,
}

/// One arm of an experiment on its outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmJson {
    pub variant: String,
    /// `kept` (save offers: confirmed save, or still paying after an abandoned session) or
    /// `recovered` (email experiments: the failed payment was paid).
    pub outcome: String,
    pub successes: u64,
    /// Customers whose outcome is known (the rate's denominator).
    pub decided: u64,
    pub undecided: u64,
    /// successes ÷ decided; null while none is decided.
    pub rate: Option<f64>,
    /// `holdout` (this is it), `no_holdout`, `not_enough_data` (fewer than the minimum decided
    /// in this arm or the holdout), or `measured`.
    pub status: String,
    /// rate − holdout's rate with its 95 % interval, when `measured`.
    pub lift: Option<LiftJson>,
}

/// A difference of two rates and its 95 % confidence interval (Newcombe's hybrid score).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiftJson {
    pub difference: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// One variant's counts and the rate they make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VariantJson {
    Save(SaveVariantJson),
    Recovery(RecoveryVariantJson),
}

/// A save-offer variant: cancel-flow sessions that began in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SaveVariantJson {
    pub variant: String,
    pub sessions: u64,
    pub saved: u64,
    pub canceled: u64,
    pub abandoned: u64,
    pub in_progress: u64,
    /// saved ÷ (saved + canceled + abandoned); null when none ended.
    pub save_rate: Option<f64>,
}

/// An email variant: dunning cases that opened in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryVariantJson {
    pub variant: String,
    pub cases: u64,
    pub recovered: u64,
    pub lost: u64,
    pub open: u64,
    /// Minor units recovered, in the summary's currency only.
    pub recovered_amount: u64,
    /// recovered ÷ (recovered + lost); null when no case closed.
    pub recovery_rate: Option<f64>,
}

/// Totals of the email outbox by status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmailsJson {
    pub sent: u64,
    pub pending: u64,
    pub failed: u64,
    pub bounced: u64,
    pub suppressed: u64,
}
