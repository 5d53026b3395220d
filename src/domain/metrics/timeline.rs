//! The recorded history metrics are computed from, and a subscription's state at any instant.
//!
//! The state at `T` is the snapshot with the greatest `(rank, effective_at, event_id)` among
//! those with `effective_at < T` (a terminal state outranks later live ones). On top of the
//! snapshot, two changes take effect by the clock alone, without waiting for an event:
//! a pause whose `resumes_at < T` is over, and a discount whose `end < T` no longer applies.

use std::collections::HashMap;

use super::month::Month;

/// One recorded snapshot of a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub effective_at: i64,
    pub rank: i64,
    pub event_id: String,
    pub status: String,
    /// Items' monthly amounts before discounts (minor units, may carry fractions).
    pub base_mrr: f64,
    pub collection_paused: bool,
    pub pause_resumes_at: Option<i64>,
    /// Ids of the discounts the snapshot lists.
    pub discounts: Vec<String>,
    /// `cancellation_details.reason`.
    pub cancel_reason: Option<String>,
    /// Months in the billing interval (to normalise an `amount_off` discount).
    pub interval_months: f64,
}

impl Snapshot {
    fn key(&self) -> (i64, i64, &str) {
        (self.rank, self.effective_at, &self.event_id)
    }

    /// `active` or `past_due`: still a subscriber.
    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "active" | "past_due")
    }

    /// Ended for non-payment: Stripe's reason, or a status that means "gave up collecting".
    pub fn is_involuntary_end(&self) -> bool {
        matches!(self.cancel_reason.as_deref(), Some("payment_failed" | "payment_disputed"))
            || matches!(self.status.as_str(), "unpaid" | "incomplete_expired")
    }

    /// Collection paused at `t` (set, and its `resumes_at` not yet passed).
    pub fn paused_at(&self, t: i64) -> bool {
        self.collection_paused && self.pause_resumes_at.is_none_or(|r| r >= t)
    }
}

/// The terms of a discount.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscountTerms {
    pub percent_off: Option<f64>,
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    pub ends_at: Option<i64>,
}

/// Every recorded snapshot of one subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionHistory {
    pub id: String,
    /// The customer (the subscription's own id when Stripe named none).
    pub customer: String,
    pub currency: String,
    /// Sorted by `effective_at`.
    pub snapshots: Vec<Snapshot>,
}

/// A subscription invoice whose payment failed at least once, as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedInvoice {
    pub id: String,
    pub subscription: Option<String>,
    pub currency: String,
    pub amount_due: i64,
    pub first_failed_at: i64,
    pub status: Option<String>,
}

/// How money was given back after a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivenBackKind {
    Refund,
    LostDispute,
    CreditNote,
}

/// An amount given back after a payment (`domain::refunds`), dated, with the invoice it
/// belonged to when known.
#[derive(Debug, Clone, PartialEq)]
pub struct GivenBack {
    pub at: i64,
    pub currency: String,
    pub amount: i64,
    pub invoice: Option<String>,
    pub kind: GivenBackKind,
}

/// Everything the metrics read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    pub subscriptions: Vec<SubscriptionHistory>,
    pub discounts: HashMap<String, DiscountTerms>,
    pub failed_invoices: Vec<FailedInvoice>,
    /// Refunds, lost disputes and credit notes.
    pub given_back: Vec<GivenBack>,
}

impl Timeline {
    /// Currencies seen, in name order.
    pub fn currencies(&self) -> Vec<String> {
        let mut c: Vec<String> = self.subscriptions.iter().map(|s| s.currency.clone()).collect();
        c.extend(self.failed_invoices.iter().map(|i| i.currency.clone()));
        c.sort();
        c.dedup();
        c
    }

    /// The first month anything happened in (`None` for an empty history).
    pub fn first_month(&self) -> Option<Month> {
        let subs = self.subscriptions.iter().filter_map(|s| s.snapshots.first()).map(|s| s.effective_at);
        let fails = self.failed_invoices.iter().map(|i| i.first_failed_at);
        subs.chain(fails).min().map(Month::of)
    }

    /// MRR of one snapshot at instant `t`, with clock-driven pause and discount ends.
    pub fn mrr_of(&self, s: &Snapshot, currency: &str, t: i64) -> f64 {
        if !s.is_active() || s.paused_at(t) {
            return 0.0;
        }
        let in_force = s.discounts.iter().filter_map(|id| self.discounts.get(id)).filter(|d| d.ends_at.is_none_or(|e| e >= t));
        let (mut factor, mut minus) = (1.0, 0.0);
        for d in in_force {
            if let Some(p) = d.percent_off {
                factor *= 1.0 - p / 100.0;
            }
            if let Some(a) = d.amount_off.filter(|_| d.currency.as_deref().is_none_or(|c| c == currency)) {
                minus += a as f64 / s.interval_months;
            }
        }
        (s.base_mrr * factor - minus).max(0.0)
    }
}

impl SubscriptionHistory {
    /// The snapshot in force at each instant of `at` (ascending), or `None` before the first.
    pub fn states_at<'a>(&'a self, at: &[i64]) -> Vec<Option<&'a Snapshot>> {
        let mut best: Option<&Snapshot> = None;
        let mut next = 0;
        at.iter()
            .map(|&t| {
                while let Some(s) = self.snapshots.get(next).filter(|s| s.effective_at < t) {
                    if best.is_none_or(|b| s.key() > b.key()) {
                        best = Some(s);
                    }
                    next += 1;
                }
                best
            })
            .collect()
    }

    /// When the subscription first became active: the first snapshot time after which the
    /// state in force is active.
    pub fn first_active_at(&self) -> Option<i64> {
        let mut best: Option<&Snapshot> = None;
        for s in &self.snapshots {
            if best.is_none_or(|b| s.key() > b.key()) {
                best = Some(s);
            }
            if best.is_some_and(Snapshot::is_active) {
                return Some(s.effective_at);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn snap(at: i64, status: &str, mrr: f64) -> Snapshot {
        Snapshot {
            effective_at: at,
            rank: if status == "canceled" { 2 } else { 0 },
            event_id: format!("evt_{at}"),
            status: status.into(),
            base_mrr: mrr,
            collection_paused: false,
            pause_resumes_at: None,
            discounts: vec![],
            cancel_reason: None,
            interval_months: 1.0,
        }
    }

    #[test]
    fn state_is_taken_strictly_before_the_instant_and_terminal_states_win() {
        let h = SubscriptionHistory {
            id: "sub".into(),
            customer: "cus".into(),
            currency: "usd".into(),
            snapshots: vec![snap(10, "active", 1.0), snap(20, "canceled", 0.0), snap(30, "active", 2.0)],
        };
        let states = h.states_at(&[10, 11, 21, 31]);
        let statuses: Vec<_> = states.iter().map(|s| s.map(|s| s.status.as_str())).collect();
        assert_eq!(statuses, vec![None, Some("active"), Some("canceled"), Some("canceled")]);
        assert_eq!(h.first_active_at(), Some(10));
    }

    #[test]
    fn discounts_and_pauses_end_by_the_clock() {
        let mut t = Timeline::default();
        t.discounts.insert(
            "di_1".into(),
            DiscountTerms { percent_off: Some(25.0), amount_off: None, currency: None, ends_at: Some(100) },
        );
        t.discounts.insert(
            "di_2".into(),
            DiscountTerms { percent_off: None, amount_off: Some(1200), currency: Some("usd".into()), ends_at: None },
        );
        let mut s = snap(0, "active", 1000.0);
        s.discounts = vec!["di_1".into()];
        assert_eq!(t.mrr_of(&s, "usd", 100), 750.0);
        assert_eq!(t.mrr_of(&s, "usd", 101), 1000.0);
        s.discounts = vec!["di_2".into()];
        s.interval_months = 12.0;
        assert_eq!(t.mrr_of(&s, "usd", 5), 900.0);
        s.collection_paused = true;
        s.pause_resumes_at = Some(50);
        assert_eq!(t.mrr_of(&s, "usd", 50), 0.0);
        assert_eq!(t.mrr_of(&s, "usd", 51), 900.0);
        assert_eq!(t.mrr_of(&snap(0, "trialing", 1000.0), "usd", 5), 0.0);
    }
}
