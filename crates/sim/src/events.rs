//! The simulated history as Stripe events, in the shapes of one API version (`Shape`).
//! Objects start from a `base` (Stripe's example objects in tests, `{}` in the bench) with
//! our fields written over it.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::business::{Business, Customer, Discount, Happening, Subscription};

mod objects;

use objects::{coupon_object, discount_object, price_object, render_one, tiers_json};

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
    let mut r = Renderer { base, shape, out: Vec::new(), coupons_seen: HashSet::new(), prices_seen: HashSet::new() };
    for (i, c) in business.customers.iter().enumerate() {
        let mut discounts_seen = HashSet::new();
        for (k, (t, what)) in c.happenings.iter().enumerate() {
            let id = format!("evt_{}_{i:05}_{k:04}", business.params.seed);
            r.happening(c, *t, what, id, &mut discounts_seen);
        }
    }
    r.out
}

/// The events rendered so far, and which prices and coupons already had their own event.
struct Renderer<'a> {
    base: Base<'a>,
    shape: Shape,
    out: Vec<SimEvent>,
    coupons_seen: HashSet<String>,
    prices_seen: HashSet<&'static str>,
}

impl Renderer<'_> {
    /// The event(s) of one happening: the happening's own, after the events of the objects
    /// it introduces that the shape sends on their own (a tiered price, a discount, a coupon).
    fn happening(&mut self, c: &Customer, t: i64, what: &Happening, id: String, discounts_seen: &mut HashSet<String>) {
        let (base, shape) = (self.base, self.shape);
        // A tiered price's tiers are left out of the subscription's item (Stripe includes
        // them only when expanded): they come in the price's own event, the first time a
        // subscription uses it. In basil shapes the item's price arrives expanded instead.
        let tiered = match what {
            Happening::SubscriptionCreated(s) | Happening::SubscriptionUpdated(s) => s.tiers,
            _ => None,
        };
        if let Some(p) = tiered.filter(|p| shape != Shape::Basil && self.prices_seen.insert(p.id)) {
            self.out.push(SimEvent { id: format!("{id}_p"), kind: "price.created", created: t, object: price_object(p, base) });
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
            let coupon = self.coupon_event(d.percent_off, &id, t);
            let object = discount_object(c, Some(s), d, coupon, shape, base);
            self.out.push(SimEvent { id: format!("{id}_d"), kind: "customer.discount.created", created: t, object });
        }
        if let Happening::CustomerDiscount(d) = what {
            return self.customer_discount(c, t, d, id);
        }
        let (kind, mut object) = render_one(c, t, what, base);
        reshape(&mut object, shape);
        if let Some(p) = tiered.filter(|_| shape == Shape::Basil) {
            object["items"]["data"][0]["price"]["tiers"] = tiers_json(p);
        }
        self.out.push(SimEvent { id, kind, created: t, object });
    }

    /// The coupon of a discount; since clover its own event the first time it is seen.
    fn coupon_event(&mut self, percent_off: i64, id: &str, t: i64) -> Value {
        let coupon = coupon_object(percent_off, self.base);
        if matches!(self.shape, Shape::Clover | Shape::Endive) && self.coupons_seen.insert(coupon["id"].to_string()) {
            let kind = if self.shape == Shape::Clover { "coupon.created" } else { "coupon.updated" };
            self.out.push(SimEvent { id: format!("{id}_c"), kind, created: t, object: coupon.clone() });
        }
        coupon
    }

    /// A discount on the customer: its own event since basil, before it on the customer.
    fn customer_discount(&mut self, c: &Customer, t: i64, d: &Discount, id: String) {
        let coupon = self.coupon_event(d.percent_off, &id, t);
        let mut object = discount_object(c, None, d, coupon, self.shape, self.base);
        if self.shape == Shape::V2024_06_20 {
            // Before basil a customer's discount rides on the customer object.
            let mut customer = render_one(c, t, &Happening::CustomerCreated, self.base).1;
            if let Some(o) = object.as_object_mut() {
                o.remove("id");
            }
            customer["discount"] = object;
            self.out.push(SimEvent { id, kind: "customer.updated", created: t, object: customer });
        } else {
            self.out.push(SimEvent { id, kind: "customer.discount.created", created: t, object });
        }
    }
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
