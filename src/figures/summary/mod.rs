//! The owner summary's JSON (`docs/metrics.md`): rates and money rounded for the wire, field
//! names fixed by the interface.
//!
//! `headline`: the summary and its monthly row; `sections`: the summary's optional sections
//! (emails, at risk, experiments, saves, recovery attribution, NPS). This file computes the
//! headline from a [`Report`].

mod headline;
mod sections;

pub use self::headline::{
    CancelFlowJson, CancelOutcomes, CohortJson, CurrencyJson, FailedPaymentsJson, GivenBackJson, Health, MonthlyJson,
    MovementsJson, Retention, Summary,
};
pub use self::sections::{
    ArmJson, AtRiskCustomerJson, AtRiskJson, EmailsJson, ExperimentJson, LiftJson, NpsJson, NpsMonthJson, RecoveredJson,
    RecoveryAttributionJson, RecoveryVariantJson, SaveCountsJson, SaveVariantJson, SavesJson, VariantJson,
};

use crate::domain::month::Month;
use crate::figures::report::{CohortFigures, FailedFigures, Movements, Report};

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
    let ltv = ltv(report, i, arpu);
    let retention_12m = i.checked_sub(12).and_then(|c| cohort_json(report, c, m).logo_retention.m12);
    MonthlyJson {
        month: m.to_string(),
        currency: report.currency.clone(),
        mrr_start: money(f.mrr_start),
        mrr_end: money(f.mrr_end),
        mrr_movements: movements_json(mv),
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

/// Lifetime value in month `i`: ARPU net of the money given back, divided by the average
/// customer churn rate of the three months to `i`.
fn ltv(report: &Report, i: usize, arpu: Option<f64>) -> Option<f64> {
    let f = &report.months[i];
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
    net_arpu.zip(avg_churn).filter(|(_, c)| *c > 0.0).map(|(a, c)| money(a / c))
}

/// The movements as reported: losses negative.
fn movements_json(mv: &Movements) -> MovementsJson {
    MovementsJson {
        new: money(mv.new),
        reactivation: money(mv.reactivation),
        expansion: money(mv.expansion),
        contraction: money(-mv.contraction),
        paused: money(-mv.paused),
        churned: money(-mv.churned),
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
