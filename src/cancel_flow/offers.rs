//! Which offers a session gets: the configured offers for the reason, filtered by the facts of
//! the customer's own subscription as the store knows it.

use crate::config::CancelFlowSettings;
use crate::config::Experiment;
use crate::domain::cancel::{OfferFacts, OfferKind, Reason, applicable_offers, months_before};
use crate::store::rows::{ItemRow, SubscriptionRow};
use crate::store::{Store, StoreError};

/// The customer's subscription the session acts on.
#[derive(Debug, Clone)]
pub struct Target {
    pub subscription: SubscriptionRow,
    pub items: Vec<ItemRow>,
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
    let paused = sub.pause_behavior.is_some() || store.pause_running(&sub.id, now).await?;
    let discount_in_force = serde_json::from_str::<Vec<serde_json::Value>>(&sub.discounts).map(|d| !d.is_empty()).unwrap_or(true);
    let since = months_before(now, cfg.discount_cooldown_months);
    let recently_discounted = discount_in_force || store.discounted_since(customer, &sub.id, since).await?;
    Ok(OfferFacts {
        paused,
        downgrade_to: t.downgrade_to(cfg).cloned(),
        recently_discounted,
        coupon_configured: cfg.coupon.is_some(),
        pause_configured: !cfg.pause_months.is_empty(),
    })
}

/// The offers to show for `reason`; `experiment` is the save-offer experiment when the
/// session is in its variant b (its list for the reason replaces the configured one).
pub async fn offers_for(
    store: &Store,
    cfg: &CancelFlowSettings,
    experiment: Option<&Experiment>,
    customer: &str,
    t: &Target,
    reason: Reason,
    now: i64,
) -> Result<Vec<OfferKind>, StoreError> {
    let configured = experiment
        .and_then(|x| x.offers_by_reason.get(&reason))
        .or_else(|| cfg.offers_by_reason.get(&reason))
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let facts = facts(store, cfg, customer, t, now).await?;
    Ok(applicable_offers(configured, &cfg.offers_enabled, &facts))
}
