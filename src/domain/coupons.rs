//! Stripe's coupons: the terms a discount names by id. Read from `coupon.*` events, from
//! `holdfast sync`'s coupon list and from a coupon fetched for a discount naming an unknown
//! one. Pure; `store::coupons` writes them.

use serde_json::Value;

use crate::domain::backfill::Synthetic;
use crate::domain::event::Event;
use crate::domain::fields::{int_at, list, path, str_at};

/// A coupon's terms as last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct CouponSnapshot {
    pub id: String,
    pub percent_off: Option<f64>,
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    /// `once`, `repeating` or `forever`.
    pub duration: Option<String>,
    pub duration_in_months: Option<i64>,
    /// `applies_to.products`: the products it is limited to (`None`: every product).
    pub applies_to_products: Option<Vec<String>>,
    /// Deleted coupons can no longer be redeemed, but discounts already made from them stay.
    pub deleted: bool,
}

impl CouponSnapshot {
    /// Read a coupon object (`None` without an id).
    pub fn read(obj: &Value, deleted: bool) -> Option<Self> {
        let products = path(obj, &["applies_to", "products"])
            .map(|p| list(Some(p)).iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>());
        Some(Self {
            id: str_at(obj, "id")?,
            percent_off: obj.get("percent_off").and_then(Value::as_f64),
            amount_off: int_at(obj, "amount_off"),
            currency: str_at(obj, "currency").map(|c| c.to_lowercase()),
            duration: str_at(obj, "duration"),
            duration_in_months: int_at(obj, "duration_in_months"),
            applies_to_products: products,
            deleted: deleted || obj.get("deleted").and_then(Value::as_bool) == Some(true),
        })
    }

    /// Whether the coupon says what it takes off.
    pub fn has_terms(&self) -> bool {
        self.percent_off.is_some() || self.amount_off.is_some()
    }
}

/// Read the coupon an event carries (`None` for any other object).
pub fn read(event: &Event) -> Option<CouponSnapshot> {
    let obj = &event.object;
    if str_at(obj, "object").as_deref() != Some("coupon") {
        return None;
    }
    CouponSnapshot::read(obj, event.kind.ends_with(".deleted"))
}

/// `holdfast sync`'s list of coupons, and a fetched coupon: one `coupon.updated` event at its
/// creation (a coupon's terms never change after it is made).
pub fn coupon_events(obj: &Value) -> Vec<Synthetic> {
    let (Some(id), Some(at)) = (str_at(obj, "id"), int_at(obj, "created")) else { return Vec::new() };
    vec![Synthetic { id: format!("evt_sync_coupon_{id}_{at}"), kind: "coupon.updated", created: at, object: obj.clone() }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_coupon_is_read_with_its_product_limits() {
        let body = json!({"id": "evt_1", "type": "coupon.created", "created": 5, "livemode": false, "data": {"object":
            {"object": "coupon", "id": "Q", "percent_off": null, "amount_off": 500, "currency": "EUR", "duration": "repeating",
             "duration_in_months": 3, "applies_to": {"products": ["prod_a"]}, "created": 4}}});
        let event = Event::parse(body.to_string().as_bytes()).expect("event");
        let c = read(&event).expect("coupon");
        assert_eq!((c.amount_off, c.currency.as_deref(), c.duration_in_months), (Some(500), Some("eur"), Some(3)));
        assert_eq!(c.applies_to_products, Some(vec!["prod_a".to_string()]));
        assert!(c.has_terms() && !c.deleted);
        let unlimited = CouponSnapshot::read(&json!({"id": "P", "percent_off": 20.0}), true).expect("coupon");
        assert_eq!((unlimited.applies_to_products, unlimited.deleted), (None, true));
        assert_eq!(coupon_events(&json!({"id": "Q", "created": 4}))[0].id, "evt_sync_coupon_Q_4");
    }
}
