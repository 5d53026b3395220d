//! Which offers apply: the defaults per reason, the configured segments, and the facts about
//! a subscription that rule offers out.

use std::collections::BTreeMap;

use crate::cancel::rules::{Billing, OfferKind, Reason};

/// The default offers per reason: too expensive → discount or downgrade; everything else →
/// pause (for a missing feature the comment is kept with the session and sent to Stripe).
pub fn default_offers_by_reason() -> BTreeMap<Reason, Vec<OfferKind>> {
    Reason::ALL
        .into_iter()
        .map(|r| match r {
            Reason::TooExpensive => (r, vec![OfferKind::Discount, OfferKind::Downgrade]),
            _ => (r, vec![OfferKind::Pause]),
        })
        .collect()
}

/// Facts about the customer's subscription that decide which offers apply.
#[derive(Debug, Clone, Default)]
pub struct OfferFacts {
    /// Collection is paused already (or a pause from an earlier session still runs).
    pub paused: bool,
    /// The cheaper price the subscription's only item maps to, if any.
    pub downgrade_to: Option<String>,
    /// A discount is in force, or one was applied within the cooldown.
    pub recently_discounted: bool,
    /// A coupon is configured for the subscription's interval and currency.
    pub coupon_configured: bool,
    /// At least one configured pause length fits the subscription (see `pause_plan`).
    pub pause_configured: bool,
    /// The last payment failed (`past_due`, `unpaid`): the card comes first, and no price
    /// offer is made on a debt.
    pub past_due: bool,
}

/// The offers to show: those configured for the reason and enabled, that apply to this
/// subscription. Empty means the page shows only "cancel anyway".
pub fn applicable_offers(configured: &[OfferKind], enabled: &[OfferKind], facts: &OfferFacts) -> Vec<OfferKind> {
    let mut shown = Vec::new();
    for offer in configured {
        let applies = enabled.contains(offer)
            && !facts.past_due
            && match offer {
                OfferKind::Pause => facts.pause_configured && !facts.paused,
                OfferKind::Downgrade => facts.downgrade_to.is_some(),
                OfferKind::Discount => facts.coupon_configured && !facts.recently_discounted,
            };
        if applies && !shown.contains(offer) {
            shown.push(*offer);
        }
    }
    shown
}

/// Which customers a segment's offers are for; unset fields match everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Segment {
    /// Stripe's `recurring.interval` (`month`, `year`, …).
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    /// Whole months since the subscription started, inclusive bounds.
    pub min_tenure_months: Option<u32>,
    pub max_tenure_months: Option<u32>,
    /// The offers for each reason; a reason absent here falls through to the next segment.
    pub offers_by_reason: BTreeMap<Reason, Vec<OfferKind>>,
}

impl Segment {
    pub fn matches(&self, billing: &Billing, tenure_months: u32) -> bool {
        self.interval.as_ref().is_none_or(|i| billing.interval.as_ref() == Some(i))
            && self.interval_count.is_none_or(|c| billing.interval_count.max(1) == c)
            && self.min_tenure_months.is_none_or(|m| tenure_months >= m)
            && self.max_tenure_months.is_none_or(|m| tenure_months <= m)
    }
}

/// The configured offers for `reason`: the first matching segment that lists the reason, else
/// the per-reason default.
pub fn configured_offers<'a>(
    segments: &'a [Segment],
    by_reason: &'a BTreeMap<Reason, Vec<OfferKind>>,
    billing: &Billing,
    tenure_months: u32,
    reason: Reason,
) -> &'a [OfferKind] {
    segments
        .iter()
        .filter(|s| s.matches(billing, tenure_months))
        .find_map(|s| s.offers_by_reason.get(&reason))
        .or_else(|| by_reason.get(&reason))
        .map(Vec::as_slice)
        .unwrap_or(&[])
}
