//! Signed Stripe events built on Stripe's own example objects (tests/fixtures).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use holdfast::ingest::signature::sign;
use serde_json::{Value, json};

pub const SECRET: &str = "whsec_test_primary_0123456789";
pub const OLD_SECRET: &str = "whsec_test_rolled_out_9876543210";

/// Stripe's example objects (tests/fixtures/stripe_objects.json).
static FIXTURES: LazyLock<Value> = LazyLock::new(|| {
    let text = include_str!("../../../fixtures/stripe_objects.json");
    serde_json::from_str(text).expect("fixtures parse")
});

/// One of Stripe's example objects, to be overridden field by field.
pub fn fixture(resource: &str) -> Value {
    FIXTURES["resources"][resource].clone()
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

static NEXT_EVENT: AtomicU64 = AtomicU64::new(1);

/// A Stripe event wrapping `object`, with a fresh id.
pub fn event(kind: &str, created: i64, object: Value) -> Value {
    let n = NEXT_EVENT.fetch_add(1, Ordering::Relaxed);
    event_with_id(&format!("evt_test_{n:08}"), kind, created, object)
}

pub fn event_with_id(id: &str, kind: &str, created: i64, object: Value) -> Value {
    let mut e = fixture("event");
    e["id"] = json!(id);
    e["type"] = json!(kind);
    e["created"] = json!(created);
    e["api_version"] = json!("2025-03-31.basil");
    e["data"] = json!({"object": object, "previous_attributes": {}});
    e
}

/// Stripe's example customer with our id, email and creation time.
pub fn customer(id: &str, email: &str, created: i64) -> Value {
    let mut c = fixture("customer");
    c["id"] = json!(id);
    c["email"] = json!(email);
    c["name"] = json!("Test Customer");
    c["created"] = json!(created);
    c["discount"] = Value::Null;
    c
}

/// What a subscription should look like in a test.
#[derive(Clone, Debug)]
pub struct Sub {
    pub id: String,
    pub customer: String,
    pub status: &'static str,
    pub price: String,
    pub unit_amount: i64,
    pub interval: &'static str,
    pub quantity: i64,
    pub created: i64,
}

impl Sub {
    pub fn new(id: &str, customer: &str, created: i64) -> Self {
        Self {
            id: id.into(),
            customer: customer.into(),
            status: "active",
            price: "price_basic_monthly".into(),
            unit_amount: 2000,
            interval: "month",
            quantity: 1,
            created,
        }
    }

    /// Stripe's example subscription (2025+ shape: periods on the item) with our values.
    pub fn object(&self) -> Value {
        let mut s = fixture("subscription");
        s["id"] = json!(self.id);
        s["customer"] = json!(self.customer);
        s["status"] = json!(self.status);
        s["created"] = json!(self.created);
        s["start_date"] = json!(self.created);
        for field in ["cancel_at", "canceled_at", "ended_at", "trial_start", "trial_end", "pause_collection", "discount"] {
            s[field] = Value::Null;
        }
        s["cancel_at_period_end"] = json!(false);
        s["cancellation_details"] = json!({"comment": null, "feedback": null, "reason": null});
        s["discounts"] = json!([]);
        let item = &mut s["items"]["data"][0];
        item["id"] = json!(format!("si_{}", &self.id[4..]));
        item["subscription"] = json!(self.id);
        item["quantity"] = json!(self.quantity);
        item["current_period_start"] = json!(self.created);
        item["current_period_end"] = json!(self.created + 30 * 86_400);
        item["price"]["id"] = json!(self.price);
        item["price"]["unit_amount"] = json!(self.unit_amount);
        item["price"]["unit_amount_decimal"] = json!(self.unit_amount.to_string());
        item["price"]["recurring"]["interval"] = json!(self.interval);
        item["price"]["recurring"]["interval_count"] = json!(1);
        item["plan"] = Value::Null;
        s
    }
}

/// Stripe's example invoice for a subscription, 2025+ shape (`parent.subscription_details`).
pub fn invoice(id: &str, customer: &str, subscription: &str, status: &str, amount_due: i64, created: i64) -> Value {
    let mut i = fixture("invoice");
    i["id"] = json!(id);
    i["customer"] = json!(customer);
    i["status"] = json!(status);
    i["amount_due"] = json!(amount_due);
    i["amount_paid"] = json!(if status == "paid" { amount_due } else { 0 });
    i["amount_remaining"] = json!(if status == "paid" { 0 } else { amount_due });
    i["billing_reason"] = json!("subscription_cycle");
    i["created"] = json!(created);
    i["hosted_invoice_url"] = json!(format!("https://invoice.stripe.com/i/{id}"));
    i["parent"] = json!({"type": "subscription_details", "quote_details": null,
                         "subscription_details": {"metadata": {}, "subscription": subscription}});
    i["status_transitions"] = json!({"finalized_at": created, "marked_uncollectible_at": null,
        "paid_at": if status == "paid" { json!(created) } else { Value::Null }, "voided_at": null});
    i
}

/// POST `event` signed now with the primary secret; the status (0 if no answer at all).
pub async fn post_signed(client: &reqwest::Client, address: &str, event: &Value) -> u16 {
    let body = event.to_string();
    let header = sign(body.as_bytes(), SECRET, now());
    let request = client.post(format!("{address}/webhooks/stripe")).header("Content-Type", "application/json");
    match request.header("Stripe-Signature", header).body(body).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}
