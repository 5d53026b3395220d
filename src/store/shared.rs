//! Encodings both backends store the same way.

use serde_json::json;

use crate::domain::snapshots::SubscriptionSnapshot;

/// The discount ids in force, as a JSON array (text in both backends).
pub fn discount_ids_json(s: &SubscriptionSnapshot) -> String {
    json!(s.discount_ids).to_string()
}

/// The priced items of a snapshot as JSON, kept in history so any past MRR can be recomputed.
pub fn items_json(s: &SubscriptionSnapshot) -> String {
    let items: Vec<_> = s
        .items
        .iter()
        .map(|i| {
            let mut v = json!({"item": i.item_id, "price": i.price_id, "product": i.product, "unit_amount": i.unit_amount,
                   "currency": i.currency, "interval": i.interval, "interval_count": i.interval_count, "quantity": i.quantity});
            // Pricing beyond per-unit, only when present (most rows stay as short as before).
            for (key, value) in [
                ("billing_scheme", json!(i.billing_scheme.as_deref().filter(|s| *s != "per_unit"))),
                ("tiers_mode", json!(i.tiers_mode)),
                ("tiers", json!(i.tiers)),
                ("usage_type", json!(i.usage_type.as_deref().filter(|u| *u != "licensed"))),
                ("tax_behavior", json!(i.tax_behavior.as_deref().filter(|t| *t == "inclusive"))),
                ("tax_percent", json!(i.tax_percent)),
                ("discounts", json!((!i.discounts.is_empty()).then_some(&i.discounts))),
            ] {
                if !value.is_null() {
                    v[key] = value;
                }
            }
            v
        })
        .collect();
    json!(items).to_string()
}
