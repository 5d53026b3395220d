//! The owner summary's JSON (`docs/metrics.md`): rates and money rounded for the wire, field
//! names fixed by the interface.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::month::Month;
use crate::figures::report::CohortFigures;
use crate::figures::report::FailedFigures;
use crate::figures::report::Report;

/// Money in minor units, rounded to 2 decimals (never `-0.0`).
pub fn money(x: f64) -> f64 {
    let r = (x * 100.0).round() / 100.0;
    if r == 0.0 { 0.0 } else { r }
}

/// A fraction rounded to 6 decimals.
pub fn rate(x: f64) -> f64 {
    let r = (x * 1e6).round() / 1e6;
    if r == 0.0 { 0.0 } else { r }
}

/// `num ÷ den`, `None` when the denominator is 0.
fn ratio(num: f64, den: f64) -> Option<f64> {
    (den != 0.0).then(|| rate(num / den))
}

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

/// The band of a monthly customer churn rate.
pub fn churn_band(rate: f64) -> &'static str {
    if rate < 0.05 {
        "good"
    } else if rate <= 0.10 {
        "needs_improvement"
    } else {
        "critical"
    }
}

/// The band of a 12-month logo retention.
pub fn retention_band(rate: f64) -> &'static str {
    if rate > 0.70 {
        "good"
    } else if rate >= 0.50 {
        "needs_improvement"
    } else {
        "critical"
    }
}

/// Month `m` of a report (it must lie inside it) as its monthly row.
pub fn monthly(report: &Report, m: Month) -> MonthlyJson {
    let i = report.index(m).unwrap_or(0);
    let f = &report.months[i];
    let churn = |n: u64| ratio(n as f64, f.active_start as f64);
    let mv = &f.movements;
    let lost = mv.churned + mv.contraction + mv.paused;
    let arpu = (f.paying_end > 0).then(|| f.mrr_end / f.paying_end as f64);
    // Unrounded rates: LTV divides by them, and rounding first would move it by cents.
    let rates: Vec<f64> = report.months[i.saturating_sub(2)..=i]
        .iter()
        .filter(|g| g.active_start > 0)
        .map(|g| g.churned as f64 / g.active_start as f64)
        .collect();
    let avg_churn = (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64);
    // Money given back in the month (refunds, lost disputes, credit notes) is revenue the
    // customers did not leave with us: it comes off ARPU before dividing by churn.
    let given = f.given_back.total() as f64;
    let net_arpu = arpu.map(|a| (a - given / f.paying_end as f64).max(0.0));
    let ltv = net_arpu.zip(avg_churn).filter(|(_, c)| *c > 0.0).map(|(a, c)| money(a / c));
    let retention_12m = i.checked_sub(12).and_then(|c| cohort_json(report, c, m).logo_retention.m12);
    MonthlyJson {
        month: m.to_string(),
        currency: report.currency.clone(),
        mrr_start: money(f.mrr_start),
        mrr_end: money(f.mrr_end),
        mrr_movements: MovementsJson {
            new: money(mv.new),
            reactivation: money(mv.reactivation),
            expansion: money(mv.expansion),
            contraction: money(-mv.contraction),
            paused: money(-mv.paused),
            churned: money(-mv.churned),
        },
        active_customers_start: f.active_start,
        active_customers_end: f.active_end,
        new_customers: f.new_customers,
        churned_customers: f.churned,
        churned_customers_voluntary: f.churned - f.churned_involuntary,
        churned_customers_involuntary: f.churned_involuntary,
        customer_churn_rate: churn(f.churned),
        customer_churn_rate_voluntary: churn(f.churned - f.churned_involuntary),
        customer_churn_rate_involuntary: churn(f.churned_involuntary),
        gross_revenue_churn_rate: ratio(lost, f.mrr_start),
        net_revenue_churn_rate: ratio(lost - mv.expansion, f.mrr_start),
        nrr: ratio(f.mrr_start - lost + mv.expansion, f.mrr_start),
        nrr_12m: f.nrr_12m.and_then(|(num, den)| ratio(num, den)),
        arpu: arpu.map(money),
        ltv,
        health: Health {
            monthly_churn: churn(f.churned).map(|r| churn_band(r).to_owned()),
            retention_12m: retention_12m.map(|r| retention_band(r).to_owned()),
        },
        failed_payments: failed_json(&report.failed[i], m),
        given_back: GivenBackJson {
            refunds: f.given_back.refunds,
            lost_disputes: f.given_back.lost_disputes,
            credit_notes: f.given_back.credit_notes,
            total: f.given_back.total(),
        },
    }
}

fn failed_json(f: &FailedFigures, m: Month) -> FailedPaymentsJson {
    FailedPaymentsJson {
        month: m.to_string(),
        failed_invoices: f.failed,
        recovered: f.recovered,
        lost: f.lost,
        pending: f.pending,
        recovery_rate: ratio(f.recovered as f64, (f.recovered + f.lost) as f64),
        recovered_amount: f.recovered_amount,
        lost_amount: f.lost_amount,
        refunded_amount: f.refunded_amount,
        disputed_amount: f.disputed_amount,
    }
}

fn cohort_json(report: &Report, idx: usize, as_of: Month) -> CohortJson {
    let c: &CohortFigures = &report.cohorts[idx];
    let cohort = report.from.plus(idx as i32);
    let visible = |i: usize, k: i32| cohort.plus(k) <= as_of && c.active_at[i].is_some();
    let logo =
        |i: usize, k: i32| visible(i, k).then(|| c.active_at[i].and_then(|a| ratio(a as f64, c.customers as f64))).flatten();
    let revenue =
        |i: usize, k: i32| visible(i, k).then(|| c.mrr_at[i].and_then(|a| ratio(a, c.mrr_end_of_cohort_month))).flatten();
    CohortJson {
        cohort: cohort.to_string(),
        customers: c.customers,
        mrr_end_of_cohort_month: money(c.mrr_end_of_cohort_month),
        logo_retention: Retention { m1: logo(0, 1), m3: logo(1, 3), m6: logo(2, 6), m12: logo(3, 12) },
        revenue_retention: Retention { m1: revenue(0, 1), m3: revenue(1, 3), m6: revenue(2, 6), m12: revenue(3, 12) },
    }
}

/// The summary of month `m` (inside the report), with the given cancel-flow section.
pub fn summary(report: &Report, m: Month, cancel_flow: CancelFlowJson) -> Summary {
    let row = monthly(report, m);
    let last = report.index(m).unwrap_or(0);
    let cohorts = (0..=last).filter(|&i| report.cohorts[i].customers > 0).map(|i| cohort_json(report, i, m)).collect();
    Summary {
        currencies: vec![CurrencyJson {
            currency: row.currency.clone(),
            mrr_start: row.mrr_start,
            mrr_end: row.mrr_end,
            active_customers_end: row.active_customers_end,
        }],
        month: row.month,
        currency: row.currency,
        mrr_start: row.mrr_start,
        mrr_end: row.mrr_end,
        mrr_movements: row.mrr_movements,
        active_customers_start: row.active_customers_start,
        active_customers_end: row.active_customers_end,
        new_customers: row.new_customers,
        churned_customers: row.churned_customers,
        churned_customers_voluntary: row.churned_customers_voluntary,
        churned_customers_involuntary: row.churned_customers_involuntary,
        customer_churn_rate: row.customer_churn_rate,
        customer_churn_rate_voluntary: row.customer_churn_rate_voluntary,
        customer_churn_rate_involuntary: row.customer_churn_rate_involuntary,
        gross_revenue_churn_rate: row.gross_revenue_churn_rate,
        net_revenue_churn_rate: row.net_revenue_churn_rate,
        nrr: row.nrr,
        nrr_12m: row.nrr_12m,
        arpu: row.arpu,
        ltv: row.ltv,
        health: row.health,
        cohorts,
        failed_payments: row.failed_payments,
        given_back: row.given_back,
        cancel_flow,
        unresolved_discounts: 0,
        unresolved_prices: 0,
        emails: None,
        at_risk: None,
        experiments: None,
        saves: None,
        recovery_attribution: None,
        nps: None,
    }
}
