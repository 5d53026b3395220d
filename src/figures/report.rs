//! One pass over the timeline: per customer, MRR and activity at every month boundary, folded
//! into monthly figures, cohorts and failed-payment outcomes (`docs/metrics.md`).

use std::collections::{BTreeMap, HashMap};

use crate::domain::month::Month;
use crate::domain::timeline::{GivenBackKind, Snapshot, SubscriptionHistory, Timeline};

/// The k (months after the cohort month) that cohort retention is reported at.
pub const COHORT_OFFSETS: [i32; 4] = [1, 3, 6, 12];

/// MRR movements of a month, each as a positive amount (minor units).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Movements {
    pub new: f64,
    pub reactivation: f64,
    pub expansion: f64,
    pub contraction: f64,
    pub paused: f64,
    pub churned: f64,
}

/// The raw figures of one month; rates are derived in `summary`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonthFigures {
    pub mrr_start: f64,
    pub mrr_end: f64,
    pub movements: Movements,
    pub active_start: u64,
    pub active_end: u64,
    pub new_customers: u64,
    pub churned: u64,
    pub churned_involuntary: u64,
    /// Customers with MRR > 0 at the end (ARPU's denominator).
    pub paying_end: u64,
    /// (MRR at the end of m, at the end of m−12) of customers with MRR > 0 at the end of
    /// m−12; `None` when m−12 is before the history.
    pub nrr_12m: Option<(f64, f64)>,
    /// Money given back in the month (by the date it was given back): refunds, lost disputes,
    /// credit notes.
    pub given_back: GivenBackFigures,
}

/// Amounts given back after payment, by how (minor units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GivenBackFigures {
    pub refunds: i64,
    pub lost_disputes: i64,
    pub credit_notes: i64,
}

impl GivenBackFigures {
    pub fn total(&self) -> i64 {
        self.refunds + self.lost_disputes + self.credit_notes
    }

    fn add(&mut self, kind: GivenBackKind, amount: i64) {
        match kind {
            GivenBackKind::Refund => self.refunds += amount,
            GivenBackKind::LostDispute => self.lost_disputes += amount,
            GivenBackKind::CreditNote => self.credit_notes += amount,
        }
    }
}

/// A cohort: the customers who first became active in one month.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CohortFigures {
    pub customers: u64,
    pub mrr_end_of_cohort_month: f64,
    /// Customers active, and their MRR, at the end of cohort+k for each `COHORT_OFFSETS` k
    /// (`None` past the report's last month).
    pub active_at: [Option<u64>; 4],
    pub mrr_at: [Option<f64>; 4],
}

/// Failed subscription invoices, grouped by the month of their first failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailedFigures {
    pub failed: u64,
    pub recovered: u64,
    pub lost: u64,
    pub pending: u64,
    /// What recovered invoices brought in and kept: `amount_due` less what was later refunded,
    /// lost to a dispute or credited back (never below 0 per invoice).
    pub recovered_amount: i64,
    pub lost_amount: i64,
    /// Of the recovered invoices' money: later refunded (refunds and credit notes) / lost to
    /// disputes.
    pub refunded_amount: i64,
    pub disputed_amount: i64,
}

/// Every month from `from` to `to` for one currency.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub currency: String,
    pub from: Month,
    pub months: Vec<MonthFigures>,
    pub cohorts: Vec<CohortFigures>,
    pub failed: Vec<FailedFigures>,
}

impl Report {
    /// Index of a month in this report.
    pub fn index(&self, m: Month) -> Option<usize> {
        usize::try_from(m.since(self.from)).ok().filter(|i| *i < self.months.len())
    }

    pub fn to(&self) -> Month {
        self.from.plus(self.months.len() as i32 - 1)
    }
}

/// Compute months `from..=to` (from ≤ to) in `currency`. Months before the history's first
/// count as empty; `nrr_12m` needs m−12 to be inside the history.
pub fn compute(timeline: &Timeline, currency: &str, from: Month, to: Month) -> Report {
    let n = (to.since(from) + 1).max(1) as usize;
    let bounds: Vec<i64> = (0..=n).map(|k| from.plus(k as i32).start()).collect();
    let first_history = timeline.first_month();
    let mut months = vec![MonthFigures::default(); n];
    let mut cohorts = vec![CohortFigures::default(); n];
    let mut by_customer: BTreeMap<&str, Vec<&SubscriptionHistory>> = BTreeMap::new();
    for s in timeline.subscriptions.iter().filter(|s| s.currency == currency) {
        by_customer.entry(s.customer.as_str()).or_default().push(s);
    }
    for subs in by_customer.values() {
        let c = CustomerPath::trace(timeline, subs, &bounds);
        c.fold_months(&mut months, |m| first_history.is_some_and(|f| from.plus(m as i32 - 12) >= f));
        if let Some(idx) = c.first_active.map(Month::of).and_then(|m| usize::try_from(m.since(from)).ok()).filter(|i| *i < n) {
            months[idx].new_customers += 1;
            c.fold_cohort(&mut cohorts[idx], idx, n);
        }
    }
    for g in timeline.given_back.iter().filter(|g| g.currency == currency) {
        if let Some(f) = usize::try_from(Month::of(g.at).since(from)).ok().and_then(|i| months.get_mut(i)) {
            f.given_back.add(g.kind, g.amount);
        }
    }
    let failed = failed_payments(timeline, currency, from, n);
    Report { currency: currency.to_owned(), from, months, cohorts, failed }
}

/// One customer's MRR and activity at each boundary, with the states that produced them.
struct CustomerPath<'a> {
    mrr: Vec<f64>,
    active: Vec<bool>,
    states: Vec<Vec<Option<&'a Snapshot>>>,
    first_active: Option<i64>,
}

impl<'a> CustomerPath<'a> {
    fn trace(timeline: &Timeline, subs: &[&'a SubscriptionHistory], bounds: &[i64]) -> Self {
        let mut mrr = vec![0.0; bounds.len()];
        let mut active = vec![false; bounds.len()];
        let mut states = Vec::with_capacity(subs.len());
        for sub in subs {
            let at = sub.states_at(bounds);
            for (k, s) in at.iter().enumerate() {
                if let Some(s) = s {
                    active[k] |= s.is_active();
                    mrr[k] += timeline.mrr_of(sub, s, bounds[k]);
                }
            }
            states.push(at);
        }
        let first_active = subs.iter().filter_map(|s| s.first_active_at()).min();
        Self { mrr, active, states, first_active }
    }

    fn fold_months(&self, months: &mut [MonthFigures], has_year_of_history: impl Fn(usize) -> bool) {
        let mut had_mrr = false;
        for (m, f) in months.iter_mut().enumerate() {
            let (s, e) = (self.mrr[m], self.mrr[m + 1]);
            let (was, is) = (self.active[m], self.active[m + 1]);
            had_mrr |= s > 0.0;
            f.mrr_start += s;
            f.mrr_end += e;
            f.active_start += u64::from(was);
            f.active_end += u64::from(is);
            f.paying_end += u64::from(e > 0.0);
            if was && !is {
                f.churned += 1;
                f.churned_involuntary += u64::from(self.ended_involuntarily(m));
            }
            let mv = &mut f.movements;
            if s == 0.0 && e > 0.0 {
                *(if had_mrr { &mut mv.reactivation } else { &mut mv.new }) += e;
            } else if s > 0.0 && !is {
                mv.churned += s;
            } else if s > 0.0 && e == 0.0 {
                mv.paused += s;
            } else if s > 0.0 && e > s {
                mv.expansion += e - s;
            } else if s > 0.0 && e < s {
                mv.contraction += s - e;
            }
            if m >= 12 && has_year_of_history(m) {
                let (num, den) = f.nrr_12m.get_or_insert((0.0, 0.0));
                if self.mrr[m - 11] > 0.0 {
                    *num += e;
                    *den += self.mrr[m - 11];
                }
            }
        }
    }

    /// Why the customer's last subscription ended during month m: the one that was active at
    /// its start and not at its end with the latest ending snapshot.
    fn ended_involuntarily(&self, m: usize) -> bool {
        let ended = self.states.iter().filter_map(|st| match (st[m], st[m + 1]) {
            (Some(a), Some(b)) if a.is_active() && !b.is_active() => Some(b),
            _ => None,
        });
        ended
            .max_by(|a, b| (a.effective_at, &a.event_id).cmp(&(b.effective_at, &b.event_id)))
            .is_some_and(Snapshot::is_involuntary_end)
    }

    fn fold_cohort(&self, c: &mut CohortFigures, idx: usize, n: usize) {
        c.customers += 1;
        c.mrr_end_of_cohort_month += self.mrr[idx + 1];
        for (i, k) in COHORT_OFFSETS.iter().enumerate() {
            let at = idx + *k as usize;
            if at < n {
                *c.active_at[i].get_or_insert(0) += u64::from(self.active[at + 1]);
                *c.mrr_at[i].get_or_insert(0.0) += self.mrr[at + 1];
            }
        }
    }
}

/// Outcome of each failed invoice as it stands now: paid → recovered; void, uncollectible or
/// its subscription ended while it was unpaid → lost; otherwise pending.
fn failed_payments(timeline: &Timeline, currency: &str, from: Month, n: usize) -> Vec<FailedFigures> {
    let ended: HashMap<&str, bool> = timeline
        .subscriptions
        .iter()
        .map(|s| {
            let last = s.states_at(&[i64::MAX])[0];
            (s.id.as_str(), last.is_some_and(|l| matches!(l.status.as_str(), "canceled" | "incomplete_expired")))
        })
        .collect();
    // What each invoice gave back after it was paid, as it stands now.
    let mut back: HashMap<&str, GivenBackFigures> = HashMap::new();
    for g in timeline.given_back.iter().filter(|g| g.currency == currency) {
        if let Some(invoice) = g.invoice.as_deref() {
            back.entry(invoice).or_default().add(g.kind, g.amount);
        }
    }
    let mut out = vec![FailedFigures::default(); n];
    for inv in timeline.failed_invoices.iter().filter(|i| i.currency == currency) {
        let Some(f) = usize::try_from(Month::of(inv.first_failed_at).since(from)).ok().and_then(|i| out.get_mut(i)) else {
            continue;
        };
        f.failed += 1;
        let sub_ended = inv.subscription.as_deref().and_then(|s| ended.get(s)).copied().unwrap_or(false);
        match inv.status.as_deref() {
            Some("paid") => {
                f.recovered += 1;
                let b = back.get(inv.id.as_str()).copied().unwrap_or_default();
                // Never more than the invoice brought in.
                let refunded = (b.refunds + b.credit_notes).min(inv.amount_due);
                let disputed = b.lost_disputes.min(inv.amount_due - refunded);
                f.refunded_amount += refunded;
                f.disputed_amount += disputed;
                f.recovered_amount += inv.amount_due - refunded - disputed;
            }
            Some("void" | "uncollectible") => {
                f.lost += 1;
                f.lost_amount += inv.amount_due;
            }
            _ if sub_ended => {
                f.lost += 1;
                f.lost_amount += inv.amount_due;
            }
            _ => f.pending += 1,
        }
    }
    out
}

/// A recovered (paid) invoice that failed first: when it first failed and what it was for.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredInvoice {
    pub first_failed_at: i64,
    pub amount_due: i64,
}

/// Apply what was given back after payment to a report assembled from per-customer totals
/// (which do not carry it): each month's `given_back`, and for each recovered invoice the
/// part refunded, credited or lost to a dispute taken off the money it recovered — the same
/// rules as [`compute`], never more than the invoice brought in.
pub fn apply_given_back(
    report: &mut Report,
    given_back: &[crate::domain::timeline::GivenBack],
    recovered: &HashMap<String, RecoveredInvoice>,
) {
    let from = report.from;
    let mut back: HashMap<&str, GivenBackFigures> = HashMap::new();
    for g in given_back.iter().filter(|g| g.currency == report.currency) {
        if let Some(f) = usize::try_from(Month::of(g.at).since(from)).ok().and_then(|i| report.months.get_mut(i)) {
            f.given_back.add(g.kind, g.amount);
        }
        if let Some(invoice) = g.invoice.as_deref() {
            back.entry(invoice).or_default().add(g.kind, g.amount);
        }
    }
    for (invoice, b) in back {
        let Some(inv) = recovered.get(invoice) else { continue };
        let Some(f) = usize::try_from(Month::of(inv.first_failed_at).since(from)).ok().and_then(|i| report.failed.get_mut(i))
        else {
            continue;
        };
        let refunded = (b.refunds + b.credit_notes).min(inv.amount_due);
        let disputed = b.lost_disputes.min(inv.amount_due - refunded);
        f.refunded_amount += refunded;
        f.disputed_amount += disputed;
        f.recovered_amount -= refunded + disputed;
    }
}
