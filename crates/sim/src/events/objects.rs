//! The Stripe objects of the events: each starts from the `base` object of its resource
//! with our fields written over it, in basil shapes (`reshape` moves them to others).

use serde_json::{Value, json};

use super::{Base, Shape};
use crate::business::{Customer, Discount, Happening, METERED_PRICE, Subscription, TieredPrice};

/// A tiered price with its tiers (as `holdfast sync` stores it, asking for them).
pub(super) fn price_object(p: &TieredPrice, base: Base<'_>) -> Value {
    let mut o = object(base, "price");
    o["id"] = json!(p.id);
    o["object"] = json!("price");
    o["currency"] = json!("usd");
    o["billing_scheme"] = json!("tiered");
    o["tiers_mode"] = json!(p.mode);
    o["tiers"] = tiers_json(p);
    o["unit_amount"] = Value::Null;
    o["unit_amount_decimal"] = Value::Null;
    o["transform_quantity"] = Value::Null;
    o["type"] = json!("recurring");
    o["recurring"] =
        json!({"interval": "month", "interval_count": 1, "meter": null, "trial_period_days": null, "usage_type": "licensed"});
    o["created"] = json!(1_700_000_000);
    o
}

pub(super) fn tiers_json(p: &TieredPrice) -> Value {
    let tiers: Vec<Value> = p
        .tiers
        .iter()
        .map(|(up_to, unit, flat)| {
            json!({"up_to": up_to, "unit_amount": unit, "unit_amount_decimal": unit.to_string(),
                   "flat_amount": if *flat == 0 { Value::Null } else { json!(flat) },
                   "flat_amount_decimal": if *flat == 0 { Value::Null } else { json!(flat.to_string()) }})
        })
        .collect();
    json!(tiers)
}

pub(super) fn coupon_object(percent_off: i64, base: Base<'_>) -> Value {
    let mut o = object(base, "coupon");
    o["id"] = json!(format!("coupon_{percent_off}"));
    o["object"] = json!("coupon");
    o["percent_off"] = json!(percent_off);
    o["amount_off"] = Value::Null;
    o["currency"] = Value::Null;
    o["duration"] = json!("repeating");
    o["duration_in_months"] = json!(3);
    o["valid"] = json!(true);
    o["created"] = json!(1_700_000_000 + percent_off);
    o
}

pub(super) fn discount_object(
    c: &Customer,
    s: Option<&Subscription>,
    d: &Discount,
    coupon: Value,
    shape: Shape,
    base: Base<'_>,
) -> Value {
    let mut di = object(base, "discount");
    di["id"] = json!(d.id);
    di["object"] = json!("discount");
    di["customer"] = json!(c.id);
    di["subscription"] = json!(s.map(|s| &s.id));
    di["start"] = json!(d.start);
    di["end"] = json!(d.end);
    match shape {
        Shape::V2024_06_20 | Shape::Basil => {
            di["coupon"] = coupon;
            if let Some(o) = di.as_object_mut() {
                o.remove("source");
            }
        }
        Shape::Clover | Shape::Endive => {
            di["source"] = json!({"type": "coupon", "coupon": coupon["id"]});
            if let Some(o) = di.as_object_mut() {
                o.remove("coupon");
            }
        }
    }
    di
}

pub(super) fn render_one(c: &Customer, t: i64, what: &Happening, base: Base<'_>) -> (&'static str, Value) {
    match what {
        Happening::CustomerCreated => {
            let mut o = object(base, "customer");
            o["id"] = json!(c.id);
            o["object"] = json!("customer");
            o["email"] = json!(format!("{}@example.com", c.id));
            o["created"] = json!(c.created);
            o["discount"] = Value::Null;
            ("customer.created", o)
        }
        Happening::CustomerDiscount(d) => {
            ("customer.discount.created", discount_object(c, None, d, coupon_object(d.percent_off, base), Shape::Basil, base))
        }
        Happening::SubscriptionCreated(s) => ("customer.subscription.created", subscription(c, s, base)),
        Happening::SubscriptionUpdated(s) => ("customer.subscription.updated", subscription(c, s, base)),
        Happening::SubscriptionDeleted(s) => ("customer.subscription.deleted", subscription(c, s, base)),
        Happening::InvoicePaymentFailed { invoice: id, subscription: sub, amount, action_required, attempt } => {
            let mut o = invoice(c, id, sub, "open", *amount, t, base);
            o["attempt_count"] = json!(attempt);
            o["next_payment_attempt"] = if *action_required { Value::Null } else { json!(t + 3 * 86_400) };
            (if *action_required { "invoice.payment_action_required" } else { "invoice.payment_failed" }, o)
        }
        Happening::InvoicePaid { invoice: id, subscription: sub, amount } => {
            ("invoice.paid", invoice(c, id, sub, "paid", *amount, t, base))
        }
        Happening::UsageInvoice { invoice: id, subscription: sub, amount } => {
            let mut o = invoice(c, id, sub, "paid", *amount, t, base);
            let mut line = o.pointer("/lines/data/0").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
            line["id"] = json!(format!("il_{}", &id[3..]));
            line["object"] = json!("line_item");
            line["invoice"] = json!(id);
            line["amount"] = json!(amount);
            line["currency"] = json!(c.currency);
            line["period"] = json!({"start": t - 30 * 86_400, "end": t});
            line["parent"] = json!({"type": "subscription_item_details", "invoice_item_details": null,
                "subscription_item_details": {"invoice_item": null, "proration": false, "proration_details": {"credited_items": null},
                                              "subscription": sub, "subscription_item": format!("si_{}", &sub[4..])}});
            line["pricing"] = json!({"type": "price_details", "price_details": {"price": METERED_PRICE, "product": "prod_api"},
                                     "unit_amount_decimal": "2"});
            line["taxes"] = json!([]);
            o["lines"] = json!({"object": "list", "data": [line], "has_more": false, "url": format!("/v1/invoices/{id}/lines")});
            o["billing_reason"] = json!(if *amount == 0 { "subscription_create" } else { "subscription_cycle" });
            ("invoice.paid", o)
        }
        Happening::InvoiceVoided { invoice: id, subscription: sub, amount } => {
            ("invoice.voided", invoice(c, id, sub, "void", *amount, t, base))
        }
        Happening::InvoiceUncollectible { invoice: id, subscription: sub, amount } => {
            ("invoice.marked_uncollectible", invoice(c, id, sub, "uncollectible", *amount, t, base))
        }
    }
}

fn object(base: Base<'_>, resource: &str) -> Value {
    match base(resource) {
        v @ Value::Object(_) => v,
        _ => json!({}),
    }
}

fn subscription(c: &Customer, s: &Subscription, base: Base<'_>) -> Value {
    let mut o = object(base, "subscription");
    let item = o.pointer("/items/data/0").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    let item = subscription_item(c, s, item);
    o["id"] = json!(s.id);
    o["object"] = json!("subscription");
    o["customer"] = json!(c.id);
    o["status"] = json!(s.status);
    o["currency"] = json!(c.currency);
    o["created"] = json!(s.created);
    o["start_date"] = json!(s.created);
    o["items"] = json!({"object": "list", "data": [item], "has_more": false, "url": "/v1/subscription_items"});
    o["cancel_at_period_end"] = json!(false);
    o["cancel_at"] = Value::Null;
    o["canceled_at"] = json!(s.ended_at);
    o["ended_at"] = json!(s.ended_at);
    o["cancellation_details"] = json!({"reason": s.cancel_reason, "feedback": null, "comment": null});
    o["trial_start"] = json!(s.trial_end.map(|e| e - 14 * 86_400));
    o["trial_end"] = json!(s.trial_end);
    o["pause_collection"] = match s.pause {
        Some(resumes_at) => json!({"behavior": "void", "resumes_at": resumes_at}),
        None => Value::Null,
    };
    o["discount"] = Value::Null;
    o["discounts"] = subscription_discounts(c, s, base);
    o
}

/// The subscription's one item, over the base subscription's first item.
fn subscription_item(c: &Customer, s: &Subscription, mut item: Value) -> Value {
    let price = item.get("price").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    let price = item_price(c, s, price);
    item["id"] = json!(format!("si_{}", &s.id[4..]));
    item["object"] = json!("subscription_item");
    item["subscription"] = json!(s.id);
    // Metered items carry no quantity.
    item["quantity"] = if s.metered { Value::Null } else { json!(s.quantity) };
    item["current_period_start"] = json!(s.created);
    item["current_period_end"] = json!(s.created + s.interval_months() * 30 * 86_400);
    item["price"] = price;
    item["plan"] = Value::Null;
    item
}

/// The item's price (a tiered one without its tiers), over the base item's price.
fn item_price(c: &Customer, s: &Subscription, mut price: Value) -> Value {
    price["id"] = json!(s.price_id);
    price["object"] = json!("price");
    price["currency"] = json!(c.currency);
    price["unit_amount"] = json!(s.unit_amount);
    price["unit_amount_decimal"] = json!(s.unit_amount.to_string());
    price["recurring"] =
        json!({"interval": s.interval, "interval_count": 1, "meter": null, "trial_period_days": null, "usage_type": "licensed"});
    price["type"] = json!("recurring");
    price["billing_scheme"] = json!("per_unit");
    price["tiers_mode"] = Value::Null;
    if s.metered {
        price["recurring"]["usage_type"] = json!("metered");
    }
    if let Some(p) = s.tiers {
        price["billing_scheme"] = json!("tiered");
        price["tiers_mode"] = json!(p.mode);
        price["unit_amount"] = Value::Null;
        price["unit_amount_decimal"] = Value::Null;
    }
    price
}

/// The subscription's `discounts`: its own discount in force, expanded, or none.
fn subscription_discounts(c: &Customer, s: &Subscription, base: Base<'_>) -> Value {
    let Some(d) = &s.discount else { return json!([]) };
    let coupon = json!({"id": format!("coupon_{}", d.percent_off), "object": "coupon", "percent_off": d.percent_off,
        "amount_off": null, "currency": null, "duration": "repeating", "duration_in_months": 3, "valid": true});
    let mut di = object(base, "discount");
    di["id"] = json!(d.id);
    di["object"] = json!("discount");
    di["customer"] = json!(c.id);
    di["subscription"] = json!(s.id);
    di["start"] = json!(d.start);
    di["end"] = json!(d.end);
    di["coupon"] = coupon.clone();
    di["source"] = json!({"type": "coupon", "coupon": coupon});
    json!([di])
}

fn invoice(c: &Customer, id: &str, sub: &str, status: &str, amount: i64, t: i64, base: Base<'_>) -> Value {
    let mut o = object(base, "invoice");
    let paid = status == "paid";
    o["id"] = json!(id);
    o["object"] = json!("invoice");
    o["customer"] = json!(c.id);
    o["subscription"] = json!(sub);
    o["parent"] = json!({"type": "subscription_details", "quote_details": null,
                         "subscription_details": {"metadata": {}, "subscription": sub}});
    o["status"] = json!(status);
    o["currency"] = json!(c.currency);
    o["billing_reason"] = json!("subscription_cycle");
    o["amount_due"] = json!(amount);
    o["amount_paid"] = json!(if paid { amount } else { 0 });
    o["amount_remaining"] = json!(if paid { 0 } else { amount });
    o["attempt_count"] = json!(1);
    o["next_payment_attempt"] = Value::Null;
    o["created"] = json!(t);
    o["hosted_invoice_url"] = json!(format!("https://invoice.stripe.com/i/{id}"));
    o["status_transitions"] = json!({"finalized_at": t, "marked_uncollectible_at": if status == "uncollectible" { json!(t) } else { Value::Null },
        "paid_at": if paid { json!(t) } else { Value::Null }, "voided_at": if status == "void" { json!(t) } else { Value::Null }});
    o
}
