//! What one event changes: the snapshots it carries, each with its watermark. Pure; the
//! store applies a snapshot only when its watermark beats the stored one.

use crate::domain::event::Event;
use crate::domain::fields::{id_at, path, str_at};
use crate::domain::snapshots::{CustomerSnapshot, DiscountSnapshot, InvoiceSnapshot, SubscriptionSnapshot};
use crate::domain::watermark::{self, Watermark};

/// The row changes one event asks for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Projection {
    pub customers: Vec<(CustomerSnapshot, Watermark)>,
    pub subscriptions: Vec<(SubscriptionSnapshot, Watermark)>,
    pub invoices: Vec<(InvoiceSnapshot, Watermark)>,
    pub discounts: Vec<(DiscountSnapshot, Watermark)>,
}

impl Projection {
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty() && self.subscriptions.is_empty() && self.invoices.is_empty() && self.discounts.is_empty()
    }
}

/// Project an event. Objects are recognised by their own `object` field, so any event type
/// carrying a subscription, invoice, customer or discount keeps that object current (unknown
/// types included); `*.deleted` events mark deletions.
pub fn project(event: &Event) -> Projection {
    let obj = &event.object;
    let marked = |rank: i64, tie: String| Watermark { rank, created: event.created, tie, event_id: event.id.clone() };
    let mark = |rank: i64| marked(rank, String::new());
    let deleted = event.kind.ends_with(".deleted");
    let mut p = Projection::default();
    match str_at(obj, "object").as_deref() {
        Some("customer") => {
            if let Some(c) = CustomerSnapshot::read(obj, deleted) {
                // A customer-level discount rides on the customer object (`discount`).
                if let Some(d) = obj.get("discount").filter(|d| d.is_object()) {
                    let fallback = legacy_discount_id(d, None, Some(&c.id));
                    if let Some(mut d) = DiscountSnapshot::read(d, fallback, false) {
                        d.customer.get_or_insert_with(|| c.id.clone());
                        p.discounts.push((d, mark(watermark::LIVE)));
                    }
                }
                let rank = if c.deleted { watermark::TERMINAL } else { watermark::LIVE };
                p.customers.push((c, mark(rank)));
            }
        }
        Some("subscription") => {
            if let Some(s) = SubscriptionSnapshot::read(obj) {
                for d in &s.expanded_discounts {
                    p.discounts.push((d.clone(), mark(watermark::LIVE)));
                }
                let mark = marked(watermark::subscription_rank(&s.status), watermark::subscription_tie(&s, obj));
                p.subscriptions.push((s, mark));
            }
        }
        Some("invoice") => {
            if let Some(i) = InvoiceSnapshot::read(obj) {
                let mark = marked(watermark::invoice_rank(i.status.as_deref()), watermark::invoice_tie(&i, obj));
                p.invoices.push((i, mark));
            }
        }
        Some("discount") => {
            let fallback = legacy_discount_id(obj, id_at(obj, "subscription").as_deref(), id_at(obj, "customer").as_deref());
            if let Some(d) = DiscountSnapshot::read(obj, fallback, deleted) {
                let rank = if deleted { watermark::TERMINAL } else { watermark::LIVE };
                p.discounts.push((d, mark(rank)));
            }
        }
        Some("checkout.session") => p.customers.extend(checkout_customer(obj).map(|c| (c, mark(watermark::STUB)))),
        _ => {}
    }
    p
}

/// The id given to a discount from an API version that sent none: the subscription's (else
/// the customer's) id and the coupon's, as a subscription's legacy `discount` is named.
fn legacy_discount_id(d: &serde_json::Value, subscription: Option<&str>, customer: Option<&str>) -> Option<String> {
    let coupon = d.get("coupon").and_then(crate::domain::fields::id_of)?;
    Some(format!("di_legacy_{}_{coupon}", subscription.or(customer)?))
}

/// A completed checkout names its customer before (or without) a `customer.*` event reaching
/// us: keep a stub with the email it collected, which any real snapshot replaces.
fn checkout_customer(obj: &serde_json::Value) -> Option<CustomerSnapshot> {
    Some(CustomerSnapshot {
        id: id_at(obj, "customer")?,
        email: path(obj, &["customer_details", "email"])
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .or_else(|| str_at(obj, "customer_email")),
        name: path(obj, &["customer_details", "name"]).and_then(|v| v.as_str()).map(str::to_owned),
        created: None,
        deleted: false,
        metadata: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: serde_json::Value) -> Event {
        Event {
            id: "evt_1".into(),
            kind: kind.into(),
            created: 100,
            livemode: false,
            api_version: None,
            account: None,
            object,
            raw: String::new(),
        }
    }

    #[test]
    fn a_deleted_customer_is_terminal() {
        let p = project(&event("customer.deleted", json!({"object": "customer", "id": "cus_1"})));
        assert!(p.customers[0].0.deleted);
        assert_eq!(p.customers[0].1.rank, watermark::TERMINAL);
    }

    #[test]
    fn an_upcoming_invoice_without_id_changes_nothing() {
        assert!(project(&event("invoice.upcoming", json!({"object": "invoice", "amount_due": 5}))).is_empty());
    }

    #[test]
    fn discounts_are_read_from_discount_events_and_customers_in_every_shape() {
        // clover: the coupon by id under `source`.
        let p = project(&event(
            "customer.discount.created",
            json!({"object": "discount", "id": "di_1", "customer": "cus_1", "subscription": "sub_1", "start": 7,
                   "source": {"type": "coupon", "coupon": "SAVE"}}),
        ));
        let d = &p.discounts[0].0;
        assert_eq!((d.id.as_str(), d.coupon_id.as_deref(), d.percent_off, d.starts_at), ("di_1", Some("SAVE"), None, Some(7)));
        // An old discount without an id, deleted: named like a legacy subscription discount.
        let p = project(&event(
            "customer.discount.deleted",
            json!({"object": "discount", "customer": "cus_1", "coupon": {"id": "SAVE", "percent_off": 10.0}}),
        ));
        assert_eq!((p.discounts[0].0.id.as_str(), p.discounts[0].0.deleted), ("di_legacy_cus_1_SAVE", true));
        let p = project(&event(
            "customer.updated",
            json!({"object": "customer", "id": "cus_1", "discount": {"id": "di_c", "coupon": {"id": "C", "amount_off": 500}}}),
        ));
        assert_eq!((p.discounts[0].0.customer.as_deref(), p.discounts[0].0.amount_off), (Some("cus_1"), Some(500)));
    }

    #[test]
    fn checkout_leaves_a_stub_customer() {
        let p = project(&event(
            "checkout.session.completed",
            json!({"object": "checkout.session", "customer": "cus_9", "customer_details": {"email": "a@b.c"}}),
        ));
        assert_eq!(p.customers[0].0.email.as_deref(), Some("a@b.c"));
        assert_eq!(p.customers[0].1.rank, watermark::STUB);
    }
}
