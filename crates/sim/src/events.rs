//! The simulated history as Stripe events, in the shapes of one API version (`Shape`).
//! Objects start from a `base` (Stripe's example objects in tests, `{}` in the bench) with
//! our fields written over it.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::business::{Business, Customer, Happening, Subscription, TieredPrice};

/// One event: id, type, `created`, `data.object`.
#[derive(Debug, Clone)]
pub struct SimEvent {
    pub id: String,
    pub kind: &'static str,
    pub created: i64,
    pub object: Value,
}

/// Where base objects come from: `fixture("subscription")` etc., or `{}`.
pub type Base<'a> = &'a dyn Fn(&str) -> Value;

/// The API version whose shapes the events take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 2024-06-20: periods on the subscription, a single embedded `discount` with its
    /// `coupon` (beside `discounts` as ids), `plan` on items, `subscription` on the invoice.
    V2024_06_20,
    /// 2025-03-31.basil: periods on items, the invoice's subscription under `parent`,
    /// `discounts` as ids; discounts in `customer.discount.created` with an embedded `coupon`.
    Basil,
    /// 2025-09-30.clover: as basil, but a discount names its coupon by id under `source`;
    /// coupons come in `coupon.created` events.
    Clover,
    /// 2026-09-30.endive: clover's webhook shapes; coupons arrive as `holdfast sync` (or a
    /// coupon fetch) stores them: `coupon.updated` events synthesized from the coupon object.
    Endive,
}

impl Shape {
    pub const ALL: [Shape; 4] = [Shape::V2024_06_20, Shape::Basil, Shape::Clover, Shape::Endive];

    /// The `api_version` events of this shape carry.
    pub fn api_version(self) -> &'static str {
        match self {
            Shape::V2024_06_20 => "2024-06-20",
            Shape::Basil => "2025-03-31.basil",
            Shape::Clover => "2025-09-30.clover",
            Shape::Endive => "2026-09-30.endive",
        }
    }
}

/// Every event of the business in basil shapes (see `render_in`).
pub fn render(business: &Business, base: Base<'_>) -> Vec<SimEvent> {
    render_in(business, base, Shape::Basil)
}

/// Every event of the business, customer by customer, each customer's in time order; ids
/// increase along a customer's history so same-second ties break the way they happened.
pub fn render_in(business: &Business, base: Base<'_>, shape: Shape) -> Vec<SimEvent> {
    let mut out = Vec::new();
    let mut coupons_seen = HashSet::new();
    let mut prices_seen = HashSet::new();
    for (i, c) in business.customers.iter().enumerate() {
        let mut discounts_seen = HashSet::new();
        for (k, (t, what)) in c.happenings.iter().enumerate() {
            let id = format!("evt_{}_{i:05}_{k:04}", business.params.seed);
            // A tiered price's tiers are left out of the subscription's item (Stripe includes
            // them only when expanded): they come in the price's own event, the first time a
            // subscription uses it. In basil shapes the item's price arrives expanded instead.
            let tiered = match what {
                Happening::SubscriptionCreated(s) | Happening::SubscriptionUpdated(s) => s.tiers,
                _ => None,
            };
            if let Some(p) = tiered.filter(|p| shape != Shape::Basil && prices_seen.insert(p.id)) {
                out.push(SimEvent { id: format!("{id}_p"), kind: "price.created", created: *t, object: price_object(p, base) });
            }
            // Since basil the discount objects come in their own events, before the
            // subscription listing them; since clover the coupon too.
            let new_discount = match what {
                Happening::SubscriptionCreated(s) | Happening::SubscriptionUpdated(s) => {
                    s.discount.as_ref().filter(|d| discounts_seen.insert(d.id.clone())).map(|d| (s, d))
                }
                _ => None,
            };
            if let Some((s, d)) = new_discount.filter(|_| shape != Shape::V2024_06_20) {
                let coupon = coupon_object(d.percent_off, base);
                if shape != Shape::Basil && coupons_seen.insert(coupon["id"].to_string()) {
                    let kind = if shape == Shape::Clover { "coupon.created" } else { "coupon.updated" };
                    out.push(SimEvent { id: format!("{id}_c"), kind, created: *t, object: coupon.clone() });
                }
                let object = discount_object(c, Some(s), d, coupon, shape, base);
                out.push(SimEvent { id: format!("{id}_d"), kind: "customer.discount.created", created: *t, object });
            }
            if let Happening::CustomerDiscount(d) = what {
                let coupon = coupon_object(d.percent_off, base);
                if matches!(shape, Shape::Clover | Shape::Endive) && coupons_seen.insert(coupon["id"].to_string()) {
                    let kind = if shape == Shape::Clover { "coupon.created" } else { "coupon.updated" };
                    out.push(SimEvent { id: format!("{id}_c"), kind, created: *t, object: coupon.clone() });
                }
                let mut object = discount_object(c, None, d, coupon, shape, base);
                if shape == Shape::V2024_06_20 {
                    // Before basil a customer's discount rides on the customer object.
                    let mut customer = render_one(c, *t, &Happening::CustomerCreated, base).1;
                    if let Some(o) = object.as_object_mut() {
                        o.remove("id");
                    }
                    customer["discount"] = object;
                    out.push(SimEvent { id, kind: "customer.updated", created: *t, object: customer });
                } else {
                    out.push(SimEvent { id, kind: "customer.discount.created", created: *t, object });
                }
                continue;
            }
            let (kind, mut object) = render_one(c, *t, what, base);
            reshape(&mut object, shape);
            if let Some(p) = tiered.filter(|_| shape == Shape::Basil) {
                object["items"]["data"][0]["price"]["tiers"] = tiers_json(p);
            }
            out.push(SimEvent { id, kind, created: *t, object });
        }
    }
    out
}

/// A few events of the other Stripe mode than the business's (a customer, its subscription
/// and a paid invoice): stored and acknowledged, never counted.
pub fn other_mode_events(business: &Business, base: Base<'_>) -> Vec<SimEvent> {
    let t = business.params.start + 10 * 86_400;
    let c = Customer { id: "cus_other_mode".into(), created: t, currency: "usd", ..Customer::default() };
    let s = Subscription {
        id: "sub_other_mode".into(),
        created: t,
        status: "active",
        price_id: "price_team_m",
        unit_amount: 4900,
        tiers: None,
        metered: false,
        usage: None,
        interval: "month",
        quantity: 2,
        discount: None,
        pause: None,
        cancel_reason: None,
        ended_at: None,
        trial_end: None,
    };
    let happenings = [
        Happening::CustomerCreated,
        Happening::SubscriptionCreated(s.clone()),
        Happening::InvoicePaid { invoice: "in_other_mode".into(), subscription: s.id.clone(), amount: 9800 },
    ];
    happenings
        .iter()
        .enumerate()
        .map(|(k, what)| {
            let (kind, object) = render_one(&c, t, what, base);
            SimEvent { id: format!("evt_other_mode_{k}"), kind, created: t, object }
        })
        .collect()
}

/// A tiered price with its tiers (as `holdfast sync` stores it, asking for them).
fn price_object(p: &TieredPrice, base: Base<'_>) -> Value {
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

fn tiers_json(p: &TieredPrice) -> Value {
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

fn coupon_object(percent_off: i64, base: Base<'_>) -> Value {
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

fn discount_object(
    c: &Customer,
    s: Option<&Subscription>,
    d: &super::business::Discount,
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

/// Move a basil-shaped subscription or invoice to `shape`.
fn reshape(o: &mut Value, shape: Shape) {
    let is = |o: &Value, kind: &str| o.get("object").and_then(Value::as_str) == Some(kind);
    if is(o, "subscription") {
        let ids: Vec<Value> = o["discounts"].as_array().map(|a| a.iter().map(|d| d["id"].clone()).collect()).unwrap_or_default();
        if shape == Shape::V2024_06_20 {
            o["discount"] = o["discounts"].get(0).cloned().unwrap_or(Value::Null);
            if let Some(d) = o["discount"].as_object_mut() {
                d.remove("source");
            }
            let item = &mut o["items"]["data"][0];
            let (start, end) = (item["current_period_start"].clone(), item["current_period_end"].clone());
            let price = item["price"].clone();
            item["plan"] = json!({"id": price["id"], "object": "plan", "amount": price["unit_amount"], "currency": price["currency"],
                "interval": price["recurring"]["interval"], "interval_count": price["recurring"]["interval_count"], "active": true});
            if let Some(i) = item.as_object_mut() {
                i.remove("current_period_start");
                i.remove("current_period_end");
            }
            o["current_period_start"] = start;
            o["current_period_end"] = end;
        } else if let Some(s) = o.as_object_mut() {
            s.remove("discount");
        }
        o["discounts"] = json!(ids);
    } else if is(o, "invoice") {
        let sub = o["parent"]["subscription_details"]["subscription"].clone();
        if shape == Shape::V2024_06_20
            && let Some(lines) = o["lines"]["data"].as_array_mut()
        {
            // Before basil a line names its subscription item, price and proration itself.
            for l in lines {
                let details = l["parent"]["subscription_item_details"].clone();
                if details.is_object() {
                    l["subscription_item"] = details["subscription_item"].clone();
                    l["proration"] = details["proration"].clone();
                    l["subscription"] = details["subscription"].clone();
                }
                l["price"] = json!({"id": l["pricing"]["price_details"]["price"], "object": "price"});
                if let Some(line) = l.as_object_mut() {
                    line.remove("parent");
                    line.remove("pricing");
                    line.insert("tax_amounts".into(), json!([]));
                    line.remove("taxes");
                }
            }
        }
        if let Some(inv) = o.as_object_mut() {
            if shape == Shape::V2024_06_20 {
                inv.remove("parent");
                inv.insert("subscription".into(), sub);
            } else {
                inv.remove("subscription");
            }
        }
    }
}

fn render_one(c: &Customer, t: i64, what: &Happening, base: Base<'_>) -> (&'static str, Value) {
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
            line["pricing"] = json!({"type": "price_details", "price_details": {"price": super::business::METERED_PRICE, "product": "prod_api"},
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
    let mut item = o.pointer("/items/data/0").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    let mut price = item.get("price").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
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
    item["id"] = json!(format!("si_{}", &s.id[4..]));
    item["object"] = json!("subscription_item");
    item["subscription"] = json!(s.id);
    // Metered items carry no quantity.
    item["quantity"] = if s.metered { Value::Null } else { json!(s.quantity) };
    item["current_period_start"] = json!(s.created);
    item["current_period_end"] = json!(s.created + s.interval_months() * 30 * 86_400);
    item["price"] = price;
    item["plan"] = Value::Null;
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
    o["discounts"] = match &s.discount {
        Some(d) => {
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
        None => json!([]),
    };
    o
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
