//! The summary's headline JSON (`GET /api/summary`) and its monthly row.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::figures::summary::sections::{AtRiskJson, EmailsJson, ExperimentJson, NpsJson, RecoveryAttributionJson, SavesJson};

/// MRR movements as reported: positive for gains, negative for losses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MovementsJson {
    pub new: f64,
    pub reactivation: f64,
    pub expansion: f64,
    pub contraction: f64,
    pub paused: f64,
    pub churned: f64,
}

/// Monthly churn and 12-month retention against the usual SaaS bands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `good` (< 5 %), `needs_improvement` (5–10 %), `critical` (> 10 %).
    pub monthly_churn: Option<String>,
    /// `good` (> 70 %), `needs_improvement` (50–70 %), `critical` (< 50 %): the 12-month logo
    /// retention of the cohort 12 months before the summary's month.
    pub retention_12m: Option<String>,
}

/// Retention at k ∈ {1, 3, 6, 12} months; `null` where cohort+k is after the summary's month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    #[serde(rename = "1")]
    pub m1: Option<f64>,
    #[serde(rename = "3")]
    pub m3: Option<f64>,
    #[serde(rename = "6")]
    pub m6: Option<f64>,
    #[serde(rename = "12")]
    pub m12: Option<f64>,
}

/// One cohort row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CohortJson {
    pub cohort: String,
    pub customers: u64,
    pub mrr_end_of_cohort_month: f64,
    pub logo_retention: Retention,
    pub revenue_retention: Retention,
}

/// Failed-payment recovery for the month of first failure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailedPaymentsJson {
    pub month: String,
    pub failed_invoices: u64,
    pub recovered: u64,
    pub lost: u64,
    pub pending: u64,
    pub recovery_rate: Option<f64>,
    /// Recovered money kept: less what was later refunded or lost to a dispute.
    pub recovered_amount: i64,
    pub lost_amount: i64,
    /// Of the recovered invoices' money: later refunded or credited back / lost to disputes.
    pub refunded_amount: i64,
    pub disputed_amount: i64,
}

/// Money given back in the month, dated when it was given back (minor units).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GivenBackJson {
    pub refunds: i64,
    pub lost_disputes: i64,
    pub credit_notes: i64,
    pub total: i64,
}

/// Outcomes of cancel-flow sessions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CancelOutcomes {
    pub paused: u64,
    pub downgraded: u64,
    pub discounted: u64,
    pub canceled: u64,
    pub abandoned: u64,
    /// Scheduled cancellations undone ("Keep my subscription"); not in `saved`.
    pub resumed: u64,
}

/// The cancel flow's sessions in the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CancelFlowJson {
    pub sessions: u64,
    pub saved: u64,
    pub save_rate: Option<f64>,
    pub outcomes: CancelOutcomes,
    pub reasons: BTreeMap<String, u64>,
}

/// The figures of one month (the summary without cohorts and cancel flow; one row of
/// `/api/metrics/monthly`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MonthlyJson {
    pub month: String,
    pub currency: String,
    pub mrr_start: f64,
    pub mrr_end: f64,
    pub mrr_movements: MovementsJson,
    pub active_customers_start: u64,
    pub active_customers_end: u64,
    pub new_customers: u64,
    pub churned_customers: u64,
    pub churned_customers_voluntary: u64,
    pub churned_customers_involuntary: u64,
    pub customer_churn_rate: Option<f64>,
    pub customer_churn_rate_voluntary: Option<f64>,
    pub customer_churn_rate_involuntary: Option<f64>,
    pub gross_revenue_churn_rate: Option<f64>,
    pub net_revenue_churn_rate: Option<f64>,
    pub nrr: Option<f64>,
    pub nrr_12m: Option<f64>,
    pub arpu: Option<f64>,
    pub ltv: Option<f64>,
    pub health: Health,
    pub failed_payments: FailedPaymentsJson,
    pub given_back: GivenBackJson,
}

/// One currency's headline figures in the month. Amounts in different currencies are never
/// added together: the summary's other figures are for its `currency` alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurrencyJson {
    pub currency: String,
    pub mrr_start: f64,
    pub mrr_end: f64,
    pub active_customers_end: u64,
}

/// `GET /api/summary`: field names are part of the interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub month: String,
    pub currency: String,
    /// Every currency the history holds (the summary's own included), each in its own
    /// section: pick one with `?currency=`.
    #[serde(default)]
    pub currencies: Vec<CurrencyJson>,
    pub mrr_start: f64,
    pub mrr_end: f64,
    pub mrr_movements: MovementsJson,
    pub active_customers_start: u64,
    pub active_customers_end: u64,
    pub new_customers: u64,
    pub churned_customers: u64,
    pub churned_customers_voluntary: u64,
    pub churned_customers_involuntary: u64,
    pub customer_churn_rate: Option<f64>,
    pub customer_churn_rate_voluntary: Option<f64>,
    pub customer_churn_rate_involuntary: Option<f64>,
    pub gross_revenue_churn_rate: Option<f64>,
    pub net_revenue_churn_rate: Option<f64>,
    pub nrr: Option<f64>,
    pub nrr_12m: Option<f64>,
    pub arpu: Option<f64>,
    pub ltv: Option<f64>,
    pub health: Health,
    pub cohorts: Vec<CohortJson>,
    pub failed_payments: FailedPaymentsJson,
    pub given_back: GivenBackJson,
    pub cancel_flow: CancelFlowJson,
    /// Discounts applying at the end of the month to an active subscription whose coupon
    /// terms Holdfast does not know (those subscriptions are counted at list price).
    #[serde(default)]
    pub unresolved_discounts: u64,
    /// Items of subscriptions active now, at the end of the month (or now, for the current
    /// month), whose amount is unknown: a tiered price whose tiers were never seen, a metered
    /// price without a finalized invoice line (counted 0).
    #[serde(default)]
    pub unresolved_prices: u64,
    /// The email outbox now (all time, not per month): sent, still pending, failed after
    /// every retry, bounced, withheld (suppressed) — beyond metrics.md's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails: Option<EmailsJson>,
    /// Customers at risk now from their product activity (all time, not per month).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_risk: Option<AtRiskJson>,
    /// A/B experiments in force, with per-variant results over their whole life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiments: Option<Vec<ExperimentJson>>,
    /// The month's cancel-flow saves checked against billing (sessions started in the month,
    /// by their state now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saves: Option<SavesJson>,
    /// Failed payments recovered in the month (in the summary's currency) by what preceded
    /// the payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_attribution: Option<RecoveryAttributionJson>,
    /// NPS over the 12 months to the summary's month, and its trend by month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nps: Option<NpsJson>,
}
