//! The figures owners look for, for one month and currency: MRR and ARR with the change
//! against last month, money recovered, the save rate, trial conversion, MRR by plan, the
//! quick ratio, renewals of long-interval plans and retention by acquisition channel. Every
//! rate carries its sample size, and below the configured minimum says "too few to judge"
//! instead of a value band. `GET /api/figures?month=YYYY-MM[&currency=usd]` (owner) and the
//! dashboard's "Figures" section.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::month::Month;
use crate::figures::{FigureSettings, Reports, Summary};
use crate::owner::dashboard::labels::money;
use crate::owner::views::{FigureCounts, PlanGroup};
use crate::store::{Store, StoreError};
use crate::web::auth::Owner;
use crate::web::error::ApiError;

/// A rate with the cases it stands on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate {
    /// `numerator / sample`, `None` when there is no case at all.
    pub value: Option<f64>,
    pub numerator: u64,
    pub sample: u64,
    /// `sample` is below the minimum: shown as "too few to judge", never banded.
    pub too_few: bool,
    /// What the page shows: `42% (n = 31)` or `too few to judge (n = 4)`.
    pub text: String,
}

impl Rate {
    pub fn of(numerator: u64, sample: u64, min_sample: u64) -> Self {
        let value = (sample > 0).then(|| numerator as f64 / sample as f64);
        let too_few = sample < min_sample;
        let text = match value {
            None => "no cases".into(),
            _ if too_few => format!("too few to judge (n = {sample})"),
            Some(v) => format!("{:.0}% (n = {sample})", v * 100.0),
        };
        Self { value, numerator, sample, too_few, text }
    }
}

/// MRR of one plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanMrr {
    pub plan: String,
    pub mrr: f64,
    pub mrr_text: String,
    pub subscriptions: u64,
}

/// One acquisition channel's cohort: the customers it brought (who ever subscribed), how
/// many still pay, and how many were still subscribed 1, 3, 6 and 12 months after their first
/// subscription began (each over the customers acquired at least that long ago).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelRetention {
    pub channel: String,
    pub customers: u64,
    pub retention: Rate,
    pub after: Vec<CohortPoint>,
}

/// Retention `months` after acquisition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortPoint {
    pub months: u32,
    pub rate: Rate,
}

pub use crate::owner::views::COHORT_MONTHS;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub month: String,
    pub currency: String,
    pub min_sample: u64,
    pub mrr: f64,
    pub arr: f64,
    pub mrr_last_month: f64,
    pub mrr_change: f64,
    /// `None` when last month had no MRR.
    pub mrr_change_pct: Option<f64>,
    pub arr_change: f64,
    pub recovered_this_month: i64,
    pub recovered_payments: u64,
    /// The confirmed-save rate: of the cancel-flow sessions started this month whose fate is
    /// known (the customer cancelled, or took an offer and the save has since been confirmed
    /// or reversed by billing), the share confirmed. Pending saves and sessions left without a
    /// choice are not in the sample.
    pub save_rate: Rate,
    /// Saves of this month's sessions not yet decided, and reversed ones.
    pub saves_pending: u64,
    pub saves_reversed: u64,
    pub trial_conversion: Rate,
    /// (new + expansion + reactivation) ÷ (churn + contraction + paused); `None` without losses.
    pub quick_ratio: Option<f64>,
    /// Long-interval (yearly, or every 3+ months) subscriptions renewed ÷ renewals due.
    pub renewal_rate: Rate,
    /// Customer churn this month over the customers active at its start.
    pub churn: Rate,
    /// The cohort of twelve months ago: share still active.
    pub retention_12m: Rate,
    pub mrr_by_plan: Vec<PlanMrr>,
    pub channel_key: String,
    pub channels: Vec<ChannelRetention>,
    /// Display strings.
    pub text: BTreeMap<&'static str, String>,
}

/// A plan's name as shown: its product's (or price's nickname), else the price id.
fn plan_label(g: &PlanGroup) -> String {
    g.name.clone().or_else(|| g.price_id.clone()).unwrap_or_else(|| "unnamed plan".into())
}

/// The live MRR by plan, biggest first; prices that show under one name are one plan.
fn mrr_by_plan(counts: &FigureCounts, currency: &str) -> Vec<PlanMrr> {
    let mut by_plan: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for g in &counts.plans {
        let e = by_plan.entry(plan_label(g)).or_default();
        e.0 += g.mrr;
        e.1 += u64::try_from(g.subscriptions).unwrap_or(0);
    }
    let mut out: Vec<PlanMrr> = by_plan
        .into_iter()
        .map(|(plan, (mrr, subscriptions))| PlanMrr { plan, mrr, mrr_text: money(mrr, Some(currency)), subscriptions })
        .collect();
    out.sort_by(|a, b| b.mrr.total_cmp(&a.mrr));
    out
}

/// A channel's name as shown: the metadata value trimmed and cut to 60 characters, `(none)`
/// when absent or empty.
fn channel_name(value: Option<&str>) -> String {
    value.map(str::trim).filter(|s| !s.is_empty()).map_or_else(|| "(none)".to_owned(), |s| s.chars().take(60).collect())
}

fn channels(counts: &FigureCounts, min_sample: u64) -> Vec<ChannelRetention> {
    // Per channel: customers, still live, and per cohort age (reached it, still subscribed).
    // Values that show as the same name are one channel.
    type Ages = [(u64, u64); COHORT_MONTHS.len()];
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut by: BTreeMap<String, (u64, u64, Ages)> = BTreeMap::new();
    for g in &counts.channels {
        let e = by.entry(channel_name(g.value.as_deref())).or_default();
        e.0 += count(g.customers);
        e.1 += count(g.live);
        for (a, (reached, stayed)) in e.2.iter_mut().zip(g.ages) {
            a.0 += count(reached);
            a.1 += count(stayed);
        }
    }
    let mut out: Vec<ChannelRetention> = by
        .into_iter()
        .map(|(channel, (customers, live, ages))| ChannelRetention {
            channel,
            customers,
            retention: Rate::of(live, customers, min_sample),
            after: COHORT_MONTHS
                .iter()
                .zip(ages)
                .map(|(months, (sample, stayed))| CohortPoint { months: *months, rate: Rate::of(stayed, sample, min_sample) })
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| b.customers.cmp(&a.customers).then_with(|| a.channel.cmp(&b.channel)));
    out
}

/// The figures from this month's summary and the store's counts.
pub fn figures(s: &Summary, counts: &FigureCounts, settings: &FigureSettings) -> Figures {
    let min = settings.min_sample;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let cur = s.currency.as_str();
    let mrr_change = s.mrr_end - s.mrr_start;
    let m = &s.mrr_movements;
    let gains = m.new + m.expansion + m.reactivation;
    let losses = m.churned + m.contraction + m.paused;
    let decided = count(counts.saves_confirmed + counts.saves_reversed + counts.sessions_canceled);
    let retention_12m = {
        let cohort = Month::parse(&s.month).ok().map(|m| m.plus(-12).to_string());
        let c = s.cohorts.iter().find(|c| Some(&c.cohort) == cohort.as_ref());
        let customers = c.map_or(0, |c| c.customers);
        let share = c.and_then(|c| c.logo_retention.m12).unwrap_or(0.0);
        Rate::of((share * customers as f64).round() as u64, customers, min)
    };
    let churned = s.churned_customers;
    let mut text = BTreeMap::new();
    text.insert("mrr", money(s.mrr_end, Some(cur)));
    text.insert("arr", money(s.mrr_end * 12.0, Some(cur)));
    let sign = if mrr_change >= 0.0 { "+" } else { "−" };
    text.insert(
        "mrr_change",
        format!(
            "{sign}{} vs last month{}",
            money(mrr_change.abs(), Some(cur)),
            if s.mrr_start > 0.0 { format!(" ({sign}{:.1}%)", (mrr_change / s.mrr_start * 100.0).abs()) } else { String::new() }
        ),
    );
    text.insert("arr_change", format!("{sign}{} vs last month", money(mrr_change.abs() * 12.0, Some(cur))));
    text.insert("recovered", money(counts.recovered_amount as f64, Some(cur)));
    Figures {
        month: s.month.clone(),
        currency: s.currency.clone(),
        min_sample: min,
        mrr: s.mrr_end,
        arr: s.mrr_end * 12.0,
        mrr_last_month: s.mrr_start,
        mrr_change,
        mrr_change_pct: (s.mrr_start > 0.0).then(|| mrr_change / s.mrr_start),
        arr_change: mrr_change * 12.0,
        recovered_this_month: counts.recovered_amount,
        recovered_payments: count(counts.recovered_payments),
        save_rate: Rate::of(count(counts.saves_confirmed), decided, min),
        saves_pending: count(counts.saves_pending),
        saves_reversed: count(counts.saves_reversed),
        trial_conversion: Rate::of(count(counts.trials_converted), count(counts.trials_ended), min),
        quick_ratio: (losses > 0.0).then(|| gains / losses),
        renewal_rate: Rate::of(count(counts.renewed), count(counts.renewed + counts.lapsed), min),
        churn: Rate::of(churned, s.active_customers_start, min),
        retention_12m,
        mrr_by_plan: mrr_by_plan(counts, cur),
        channel_key: settings.channel_key.clone(),
        channels: channels(counts, min),
        text,
    }
}

/// Load the month's figures.
pub async fn load(
    reports: &Reports,
    store: &Store,
    settings: &FigureSettings,
    month: Month,
    currency: Option<&str>,
) -> Result<Figures, StoreError> {
    let summary = reports.summary(month, currency).await?;
    load_for(reports, store, settings, month, &summary).await
}

/// The month's figures around a summary already read (the dashboard's).
pub async fn load_for(
    reports: &Reports,
    store: &Store,
    settings: &FigureSettings,
    month: Month,
    summary: &Summary,
) -> Result<Figures, StoreError> {
    let counts = store
        .figure_counts(
            month.start(),
            month.plus(1).start(),
            reports.clock().now(),
            &summary.currency.to_lowercase(),
            &settings.channel_key,
        )
        .await?;
    Ok(figures(summary, &counts, settings))
}

#[derive(Debug, Deserialize)]
pub struct FiguresQuery {
    month: Option<String>,
    currency: Option<String>,
}

/// `GET /api/figures?month=YYYY-MM[&currency=usd]` (owner).
pub async fn get_figures_api(
    _owner: Owner,
    reports: web::Data<Reports>,
    store: web::Data<Store>,
    settings: web::Data<FigureSettings>,
    q: web::Query<FiguresQuery>,
) -> Result<HttpResponse, ApiError> {
    let month = match q.month.as_deref().map_or(Ok(reports.current_month()), Month::parse) {
        Ok(m) => m,
        Err(_) => return Err(ApiError::bad_request("bad_month", "month: expected YYYY-MM (e.g. 2025-04)")),
    };
    match load(&reports, &store, &settings, month, q.currency.as_deref()).await {
        Ok(f) => Ok(HttpResponse::Ok().json(f)),
        Err(e) => Err(ApiError::store("reading the month's figures")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_under_the_minimum_is_too_few_to_judge_and_says_its_number() {
        let small = Rate::of(1, 2, 20);
        assert!(small.too_few);
        assert_eq!(small.text, "too few to judge (n = 2)");
        let big = Rate::of(21, 30, 20);
        assert!(!big.too_few);
        assert_eq!(big.text, "70% (n = 30)");
        assert_eq!(Rate::of(0, 0, 1).text, "no cases");
    }

    #[test]
    fn channel_values_that_show_alike_are_one_channel() {
        let group = |value: Option<&str>, customers: i64, live: i64| crate::owner::views::ChannelGroup {
            value: value.map(str::to_owned),
            customers,
            live,
            ages: [(customers, live), (customers, live), (0, 0), (0, 0)],
        };
        let counts = FigureCounts {
            channels: vec![group(Some("ads"), 2, 1), group(Some(" ads "), 1, 1), group(None, 4, 0), group(Some(""), 1, 1)],
            ..FigureCounts::default()
        };
        let rows = channels(&counts, 1);
        let of = |name: &str| rows.iter().find(|r| r.channel == name).map(|r| (r.customers, r.retention.numerator));
        assert_eq!(of("ads"), Some((3, 2)));
        assert_eq!(of("(none)"), Some((5, 1)));
        assert_eq!(rows[0].channel, "(none)", "the biggest channel first");
        let ads = rows.iter().find(|r| r.channel == "ads").expect("ads");
        assert_eq!(
            ads.after.iter().map(|p| (p.rate.numerator, p.rate.sample)).collect::<Vec<_>>(),
            [(2, 3), (2, 3), (0, 0), (0, 0)]
        );
    }
}
