//! Lifecycle email end to end: webhooks and product activity → series in the outbox →
//! the outbox worker → a real SMTP server; every stop condition; one-click unsubscribe; A/B.
//! Time moves by passing a clock to the workers, never by sleeping.

use holdfast::lifecycle::rules::variant;
use holdfast::telemetry::capability_ref;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::helpers::{Sub, TestApp, assert_owner_only, customer, event, fixture, invoice, now};
use crate::support::mail_world::{DAY, EMAIL, app_with_sink, app_with_sink_configured, payment_failed, subscriber};
use crate::support::smtp_sink::SmtpSink;

const OWNER: &str = "owner-token-for-lifecycle-tests-01";

/// A first invoice of `sub` paid at `at`.
fn first_payment(id: &str, cus: &str, sub: &str, at: i64) -> Value {
    let mut i = invoice(id, cus, sub, "paid", 2000, at);
    i["billing_reason"] = json!("subscription_create");
    event("invoice.paid", at, i)
}

/// `sub_1` of `cus_1` canceled at `at`, for `reason` (`cancellation_requested`, `payment_failed`).
fn canceled(sub: &str, cus: &str, started: i64, at: i64, reason: &str) -> Value {
    let mut s = Sub::new(sub, cus, started).object();
    s["status"] = json!("canceled");
    s["canceled_at"] = json!(at);
    s["ended_at"] = json!(at);
    s["cancellation_details"] = json!({"comment": null, "feedback": null, "reason": reason});
    event("customer.subscription.deleted", at, s)
}

fn subjects(sink: &SmtpSink) -> Vec<String> {
    sink.parsed().iter().filter_map(|m| m.header("Subject")).collect()
}

async fn series_status(app: &TestApp, campaign: &str) -> Vec<(String, Option<String>)> {
    let rows = app.store.lifecycle_series().await.expect("series");
    rows.into_iter().filter(|s| s.campaign == campaign).map(|s| (s.status, s.stop_reason)).collect()
}

#[tokio::test]
async fn onboarding_runs_its_days_after_the_first_payment_as_marketing_mail() {
    let (app, sink) = app_with_sink(&[("HOLDFAST_ONBOARDING", "on")]).await;
    let t = now() - 3600;
    subscriber(&app, t).await;
    app.deliver(&first_payment("in_first", "cus_1", "sub_1", t)).await;

    assert_eq!(app.outbox.run_until_idle_at(t + DAY - 1).await.expect("pass"), 0, "day 1 is not due yet");
    assert_eq!(app.outbox.run_until_idle_at(t + DAY).await.expect("pass"), 1);
    let welcome = &sink.parsed()[0];
    assert_eq!(welcome.header("Subject").as_deref(), Some("Welcome to Acme"));
    assert_eq!(sink.messages()[0].rcpt_to, vec![EMAIL.to_owned()]);
    // Marketing: the RFC 8058 pair of headers and the same link in the body.
    let list = welcome.header("List-Unsubscribe").expect("List-Unsubscribe");
    assert!(list.starts_with("<https://billing.acme.test/unsubscribe?token=") && list.ends_with('>'), "{list}");
    assert_eq!(welcome.header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    assert!(welcome.text.contains(list.trim_matches(['<', '>'])), "{}", welcome.text);

    // A renewal a month later starts nothing new; the series runs to day 30.
    app.deliver(&event("invoice.paid", t + 30 * DAY, invoice("in_renewal", "cus_1", "sub_1", "paid", 2000, t + 30 * DAY))).await;
    assert_eq!(app.outbox.run_until_idle_at(t + 31 * DAY).await.expect("pass"), 3);
    let mut all = subjects(&sink);
    all.sort();
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(
        all.contains(&"How's it going with Acme?".to_owned()) && all.contains(&"A month with Acme: what's working?".to_owned())
    );
    let rows = app.store.outbox_rows().await.expect("outbox");
    let keys: Vec<&str> = rows.iter().map(|r| r.dedupe_key.as_str()).collect();
    assert_eq!(keys, vec!["onboarding:cus_1:day1", "onboarding:cus_1:day7", "onboarding:cus_1:day14", "onboarding:cus_1:day30"]);
    assert!(rows.iter().all(|r| r.category == "marketing" && r.status == "sent"));
}

#[tokio::test]
async fn a_renewal_of_a_customer_who_paid_before_starts_no_onboarding() {
    let (app, _sink) = app_with_sink(&[("HOLDFAST_ONBOARDING", "on")]).await;
    let t = now() - 3600;
    subscriber(&app, t - 60 * DAY).await;
    // Their first payment happened long ago (delivered late, beyond the horizon: no series).
    app.deliver(&first_payment("in_old", "cus_1", "sub_1", t - 60 * DAY)).await;
    app.deliver(&event("invoice.paid", t, invoice("in_new", "cus_1", "sub_1", "paid", 2000, t))).await;
    assert!(app.store.outbox_rows().await.expect("outbox").is_empty());
    assert!(app.store.lifecycle_series().await.expect("series").is_empty());
}

#[tokio::test]
async fn onboarding_stops_when_the_subscription_ends() {
    let (app, sink) = app_with_sink(&[("HOLDFAST_ONBOARDING", "on")]).await;
    // Well inside the 3-day horizon: at exactly 3 days, a second passing would make it too old.
    let t = now() - 3 * DAY + 3600;
    subscriber(&app, t).await;
    app.deliver(&first_payment("in_first", "cus_1", "sub_1", t)).await;
    app.outbox.run_until_idle_at(t + DAY).await.expect("pass");
    app.deliver(&canceled("sub_1", "cus_1", t, t + 2 * DAY, "payment_failed")).await;

    app.outbox.run_until_idle_at(t + 60 * DAY).await.expect("pass");
    assert_eq!(sink.messages().len(), 1, "only day 1 went before the end");
    assert_eq!(series_status(&app, "onboarding").await, vec![("stopped".into(), Some("subscription_ended".into()))]);
    assert_eq!(app.store.outbox_counts().await.expect("counts").cancelled, 3);
}

#[tokio::test]
async fn trial_ending_links_a_payment_method_only_when_none_is_on_file() {
    let stripe_key = [("HOLDFAST_TRIAL_ENDING", "on"), ("STRIPE_SECRET_KEY", "sk_test_lifecycle")];
    let (app, sink) = app_with_sink(&stripe_key).await;
    let t = now() - 600;
    let ends = now() + 3 * DAY;
    for (cus, card) in [("cus_nocard", None), ("cus_card", Some("pm_123"))] {
        app.deliver(&event("customer.created", t, customer(cus, &format!("{cus}@example.com"), t))).await;
        let mut s = Sub::new(&format!("sub_{cus}"), cus, t).object();
        s["status"] = json!("trialing");
        s["trial_start"] = json!(t);
        s["trial_end"] = json!(ends);
        s["default_payment_method"] = json!(card);
        let reminder = event("customer.subscription.trial_will_end", t + 1, s);
        app.deliver(&reminder).await;
        app.deliver(&reminder).await;
    }
    assert_eq!(app.outbox.run_until_idle_at(now()).await.expect("pass"), 2, "one reminder each, redelivery or not");
    let by = |to: &str| {
        let i = sink.messages().iter().position(|m| m.rcpt_to == vec![to.to_owned()]).expect("sent to");
        sink.parsed()[i].clone()
    };
    let (nocard, card) = (by("cus_nocard@example.com"), by("cus_card@example.com"));
    let date = holdfast::dunning::rules::format_date(ends);
    assert_eq!(nocard.header("Subject"), Some(format!("Your Acme trial ends on {date}")));
    assert!(nocard.text.contains("https://billing.acme.test/billing/update?token="), "{}", nocard.text);
    assert!(nocard.text.contains("$20.00 / month"), "{}", nocard.text);
    assert!(!card.text.contains("/billing/update"), "{}", card.text);
    // Transactional: no unsubscribe header.
    assert!(nocard.header("List-Unsubscribe").is_none() && card.header("List-Unsubscribe").is_none());
}

/// An app whose Stripe is wiremock, with win-back on and a coupon configured typed (the keys
/// of `holdfast.toml`'s `[lifecycle.winback]`).
async fn winback_app() -> (TestApp, SmtpSink, MockServer) {
    let stripe = MockServer::start().await;
    let uri = stripe.uri();
    let (app, sink) = app_with_sink_configured(
        &[
            ("STRIPE_SECRET_KEY", "sk_test_lifecycle"),
            ("STRIPE_API_BASE", &uri),
            ("HOLDFAST_PRODUCT_URL", "https://app.acme.test"),
        ],
        |s| {
            s.set("lifecycle.winback.enabled", true)
                .set("lifecycle.winback.coupon", "COMEBACK20")
                .set("lifecycle.winback.offer_text", "20 % off your first 3 months back")
        },
    )
    .await;
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

/// An app with the owner API and re-engagement on.
async fn activity_app() -> (TestApp, SmtpSink) {
    app_with_sink(&[
        ("HOLDFAST_REENGAGEMENT", "on"),
        ("HOLDFAST_OWNER_TOKEN", OWNER),
        ("HOLDFAST_PRODUCT_URL", "https://app.acme.test"),
    ])
    .await
}

async fn post_activity(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client.post(format!("{}/api/activity", app.address)).bearer_auth(OWNER).json(body).send().await.expect("POST")
}

async fn summary(app: &TestApp) -> Value {
    let r = app.client.get(format!("{}/api/summary", app.address)).bearer_auth(OWNER).send().await.expect("GET");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

#[tokio::test]
async fn the_activity_api_is_owner_only_validates_and_limits_batches() {
    let (app, _sink) = activity_app().await;
    let url = format!("{}/api/activity", app.address);
    assert_owner_only(&app.client, reqwest::Method::POST, &url, OWNER).await;

    let ok = post_activity(&app, &json!([{"customer": "cus_1", "at": now(), "event": "login"}, {"customer": "cus_1", "at": "2026-01-02T03:04:05Z", "count": 3}])).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.expect("json");
    assert_eq!((body["accepted"].as_u64(), body["customers"].as_u64()), (Some(2), Some(1)));

    let bad =
        post_activity(&app, &json!({"events": [{"customer": "cus_1", "at": now()}, {"customer": "cus_1", "at": "yesterday"}]}))
            .await;
    assert_eq!(bad.status(), 400);
    let e: Value = bad.json().await.expect("json");
    assert_eq!(e["error"]["code"], "invalid_activity");
    assert!(e["error"]["message"].as_str().is_some_and(|m| m.starts_with("item 1:")), "{e}");

    let many: Vec<Value> = (0..1001).map(|i| json!({"customer": format!("cus_{i}"), "at": now()})).collect();
    assert_eq!(post_activity(&app, &json!(many)).await.status(), 413);
    let huge = json!([{"customer": "x".repeat(600 * 1024), "at": now()}]);
    assert_eq!(post_activity(&app, &huge).await.status(), 413);
}

async fn post_keyed(app: &TestApp, body: &Value, key: &str) -> reqwest::Response {
    let url = format!("{}/api/activity", app.address);
    app.client.post(url).bearer_auth(OWNER).header("Idempotency-Key", key).json(body).send().await.expect("POST")
}

/// `cus_1`'s activity counted in the last 7 days, as the at-risk check reads it.
async fn recent_week(app: &TestApp) -> i64 {
    let today = now().div_euclid(DAY);
    let windows = holdfast::lifecycle::rules::Windows { recent: (today - 6, today + 1), baseline: (0, today - 6) };
    let candidates = app.store.activity_candidates(windows).await.expect("candidates");
    candidates.iter().find(|c| c.customer == "cus_1").map_or(0, |c| c.recent_week)
}

#[tokio::test]
async fn a_batch_retried_with_its_idempotency_key_counts_once() {
    let (app, _sink) = activity_app().await;
    let t = now();
    subscriber(&app, t - 90 * DAY).await;
    let batch = json!([{"customer": "cus_1", "at": t - 60, "count": 5}, {"customer": "cus_1", "at": t - DAY, "count": 2}]);

    let first = post_keyed(&app, &batch, "batch-2026-11-27-0001").await;
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.expect("json");
    assert_eq!((body["accepted"].as_u64(), body["replayed"].as_bool()), (Some(2), Some(false)));
    assert_eq!(recent_week(&app).await, 7);

    // The retry (also with its items in another order) is answered as before and counted once.
    let reordered = json!([batch[1], batch[0]]);
    for again in [&batch, &reordered] {
        let retry = post_keyed(&app, again, "batch-2026-11-27-0001").await;
        assert_eq!(retry.status(), 200);
        let body: Value = retry.json().await.expect("json");
        assert_eq!(body, json!({"accepted": 2, "customers": 1, "reengaged": [], "replayed": true}));
    }
    assert_eq!(recent_week(&app).await, 7);

    // A different batch under a used key is refused and stores nothing.
    let other = json!([{"customer": "cus_1", "at": t - 60, "count": 9}]);
    let reused = post_keyed(&app, &other, "batch-2026-11-27-0001").await;
    assert_eq!(reused.status(), 409);
    let e: Value = reused.json().await.expect("json");
    assert_eq!(e["error"]["code"], "idempotency_key_reused");
    for bad in ["has space", &"k".repeat(256)] {
        let r = post_keyed(&app, &other, bad).await;
        assert_eq!(r.status(), 400, "key {bad:?}");
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["error"]["code"], "invalid_idempotency_key");
    }
    assert_eq!(recent_week(&app).await, 7);

    // Without a key every delivery counts; a new key is a new batch.
    assert_eq!(post_activity(&app, &batch).await.status(), 200);
    assert_eq!(post_keyed(&app, &other, "batch-2026-11-27-0002").await.status(), 200);
    assert_eq!(recent_week(&app).await, 7 + 7 + 9);
}

#[tokio::test]
async fn an_inactive_customer_gets_the_reengagement_series_until_activity_returns() {
    let (app, sink) = activity_app().await;
    // The check runs five days ago (the activity API only takes times up to now).
    let t = now() - 5 * DAY;
    subscriber(&app, t - 90 * DAY).await;
    let old: Vec<Value> = (40..50).map(|d| json!({"customer": "cus_1", "at": t - d * DAY, "count": 4})).collect();
    assert_eq!(post_activity(&app, &json!(old)).await.status(), 200);

    assert_eq!(app.scheduler.try_run_once_at(t).await.expect("check"), holdfast::workers::Outcome::Worked(5));
    let s = summary(&app).await;
    assert_eq!(s["at_risk"]["count"], 1);
    assert_eq!(s["at_risk"]["customers"][0]["customer"], "cus_1");
    assert_eq!(s["at_risk"]["customers"][0]["reason"], "inactive");
    assert_eq!(s["at_risk"]["customers"][0]["email"], EMAIL);
    assert_eq!(app.outbox.run_until_idle_at(t).await.expect("pass"), 1);
    assert_eq!(subjects(&sink), vec!["Is Acme still working for you?"]);
    assert!(sink.parsed()[0].header("List-Unsubscribe").is_some());
    assert_eq!(app.outbox.run_until_idle_at(t + 3 * DAY).await.expect("pass"), 1);
    // Running the check again changes nothing: the episode is open.
    assert_eq!(app.scheduler.try_run_once_at(t + 3 * DAY).await.expect("check"), holdfast::workers::Outcome::Idle);

    // They come back (now, day 5 of the episode): the rest of the series is withdrawn at once.
    let back = post_activity(&app, &json!([{"customer": "cus_1", "at": now()}])).await;
    let body: Value = back.json().await.expect("json");
    assert_eq!(body["reengaged"], json!(["cus_1"]));
    assert_eq!(app.outbox.run_until_idle_at(t + 30 * DAY).await.expect("pass"), 0);
    assert_eq!(sink.messages().len(), 2);
    let s = summary(&app).await;
    assert_eq!((s["at_risk"]["count"].as_u64(), s["at_risk"]["reengaged"].as_u64()), (Some(0), Some(1)));
    assert_eq!(series_status(&app, "reengagement").await, vec![("stopped".into(), Some("activity_returned".into()))]);
    // Within the cooldown a low week does not reopen an episode.
    assert_eq!(app.scheduler.try_run_once_at(now() + DAY).await.expect("check"), holdfast::workers::Outcome::Idle);
}

#[tokio::test]
async fn a_weekly_drop_against_the_customers_own_baseline_is_at_risk_and_steady_use_is_not() {
    let (app, _sink) = activity_app().await;
    let t = now();
    for (cus, last_week) in [("cus_drop", 8), ("cus_steady", 20)] {
        app.deliver(&event("customer.created", t - 90 * DAY, customer(cus, &format!("{cus}@example.com"), t - 90 * DAY))).await;
        app.deliver(&event(
            "customer.subscription.created",
            t - 90 * DAY,
            Sub::new(&format!("sub_{cus}"), cus, t - 90 * DAY).object(),
        ))
        .await;
        // 20 a week for the five weeks before the last one, then `last_week` in the last 7 days.
        let mut items: Vec<Value> = (7..42)
            .map(|d| json!({"customer": cus, "at": t - d * DAY, "count": if d % 7 == 0 { 20 } else { 0 }}))
            .filter(|i| i["count"] != 0)
            .collect();
        items.push(json!({"customer": cus, "at": t - DAY, "count": last_week}));
        assert_eq!(post_activity(&app, &json!(items)).await.status(), 200);
    }
    app.scheduler.try_run_once_at(t).await.expect("check");
    let s = summary(&app).await;
    assert_eq!(s["at_risk"]["count"], 1, "{}", s["at_risk"]);
    let c = &s["at_risk"]["customers"][0];
    assert_eq!((c["customer"].as_str(), c["reason"].as_str()), (Some("cus_drop"), Some("activity_drop")));
    assert_eq!((c["recent_week"].as_i64(), c["baseline_week"].as_i64()), (Some(8), Some(20)));
    // The dashboard lists them too.
    let page = dashboard(&app).await;
    assert!(page.contains("id=\"at-risk-count\">1<") && page.contains("cus_drop@example.com"), "{page}");
}

#[tokio::test]
async fn one_click_unsubscribe_stops_marketing_at_once_but_not_dunning() {
    let (app, sink) = app_with_sink(&[("HOLDFAST_ONBOARDING", "on")]).await;
    let t = now() - 2 * DAY;
    subscriber(&app, t).await;
    app.deliver(&first_payment("in_first", "cus_1", "sub_1", t)).await;
    app.outbox.run_until_idle_at(t + DAY).await.expect("pass");
    let url = sink.parsed()[0].header("List-Unsubscribe").expect("header").trim_matches(['<', '>']).to_owned();
    let local = url.replace("https://billing.acme.test", &app.address);

    // A GET (a link scanner, a preview) shows the button and changes nothing.
    let page = app.client.get(&local).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("name=\"List-Unsubscribe\"") && html.contains(EMAIL), "{html}");
    assert_eq!(app.store.outbox_counts().await.expect("counts").suppressed, 0);

    // The mail client's one-click POST (RFC 8058).
    let r = app.client.post(&local).form(&[("List-Unsubscribe", "One-Click")]).send().await.expect("POST");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("html").contains("unsubscribed"));
    assert_eq!(app.outbox.run_until_idle_at(t + 7 * DAY).await.expect("pass"), 1, "day 7 is processed...");
    assert_eq!(sink.messages().len(), 1, "...but not sent");
    assert_eq!(app.store.outbox_counts().await.expect("counts").suppressed, 1);

    // Dunning is transactional: it still arrives.
    app.deliver(&payment_failed("in_2", now() - 60, Some(now() + 14 * DAY))).await;
    app.outbox.run_until_idle_at(now()).await.expect("pass");
    assert_eq!(sink.messages().len(), 2);
    assert!(sink.parsed()[1].header("Subject").is_some_and(|s| s.contains("didn't go through")));

    // A forged token is refused with a friendly page.
    let forged = app.client.post(format!("{}/unsubscribe?token=6576654065.00ff", app.address)).send().await.expect("POST");
    assert_eq!(forged.status(), 400);
}

/// Two customers, one in each variant of an experiment named `name` at 50 %.
fn one_per_variant(name: &str) -> (String, String) {
    let a = (0..).map(|i| format!("cus_a{i}")).find(|c| variant(name, c, 50) == "a").expect("an a");
    let b = (0..).map(|i| format!("cus_b{i}")).find(|c| variant(name, c, 50) == "b").expect("a b");
    (a, b)
}

#[tokio::test]
async fn an_email_experiment_splits_templates_by_customer_and_reports_recovery_per_variant() {
    let dir = tempfile::tempdir().expect("dir");
    let b_template = dir.path().join("templates/payment_failed_short");
    std::fs::create_dir_all(&b_template).expect("mkdir");
    std::fs::write(b_template.join("subject.txt"), "Quick fix needed for {{ brand.name }}").expect("write");
    std::fs::write(b_template.join("body.txt"), "Fix it: {{ action_url }}").expect("write");
    std::fs::write(b_template.join("body.html"), "<p>Fix it: {{ action_url }}</p>").expect("write");
    let config = dir.path().join("holdfast.toml");
    std::fs::write(
        &config,
        "[[experiments]]\nname = \"short-dunning\"\nkind = \"email\"\npercent_b = 50\n\
         [experiments.templates]\npayment_failed = \"payment_failed_short\"\n",
    )
    .expect("write");
    let (templates, config) = (dir.path().join("templates").display().to_string(), config.display().to_string());
    let (app, sink) =
        app_with_sink(&[("HOLDFAST_TEMPLATES", &templates), ("HOLDFAST_CONFIG_FILE", &config), ("HOLDFAST_OWNER_TOKEN", OWNER)])
            .await;
    let (a, b) = one_per_variant("short-dunning");
    let t = now() - 3600;
    for cus in [&a, &b] {
        let sub = format!("sub_{cus}");
        app.deliver(&event("customer.created", t - DAY, customer(cus, &format!("{cus}@example.com"), t - DAY))).await;
        app.deliver(&event("customer.subscription.created", t - DAY, Sub::new(&sub, cus, t - DAY).object())).await;
        let mut inv = invoice(&format!("in_{cus}"), cus, &sub, "open", 2000, t);
        inv["next_payment_attempt"] = json!(t + 14 * DAY);
        app.deliver(&event("invoice.payment_failed", t, inv)).await;
    }
    app.outbox.run_until_idle_at(now()).await.expect("pass");
    let subject_to = |to: String| {
        let i = sink.messages().iter().position(|m| m.rcpt_to == vec![to.clone()]).expect("sent");
        sink.parsed()[i].header("Subject").unwrap_or_default()
    };
    assert_eq!(subject_to(format!("{b}@example.com")), "Quick fix needed for Acme");
    assert_eq!(subject_to(format!("{a}@example.com")), "Your Acme payment of $20.00 didn't go through");

    // b pays: recovery per variant, with the counts behind the rate.
    app.deliver(&event("invoice.paid", t + 600, invoice(&format!("in_{b}"), &b, &format!("sub_{b}"), "paid", 2000, t + 600)))
        .await;
    let s = summary(&app).await;
    let x = &s["experiments"][0];
    assert_eq!(
        (x["name"].as_str(), x["kind"].as_str(), x["percent_b"].as_u64()),
        (Some("short-dunning"), Some("email"), Some(50))
    );
    assert_eq!(
        x["variants"][0],
        json!({"variant": "a", "cases": 1, "recovered": 0, "lost": 0, "open": 1, "recovered_amount": 0, "recovery_rate": null})
    );
    assert_eq!(
        x["variants"][1],
        json!({"variant": "b", "cases": 1, "recovered": 1, "lost": 0, "open": 0, "recovered_amount": 2000, "recovery_rate": 1.0})
    );
    // The dashboard shows the same table.
    let page = dashboard(&app).await;
    assert!(
        page.contains("short-dunning") && page.contains("<td>b</td><td>1</td><td>1</td><td>0</td><td>0</td><td>100.0%</td>"),
        "{page}"
    );
}

/// The dashboard page, signed in with the owner token.
async fn dashboard(app: &TestApp) -> String {
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let login =
        no_redirects.post(format!("{}/dashboard/login", app.address)).form(&[("token", OWNER)]).send().await.expect("login");
    let cookie = login.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("name=value").to_owned();
    let dash = app.client.get(format!("{}/dashboard", app.address)).header("Cookie", cookie).send().await.expect("GET");
    dash.text().await.expect("html")
}

#[tokio::test]
async fn a_save_offer_experiment_shows_variant_b_its_offers_and_reports_save_rate_per_variant() {
    use crate::support::cancel_flow::{flow_with, seed, signed_link};
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("holdfast.toml");
    std::fs::write(
        &config,
        "[[experiments]]\nname = \"pause-for-price\"\nkind = \"save_offer\"\n\
         [experiments.offers_by_reason]\ntoo_expensive = [\"pause\"]\n",
    )
    .expect("write");
    let config = config.display().to_string();
    let f = flow_with(&[("HOLDFAST_CONFIG_FILE", &config)]).await;
    let (a, b) = one_per_variant("pause-for-price");
    let mut offers = Vec::new();
    for cus in [&a, &b] {
        let object = seed(&f.app, cus, &format!("sub_{cus}"), "price_pro_monthly", |_| {}).await;
        let (session, csrf) = f.open(&signed_link(cus)).await;
        let page = f.answer(&session, &csrf, "too_expensive", "").await;
        offers.push((page.contains("choice-discount"), page.contains("choice-pause-1")));
        assert_eq!(f.session(&session).await.variant.as_deref(), Some(if cus == &a { "a" } else { "b" }));
        if cus == &b {
            let id = session.trim_start_matches("/cancel/s/").to_owned();
            f.expect_update(&format!("sub_{cus}"), &format!("holdfast-cancel-{}-pause_1-1", capability_ref(&id)), &object).await;
            assert_eq!(f.choose(&session, &csrf, "pause_1").await.status(), 303);
        } else {
            Mock::given(method("POST"))
                .and(path(format!("/v1/subscriptions/sub_{cus}")))
                .respond_with(ResponseTemplate::new(200).set_body_json(&object))
                .mount(&f.stripe)
                .await;
            assert_eq!(f.choose(&session, &csrf, "cancel").await.status(), 303);
        }
    }
    assert_eq!(offers, vec![(true, false), (false, true)], "a sees the configured discount; b sees only the pause");
    let r = f
        .app
        .client
        .get(format!("{}/api/summary", f.app.address))
        .bearer_auth(crate::support::cancel_flow::OWNER_TOKEN)
        .send()
        .await;
    let s: Value = r.expect("GET").json().await.expect("json");
    let x = &s["experiments"][0];
    assert_eq!(x["kind"], "save_offer");
    assert_eq!(
        x["variants"][0],
        json!({"variant": "a", "sessions": 1, "saved": 0, "canceled": 1, "abandoned": 0, "in_progress": 0, "save_rate": 0.0})
    );
    assert_eq!(
        x["variants"][1],
        json!({"variant": "b", "sessions": 1, "saved": 1, "canceled": 0, "abandoned": 0, "in_progress": 0, "save_rate": 1.0})
    );
}

#[tokio::test]
async fn a_trial_gets_its_own_series_from_the_first_day_and_a_direct_purchase_the_paid_one() {
    let (app, sink) = app_with_sink(&[("HOLDFAST_ONBOARDING", "on"), ("HOLDFAST_TRIAL_ONBOARDING", "on")]).await;
    let t = now() - 3600;
    app.deliver(&event("customer.created", t, customer("cus_1", EMAIL, t))).await;
    let mut trial = Sub::new("sub_1", "cus_1", t);
    trial.status = "trialing";
    let mut object = trial.object();
    object["trial_start"] = json!(t);
    object["trial_end"] = json!(t + 14 * DAY);
    app.deliver(&event("customer.subscription.created", t, object)).await;

    // Day 0 is the trial's first day: the welcome goes at once, as marketing mail.
    assert_eq!(app.outbox.run_until_idle_at(t).await.expect("pass"), 1);
    assert_eq!(subjects(&sink), vec!["Welcome to your Acme trial"]);
    let welcome = &sink.parsed()[0];
    assert!(welcome.header("List-Unsubscribe").is_some());
    let ends_on = holdfast::dunning::rules::format_date(t + 14 * DAY);
    assert!(welcome.text.contains(&format!("runs until {ends_on}")), "{}", welcome.text);

    // The trial converts: its first paid invoice starts no paid onboarding on top.
    app.deliver(&first_payment("in_first", "cus_1", "sub_1", t + 60)).await;
    assert_eq!(series_status(&app, "trial_onboarding").await, vec![("active".into(), None)]);
    assert_eq!(series_status(&app, "onboarding").await, vec![]);
    assert_eq!(app.outbox.run_until_idle_at(t + 3 * DAY).await.expect("pass"), 1);
    assert_eq!(subjects(&sink)[1], "How is your Acme trial going?");

    // A direct purchase (no trial) keeps the paid series.
    app.deliver(&event("customer.created", t, customer("cus_2", "grace@example.com", t))).await;
    app.deliver(&event("customer.subscription.created", t, Sub::new("sub_2", "cus_2", t).object())).await;
    app.deliver(&first_payment("in_2", "cus_2", "sub_2", t + 60)).await;
    assert_eq!(series_status(&app, "onboarding").await, vec![("active".into(), None)]);
    assert_eq!(series_status(&app, "trial_onboarding").await.len(), 1, "no trial series for a direct purchase");
}

#[tokio::test]
async fn a_trial_that_ends_unpaid_stops_its_series() {
    let (app, sink) = app_with_sink(&[("HOLDFAST_TRIAL_ONBOARDING", "on")]).await;
    let t = now() - 3600;
    app.deliver(&event("customer.created", t, customer("cus_1", EMAIL, t))).await;
    let mut trial = Sub::new("sub_1", "cus_1", t);
    trial.status = "trialing";
    let mut object = trial.object();
    object["trial_start"] = json!(t);
    app.deliver(&event("customer.subscription.created", t, object)).await;
    app.deliver(&canceled("sub_1", "cus_1", t, t + 60, "cancellation_requested")).await;
    assert_eq!(series_status(&app, "trial_onboarding").await, vec![("stopped".into(), Some("subscription_ended".into()))]);
    // The day-0 email was withdrawn with the series (it was due, not yet sent).
    assert_eq!(app.outbox.run_until_idle_at(t + 30 * DAY).await.expect("pass"), 0);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn the_last_reengagement_email_pauses_through_the_cancel_flows_pause_offer() {
    use wiremock::matchers::header;
    let stripe = MockServer::start().await;
    let uri = stripe.uri();
    let (app, sink) = app_with_sink(&[
        ("HOLDFAST_REENGAGEMENT", "on"),
        ("HOLDFAST_OWNER_TOKEN", OWNER),
        ("STRIPE_SECRET_KEY", "sk_test_pause_link"),
        ("STRIPE_API_BASE", &uri),
    ])
    .await;
    // A live monthly subscriber whose last activity was 40 days before the check.
    let started = now() - DAY;
    app.deliver(&event("customer.created", started, customer("cus_1", EMAIL, started))).await;
    let object = Sub::new("sub_1", "cus_1", started).object();
    app.deliver(&event("customer.subscription.created", started, object.clone())).await;
    let t = now() - 15 * DAY;
    let old: Vec<Value> = (40..50).map(|d| json!({"customer": "cus_1", "at": t - d * DAY, "count": 4})).collect();
    assert_eq!(post_activity(&app, &json!(old)).await.status(), 200);
    assert_eq!(app.scheduler.try_run_once_at(t).await.expect("check"), holdfast::workers::Outcome::Worked(5));
    assert_eq!(app.outbox.run_until_idle_at(t + 14 * DAY).await.expect("pass"), 5);

    // Only the day-14 email offers the pause; its link is signed and opens a page.
    let mail = sink.parsed();
    let prefix = "https://billing.acme.test/pause?token=";
    assert_eq!(mail.iter().filter(|m| m.text.contains(prefix)).count(), 1);
    let last = mail.iter().find(|m| m.text.contains(prefix)).expect("the pause email");
    assert_eq!(last.header("Subject").as_deref(), Some("Our last note for now"));
    let start = last.text.find(prefix).expect("link");
    let link = last.text[start..].split_whitespace().next().expect("link").to_owned();
    let link = link.replace("https://billing.acme.test", &app.address);

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let opened = http.get(&link).send().await.expect("GET");
    assert_eq!(opened.status(), 303);
    let offer_path = opened.headers()["location"].to_str().expect("location").to_owned();
    assert!(offer_path.starts_with("/cancel/s/") && offer_path.ends_with("/offer"), "{offer_path}");
    assert!(stripe.received_requests().await.expect("recording").is_empty(), "opening the link changes nothing");
    let page = http.get(format!("{}{offer_path}", app.address)).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("choice-pause-1"), "{html}");
    let csrf_at = html.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = html[csrf_at..].split('"').next().expect("csrf").to_owned();
    let session = offer_path.trim_end_matches("/offer").to_owned();
    let id = session.trim_start_matches("/cancel/s/").to_owned();

    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_1"))
        .and(header("Idempotency-Key", format!("holdfast-cancel-{}-pause_1-1", capability_ref(&id)).as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(&object))
        .expect(1)
        .mount(&stripe)
        .await;
    let chosen = http
        .post(format!("{}{session}/choose", app.address))
        .form(&[("csrf", csrf.as_str()), ("choice", "pause_1")])
        .send()
        .await
        .expect("POST");
    assert_eq!(chosen.status(), 303);
    assert_eq!(chosen.headers()["location"], format!("{session}/done").as_str());
    let sent = stripe.received_requests().await.expect("recording");
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&sent[0].body).expect("form");
    assert!(params.contains(&("pause_collection[behavior]".into(), "void".into())), "{params:?}");

    let row = app.store.cancel_session(&id).await.expect("store").expect("session");
    assert_eq!(
        (row.source.as_str(), row.outcome.as_deref(), row.reason.as_deref()),
        ("pause_link", Some("paused"), Some("unused"))
    );
    let record = app.store.customer_record("cus_1").await.expect("store").expect("record");
    assert_eq!(record.stripe_changes.len(), 1);
    assert_eq!(record.stripe_changes[0].triggered_by, "the customer, from the pause link of a re-engagement email");

    // A forged or foreign token opens nothing.
    let forged = http.get(format!("{}/pause?token=cus_1.pause.99999999999.00", app.address)).send().await.expect("GET");
    assert_eq!(forged.status(), 403);
}

/// A seeded population for the holdout tests: SplitMix64, the same draws on every run.
struct Seeded(u64);

impl Seeded {
    fn chance(&mut self, p: f64) -> bool {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) as f64 / u64::MAX as f64) < p
    }
}

#[tokio::test]
async fn a_winback_holdout_gets_no_email_and_the_summary_reports_reactivation_per_arm_with_its_interval() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("holdfast.toml");
    std::fs::write(&file, "[lifecycle.winback]\nholdout_percent = 50\n").expect("config");
    let file = file.to_string_lossy().to_string();
    let (app, _sink) =
        app_with_sink(&[("HOLDFAST_WINBACK", "on"), ("HOLDFAST_OWNER_TOKEN", OWNER), ("HOLDFAST_CONFIG_FILE", &file)]).await;
    // 100 voluntary cancellations; a known effect: 60 % of the treated come back within 90
    // days, 30 % of the held out.
    let (t0, t) = (now() - 40 * DAY, now() - 3600);
    let mut rng = Seeded(0x5EED_2026);
    let mut expected: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    let mut held_out = Vec::new();
    for i in 0..100 {
        let (cus, sub) = (format!("cus_w{i}"), format!("sub_w{i}"));
        app.deliver(&event("customer.created", t0, customer(&cus, &format!("{cus}@example.com"), t0))).await;
        app.deliver(&event("customer.subscription.created", t0, Sub::new(&sub, &cus, t0).object())).await;
        app.deliver(&canceled(&sub, &cus, t0, t, "cancellation_requested")).await;
        let arm = holdfast::lifecycle::rules::series_arm("winback", &cus, 50).expect("an arm");
        let back = rng.chance(if arm == "holdout" { 0.3 } else { 0.6 });
        if back {
            app.deliver(&event("customer.subscription.created", t + 60, Sub::new(&format!("{sub}b"), &cus, t + 60).object()))
                .await;
        }
        let e = expected.entry(arm).or_default();
        e.0 += u64::from(back);
        e.1 += 1;
        if arm == "holdout" {
            held_out.push(format!("{cus}@example.com"));
        }
    }
    // The holdout's series are recorded, and nothing is written to them.
    let rows = app.store.outbox_rows().await.expect("outbox");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| !held_out.contains(&r.recipient)), "no email to the holdout");
    assert_eq!(series_status(&app, "winback").await.len(), 100);

    // 91 days later every series is decided.
    app.clock.advance(91 * DAY);
    let s = summary(&app).await;
    let x = s["experiments"].as_array().expect("experiments").iter().find(|x| x["name"] == "lifecycle:winback").cloned();
    let x = x.expect("the winback holdout is reported");
    assert_eq!((x["kind"].as_str(), x["holdout_percent"].as_u64()), (Some("lifecycle_email"), Some(50)), "{x}");
    let arm = |v: &str| x["arms"].as_array().expect("arms").iter().find(|a| a["variant"] == v).cloned().expect("arm");
    let (treated, holdout) = (arm("treated"), arm("holdout"));
    for (name, a) in [("treated", &treated), ("holdout", &holdout)] {
        let (successes, decided) = expected[name];
        assert_eq!(
            (a["successes"].as_u64(), a["decided"].as_u64(), a["undecided"].as_u64()),
            (Some(successes), Some(decided), Some(0)),
            "{x}"
        );
        assert_eq!(a["outcome"], "reactivated_within_90_days");
    }
    let (ts, tn) = expected["treated"];
    let (hs, hn) = expected["holdout"];
    assert!(tn >= 30 && hn >= 30, "the seeded split fills both arms: {tn} / {hn}");
    assert_eq!(treated["status"], "measured", "{x}");
    let lift = &treated["lift"];
    let difference = ts as f64 / tn as f64 - hs as f64 / hn as f64;
    assert!((lift["difference"].as_f64().expect("difference") - difference).abs() < 1e-6, "{x}");
    let interval = holdfast::figures::lift::lift_vs_holdout((ts, tn), (hs, hn)).expect("interval");
    assert!((lift["ci_low"].as_f64().expect("low") - interval.low).abs() < 1e-6, "{x}");
    assert!((lift["ci_high"].as_f64().expect("high") - interval.high).abs() < 1e-6, "{x}");
    assert!(
        lift["ci_low"].as_f64() < Some(0.3) && lift["ci_high"].as_f64() > Some(0.3),
        "the true effect (+30 points) is inside: {x}"
    );
}

#[tokio::test]
async fn an_onboarding_holdout_is_measured_on_paying_at_day_60() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("holdfast.toml");
    std::fs::write(&file, "[lifecycle.onboarding]\nholdout_percent = 50\n").expect("config");
    let file = file.to_string_lossy().to_string();
    let (app, _sink) =
        app_with_sink(&[("HOLDFAST_ONBOARDING", "on"), ("HOLDFAST_OWNER_TOKEN", OWNER), ("HOLDFAST_CONFIG_FILE", &file)]).await;
    let t = now() - 3600;
    let mut expected: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for i in 0..8 {
        let (cus, sub) = (format!("cus_o{i}"), format!("sub_o{i}"));
        app.deliver(&event("customer.created", t, customer(&cus, &format!("{cus}@example.com"), t))).await;
        app.deliver(&event("customer.subscription.created", t, Sub::new(&sub, &cus, t).object())).await;
        app.deliver(&first_payment(&format!("in_o{i}"), &cus, &sub, t)).await;
        // Every third customer leaves within the 60 days.
        let stays = i % 3 != 0;
        if !stays {
            app.deliver(&canceled(&sub, &cus, t, t + 60, "cancellation_requested")).await;
        }
        let arm = holdfast::lifecycle::rules::series_arm("onboarding", &cus, 50).expect("an arm");
        let e = expected.entry(arm).or_default();
        e.0 += u64::from(stays);
        e.1 += 1;
    }
    // Before day 60 nothing is decided; after it, every series is.
    let arms = |s: &Value| {
        let x = s["experiments"].as_array().expect("experiments").iter().find(|x| x["name"] == "lifecycle:onboarding").cloned();
        x.expect("reported")["arms"].as_array().expect("arms").clone()
    };
    for a in arms(&summary(&app).await) {
        assert_eq!((a["decided"].as_u64(), a["outcome"].as_str()), (Some(0), Some("paying_at_day_60")), "{a}");
    }
    app.clock.advance(61 * DAY);
    for a in arms(&summary(&app).await) {
        let (successes, decided) = expected.get(a["variant"].as_str().expect("variant")).copied().unwrap_or_default();
        assert_eq!((a["successes"].as_u64(), a["decided"].as_u64()), (Some(successes), Some(decided)), "{a}");
        if a["variant"] == "treated" {
            assert_eq!(a["status"], "not_enough_data", "{a}");
        }
    }
}

#[tokio::test]
async fn a_reengagement_holdout_is_measured_on_activity_resumed_within_14_days() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("holdfast.toml");
    std::fs::write(&file, "[lifecycle.reengagement]\nholdout_percent = 50\n").expect("config");
    let file = file.to_string_lossy().to_string();
    let (app, _sink) =
        app_with_sink(&[("HOLDFAST_REENGAGEMENT", "on"), ("HOLDFAST_OWNER_TOKEN", OWNER), ("HOLDFAST_CONFIG_FILE", &file)]).await;
    // The at-risk check ran 20 days ago (the activity API takes times up to now only).
    let t = now() - 20 * DAY;
    let mut expected: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for i in 0..8 {
        let (cus, sub) = (format!("cus_r{i}"), format!("sub_r{i}"));
        app.deliver(&event("customer.created", t - 90 * DAY, customer(&cus, &format!("{cus}@example.com"), t - 90 * DAY))).await;
        app.deliver(&event("customer.subscription.created", t - 90 * DAY, Sub::new(&sub, &cus, t - 90 * DAY).object())).await;
        let old: Vec<Value> = (40..50).map(|d| json!({"customer": cus, "at": t - d * DAY, "count": 4})).collect();
        assert_eq!(post_activity(&app, &json!(old)).await.status(), 200);
        let arm = holdfast::lifecycle::rules::series_arm("reengagement", &cus, 50).expect("an arm");
        // Two in three come back on day 3 of their episode; the others after the window.
        let returns = i % 3 != 0;
        let e = expected.entry(arm).or_default();
        e.0 += u64::from(returns);
        e.1 += 1;
    }
    app.scheduler.try_run_once_at(t).await.expect("the at-risk check");
    for i in 0..8 {
        let at = if i % 3 != 0 { t + 3 * DAY } else { t + 16 * DAY };
        assert_eq!(post_activity(&app, &json!([{"customer": format!("cus_r{i}"), "at": at}])).await.status(), 200);
    }
    let s = summary(&app).await;
    let x = s["experiments"].as_array().expect("experiments").iter().find(|x| x["name"] == "lifecycle:reengagement").cloned();
    let arms = x.expect("reported")["arms"].as_array().expect("arms").clone();
    assert_eq!(arms.len(), expected.len(), "{arms:?}");
    for a in arms {
        assert_eq!(a["outcome"], "active_again_within_14_days", "{a}");
        let (successes, decided) = expected.get(a["variant"].as_str().expect("variant")).copied().unwrap_or_default();
        assert_eq!((a["successes"].as_u64(), a["decided"].as_u64()), (Some(successes), Some(decided)), "{a}");
    }
}
