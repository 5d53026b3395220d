//! Win-back after a voluntary cancellation: the one-click checkout, and when it never starts.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::helpers::{Config, Sub, TestApp, customer, event, fixture, now};
use crate::support::lifecycle::{canceled, series_status};
use crate::support::mail_world::{DAY, app_with_sink, subscriber};
use crate::support::smtp_sink::SmtpSink;
/// An app whose Stripe is wiremock, with win-back on and a coupon configured typed (the keys
/// of `holdfast.toml`'s `[lifecycle.winback]`).
async fn winback_app() -> (TestApp, SmtpSink, MockServer) {
    let stripe = MockServer::start().await;
    let config = Config::new()
        .stripe_at(&stripe.uri())
        .key("lifecycle.product_url", "https://app.acme.test")
        .campaign_on("winback")
        .key("lifecycle.winback.coupon", "COMEBACK20")
        .key("lifecycle.winback.offer_text", "20 % off your first 3 months back");
    let (app, sink) = app_with_sink(config).await;
    (app, sink, stripe)
}

#[tokio::test]
async fn winback_follows_a_voluntary_cancellation_with_a_one_click_checkout_and_stops_on_return() {
    let (app, sink, stripe) = winback_app().await;
    let t = now() - 3600;
    subscriber(&app, t - 90 * DAY).await;
    app.deliver(&canceled("sub_1", "cus_1", t - 90 * DAY, t, "cancellation_requested")).await;

    assert_eq!(app.outbox.run_until_idle_at(t + 7 * DAY - 1).await.expect("pass"), 0);
    assert_eq!(app.outbox.run_until_idle_at(t + 7 * DAY).await.expect("pass"), 1);
    let mail = &sink.parsed()[0];
    assert_eq!(mail.header("Subject").as_deref(), Some("We're sorry to see you go"));
    assert!(mail.header("List-Unsubscribe").is_some());
    assert!(mail.text.contains("20 % off your first 3 months back"), "{}", mail.text);
    let link = mail
        .text
        .split_whitespace()
        .find(|w| w.starts_with("https://billing.acme.test/comeback?token="))
        .expect("a come-back link")
        .to_owned();

    // One click: a Checkout session for the same price with the coupon, then 303 to it.
    let mut session = fixture("checkout.session");
    session["url"] = json!("https://checkout.stripe.com/c/pay/cs_test_back");
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&session))
        .expect(1)
        .mount(&stripe)
        .await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let local = link.replace("https://billing.acme.test", &app.address);
    let r = http.get(&local).send().await.expect("GET");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "https://checkout.stripe.com/c/pay/cs_test_back");
    let sent = &stripe.received_requests().await.expect("recorded")[0];
    let mut form: Vec<(String, String)> = serde_urlencoded::from_bytes(&sent.body).expect("form");
    form.sort();
    let expected = [
        ("cancel_url", "https://app.acme.test"),
        ("customer", "cus_1"),
        ("discounts[0][coupon]", "COMEBACK20"),
        ("line_items[0][price]", "price_basic_monthly"),
        ("line_items[0][quantity]", "1"),
        ("mode", "subscription"),
        ("success_url", "https://app.acme.test"),
    ];
    assert_eq!(form, expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>());
    // A forged link opens nothing.
    let forged = http.get(format!("{}/comeback?token=cus_1.sub_1.9999999999.00", app.address)).send().await.expect("GET");
    assert_eq!(forged.status(), 400);

    // They resubscribe: the rest of the series is withdrawn.
    app.deliver(&event("customer.subscription.created", t + 10 * DAY, Sub::new("sub_2", "cus_1", t + 10 * DAY).object())).await;
    assert_eq!(app.outbox.run_until_idle_at(t + 120 * DAY).await.expect("pass"), 0);
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(series_status(&app, "winback").await, vec![("stopped".into(), Some("resubscribed".into()))]);
    // Day 30 and day 90 were withdrawn.
    assert_eq!(app.store.outbox_counts().await.expect("counts").cancelled, 2);
}

#[tokio::test]
async fn an_involuntary_end_or_another_live_subscription_starts_no_winback() {
    let (app, _sink, _stripe) = winback_app().await;
    let t = now() - 3600;
    subscriber(&app, t - 90 * DAY).await;
    app.deliver(&canceled("sub_1", "cus_1", t - 90 * DAY, t, "payment_failed")).await;
    // A second customer cancels one of two subscriptions: still a customer.
    app.deliver(&event("customer.created", t, customer("cus_2", "two@example.com", t))).await;
    app.deliver(&event("customer.subscription.created", t, Sub::new("sub_2a", "cus_2", t - 9 * DAY).object())).await;
    app.deliver(&event("customer.subscription.created", t, Sub::new("sub_2b", "cus_2", t - 9 * DAY).object())).await;
    app.deliver(&canceled("sub_2a", "cus_2", t - 9 * DAY, t, "cancellation_requested")).await;
    assert!(app.store.outbox_rows().await.expect("outbox").is_empty());
    // The same voluntary cancellation on the last subscription does start it.
    app.deliver(&canceled("sub_2b", "cus_2", t - 9 * DAY, t + 60, "cancellation_requested")).await;
    assert_eq!(app.store.outbox_rows().await.expect("outbox").len(), 3);
}
