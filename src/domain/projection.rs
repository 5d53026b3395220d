//! What one event changes: the snapshots it carries, each with its watermark. Pure; the
//! store applies a snapshot only when its watermark beats the stored one.

use super::event::Event;
use super::fields::{id_at, path, str_at};
use super::snapshots::{CustomerSnapshot, DiscountSnapshot, InvoiceSnapshot, SubscriptionSnapshot};
use super::watermark::{self, Watermark};

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
            if let Some(d) = DiscountSnapshot::read(obj, None, deleted) {
                let rank = if deleted { watermark::TERMINAL } else { watermark::LIVE };
                p.discounts.push((d, mark(rank)));
            }
        }
        Some("checkout.session") => p.customers.extend(checkout_customer(obj).map(|c| (c, mark(watermark::STUB)))),
        _ => {}
    }
    p
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
    fn checkout_leaves_a_stub_customer() {
        let p = project(&event(
            "checkout.session.completed",
            json!({"object": "checkout.session", "customer": "cus_9", "customer_details": {"email": "a@b.c"}}),
        ));
        assert_eq!(p.customers[0].0.email.as_deref(), Some("a@b.c"));
        assert_eq!(p.customers[0].1.rank, watermark::STUB);
    }
}
