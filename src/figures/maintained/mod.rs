//! The figures one customer contributes to the owner's numbers, so the store can keep
//! per-month totals up to date by the difference a recomputed customer makes instead of
//! recomputing the whole history on every read.
//!
//! A customer's contribution is [`report::compute`] over a timeline holding only that
//! customer's subscriptions, discounts and failed invoices: the same arithmetic as a
//! whole-history report, so whatever that computation learns flows through here.
//!
//! A contribution is computed from the recorded history as seen from an instant `now`: the
//! changes that happen by the clock alone (a pause's `resumes_at`, a discount's `end`) are
//! applied at the month boundaries that follow them when they fall in `now`'s month or
//! before. After the month of the last such change instant the figures are steady; from
//! [`STEADY_AFTER`] months later every month repeats the same row (the *tail*), which the
//! totals hold once, from its first month on. A change instant in a later month makes the
//! contribution *due* at the start of that month ([`due_at`]): the store lists it in an
//! indexed table and the scheduler recomputes the customer once the clock passes it, so a
//! contribution never needs correcting when it is read.

use serde::{Deserialize, Serialize};

use crate::domain::month::Month;
use crate::domain::timeline::Timeline;
use crate::figures::report;

mod row;

pub use row::{COUNTS, MONEY, Row, UNRESOLVED, UNRESOLVED_PRICES};

/// Months after the month of the last change instant until a customer's row repeats: one
/// for the boundary after the change, twelve more for the 12-month NRR and the cohort's
/// 12-month retention that look back a year.
pub const STEADY_AFTER: i32 = 13;
/// Change instants further than this many months after a customer's first month (a pause
/// "resuming" in 2999) are treated as never happening within the figures.
const HORIZON_MONTHS: i32 = 240;

/// A customer's cohort: the month it first became active, and its figures at the offsets
/// cohort retention is reported at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    /// Months since 1970-01.
    pub month: i32,
    pub customers: i64,
    pub mrr_end_of_cohort_month: f64,
    pub active_at: [i64; 4],
    pub mrr_at: [f64; 4],
}

impl Cohort {
    pub fn add(&mut self, other: &Cohort, sign: i64) {
        self.customers += sign * other.customers;
        self.mrr_end_of_cohort_month += sign as f64 * other.mrr_end_of_cohort_month;
        for i in 0..4 {
            self.active_at[i] += sign * other.active_at[i];
            self.mrr_at[i] += sign as f64 * other.mrr_at[i];
        }
    }
}

/// Consecutive months with the same row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// First month (months since 1970-01).
    pub from: i32,
    pub months: i32,
    pub row: Row,
}

/// What one customer contributes in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerFigures {
    #[serde(skip)]
    pub currency: String,
    /// The first month anything of this customer happened in (months since 1970-01).
    pub first: i32,
    /// Months before `tail_from` whose row is not zero.
    pub runs: Vec<Run>,
    pub cohort: Option<Cohort>,
    /// From this month on, every month's row is `tail`.
    pub tail_from: i32,
    pub tail: Row,
}

fn epoch() -> Month {
    Month::new(1970, 1).unwrap_or_else(|| Month::of(0))
}

/// A month as stored: months since 1970-01.
pub fn month_index(m: Month) -> i32 {
    m.since(epoch())
}

/// A stored month index as a month.
pub fn month_at(index: i32) -> Month {
    epoch().plus(index)
}

impl CustomerFigures {
    /// Every month's row before the tail, one by one.
    pub fn months(&self) -> impl Iterator<Item = (i32, &Row)> {
        self.runs.iter().flat_map(|r| (0..r.months).map(move |k| (r.from + k, &r.row)))
    }
}

/// The figures of the customer whose subscriptions, discounts and failed invoices make up
/// `own` (one customer's timeline), one entry per currency it has anything in, as seen at
/// `now`: exact for every month before [`due_at`]`(own, now)`.
pub fn customer_figures(own: &Timeline, now: i64) -> Vec<CustomerFigures> {
    let Some(first) = own.first_month() else { return Vec::new() };
    let horizon = first.plus(HORIZON_MONTHS);
    let seen = Month::of(now);
    let last = change_instants(own).map(Month::of).filter(|m| *m <= seen).max().unwrap_or(first).max(first).min(horizon);
    let end = last.plus(STEADY_AFTER);
    own.currencies()
        .into_iter()
        .map(|currency| {
            let r = report::compute(own, &currency, first, end);
            let mut runs: Vec<Run> = Vec::new();
            let mut tail = Row::default();
            for (i, (f, failed)) in r.months.iter().zip(&r.failed).enumerate() {
                let mut row = Row::of(f, failed);
                let month_end = first.plus(i as i32 + 1).start();
                row.counts[UNRESOLVED] = i64::try_from(own.unresolved_discounts(&currency, month_end)).unwrap_or(0);
                row.counts[UNRESOLVED_PRICES] = i64::try_from(own.unresolved_prices(&currency, month_end)).unwrap_or(0);
                let m = month_index(first) + i as i32;
                if i + 1 == r.months.len() {
                    tail = row;
                    break;
                }
                if row.is_zero() {
                    continue;
                }
                match runs.last_mut() {
                    Some(run) if run.row == row && run.from + run.months == m => run.months += 1,
                    _ => runs.push(Run { from: m, months: 1, row }),
                }
            }
            let cohort = r.cohorts.iter().enumerate().find(|(_, c)| c.customers > 0).map(|(i, c)| Cohort {
                month: month_index(first) + i as i32,
                customers: i64::try_from(c.customers).unwrap_or(0),
                mrr_end_of_cohort_month: c.mrr_end_of_cohort_month,
                active_at: c.active_at.map(|a| a.and_then(|a| i64::try_from(a).ok()).unwrap_or(0)),
                mrr_at: c.mrr_at.map(|m| m.unwrap_or(0.0)),
            });
            CustomerFigures { currency, first: month_index(first), runs, cohort, tail_from: month_index(end), tail }
        })
        .collect()
}

/// When the figures [`customer_figures`] gives at `now` stop being exact: the start of the
/// first month after `now`'s holding a change instant (a pause resuming, a discount ending),
/// if there is one within the figures' horizon. Always later than `now`.
pub fn due_at(own: &Timeline, now: i64) -> Option<i64> {
    let first = own.first_month()?;
    let horizon = first.plus(HORIZON_MONTHS);
    let seen = Month::of(now);
    change_instants(own).map(Month::of).filter(|m| *m > seen && *m <= horizon).min().map(Month::start)
}

/// Every instant at which this customer's figures can change: its snapshots, the end of a
/// pause or a discount it has, its first payment failures.
fn change_instants(own: &Timeline) -> impl Iterator<Item = i64> + '_ {
    let snapshots = own.subscriptions.iter().flat_map(|s| &s.snapshots);
    let of_snapshots = snapshots.clone().flat_map(|s| [Some(s.effective_at), s.pause_resumes_at]).flatten();
    // Every discount of this customer: when it starts, is deleted, or ends by its dates
    // (which depend on the billing interval of each snapshot).
    let of_discounts = snapshots.flat_map(move |s| {
        own.discounts.values().flat_map(move |d| {
            let terms = own.terms_of(d);
            [d.starts_at, d.deleted_at, d.effective_end(terms, s.interval_months)].into_iter().flatten()
        })
    });
    let of_failures = own.failed_invoices.iter().map(|i| i.first_failed_at);
    // A finalized invoice line changes a metered or tax-inclusive item's amount.
    let of_lines = own.item_lines.values().flatten().map(|l| l.at);
    of_snapshots.chain(of_discounts).chain(of_failures).chain(of_lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::timeline::{Snapshot, SubscriptionHistory};

    fn snap(at: i64, status: &str, mrr: f64) -> Snapshot {
        Snapshot {
            effective_at: at,
            rank: if status == "canceled" { 2 } else { 0 },
            event_id: format!("evt_{at}"),
            status: status.into(),
            base_mrr: mrr,
            collection_paused: false,
            pause_resumes_at: None,
            discounts: vec![],
            items: vec![],
            cancel_reason: None,
            interval_months: 1.0,
        }
    }

    #[test]
    fn a_customer_contributes_runs_and_a_steady_tail_that_match_a_long_report() {
        let jan = Month::parse("2025-01").expect("month");
        let mut paused = snap(jan.plus(3).start() + 5, "active", 1000.0);
        paused.collection_paused = true;
        paused.pause_resumes_at = Some(jan.plus(5).start() + 7);
        let own = Timeline {
            subscriptions: vec![SubscriptionHistory {
                id: "sub_1".into(),
                customer: "cus_1".into(),
                currency: "usd".into(),
                snapshots: vec![snap(jan.start() + 10, "active", 1000.0), paused],
            }],
            ..Timeline::default()
        };
        let figures = customer_figures(&own, jan.plus(6).start());
        assert_eq!(figures.len(), 1);
        let f = &figures[0];
        assert_eq!(f.tail_from, month_index(jan.plus(5 + STEADY_AFTER)));
        // Every month of a report reaching well past the tail equals the stored row.
        let long = report::compute(&own, "usd", jan, jan.plus(60));
        for (i, (m, failed)) in long.months.iter().zip(&long.failed).enumerate() {
            let at = month_index(jan) + i as i32;
            let stored =
                if at >= f.tail_from { f.tail } else { f.months().find(|(k, _)| *k == at).map(|(_, r)| *r).unwrap_or_default() };
            let (mut expected, failed_expected) = stored.figures(m.nrr_12m.is_some());
            if m.nrr_12m.is_none() {
                expected.nrr_12m = None;
            }
            assert_eq!((&expected, &failed_expected), (m, failed), "month {}", jan.plus(i as i32));
        }
        assert_eq!(f.cohort.map(|c| (c.month, c.customers)), Some((month_index(jan), 1)));
    }

    #[test]
    fn a_change_after_now_makes_the_figures_due_at_the_start_of_its_month() {
        let jan = Month::parse("2025-01").expect("month");
        let mut paused = snap(jan.start() + 5, "active", 1000.0);
        paused.collection_paused = true;
        paused.pause_resumes_at = Some(jan.plus(20).start() + 7);
        let own = Timeline {
            subscriptions: vec![SubscriptionHistory {
                id: "sub_1".into(),
                customer: "cus_1".into(),
                currency: "usd".into(),
                snapshots: vec![snap(jan.plus(-1).start() + 10, "active", 1000.0), paused],
            }],
            ..Timeline::default()
        };
        let now = jan.start() + 86_400;
        assert_eq!(due_at(&own, now), Some(jan.plus(20).start()));
        let early = customer_figures(&own, now);
        // Seen from January the pause never ends within the computed months.
        assert_eq!(early[0].tail_from, month_index(jan.plus(STEADY_AFTER)));
        assert_eq!(early[0].tail.money[1], 0.0);
        // Seen once the resume's month came, it does, and nothing more is due.
        let later = jan.plus(20).start() + 86_400;
        assert_eq!(due_at(&own, later), None);
        let late = customer_figures(&own, later);
        assert_eq!(late[0].tail_from, month_index(jan.plus(20 + STEADY_AFTER)));
        assert_eq!(late[0].tail.money[1], 1000.0);
    }
}
