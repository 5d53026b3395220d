//! Alerts to the owner: decided where events are projected (and by the scheduler for a
//! reversed save), queued once per alert and destination, delivered to a local receiver
//! (wiremock, answering as Slack and as the owner's webhook would) with Slack's message format
//! and a Stripe-style signature the test verifies; a 500 is retried and delivered once. The
//! churn threshold reads the customer's MRR (every subscription, discounts applied), and a
//! destination that keeps failing shows on `/readyz` until a delivery goes through.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use holdfast::health::UNREADY_AFTER_SECS;
use holdfast::owner::alerts::deliver::{FAULT_AFTER, PART};
use holdfast::owner::config::{SecretUrl, SignedWebhook, Thresholds};
use secrecy::SecretString;

use crate::support::cancel_flow::{flow_with, seed, signed_link};
use crate::support::helpers::{Config, Sub, TestApp, customer, event, event_with_id, fixture, invoice, now, spawn_app_with};

const SECRET: &str = "whsec-alerts-0123456789abcdef";
const OWNER: &str = "owner@example.com";

/// A URL that is a secret (it carries the receiver's token).
fn secret_url(url: String) -> SecretUrl {
    SecretUrl(SecretString::from(url))
}

/// The owner's address and a signed webhook at `hook`.
fn owner_and_webhook(hook: String) -> Config {
    Config::new().with(move |s| {
        s.owner.email = Some(OWNER.into());
        s.owner.alerts.webhook = Some(SignedWebhook { url: secret_url(hook), secret: SecretString::from(SECRET) });
    })
}

/// Every destination at `receiver` (the owner's email, Slack, a signed webhook), a churn
/// threshold of $20.00 of MRR and a failed-payment threshold of $40.00.
fn alerts_to(receiver: &str) -> Config {
    let slack = secret_url(format!("{receiver}/slack/T000/B000/slacktoken"));
    owner_and_webhook(format!("{receiver}/hook")).with(|s| {
        s.public_url = "https://holdfast.example.com".into();
        s.owner.alerts.churn_mrr = Thresholds(BTreeMap::from([("usd".to_owned(), 2_000)]));
        s.owner.alerts.payment_failed = Thresholds(BTreeMap::from([("usd".to_owned(), 4_000)]));
        s.owner.alerts.slack_url = Some(slack);
    })
}

/// Verify `Holdfast-Signature: t=…,v1=…` over `t.body` as a receiver would.
fn verify(header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => v1.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    v1.iter().any(|sig| hex::decode(sig).is_ok_and(|s| s.as_slice() == expected.as_slice()))
}

/// The local receiver: Slack accepts; the owner's webhook fails its first request with a 500
/// and accepts later ones.
async fn mount_receiver_whose_webhook_fails_once(receiver: &MockServer) {
    // The webhook's first request fails with a 500; later ones are accepted.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/slack/T000/B000/slacktoken"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(receiver)
        .await;
}

/// `cus_al` (Ada Lovelace, $20.00 a month: at the churn threshold) schedules a cancellation
/// (delivered twice), fails a $49.00 and a $10.00 payment, and opens a dispute.
async fn deliver_a_cancellation_two_failures_and_a_dispute(app: &TestApp, t: i64) {
    let mut c = customer("cus_al", "ada@example.com", t);
    c["name"] = json!("Ada Lovelace");
    app.deliver(&event("customer.created", t, c)).await;
    // $20.00 a month: at the churn threshold.
    let sub = Sub::new("sub_al", "cus_al", t).object();
    app.deliver(&event("customer.subscription.created", t + 1, sub.clone())).await;
    let mut cancelling = sub.clone();
    cancelling["cancel_at_period_end"] = json!(true);
    cancelling["canceled_at"] = json!(t + 100);
    cancelling["cancellation_details"] =
        json!({"comment": "Too pricey <for us>", "feedback": "too_expensive", "reason": "cancellation_requested"});
    app.deliver(&event_with_id("evt_al_cancel_1", "customer.subscription.updated", t + 100, cancelling.clone())).await;
    // A later update of the same scheduled cancellation is not a new alert.
    app.deliver(&event_with_id("evt_al_cancel_2", "customer.subscription.updated", t + 200, cancelling)).await;
    // $49.00 fails (above $40) and $10.00 fails (below): one alert.
    let mut big = invoice("in_al_big", "cus_al", "sub_al", "open", 4900, t + 300);
    big["attempt_count"] = json!(1);
    app.deliver(&event("invoice.payment_failed", t + 300, big)).await;
    app.deliver(&event("invoice.payment_failed", t + 310, invoice("in_al_small", "cus_al", "sub_al", "open", 1000, t + 310)))
        .await;
    let dispute = json!({"id": "dp_al", "object": "dispute", "amount": 4900, "currency": "usd", "reason": "fraudulent",
        "charge": "ch_al", "payment_intent": "pi_al", "status": "needs_response", "created": t + 400,
        "balance_transactions": [], "evidence_details": {"due_by": t + 7 * 86_400}});
    app.deliver(&event("charge.dispute.created", t + 400, dispute)).await;
}

/// Every request the receiver got is JSON; the webhook's are signed (the signature verifies,
/// and not over another body) and carry their alert id in a header; Slack's have text and a
/// mrkdwn section, the cancellation's naming the customer, the MRR, the escaped comment and
/// the customer page. Returns the webhook's alert ids in the order received.
fn assert_json_signed_hooks_and_slack_messages(requests: &[wiremock::Request]) -> Vec<String> {
    let mut webhook_ids = Vec::new();
    for r in requests {
        let body: Value = serde_json::from_slice(&r.body).expect("JSON body");
        assert_eq!(r.headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
        if r.url.path() == "/hook" {
            let sig = r.headers.get("holdfast-signature").and_then(|v| v.to_str().ok()).expect("signed");
            assert!(verify(sig, &r.body), "signature verifies: {sig}");
            assert!(!verify(sig, b"{\"tampered\":true}"));
            let id = body["id"].as_str().expect("id").to_owned();
            assert_eq!(r.headers.get("holdfast-alert-id").and_then(|v| v.to_str().ok()), Some(id.as_str()));
            webhook_ids.push(id);
        } else {
            // Slack's incoming-webhook format: text, and blocks with mrkdwn.
            assert!(body["text"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
            let md = body["blocks"][0]["text"]["text"].as_str().expect("mrkdwn section");
            assert_eq!(body["blocks"][0]["type"], "section");
            if md.contains("set a subscription to cancel") {
                assert!(md.contains("Ada Lovelace") && md.contains("$20.00"), "{md}");
                assert!(md.contains("Too pricey &lt;for us&gt;"), "escaped for Slack: {md}");
                assert!(md.contains("<https://holdfast.example.com/dashboard/customers/cus_al|Open the customer page>"), "{md}");
            }
        }
    }
    webhook_ids
}

#[tokio::test]
async fn alerts_reach_slack_and_a_signed_webhook_once_even_after_a_500() {
    let receiver = MockServer::start().await;
    mount_receiver_whose_webhook_fails_once(&receiver).await;
    let app = spawn_app_with(alerts_to(&receiver.uri())).await;
    let t = now() - 3600;
    deliver_a_cancellation_two_failures_and_a_dispute(&app, t).await;

    let ids = [
        "alert:cancellation_scheduled:sub_al:".to_owned() + &(t + 100).to_string(),
        "alert:payment_failed:in_al_big".into(),
        "alert:dispute:dp_al".into(),
    ];
    // Emails to the owner, one per alert.
    let emails: Vec<_> =
        app.store.outbox_rows().await.expect("outbox").into_iter().filter(|r| r.dedupe_key.starts_with("alert:")).collect();
    let mut keys: Vec<String> = emails.iter().map(|r| r.dedupe_key.clone()).collect();
    keys.sort();
    let mut want: Vec<String> = ids.iter().map(|i| format!("{i}:email")).collect();
    want.sort();
    assert_eq!(keys, want);
    assert!(emails.iter().all(|r| r.recipient == OWNER));

    // One delivery row per alert and destination.
    let rows = app.store.alert_deliveries().await.expect("rows");
    assert_eq!(rows.len(), 6, "{rows:#?}");

    let sender = &app.alert_sender;
    let now = app.clock.now();
    assert_eq!(sender.run_until_idle_at(now).await.expect("first pass"), 6);
    let after_first = receiver.received_requests().await.expect("recorded").len();
    assert_eq!(after_first, 6);
    // The failed one waits its back-off (a minute), then goes once.
    assert_eq!(sender.run_until_idle_at(now + 30).await.expect("too early"), 0);
    assert_eq!(sender.run_until_idle_at(now + 61).await.expect("retry"), 1);
    assert_eq!(sender.run_until_idle_at(now + 86_400).await.expect("nothing left"), 0);

    let requests = receiver.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 7);
    let webhook_ids = assert_json_signed_hooks_and_slack_messages(&requests);
    // Each alert was received by the webhook once, plus the one retry of the 500.
    let mut distinct = webhook_ids.clone();
    distinct.sort();
    distinct.dedup();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(distinct, expected);
    assert_eq!(webhook_ids.len(), 4);
    assert_eq!(webhook_ids[0], webhook_ids[3], "the retried request carries the same id");

    let rows = app.store.alert_deliveries().await.expect("rows");
    assert!(rows.iter().all(|r| r.status == "sent"), "{rows:#?}");
    assert_eq!(rows.iter().filter(|r| r.attempts == 2).count(), 1);

    // Rebuilding the tables decides nothing again.
    app.store.reproject().await.expect("reproject");
    assert_eq!(app.store.alert_deliveries().await.expect("rows").len(), 6);
}

#[tokio::test]
async fn a_reversed_save_alerts_once_and_alerts_that_are_off_say_nothing() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&receiver).await;
    let hook = format!("{}/hook", receiver.uri());
    let f = flow_with(owner_and_webhook(hook).with(|s| s.owner.alerts.dispute = false)).await;
    let object = seed(&f.app, "cus_rev", "sub_rev", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link("cus_rev")).await;
    f.answer(&session, &csrf, "too_expensive", "").await;
    let id = session.trim_start_matches("/cancel/s/").split('/').next().expect("id").to_owned();
    let capability = holdfast::telemetry::capability_ref(&id);
    f.expect_update("sub_rev", &format!("holdfast-cancel-{capability}-discount-1"), &object).await;
    assert_eq!(f.choose(&session, &csrf, "discount").await.status(), 303);
    // The customer cancels anyway, in Stripe.
    let t = now();
    let mut cancelled = object.clone();
    cancelled["cancel_at_period_end"] = json!(true);
    cancelled["canceled_at"] = json!(t + 60);
    f.app.deliver(&event("customer.subscription.updated", t + 60, cancelled)).await;
    let dispute = json!({"id": "dp_off", "object": "dispute", "amount": 99_999, "currency": "usd", "reason": "fraudulent",
        "charge": "ch_off", "status": "needs_response", "created": t, "balance_transactions": []});
    f.app.deliver(&event("charge.dispute.created", t + 61, dispute)).await;
    assert!(f.app.store.alert_deliveries().await.expect("rows").is_empty(), "no churn threshold, disputes off");

    // Two replicas' schedulers decide the same save: one alert.
    f.app.scheduler.check_saves(t + 120).await.expect("check");
    f.app.scheduler.check_saves(t + 180).await.expect("check again");
    let rows = f.app.store.alert_deliveries().await.expect("rows");
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].alert_id, format!("alert:save_reversed:{capability}"));
    assert!(!rows[0].dedupe_key.contains(&id) && !rows[0].body.contains(&id), "no capability id in keys or bodies");
    let body: Value = serde_json::from_str(&rows[0].body).expect("json");
    assert_eq!(body["type"], "save_reversed");
    assert_eq!(body["customer"], "cus_rev");
    let emails = f.app.store.outbox_rows().await.expect("outbox");
    assert_eq!(emails.iter().filter(|r| r.dedupe_key == format!("alert:save_reversed:{capability}:email")).count(), 1);

    assert_eq!(f.app.alert_sender.run_until_idle_at(t + 200).await.expect("send"), 1);
    let requests = receiver.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let sig = requests[0].headers.get("holdfast-signature").and_then(|v| v.to_str().ok()).expect("signed");
    assert!(verify(sig, &requests[0].body));
}

/// A subscription set to cancel at period end (requested at `at`).
fn cancelling(mut sub: Value, at: i64) -> Value {
    sub["cancel_at_period_end"] = json!(true);
    sub["canceled_at"] = json!(at);
    sub
}

#[tokio::test]
async fn the_churn_threshold_is_the_customers_mrr_with_every_subscription_and_discount() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&receiver).await;
    let app = spawn_app_with(alerts_to(&receiver.uri())).await;
    let t = now() - 3600;

    // Two subscriptions of $15.00 a month: each below the $20.00 threshold, $30.00 together.
    app.deliver(&event("customer.created", t, customer("cus_two", "two@example.com", t))).await;
    let mut one = Sub::new("sub_two_a", "cus_two", t + 1);
    one.unit_amount = 1500;
    let mut other = Sub::new("sub_two_b", "cus_two", t + 1);
    other.unit_amount = 1500;
    app.deliver(&event("customer.subscription.created", t + 1, one.object())).await;
    app.deliver(&event("customer.subscription.created", t + 2, other.object())).await;
    app.deliver(&event("customer.subscription.updated", t + 100, cancelling(one.object(), t + 100))).await;

    // $30.00 list price, brought to $15.00 by a 50 % forever discount: below the threshold.
    app.deliver(&event("customer.created", t, customer("cus_half", "half@example.com", t))).await;
    let mut half = Sub::new("sub_half", "cus_half", t + 1);
    half.unit_amount = 3000;
    app.deliver(&event("customer.subscription.created", t + 1, half.object())).await;
    let mut coupon = fixture("coupon");
    coupon["id"] = json!("HALF");
    coupon["amount_off"] = Value::Null;
    coupon["duration_in_months"] = Value::Null;
    coupon["percent_off"] = json!(50.0);
    coupon["duration"] = json!("forever");
    app.deliver(&event("coupon.created", t + 10, coupon)).await;
    let mut discount = fixture("discount");
    discount["id"] = json!("di_half");
    discount["customer"] = json!("cus_half");
    discount["subscription"] = json!("sub_half");
    discount["source"] = json!({"type": "coupon", "coupon": "HALF"});
    discount["start"] = json!(t + 10);
    discount["end"] = Value::Null;
    app.deliver(&event("customer.discount.created", t + 10, discount)).await;
    let mut discounted = half.object();
    discounted["discounts"] = json!(["di_half"]);
    app.deliver(&event("customer.subscription.updated", t + 10, discounted.clone())).await;
    app.deliver(&event("customer.subscription.updated", t + 100, cancelling(discounted, t + 100))).await;

    let rows = app.store.alert_deliveries().await.expect("rows");
    let ids: Vec<&str> = rows.iter().map(|r| r.alert_id.as_str()).collect();
    let want = format!("alert:cancellation_scheduled:sub_two_a:{}", t + 100);
    assert!(ids.iter().all(|id| *id == want), "only the two-subscription customer: {ids:?}");
    assert_eq!(rows.len(), 2, "slack and the webhook: {rows:#?}");
    let body: Value = serde_json::from_str(&rows[0].body).expect("json");
    let text = body["title"].as_str().or_else(|| body["text"].as_str()).unwrap_or_default();
    assert!(text.contains("$30.00 customer MRR"), "the customer's MRR, not the subscription's: {body}");
}

/// The `/readyz` entry of `part`, if it is listed as failing.
fn failing(body: &Value, part: &str) -> Option<Value> {
    body["failing"].as_array()?.iter().find(|f| f["part"] == part).cloned()
}

/// `/readyz`'s status and body.
async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app.get("/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_destination_that_keeps_failing_shows_on_readyz_until_a_delivery_goes_through() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(FAULT_AFTER as u64)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let hook = format!("{}/hook", receiver.uri());
    let app = spawn_app_with(owner_and_webhook(hook.clone())).await;
    let t = now();
    let dispute = json!({"id": "dp_down", "object": "dispute", "amount": 4900, "currency": "usd", "reason": "fraudulent",
        "charge": "ch_down", "status": "needs_response", "created": t, "balance_transactions": []});
    app.deliver(&event("charge.dispute.created", t, dispute)).await;
    assert_eq!(app.store.alert_deliveries().await.expect("rows").len(), 1);

    // Each pass is a day later: past any back-off.
    let mut at = t;
    for attempt in 1..=FAULT_AFTER {
        at += 86_400;
        app.clock.set(at);
        assert_eq!(app.alert_sender.run_until_idle_at(at).await.expect("pass"), 1);
        let (status, body) = readyz(&app).await;
        assert_eq!(status, 200, "{body}");
        let listed = failing(&body, PART);
        assert_eq!(listed.is_some(), attempt == FAULT_AFTER, "attempt {attempt}: {body}");
    }
    let (_, body) = readyz(&app).await;
    let reason = failing(&body, PART).and_then(|f| f["reason"].as_str().map(str::to_owned)).unwrap_or_default();
    assert!(reason.contains("webhook") && !reason.contains(&hook), "the destination, never its URL: {reason}");
    // Like the mail server: unready once the failure has lasted.
    app.clock.advance(UNREADY_AFTER_SECS);
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("alert_delivery: deliveries to webhook")), "{body}");

    // The receiver answers again: delivered once, and readiness returns.
    at += 86_400;
    app.clock.set(at);
    assert_eq!(app.alert_sender.run_until_idle_at(at).await.expect("pass"), 1);
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "{body}");
    assert!(failing(&body, PART).is_none(), "{body}");
    assert_eq!(app.alert_sender.run_until_idle_at(at + 86_400).await.expect("nothing left"), 0);
    let rows = app.store.alert_deliveries().await.expect("rows");
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("sent", i64::from(FAULT_AFTER) + 1), "{rows:#?}");
    assert_eq!(receiver.received_requests().await.expect("recorded").len(), FAULT_AFTER as usize + 1);
}
