//! Snapshots of Stripe objects, read tolerantly from any API version: fields that moved
//! (basil, 2025-03-31) are read from both places; missing fields are `None`.

use serde_json::Value;

use crate::domain::fields::{flag_at, id_at, id_of, int_at, list, path, str_at};
use crate::domain::mrr;
use crate::domain::pricing::{self, PauseCause, Tier};

/// A customer as of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSnapshot {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created: Option<i64>,
    pub deleted: bool,
    /// The customer's `metadata` object as JSON text (the owner's acquisition channel is read
    /// from it); `None` when absent.
    pub metadata: Option<String>,
}

impl CustomerSnapshot {
    pub fn read(obj: &Value, deleted_event: bool) -> Option<Self> {
        Some(Self {
            id: str_at(obj, "id")?,
            email: str_at(obj, "email"),
            name: str_at(obj, "name"),
            created: int_at(obj, "created"),
            deleted: deleted_event || flag_at(obj, "deleted"),
            metadata: obj.get("metadata").filter(|m| m.is_object()).map(|m| m.to_string()),
        })
    }
}

/// One priced line of a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemSnapshot {
    pub item_id: String,
    pub price_id: Option<String>,
    pub product: Option<String>,
    pub unit_amount: Option<i64>,
    pub currency: Option<String>,
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    pub quantity: i64,
    /// `per_unit` or `tiered`.
    pub billing_scheme: Option<String>,
    /// `volume` or `graduated` (tiered prices).
    pub tiers_mode: Option<String>,
    /// The tiers, when the price arrived expanded with them.
    pub tiers: Option<Vec<Tier>>,
    /// `licensed` or `metered`.
    pub usage_type: Option<String>,
    /// `inclusive`, `exclusive` or `unspecified`.
    pub tax_behavior: Option<String>,
    /// The inclusive tax rates on the item (else the subscription's default ones), in percent.
    pub tax_percent: Option<f64>,
    /// The item's own discounts (`discounts`: ids, or discount objects when expanded).
    pub discounts: Vec<String>,
}

impl ItemSnapshot {
    fn read(item: &Value) -> Option<Self> {
        // `price` since 2020; `plan` before (and still sent beside it).
        let price = item.get("price").filter(|p| p.is_object());
        let plan = item.get("plan").filter(|p| p.is_object());
        let price_or_plan = price.or(plan)?;
        let recurring = price.and_then(|p| p.get("recurring")).filter(|r| r.is_object());
        let unit_amount = price
            .and_then(|p| int_at(p, "unit_amount"))
            .or_else(|| {
                price.and_then(|p| str_at(p, "unit_amount_decimal")).and_then(|d| d.parse::<f64>().ok()).map(|d| d.round() as i64)
            })
            .or_else(|| plan.and_then(|p| int_at(p, "amount")));
        Some(Self {
            item_id: str_at(item, "id")?,
            price_id: str_at(price_or_plan, "id"),
            product: id_at(price_or_plan, "product"),
            unit_amount,
            currency: str_at(price_or_plan, "currency"),
            interval: recurring.and_then(|r| str_at(r, "interval")).or_else(|| plan.and_then(|p| str_at(p, "interval"))),
            interval_count: recurring
                .and_then(|r| int_at(r, "interval_count"))
                .or_else(|| plan.and_then(|p| int_at(p, "interval_count"))),
            quantity: int_at(item, "quantity").unwrap_or(1),
            billing_scheme: str_at(price_or_plan, "billing_scheme"),
            tiers_mode: str_at(price_or_plan, "tiers_mode"),
            tiers: pricing::read_tiers(price.and_then(|p| p.get("tiers")).or_else(|| plan.and_then(|p| p.get("tiers")))),
            usage_type: recurring.and_then(|r| str_at(r, "usage_type")).or_else(|| plan.and_then(|p| str_at(p, "usage_type"))),
            tax_behavior: price.and_then(|p| str_at(p, "tax_behavior")),
            tax_percent: pricing::inclusive_tax_percent(item.get("tax_rates")),
            discounts: list(item.get("discounts")).iter().filter_map(id_of).collect(),
        })
    }

    /// This item's monthly-normalised amount before discounts.
    pub fn monthly(&self) -> f64 {
        // A metered item has no list amount per month: its MRR comes from its invoices.
        if self.usage_type.as_deref() == Some("metered") {
            return 0.0;
        }
        mrr::item_monthly(self.unit_amount, self.quantity, self.interval.as_deref(), self.interval_count)
    }
}

/// A discount (coupon applied to a customer or subscription).
#[derive(Debug, Clone, PartialEq)]
pub struct DiscountSnapshot {
    pub id: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub coupon_id: Option<String>,
    pub percent_off: Option<f64>,
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    pub duration: Option<String>,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub deleted: bool,
}

impl DiscountSnapshot {
    /// Read an expanded discount object; `fallback_id` names discounts from API versions that
    /// gave them no id.
    pub fn read(obj: &Value, fallback_id: Option<String>, deleted: bool) -> Option<Self> {
        // The coupon sits at `coupon` (old) or `source.coupon` (2025+), as an id or an object.
        let coupon = obj.get("coupon").filter(|c| !c.is_null()).or_else(|| path(obj, &["source", "coupon"]));
        let coupon_obj = coupon.filter(|c| c.is_object());
        let coupon_id = coupon.and_then(id_of);
        let id = str_at(obj, "id").or(fallback_id)?;
        Some(Self {
            id,
            customer: id_at(obj, "customer"),
            // An item's discount is never the customer's (those have no subscription): when
            // Stripe names only the item, the item's id stands in for the subscription.
            subscription: id_at(obj, "subscription").or_else(|| id_at(obj, "subscription_item")),
            coupon_id,
            percent_off: coupon_obj.and_then(|c| c.get("percent_off")).and_then(Value::as_f64),
            amount_off: coupon_obj.and_then(|c| int_at(c, "amount_off")),
            currency: coupon_obj.and_then(|c| str_at(c, "currency")),
            duration: coupon_obj.and_then(|c| str_at(c, "duration")),
            starts_at: int_at(obj, "start"),
            ends_at: int_at(obj, "end"),
            deleted,
        })
    }
}

/// A subscription as of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionSnapshot {
    pub id: String,
    pub customer: Option<String>,
    pub status: String,
    pub currency: Option<String>,
    pub created: Option<i64>,
    pub start_date: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub cancel_reason: Option<String>,
    pub cancel_feedback: Option<String>,
    pub cancel_comment: Option<String>,
    pub pause_behavior: Option<String>,
    pub pause_resumes_at: Option<i64>,
    /// Ids of the discounts in force (`discounts`, or the single legacy `discount`).
    pub discount_ids: Vec<String>,
    /// Discounts that arrived expanded, to be recorded in the discounts table.
    pub expanded_discounts: Vec<DiscountSnapshot>,
    pub items: Vec<ItemSnapshot>,
    /// Why a `paused` subscription was paused (`status_details.paused`).
    pub pause_cause: Option<PauseCause>,
}

impl SubscriptionSnapshot {
    pub fn read(obj: &Value) -> Option<Self> {
        let id = str_at(obj, "id")?;
        let mut items: Vec<ItemSnapshot> = list(obj.get("items")).iter().filter_map(ItemSnapshot::read).collect();
        // An item without tax rates of its own is taxed at the subscription's default rates.
        let default_tax = pricing::inclusive_tax_percent(obj.get("default_tax_rates"));
        for i in items.iter_mut().filter(|i| i.tax_percent.is_none()) {
            i.tax_percent = default_tax;
        }
        // Periods moved from the subscription to each item in 2025-03-31.basil.
        let item_values = list(obj.get("items"));
        let period_start = int_at(obj, "current_period_start")
            .or_else(|| item_values.iter().filter_map(|i| int_at(i, "current_period_start")).min());
        let period_end = int_at(obj, "current_period_end")
            .or_else(|| item_values.iter().filter_map(|i| int_at(i, "current_period_end")).max());
        let (discount_ids, expanded_discounts) = read_discounts(obj, &id);
        let pause = obj.get("pause_collection").filter(|p| p.is_object());
        let details = obj.get("cancellation_details").filter(|d| d.is_object());
        Some(Self {
            customer: id_at(obj, "customer"),
            status: str_at(obj, "status").unwrap_or_else(|| "unknown".into()),
            currency: str_at(obj, "currency").or_else(|| items.iter().find_map(|i| i.currency.clone())),
            created: int_at(obj, "created"),
            start_date: int_at(obj, "start_date"),
            trial_start: int_at(obj, "trial_start"),
            trial_end: int_at(obj, "trial_end"),
            current_period_start: period_start,
            current_period_end: period_end,
            cancel_at_period_end: flag_at(obj, "cancel_at_period_end"),
            cancel_at: int_at(obj, "cancel_at"),
            canceled_at: int_at(obj, "canceled_at"),
            ended_at: int_at(obj, "ended_at"),
            cancel_reason: details.and_then(|d| str_at(d, "reason")),
            cancel_feedback: details.and_then(|d| str_at(d, "feedback")),
            cancel_comment: details.and_then(|d| str_at(d, "comment")),
            pause_behavior: pause.and_then(|p| str_at(p, "behavior")),
            pause_resumes_at: pause.and_then(|p| int_at(p, "resumes_at")),
            discount_ids,
            expanded_discounts,
            items,
            pause_cause: pricing::pause_cause(obj),
            id,
        })
    }

    /// Why the subscription stopped counting, as its history records it: Stripe's
    /// `cancellation_details.reason`, or `payment_failed` for a subscription Stripe paused
    /// after a failed payment (the metrics count that pause as an involuntary end).
    pub fn history_reason(&self) -> Option<&str> {
        match (self.cancel_reason.as_deref(), self.pause_cause) {
            (None, Some(PauseCause::PaymentFailure)) => Some("payment_failed"),
            (reason, _) => reason,
        }
    }

    /// Sum of the items' monthly amounts, before discounts and regardless of status.
    pub fn base_mrr(&self) -> f64 {
        self.items.iter().map(ItemSnapshot::monthly).sum()
    }

    /// `pause_collection` is set: the subscription stays active at 0 MRR.
    pub fn collection_paused(&self) -> bool {
        self.pause_behavior.is_some()
    }
}

fn read_discounts(obj: &Value, sub_id: &str) -> (Vec<String>, Vec<DiscountSnapshot>) {
    let mut ids = Vec::new();
    let mut expanded = Vec::new();
    for d in list(obj.get("discounts")) {
        if let Some(id) = id_of(d) {
            ids.push(id);
        }
        if d.is_object() {
            expanded.extend(DiscountSnapshot::read(d, None, false));
        }
    }
    // Items' own discounts that arrived expanded are recorded too (their ids stay on the item).
    // Inside its subscription, a discount naming no subscription belongs to this one.
    for raw in list(obj.get("items")).iter().flat_map(|i| list(i.get("discounts"))).filter(|d| d.is_object()) {
        if let Some(mut d) = DiscountSnapshot::read(raw, None, false) {
            if id_at(raw, "subscription").is_none() {
                d.subscription = Some(sub_id.to_owned());
            }
            expanded.push(d);
        }
    }
    if let Some(legacy) = obj.get("discount").filter(|d| d.is_object()) {
        let fallback = legacy.get("coupon").and_then(id_of).map(|c| format!("di_legacy_{sub_id}_{c}"));
        if let Some(mut d) = DiscountSnapshot::read(legacy, fallback, false) {
            d.subscription.get_or_insert_with(|| sub_id.to_owned());
            if !ids.contains(&d.id) {
                ids.push(d.id.clone());
            }
            expanded.push(d);
        }
    }
    (ids, expanded)
}

/// An invoice as of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceSnapshot {
    pub id: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub status: Option<String>,
    pub billing_reason: Option<String>,
    pub currency: Option<String>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub attempt_count: i64,
    pub next_payment_attempt: Option<i64>,
    pub hosted_invoice_url: Option<String>,
    pub created: Option<i64>,
    pub paid_at: Option<i64>,
}

impl InvoiceSnapshot {
    /// `None` for objects without an id (`invoice.upcoming` previews).
    pub fn read(obj: &Value) -> Option<Self> {
        // The subscription moved to `parent.subscription_details.subscription` in basil.
        let subscription =
            id_at(obj, "subscription").or_else(|| path(obj, &["parent", "subscription_details", "subscription"]).and_then(id_of));
        Some(Self {
            id: str_at(obj, "id")?,
            customer: id_at(obj, "customer"),
            subscription,
            status: str_at(obj, "status"),
            billing_reason: str_at(obj, "billing_reason"),
            currency: str_at(obj, "currency"),
            amount_due: int_at(obj, "amount_due").unwrap_or(0),
            amount_paid: int_at(obj, "amount_paid").unwrap_or(0),
            amount_remaining: int_at(obj, "amount_remaining").unwrap_or(0),
            attempt_count: int_at(obj, "attempt_count").unwrap_or(0),
            next_payment_attempt: int_at(obj, "next_payment_attempt"),
            hosted_invoice_url: str_at(obj, "hosted_invoice_url"),
            created: int_at(obj, "created"),
            paid_at: path(obj, &["status_transitions", "paid_at"]).and_then(Value::as_i64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn periods_and_invoice_subscription_are_read_from_old_and_new_places() {
        let old =
            json!({"id": "sub_1", "status": "active", "current_period_start": 1, "current_period_end": 2, "items": {"data": []}});
        let new = json!({"id": "sub_1", "status": "active", "items": {"data": [
            {"id": "si_1", "current_period_start": 1, "current_period_end": 2, "quantity": 1,
             "price": {"id": "price_1", "unit_amount": 1000, "currency": "usd", "recurring": {"interval": "month", "interval_count": 1}}}]}});
        for v in [old, new] {
            let s = SubscriptionSnapshot::read(&v).expect("snapshot");
            assert_eq!((s.current_period_start, s.current_period_end), (Some(1), Some(2)));
        }
        let old_inv = json!({"id": "in_1", "subscription": "sub_1"});
        let new_inv = json!({"id": "in_1", "parent": {"subscription_details": {"subscription": "sub_1"}}});
        for v in [old_inv, new_inv] {
            assert_eq!(InvoiceSnapshot::read(&v).and_then(|i| i.subscription).as_deref(), Some("sub_1"));
        }
    }

    #[test]
    fn legacy_single_discount_and_plan_are_understood() {
        let v = json!({"id": "sub_1", "status": "active",
            "discount": {"coupon": {"id": "SAVE30", "percent_off": 30.0, "duration": "repeating"}, "start": 5, "end": 50},
            "items": {"data": [{"id": "si_1", "quantity": 2, "plan": {"id": "plan_1", "amount": 12000, "currency": "usd", "interval": "year", "interval_count": 1}}]}});
        let s = SubscriptionSnapshot::read(&v).expect("snapshot");
        assert_eq!(s.discount_ids, vec!["di_legacy_sub_1_SAVE30".to_string()]);
        assert_eq!(s.expanded_discounts[0].percent_off, Some(30.0));
        assert_eq!(s.base_mrr(), 2000.0);
    }

    #[test]
    fn items_own_discounts_are_read_as_ids_and_expanded_ones_recorded() {
        let v = json!({"id": "sub_1", "status": "active", "discounts": ["di_s"], "items": {"data": [
            {"id": "si_1", "quantity": 1, "discounts": ["di_1"], "price": {"id": "price_1", "unit_amount": 1000}},
            {"id": "si_2", "quantity": 1, "price": {"id": "price_2", "unit_amount": 500},
             "discounts": [{"id": "di_2", "object": "discount", "customer": "cus_1", "subscription": null,
                            "subscription_item": "si_2", "source": {"type": "coupon", "coupon": "HALF"}, "start": 5, "end": null}]}]}});
        let s = SubscriptionSnapshot::read(&v).expect("snapshot");
        assert_eq!((s.items[0].discounts.clone(), s.items[1].discounts.clone()), (vec!["di_1".into()], vec!["di_2".into()]));
        assert_eq!(s.discount_ids, vec!["di_s".to_string()], "an item's discounts are not the subscription's");
        let d = &s.expanded_discounts[0];
        assert_eq!((d.id.as_str(), d.subscription.as_deref(), d.coupon_id.as_deref()), ("di_2", Some("sub_1"), Some("HALF")));
        // A discount event naming only the item is never taken for the customer's.
        let only_item = json!({"id": "di_3", "customer": "cus_1", "subscription": null, "subscription_item": "si_9"});
        assert_eq!(DiscountSnapshot::read(&only_item, None, false).and_then(|d| d.subscription).as_deref(), Some("si_9"));
    }

    #[test]
    fn missing_fields_never_fail_a_snapshot() {
        let s = SubscriptionSnapshot::read(&json!({"id": "sub_1", "items": "weird", "discounts": 3})).expect("snapshot");
        assert_eq!(s.status, "unknown");
        assert!(s.items.is_empty() && s.discount_ids.is_empty());
        assert!(InvoiceSnapshot::read(&json!({"object": "invoice"})).is_none());
    }
}
