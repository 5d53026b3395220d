//! The events the bench sends: a deterministic mix per customer (created, subscribed, first
//! invoice paid, then updates and paid or failed renewals), signed as Stripe signs them.

use anyhow::{Context, Result};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::client::Target;

/// splitmix64: tiny deterministic PRNG so generation needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Plan {
    nick: &'static str,
    amount: i64,
    interval: &'static str,
}

const PLANS: [Plan; 4] = [
    Plan { nick: "starter_monthly", amount: 900, interval: "month" },
    Plan { nick: "pro_monthly", amount: 2900, interval: "month" },
    Plan { nick: "team_monthly", amount: 9900, interval: "month" },
    Plan { nick: "pro_yearly", amount: 29000, interval: "year" },
];

/// Per-customer state so a customer's events tell a consistent story.
struct Customer {
    plan: usize,
    quantity: i64,
    status: &'static str,
    period_start: i64,
    invoices: u64,
}

pub struct Generator {
    tag: String,
    rng: Rng,
    customers: Vec<Customer>,
    base_time: i64,
}

impl Generator {
    pub fn new(tag: &str, customers: usize, seed: u64, base_time: i64) -> Self {
        let mut rng = Rng(seed);
        let customers = (0..customers.max(1))
            .map(|_| Customer {
                plan: rng.below(PLANS.len() as u64) as usize,
                quantity: 1 + rng.below(5) as i64,
                status: "active",
                period_start: base_time - 86_400 * rng.below(25) as i64,
                invoices: 0,
            })
            .collect();
        Self { tag: tag.to_owned(), rng, customers, base_time }
    }

    fn id(&self, prefix: &str, n: impl std::fmt::Display) -> String {
        format!("{prefix}_bench_{}_{n}", self.tag)
    }

    fn subscription(&self, c: usize) -> Value {
        let cu = &self.customers[c];
        let plan = &PLANS[cu.plan];
        let period = if plan.interval == "year" { 365 * 86_400 } else { 30 * 86_400 };
        let sub_id = self.id("sub", c);
        json!({
            "id": sub_id,
            "object": "subscription",
            "customer": self.id("cus", c),
            "status": cu.status,
            "currency": "usd",
            "collection_method": "charge_automatically",
            "cancel_at_period_end": false,
            "created": cu.period_start,
            "start_date": cu.period_start,
            "current_period_start": cu.period_start,
            "current_period_end": cu.period_start + period,
            "latest_invoice": self.id("in", format!("{c}_{}", cu.invoices)),
            "livemode": false,
            "metadata": {},
            "items": {
                "object": "list",
                "has_more": false,
                "url": format!("/v1/subscription_items?subscription={sub_id}"),
                "data": [{
                    "id": self.id("si", c),
                    "object": "subscription_item",
                    "subscription": sub_id,
                    "quantity": cu.quantity,
                    "current_period_start": cu.period_start,
                    "current_period_end": cu.period_start + period,
                    "price": {
                        "id": self.id("price", plan.nick),
                        "object": "price",
                        "active": true,
                        "product": self.id("prod", plan.nick),
                        "nickname": plan.nick,
                        "unit_amount": plan.amount,
                        "currency": "usd",
                        "type": "recurring",
                        "recurring": {
                            "interval": plan.interval,
                            "interval_count": 1,
                            "usage_type": "licensed"
                        }
                    }
                }]
            }
        })
    }

    fn invoice(&self, c: usize, paid: bool, reason: &str) -> Value {
        let cu = &self.customers[c];
        let due = PLANS[cu.plan].amount * cu.quantity;
        json!({
            "id": self.id("in", format!("{c}_{}", cu.invoices)),
            "object": "invoice",
            "customer": self.id("cus", c),
            "subscription": self.id("sub", c),
            "status": if paid { "paid" } else { "open" },
            "amount_due": due,
            "amount_paid": if paid { due } else { 0 },
            "amount_remaining": if paid { 0 } else { due },
            "currency": "usd",
            "attempt_count": if paid { 1 } else { 1 + self.rng.0 % 3 },
            "attempted": true,
            "paid": paid,
            "billing_reason": reason,
            "collection_method": "charge_automatically",
            "period_start": cu.period_start,
            "period_end": cu.period_start,
            "created": cu.period_start,
            "livemode": false,
            "next_payment_attempt": if paid { Value::Null } else { json!(cu.period_start + 3 * 86_400) },
        })
    }

    fn customer(&self, c: usize) -> Value {
        let email = format!("bench+{}_{c}@example.com", self.tag);
        json!({
            "id": self.id("cus", c),
            "object": "customer",
            "email": email,
            "name": format!("Bench Customer {c}"),
            "created": self.base_time,
            "currency": null,
            "delinquent": false,
            "livemode": false,
            "metadata": {},
        })
    }

    /// A customer's next event after its first three: a subscription update (4 in 10), a
    /// paid renewal (4 in 10) or a failed one.
    fn next_change(&mut self, c: usize) -> (&'static str, Value) {
        match self.rng.below(10) {
            0..=3 => {
                let cu = &mut self.customers[c];
                match self.rng.0 % 3 {
                    0 => cu.quantity += 1,
                    1 => cu.plan = (cu.plan + 1) % PLANS.len(),
                    _ => cu.status = if cu.status == "active" { "past_due" } else { "active" },
                }
                ("customer.subscription.updated", self.subscription(c))
            }
            4..=7 => {
                let cu = &mut self.customers[c];
                cu.invoices += 1;
                cu.period_start += 30 * 86_400;
                cu.status = "active";
                ("invoice.paid", self.invoice(c, true, "subscription_cycle"))
            }
            _ => {
                let cu = &mut self.customers[c];
                cu.invoices += 1;
                cu.period_start += 30 * 86_400;
                cu.status = "past_due";
                ("invoice.payment_failed", self.invoice(c, false, "subscription_cycle"))
            }
        }
    }

    /// Builds event number `n`. Event k of a customer (k = n / customers):
    /// 0 customer.created, 1 subscription.created, 2 invoice.paid
    /// (subscription_create), then a mix of subscription updates, paid and
    /// failed renewal invoices.
    pub fn event(&mut self, n: usize) -> Vec<u8> {
        let c = n % self.customers.len();
        let k = n / self.customers.len();
        let (kind, object) = match k {
            0 => ("customer.created", self.customer(c)),
            1 => ("customer.subscription.created", self.subscription(c)),
            2 => ("invoice.paid", self.invoice(c, true, "subscription_create")),
            _ => self.next_change(c),
        };
        let event = json!({
            "id": self.id("evt", n),
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": self.base_time + (n / 10) as i64,
            "livemode": false,
            "type": kind,
            "data": { "object": object },
            "request": { "id": null, "idempotency_key": null },
            "pending_webhooks": 1,
            "account": null,
        });
        // serde_json never fails on a Value.
        serde_json::to_vec(&event).unwrap_or_default()
    }
}

/// `t=<ts>,v1=<hex hmac_sha256(secret, "<ts>.<body>")>` as Stripe sends it.
fn sign(secret: &str, ts: i64, body: &[u8]) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).context("invalid HMAC key length")?;
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("t={ts},v1={}", hex::encode(mac.finalize().into_bytes())))
}

/// Generates, signs and serializes `count` HTTP/1.1 requests tagged `tag`.
pub fn build_requests(
    target: &Target,
    secret: &str,
    tag: &str,
    count: usize,
    customers: usize,
    seed: u64,
) -> Result<Vec<Vec<u8>>> {
    let now = chrono::Utc::now().timestamp();
    let mut generator = Generator::new(tag, customers, seed, now - 3_600);
    let mut out = Vec::with_capacity(count);
    for n in 0..count {
        let body = generator.event(n);
        let signature = sign(secret, now, &body)?;
        let mut req = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n\
             Content-Type: application/json; charset=utf-8\r\nStripe-Signature: {signature}\r\nContent-Length: {}\r\n\r\n",
            target.path,
            target.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        out.push(req);
    }
    Ok(out)
}
