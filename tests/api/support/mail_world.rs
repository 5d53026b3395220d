//! Shared arrangement for the mail tests: a customer with an active subscription, failed
//! invoices, and a TestApp wired to the SMTP sink.

use serde_json::{Value, json};

use holdfast::config::SmtpUrl;
use secrecy::SecretString;

use crate::support::helpers::{Config, Sub, TestApp, customer, event, invoice, spawn_app_with};
use crate::support::smtp_sink::SmtpSink;

pub const DAY: i64 = 86_400;
pub const EMAIL: &str = "ada@example.com";

/// An app sending to a fresh sink, with a recognisable brand and sender, changed by `config`.
pub async fn app_with_sink(config: Config) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let smtp_url = SmtpUrl(SecretString::from(sink.url()));
    let mail = Config::new().key("brand.sender", "Acme Billing <billing@acme.test>").key("brand.name", "Acme").with(move |s| {
        s.mail.smtp_url = Some(smtp_url);
        s.mail.reply_to = Some("help@acme.test".into());
        s.public_url = "https://billing.acme.test".into();
    });
    (spawn_app_with(mail.then(config)).await, sink)
}

/// Customer `cus_1` (ada@example.com) with active subscription `sub_1`, created `at`.
pub async fn subscriber(app: &TestApp, at: i64) {
    app.deliver(&event("customer.created", at, customer("cus_1", EMAIL, at))).await;
    app.deliver(&event("customer.subscription.created", at, Sub::new("sub_1", "cus_1", at).object())).await;
}

/// An open invoice of `sub_1` whose payment failed, with Stripe's next retry.
pub fn failed_invoice(id: &str, amount: i64, created: i64, next_attempt: Option<i64>) -> Value {
    let mut i = invoice(id, "cus_1", "sub_1", "open", amount, created);
    i["attempt_count"] = json!(1);
    i["next_payment_attempt"] = json!(next_attempt);
    i["customer_email"] = json!(EMAIL);
    i
}

/// The `invoice.payment_failed` event for `failed_invoice`.
pub fn payment_failed(id: &str, created: i64, next_attempt: Option<i64>) -> Value {
    event("invoice.payment_failed", created, failed_invoice(id, 2000, created, next_attempt))
}

/// The `invoice.payment_failed` of Stripe's try number `attempt`, with its next try.
pub fn payment_failed_try(id: &str, created: i64, attempt: i64, next_attempt: Option<i64>) -> Value {
    let mut invoice = failed_invoice(id, 2000, created, next_attempt);
    invoice["attempt_count"] = json!(attempt);
    event("invoice.payment_failed", created, invoice)
}

/// Deliver `event` signed at the server's clock (a test that set the clock sends at its time),
/// and wait until the projector has passed it.
pub async fn deliver_now(app: &TestApp, event: &Value) {
    let body = event.to_string();
    let header = holdfast::ingest::signature::sign(body.as_bytes(), crate::support::helpers::SECRET, app.clock.now());
    let response = app.post_raw(body, Some(&header)).await;
    assert_eq!(response.status(), 200, "event {} not acknowledged: {:?}", event["id"], response.text().await);
    app.wait_projected().await;
}

/// `invoice.paid` for the same invoice.
pub fn invoice_paid(id: &str, created: i64) -> Value {
    event("invoice.paid", created, invoice(id, "cus_1", "sub_1", "paid", 2000, created))
}
