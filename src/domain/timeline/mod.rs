//! The recorded history metrics are computed from, and a subscription's state at any instant.
//!
//! The state at `T` is the snapshot with the greatest `(rank, effective_at, event_id)` among
//! those with `effective_at < T` (a terminal state outranks later live ones). On top of the
//! snapshot, two changes take effect by the clock alone, without waiting for an event:
//! a pause whose `resumes_at < T` is over, and a discount whose `end < T` no longer applies.
//!
//! Discounts in force at `T` are the subscription's own (the ids its snapshot lists) when any
//! of them is in force, else the customer's (Stripe applies a customer-level discount only to
//! subscriptions without their own). A discount's terms are its coupon's, found by id among
//! the coupons seen, else the terms that arrived embedded in the discount; a discount with
//! neither is counted at list price and reported as unresolved.

use std::collections::{BTreeSet, HashMap};

use crate::domain::month::Month;
use crate::domain::pricing::{self, ItemPricing, LineAmount, PriceTiers};

mod discounts;

pub use discounts::{CouponTerms, Discount};

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
    /// Each item's product and monthly amount before discounts (what a coupon limited to
    /// some products applies to). Empty when unknown: such coupons then apply to `base_mrr`.
    pub items: Vec<ItemAmount>,
}

/// One item's share of a snapshot's `base_mrr`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemAmount {
    pub product: Option<String>,
    /// `unit_amount × quantity` per month (the list amount).
    pub monthly: f64,
    /// Set for tiered, metered and tax-inclusive items, whose amount at an instant comes from
    /// their tiers or finalized invoice lines (`Timeline::items_at`).
    pub pricing: Option<Box<ItemPricing>>,
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
    /// Every discount seen, by id.
    pub discounts: HashMap<String, Discount>,
    /// Every coupon seen, by id.
    pub coupons: HashMap<String, CouponTerms>,
    pub failed_invoices: Vec<FailedInvoice>,
    /// Refunds, lost disputes and credit notes.
    pub given_back: Vec<GivenBack>,
    /// Tiers of the tiered prices seen, by price id.
    pub prices: HashMap<String, PriceTiers>,
    /// Finalized invoice lines by subscription item, sorted by `(at, invoice)`.
    pub item_lines: HashMap<String, Vec<LineAmount>>,
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

    /// The terms of discount `id` (its coupon's, else its embedded ones), `None` when
    /// unresolved.
    pub fn terms_of<'a>(&'a self, d: &'a Discount) -> Option<&'a CouponTerms> {
        let coupon = d.coupon_id.as_ref().and_then(|c| self.coupons.get(c)).filter(|c| c.is_known());
        coupon.or(Some(&d.embedded).filter(|e| e.is_known()))
    }

    /// The discounts applying to snapshot `s` of `sub` at `t`: the subscription's own in
    /// force, else the customer's. Each is `(id, terms)`, terms `None` when unresolved.
    pub fn discounts_at<'a>(
        &'a self,
        sub: &SubscriptionHistory,
        s: &'a Snapshot,
        t: i64,
    ) -> Vec<(&'a str, Option<&'a CouponTerms>)> {
        let in_force = |id: &'a str, d: Option<&'a Discount>| -> Option<(&'a str, Option<&'a CouponTerms>)> {
            match d {
                // Listed by the subscription but never seen: unresolved, assumed in force.
                None => Some((id, None)),
                Some(d) => {
                    let terms = self.terms_of(d);
                    d.in_force(terms, s.interval_months, t).then_some((id, terms))
                }
            }
        };
        let own: Vec<_> = s.discounts.iter().filter_map(|id| in_force(id, self.discounts.get(id))).collect();
        if !own.is_empty() {
            return own;
        }
        let mut customer: Vec<_> = self
            .discounts
            .iter()
            .filter(|(_, d)| d.subscription.is_none() && d.customer.as_deref() == Some(sub.customer.as_str()))
            .filter_map(|(id, d)| in_force(id, Some(d)))
            .collect();
        customer.sort_by_key(|(id, _)| *id);
        customer
    }

    /// MRR of snapshot `s` of `sub` at instant `t`, with clock-driven pause and discount ends.
    pub fn mrr_of(&self, sub: &SubscriptionHistory, s: &Snapshot, t: i64) -> f64 {
        if !s.is_active() || s.paused_at(t) {
            return 0.0;
        }
        let terms: Vec<&CouponTerms> = self.discounts_at(sub, s, t).into_iter().filter_map(|(_, t)| t).collect();
        if s.items.iter().all(|i| i.pricing.is_none()) {
            return crate::domain::mrr::apply_discounts(s.base_mrr, &s.items, &terms, &sub.currency, s.interval_months);
        }
        let (items, _) = self.items_at(s, t);
        let items = crate::domain::mrr::with_item_discounts(self, &sub.currency, s, items, t);
        let base = items.iter().map(|i| i.monthly).sum();
        crate::domain::mrr::apply_discounts(base, &items, &terms, &sub.currency, s.interval_months)
    }

    /// The items of `s` with their amounts at `t` (tiered, metered and tax-inclusive ones
    /// resolved, `docs/metrics.md` "Pricing shapes"), and how many could not be resolved.
    pub fn items_at(&self, s: &Snapshot, t: i64) -> (Vec<ItemAmount>, u64) {
        let mut unresolved = 0;
        let items = s
            .items
            .iter()
            .map(|i| {
                let Some(p) = &i.pricing else {
                    return ItemAmount { product: i.product.clone(), monthly: i.monthly, pricing: None };
                };
                let lines = p.item.as_ref().and_then(|id| self.item_lines.get(id)).map(Vec::as_slice);
                let (monthly, known) = pricing::item_monthly_at(p, i.monthly, &self.prices, lines, t);
                unresolved += u64::from(!known);
                ItemAmount { product: i.product.clone(), monthly, pricing: None }
            })
            .collect();
        (items, unresolved)
    }

    /// Items of active `currency` subscriptions at `t` whose amount is unknown (a tiered price
    /// whose tiers were never seen, a metered one without a finalized invoice line): they
    /// count 0.
    pub fn unresolved_prices(&self, currency: &str, t: i64) -> u64 {
        let mut n = 0;
        for sub in self.subscriptions.iter().filter(|s| s.currency == currency) {
            let Some(s) = sub.states_at(&[t])[0] else { continue };
            if s.is_active() && s.items.iter().any(|i| i.pricing.is_some()) {
                n += self.items_at(s, t).1;
            }
        }
        n
    }

    /// Discounts applying to an active subscription of `currency` at `t` whose terms are
    /// unknown (those subscriptions are counted at list price).
    pub fn unresolved_discounts(&self, currency: &str, t: i64) -> u64 {
        let mut ids = BTreeSet::new();
        for sub in self.subscriptions.iter().filter(|s| s.currency == currency) {
            let Some(s) = sub.states_at(&[t])[0] else { continue };
            if s.is_active() {
                ids.extend(self.discounts_at(sub, s, t).into_iter().filter(|(_, terms)| terms.is_none()).map(|(id, _)| id));
                ids.extend(crate::domain::mrr::unresolved_item_discounts(self, s, t));
            }
        }
        ids.len() as u64
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
            items: vec![],
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

    fn history(customer: &str, snapshots: Vec<Snapshot>) -> SubscriptionHistory {
        SubscriptionHistory { id: "sub".into(), customer: customer.into(), currency: "usd".into(), snapshots }
    }

    fn percent(p: f64) -> CouponTerms {
        CouponTerms { percent_off: Some(p), ..CouponTerms::default() }
    }

    #[test]
    fn discounts_and_pauses_end_by_the_clock() {
        let mut t = Timeline::default();
        t.discounts.insert("di_1".into(), Discount { embedded: percent(25.0), ends_at: Some(100), ..Discount::default() });
        let fixed = CouponTerms { amount_off: Some(1200), currency: Some("usd".into()), ..CouponTerms::default() };
        t.discounts.insert("di_2".into(), Discount { embedded: fixed, ..Discount::default() });
        let mut s = snap(0, "active", 1000.0);
        s.discounts = vec!["di_1".into()];
        let h = history("cus", vec![]);
        assert_eq!(t.mrr_of(&h, &s, 100), 750.0);
        assert_eq!(t.mrr_of(&h, &s, 101), 1000.0);
        s.discounts = vec!["di_2".into()];
        s.interval_months = 12.0;
        assert_eq!(t.mrr_of(&h, &s, 5), 900.0);
        s.collection_paused = true;
        s.pause_resumes_at = Some(50);
        assert_eq!(t.mrr_of(&h, &s, 50), 0.0);
        assert_eq!(t.mrr_of(&h, &s, 51), 900.0);
        assert_eq!(t.mrr_of(&h, &snap(0, "trialing", 1000.0), 5), 0.0);
    }

    #[test]
    fn coupons_resolve_by_id_and_durations_end_the_discount() {
        let mut t = Timeline::default();
        let day = 86_400;
        // 2025-01-01: a repeating coupon for 2 months without Stripe's `end` ends 2025-03-01.
        let jan1 = 1_735_689_600;
        let repeating = CouponTerms { duration: Some("repeating".into()), duration_in_months: Some(2), ..percent(50.0) };
        t.coupons.insert("HALF2".into(), repeating);
        t.coupons.insert("ONCE".into(), CouponTerms { duration: Some("once".into()), ..percent(10.0) });
        let by_id = |coupon: &str| Discount { coupon_id: Some(coupon.into()), starts_at: Some(jan1), ..Discount::default() };
        t.discounts.insert("di_r".into(), by_id("HALF2"));
        t.discounts.insert("di_o".into(), by_id("ONCE"));
        t.discounts.insert("di_u".into(), by_id("NEVER_SEEN"));
        let h = history("cus", vec![]);
        let mut s = snap(0, "active", 1000.0);
        s.discounts = vec!["di_r".into()];
        assert_eq!(t.mrr_of(&h, &s, jan1 - 1), 1000.0, "not started");
        assert_eq!(t.mrr_of(&h, &s, jan1 + 58 * day), 500.0);
        assert_eq!(t.mrr_of(&h, &s, jan1 + 60 * day), 1000.0, "ended 2025-03-01");
        s.discounts = vec!["di_o".into()];
        assert_eq!(t.mrr_of(&h, &s, jan1 + 20 * day), 900.0);
        assert_eq!(t.mrr_of(&h, &s, jan1 + 31 * day), 1000.0, "once: one monthly interval");
        s.discounts = vec!["di_u".into(), "di_missing".into()];
        assert_eq!(t.mrr_of(&h, &s, jan1 + day), 1000.0, "unresolved: list price");
        assert_eq!(t.discounts_at(&h, &s, jan1 + day).iter().filter(|(_, terms)| terms.is_none()).count(), 2);
    }

    #[test]
    fn a_customer_discount_applies_to_subscriptions_without_their_own() {
        let mut t = Timeline::default();
        let customer = Discount { customer: Some("cus_1".into()), embedded: percent(20.0), ..Discount::default() };
        t.discounts.insert("di_c".into(), customer);
        let own =
            Discount { subscription: Some("sub".into()), embedded: percent(50.0), deleted_at: Some(40), ..Discount::default() };
        t.discounts.insert("di_s".into(), own);
        let h = history("cus_1", vec![]);
        let mut s = snap(0, "active", 1000.0);
        assert_eq!(t.mrr_of(&h, &s, 10), 800.0);
        assert_eq!(t.mrr_of(&history("cus_2", vec![]), &s, 10), 1000.0);
        s.discounts = vec!["di_s".into()];
        assert_eq!(t.mrr_of(&h, &s, 10), 500.0, "the subscription's own discount wins");
        assert_eq!(t.mrr_of(&h, &s, 41), 800.0, "deleted: the customer's applies again");
    }
}
