//! Stripe's products and prices, read from `product.*` / `price.*` events (and the events
//! `holdfast sync` synthesizes from the product and price lists): what a plan is called and
//! what it costs. Pure; `store::catalog` writes them.

use serde_json::Value;

use crate::domain::backfill::Synthetic;
use crate::domain::event::Event;
use crate::domain::fields::{id_at, int_at, path, str_at};
use crate::domain::pricing::{self, Tier};

/// A product as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSnapshot {
    pub id: String,
    pub name: Option<String>,
    pub active: bool,
    pub deleted: bool,
}

/// A price as last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceSnapshot {
    pub id: String,
    pub product: Option<String>,
    pub nickname: Option<String>,
    pub currency: Option<String>,
    pub unit_amount: Option<i64>,
    pub recurring_interval: Option<String>,
    pub interval_count: Option<i64>,
    pub active: bool,
    pub deleted: bool,
    /// `per_unit` or `tiered`.
    pub billing_scheme: Option<String>,
    pub tiers_mode: Option<String>,
    /// Present only when the price was expanded with its tiers.
    pub tiers: Option<Vec<Tier>>,
    pub usage_type: Option<String>,
    pub tax_behavior: Option<String>,
}

/// What one event says about the catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogSnapshot {
    Product(ProductSnapshot),
    Price(Box<PriceSnapshot>),
}

/// Read the product or price an event carries (`None` for any other object).
pub fn read(event: &Event) -> Option<CatalogSnapshot> {
    let obj = &event.object;
    let deleted = event.kind.ends_with(".deleted") || obj.get("deleted").and_then(Value::as_bool) == Some(true);
    let active = obj.get("active").and_then(Value::as_bool).unwrap_or(true) && !deleted;
    match str_at(obj, "object").as_deref() {
        Some("product") => {
            Some(CatalogSnapshot::Product(ProductSnapshot { id: str_at(obj, "id")?, name: str_at(obj, "name"), active, deleted }))
        }
        Some("price") => Some(CatalogSnapshot::Price(Box::new(PriceSnapshot {
            id: str_at(obj, "id")?,
            product: id_at(obj, "product"),
            nickname: str_at(obj, "nickname"),
            currency: str_at(obj, "currency"),
            unit_amount: int_at(obj, "unit_amount"),
            recurring_interval: path(obj, &["recurring", "interval"]).and_then(Value::as_str).map(str::to_owned),
            interval_count: path(obj, &["recurring", "interval_count"]).and_then(Value::as_i64),
            active,
            deleted,
            billing_scheme: str_at(obj, "billing_scheme"),
            tiers_mode: str_at(obj, "tiers_mode"),
            tiers: pricing::read_tiers(obj.get("tiers")),
            usage_type: path(obj, &["recurring", "usage_type"]).and_then(Value::as_str).map(str::to_owned),
            tax_behavior: str_at(obj, "tax_behavior"),
        }))),
        _ => None,
    }
}

/// `holdfast sync`: one `product.updated` / `price.updated` event per listed object, at its
/// last change (`updated`, else `created`), so a later sync of a changed object is a new event.
pub fn sync_events(kind: &'static str) -> impl Fn(&Value) -> Vec<Synthetic> {
    move |obj| {
        let (Some(id), Some(at)) = (str_at(obj, "id"), int_at(obj, "updated").or_else(|| int_at(obj, "created"))) else {
            return Vec::new();
        };
        vec![Synthetic { id: format!("evt_sync_{id}_{at}"), kind, created: at, object: obj.clone() }]
    }
}

/// `holdfast sync`'s list of products.
pub fn product_events(obj: &Value) -> Vec<Synthetic> {
    sync_events("product.updated")(obj)
}

/// `holdfast sync`'s list of prices.
pub fn price_events(obj: &Value) -> Vec<Synthetic> {
    sync_events("price.updated")(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, object: Value) -> Event {
        let body = serde_json::json!({"id": "evt_1", "type": kind, "created": 5, "livemode": false, "data": {"object": object}});
        Event::parse(body.to_string().as_bytes()).expect("event")
    }

    #[test]
    fn products_and_prices_are_read_from_their_events() {
        let p =
            event("product.updated", serde_json::json!({"object": "product", "id": "prod_1", "name": "Basic", "active": true}));
        assert_eq!(
            read(&p),
            Some(CatalogSnapshot::Product(ProductSnapshot {
                id: "prod_1".into(),
                name: Some("Basic".into()),
                active: true,
                deleted: false
            }))
        );
        let price = event(
            "price.deleted",
            serde_json::json!({"object": "price", "id": "price_1", "product": "prod_1", "currency": "usd", "unit_amount": 900,
                               "recurring": {"interval": "month", "interval_count": 1}, "active": true}),
        );
        let Some(CatalogSnapshot::Price(price)) = read(&price) else { panic!("a price") };
        assert_eq!(
            (price.unit_amount, price.recurring_interval.as_deref(), price.deleted, price.active),
            (Some(900), Some("month"), true, false)
        );
        assert_eq!(read(&event("customer.created", serde_json::json!({"object": "customer", "id": "cus_1"}))), None);
        let tiered = event(
            "price.updated",
            serde_json::json!({"object": "price", "id": "price_t", "billing_scheme": "tiered", "tiers_mode": "graduated",
                               "tax_behavior": "exclusive", "recurring": {"interval": "month", "usage_type": "licensed"},
                               "tiers": [{"up_to": 5, "unit_amount": 100, "flat_amount": 50}, {"up_to": null, "unit_amount_decimal": "80.5"}]}),
        );
        let Some(CatalogSnapshot::Price(tiered)) = read(&tiered) else { panic!("a price") };
        let tiers = tiered.tiers.expect("tiers read");
        assert_eq!(
            (tiered.tiers_mode.as_deref(), tiers.len(), tiers[1].unit_amount, tiers[0].flat_amount),
            (Some("graduated"), 2, 80.5, 50.0)
        );
        let synced = price_events(&serde_json::json!({"object": "price", "id": "price_1", "created": 7}));
        assert_eq!((synced[0].kind, synced[0].created, synced[0].id.as_str()), ("price.updated", 7, "evt_sync_price_1_7"));
    }
}
