//! Product activity and re-engagement: the activity API, at-risk customers, the series until
//! activity returns, and the last email's pause link through the cancel flow.

use holdfast::telemetry::capability_ref;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::helpers::{Config, Sub, TestApp, assert_owner_only, customer, event, now};
use crate::support::lifecycle::{OWNER, dashboard, post_activity, series_status, subjects, summary};
use crate::support::mail_world::{DAY, EMAIL, app_with_sink, subscriber};
use crate::support::smtp_sink::SmtpSink;
/// An app with the owner API and re-engagement on.
async fn activity_app() -> (TestApp, SmtpSink) {
    app_with_sink(
        Config::new().campaign_on("reengagement").owner_token(OWNER).key("lifecycle.product_url", "https://app.acme.test"),
    )
    .await
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

/// Re-engagement on, with the owner API and a Stripe stand-in (wiremock).
async fn pause_link_app() -> (TestApp, SmtpSink, MockServer) {
    let stripe = MockServer::start().await;
    let (app, sink) = app_with_sink(Config::new().campaign_on("reengagement").owner_token(OWNER).stripe_at(&stripe.uri())).await;
    (app, sink, stripe)
}

/// Asserts that exactly one email carries a pause link, and that it is the last note; returns
/// that link pointed at the app under test.
fn the_only_pause_link(sink: &SmtpSink, app: &TestApp) -> String {
    let mail = sink.parsed();
    let prefix = "https://billing.acme.test/pause?token=";
    assert_eq!(mail.iter().filter(|m| m.text.contains(prefix)).count(), 1);
    let last = mail.iter().find(|m| m.text.contains(prefix)).expect("the pause email");
    assert_eq!(last.header("Subject").as_deref(), Some("Our last note for now"));
    let start = last.text.find(prefix).expect("link");
    let link = last.text[start..].split_whitespace().next().expect("link").to_owned();
    link.replace("https://billing.acme.test", &app.address)
}

/// Asserts that opening the pause link redirects to a cancel session's offer page with the
/// pause on it, without calling Stripe; returns (session path, csrf, session id).
async fn open_pause_link(http: &reqwest::Client, app: &TestApp, stripe: &MockServer, link: &str) -> (String, String, String) {
    let opened = http.get(link).send().await.expect("GET");
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
    (session, csrf, id)
}

#[tokio::test]
async fn the_last_reengagement_email_pauses_through_the_cancel_flows_pause_offer() {
    let (app, sink, stripe) = pause_link_app().await;
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
    let link = the_only_pause_link(&sink, &app);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let (session, csrf, id) = open_pause_link(&http, &app, &stripe, &link).await;

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
