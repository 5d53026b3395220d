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
            json!({"item": i.item_id, "price": i.price_id, "product": i.product, "unit_amount": i.unit_amount,
                   "currency": i.currency, "interval": i.interval, "interval_count": i.interval_count, "quantity": i.quantity})
        })
        .collect();
    json!(items).to_string()
}
