//! Sample Stripe events, built on Stripe's own example objects (bundled in the binary, so the
//! demo and `holdfast send-event` need no network and no Stripe account), with our ids,
//! amounts and times written over them in Stripe's 2025-03-31.basil shapes.

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::domain::event::Event;

/// Stripe's example objects, one per resource (`customer`, `subscription`, `invoice`, …).
static OBJECTS: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(include_str!("stripe_objects.json")).unwrap_or_else(|_| json!({"resources": {}})));

/// The API version the samples are shaped for.
pub const API_VERSION: &str = "2025-03-31.basil";

/// The event types `holdfast send-event` can send.
pub const TYPES: &[&str] = &[
    "customer.created",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.trial_will_end",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_action_required",
];

/// Stripe's example object of `resource`, or `{}`.
pub fn object(resource: &str) -> Value {
    match &OBJECTS["resources"][resource] {
        v @ Value::Object(_) => v.clone(),
        _ => json!({}),
    }
}

pub fn customer(id: &str, email: &str, name: &str, created: i64) -> Value {
    let mut c = object("customer");
    c["id"] = json!(id);
    c["object"] = json!("customer");
    c["email"] = json!(email);
    c["name"] = json!(name);
    c["created"] = json!(created);
    c["discount"] = Value::Null;
    c
}

/// A monthly subscription to `price` at `unit_amount` cents (USD), one seat.
pub fn subscription(id: &str, customer: &str, price: &str, unit_amount: i64, status: &str, created: i64) -> Value {
    let mut s = object("subscription");
    s["id"] = json!(id);
    s["object"] = json!("subscription");
    s["customer"] = json!(customer);
    s["status"] = json!(status);
    s["currency"] = json!("usd");
    s["created"] = json!(created);
    s["start_date"] = json!(created);
    for field in ["cancel_at", "canceled_at", "ended_at", "trial_start", "trial_end", "pause_collection", "discount"] {
        s[field] = Value::Null;
    }
    s["cancel_at_period_end"] = json!(false);
    s["cancellation_details"] = json!({"comment": null, "feedback": null, "reason": null});
    s["discounts"] = json!([]);
    let mut item = s.pointer("/items/data/0").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    let mut price_obj = item.get("price").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    price_obj["id"] = json!(price);
    price_obj["object"] = json!("price");
    price_obj["currency"] = json!("usd");
    price_obj["unit_amount"] = json!(unit_amount);
    price_obj["unit_amount_decimal"] = json!(unit_amount.to_string());
    price_obj["recurring"] =
        json!({"interval": "month", "interval_count": 1, "meter": null, "trial_period_days": null, "usage_type": "licensed"});
    price_obj["type"] = json!("recurring");
    item["id"] = json!(format!("si_{}", id.trim_start_matches("sub_")));
    item["object"] = json!("subscription_item");
    item["subscription"] = json!(id);
    item["quantity"] = json!(1);
    // The current period: the month that contains `now` is not known here; a period starting
    // at creation is what Stripe shows for a new subscription.
    item["current_period_start"] = json!(created);
    item["current_period_end"] = json!(created + 30 * 86_400);
    item["price"] = price_obj;
    item["plan"] = Value::Null;
    s["items"] = json!({"object": "list", "data": [item], "has_more": false, "url": "/v1/subscription_items"});
    s
}

/// A subscription invoice (`parent.subscription_details`, the 2025+ shape).
pub fn invoice(id: &str, customer: &str, subscription: &str, status: &str, amount: i64, created: i64) -> Value {
    let mut i = object("invoice");
    let paid = status == "paid";
    i["id"] = json!(id);
    i["object"] = json!("invoice");
    i["customer"] = json!(customer);
    i["status"] = json!(status);
    i["currency"] = json!("usd");
    i["amount_due"] = json!(amount);
    i["amount_paid"] = json!(if paid { amount } else { 0 });
    i["amount_remaining"] = json!(if paid { 0 } else { amount });
    i["attempt_count"] = json!(1);
    i["billing_reason"] = json!("subscription_cycle");
    i["created"] = json!(created);
    i["next_payment_attempt"] = if paid { Value::Null } else { json!(created + 3 * 86_400) };
    i["hosted_invoice_url"] = json!(format!("https://invoice.stripe.com/i/{id}"));
    i["parent"] = json!({"type": "subscription_details", "quote_details": null,
                         "subscription_details": {"metadata": {}, "subscription": subscription}});
    i["status_transitions"] = json!({"finalized_at": created, "marked_uncollectible_at": null,
        "paid_at": if paid { json!(created) } else { Value::Null }, "voided_at": null});
    i
}

/// A Stripe event wrapping `object`.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    let mut e = self::object("event");
    e["id"] = json!(id);
    e["object"] = json!("event");
    e["type"] = json!(kind);
    e["created"] = json!(created);
    e["livemode"] = json!(false);
    e["api_version"] = json!(API_VERSION);
    e["account"] = Value::Null;
    e["data"] = json!({"object": object, "previous_attributes": {}});
    e
}

/// Who a sample event is about.
#[derive(Debug, Clone)]
pub struct Subject {
    pub customer: String,
    pub subscription: String,
    /// Unique per sample (event and invoice ids), so each send is a new event.
    pub unique: String,
}

/// One sample event of `kind` at `now`, or `None` for a type we have no sample of.
pub fn sample(kind: &str, who: &Subject, now: i64) -> Option<Value> {
    let (c, s, u) = (who.customer.as_str(), who.subscription.as_str(), who.unique.as_str());
    let email = format!("{}@example.com", c.trim_start_matches("cus_").replace('_', "."));
    let sub = |status: &str| subscription(s, c, "price_team_m", 4900, status, now - 40 * 86_400);
    let object = match kind {
        "customer.created" => customer(c, &email, "Sample Customer", now),
        "customer.subscription.created" => subscription(s, c, "price_team_m", 4900, "active", now),
        "customer.subscription.updated" => sub("active"),
        "customer.subscription.deleted" => {
            let mut o = sub("canceled");
            o["canceled_at"] = json!(now);
            o["ended_at"] = json!(now);
            o["cancellation_details"] = json!({"comment": null, "feedback": null, "reason": "cancellation_requested"});
            o
        }
        "customer.subscription.trial_will_end" => {
            let mut o = sub("trialing");
            o["trial_start"] = json!(now - 11 * 86_400);
            o["trial_end"] = json!(now + 3 * 86_400);
            o
        }
        "invoice.paid" => invoice(&format!("in_{u}"), c, s, "paid", 4900, now),
        "invoice.payment_failed" | "invoice.payment_action_required" => invoice(&format!("in_{u}"), c, s, "open", 4900, now),
        _ => return None,
    };
    Some(event(&format!("evt_{u}"), kind, now, object))
}

/// An event as the store ingests it (what the webhook parses from a delivered body).
pub fn to_event(e: &Value) -> Option<Event> {
    Event::parse(e.to_string().as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_has_a_sample_that_parses_as_an_event() {
        let who = Subject { customer: "cus_demo_ada".into(), subscription: "sub_demo_ada".into(), unique: "local_1".into() };
        for kind in TYPES {
            let e = sample(kind, &who, 1_760_000_000).unwrap_or_else(|| panic!("a sample of {kind}"));
            let parsed = to_event(&e).unwrap_or_else(|| panic!("{kind} parses"));
            assert_eq!(parsed.kind, *kind);
            assert_eq!(parsed.id, "evt_local_1");
        }
        assert!(sample("charge.refunded", &who, 0).is_none());
    }
}
