//! Which offers a session gets: the configured offers for the reason (per segment of interval
//! and tenure), filtered by the facts of the customer's own subscription as the store knows it.

use std::collections::BTreeMap;

use crate::cancel::config::{CancelFlowSettings, DiscountOffer};
use crate::cancel::rules::{
    Billing, OfferFacts, OfferKind, PausePlan, Reason, applicable_offers, configured_offers, months_before, pause_plan,
    whole_months_between,
};
use crate::domain::lift::Split;
use crate::store::rows::{ItemRow, SubscriptionRow};
use crate::store::{Store, StoreError};

/// A save-offer experiment (`[[experiments]]` of kind `save_offer`): variant b's customers
/// get these offers for the reasons listed (the configured ones for the others); its holdout
/// sees no offer, only "cancel anyway". The summary reports the save rate per variant.
#[derive(Clone, Debug)]
pub struct SaveOfferExperiment {
    pub split: Split,
    pub offers_by_reason: BTreeMap<Reason, Vec<OfferKind>>,
}

/// The customer's subscription the session acts on.
#[derive(Debug, Clone)]
pub struct Target {
    pub subscription: SubscriptionRow,
    pub items: Vec<ItemRow>,
    /// Stripe can pause it itself (see `Billing::pausable`), as its latest snapshot says.
    pub pausable: bool,
}

impl Target {
    /// The one priced item a downgrade would change (multi-item subscriptions get no
    /// downgrade offer: which item to change would be a guess).
    pub fn single_item(&self) -> Option<&ItemRow> {
        match self.items.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The cheaper price configured for the current one.
    pub fn downgrade_to<'a>(&self, cfg: &'a CancelFlowSettings) -> Option<&'a String> {
        let price = self.single_item()?.price_id.as_deref()?;
        cfg.downgrade_map.get(price).filter(|to| to.as_str() != price)
    }

    /// The billing interval shared by every item, and the next renewal.
    pub fn billing(&self) -> Billing {
        let mut intervals = self.items.iter().map(|i| (i.recurring_interval.clone(), i.interval_count.unwrap_or(1)));
        let first = intervals.next();
        let shared = first.filter(|f| intervals.all(|i| &i == f));
        Billing {
            interval: shared.as_ref().and_then(|(i, _)| i.clone()),
            interval_count: shared.map(|(_, n)| n).unwrap_or(1),
            period_end: self.subscription.current_period_end,
            pausable: self.pausable,
        }
    }

    /// Whole months since the subscription started.
    pub fn tenure_months(&self, now: i64) -> u32 {
        let start = self.subscription.start_date.or(self.subscription.created).unwrap_or(now);
        whole_months_between(start, now)
    }

    /// The last payment failed: the card comes before any offer.
    pub fn past_due(&self) -> bool {
        matches!(self.subscription.status.as_str(), "past_due" | "unpaid")
    }

    /// A cancellation is already scheduled in Stripe: its date (the period end, or a future
    /// `cancel_at`).
    pub fn scheduled_end(&self, now: i64) -> Option<i64> {
        let s = &self.subscription;
        match (s.cancel_at.filter(|&t| t > now), s.cancel_at_period_end) {
            (Some(at), _) => Some(at),
            (None, true) => Some(s.current_period_end.unwrap_or(now)),
            (None, false) => None,
        }
    }

    /// The Stripe ids of the discounts in force (kept when another is added).
    pub fn discount_ids(&self) -> Vec<String> {
        serde_json::from_str::<Vec<serde_json::Value>>(&self.subscription.discounts)
            .unwrap_or_default()
            .iter()
            .filter_map(|d| d.as_str().map(str::to_owned).or_else(|| d["id"].as_str().map(str::to_owned)))
            .collect()
    }

    /// The configured pause lengths that fit this subscription, with their dates.
    pub fn pauses(&self, cfg: &CancelFlowSettings, now: i64) -> Vec<PausePlan> {
        let billing = self.billing();
        cfg.pause_months.iter().filter_map(|&m| pause_plan(&billing, m, now)).collect()
    }

    /// The discount configured for this subscription's interval and currency.
    pub fn discount<'a>(&self, cfg: &'a CancelFlowSettings) -> Option<&'a DiscountOffer> {
        let currency = self.subscription.currency.as_deref().or_else(|| self.items.first().and_then(|i| i.currency.as_deref()));
        cfg.discount_for(&self.billing(), currency)
    }
}

/// Whether Stripe can pause the subscription of this snapshot (`data.object` of its latest
/// event): flexible billing mode, charged automatically, no schedule attached.
pub fn pausable(snapshot: &serde_json::Value) -> bool {
    snapshot["billing_mode"]["type"] == "flexible"
        && snapshot["collection_method"] == "charge_automatically"
        && snapshot.get("schedule").is_none_or(serde_json::Value::is_null)
        && snapshot["status"] == "active"
}

/// Gather the facts that decide applicability.
pub async fn facts(
    store: &Store,
    cfg: &CancelFlowSettings,
    customer: &str,
    t: &Target,
    now: i64,
) -> Result<OfferFacts, StoreError> {
    let sub = &t.subscription;
    let paused = sub.pause_behavior.is_some() || sub.status == "paused" || store.pause_running(&sub.id, now).await?;
    // A discount already in force does not rule out another (both are kept); one that
    // started within the cooldown does.
    let since = months_before(now, cfg.discount_cooldown_months);
    let recently_discounted = store.discounted_since(customer, &sub.id, since).await?;
    Ok(OfferFacts {
        paused,
        downgrade_to: t.downgrade_to(cfg).cloned(),
        recently_discounted,
        coupon_configured: t.discount(cfg).is_some(),
        pause_configured: !t.pauses(cfg, now).is_empty(),
        past_due: t.past_due(),
    })
}

/// The offers to show for `reason`; `experiment` is the save-offer experiment when the
/// session is in its variant b (its list for the reason replaces the configured one).
pub async fn offers_for(
    store: &Store,
    cfg: &CancelFlowSettings,
    experiment: Option<&SaveOfferExperiment>,
    customer: &str,
    t: &Target,
    reason: Reason,
    now: i64,
) -> Result<Vec<OfferKind>, StoreError> {
    let configured = match experiment.and_then(|x| x.offers_by_reason.get(&reason)) {
        Some(list) => list.as_slice(),
        None => configured_offers(&cfg.segments, &cfg.offers_by_reason, &t.billing(), t.tenure_months(now), reason),
    };
    let facts = facts(store, cfg, customer, t, now).await?;
    Ok(applicable_offers(configured, &cfg.offers_enabled, &facts))
}
