//! While and when Stripe answers: an error leaves nothing recorded, a call under way shows
//! "one moment", and a second click waits for the first.

use holdfast::telemetry::capability_ref;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::cancel_flow::*;

#[tokio::test]
async fn a_stripe_error_shows_a_friendly_page_and_records_nothing() {
    let f = flow().await;
    let object = seed(&f.app, "cus_err1", "sub_err1", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link("cus_err1")).await;
    f.answer(&session, &csrf, "unused", "").await;
    let id = session_id(&session);
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_err1"))
        .and(header("Idempotency-Key", format!("holdfast-cancel-{}-pause_1-1", capability_ref(&id)).as_str()))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "type": "invalid_request_error", "code": "resource_missing", "message": "No such subscription: 'sub_err1'"}})))
        .expect(1)
        .mount(&f.stripe)
        .await;
    let r = f.choose(&session, &csrf, "pause_1").await;
    assert_eq!(r.status(), 502);
    let html = r.text().await.expect("html");
    assert!(html.contains("nothing was changed") && !html.contains("sk_test") && !html.contains("resource_missing"), "{html}");
    let html = unescape(&html);
    assert!(html.contains(&format!("href=\"{session}/offer\"")) && html.contains("Try again"), "{html}");
    let row = f.session(&session).await;
    assert_eq!(row.outcome, None);
    assert!(f.app.store.outbox_rows().await.expect("outbox").iter().all(|r| !r.template.starts_with("cancel_")));
    assert_eq!(row.acting_until, None, "the lease is given back");

    // The customer tries again: a fresh idempotency key (attempt 2), and it works.
    f.expect_update("sub_err1", &format!("holdfast-cancel-{}-pause_1-2", capability_ref(&id)), &object).await;
    assert_eq!(f.choose(&session, &csrf, "pause_1").await.status(), 303);
    assert_eq!(f.session(&session).await.outcome.as_deref(), Some("paused"));
}

#[tokio::test]
async fn the_result_page_says_one_moment_while_the_choice_is_with_stripe() {
    let f = flow().await;
    seed(&f.app, "cus_wait", "sub_wait", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link("cus_wait")).await;
    f.answer(&session, &csrf, "unused", "").await;
    // Another request holds the session (its Stripe call is under way).
    let id = session_id(&session);
    let now = f.app.clock.now();
    assert_eq!(f.app.store.claim_cancel_action(&id, now, 60).await.expect("store"), Some(1));
    let page = f.get(&format!("{session}/done")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("One moment") && html.contains(r#"<meta http-equiv="refresh" content="2">"#), "{html}");
    // Given back (the call failed): the offers again.
    f.app.store.release_cancel_action(&id).await.expect("store");
    let page = f.get(&format!("{session}/done")).await;
    assert_eq!((page.status().as_u16(), page.headers()["location"].to_str().expect("loc")), (303, session.as_str()));
}

#[tokio::test]
async fn a_second_click_while_stripe_is_slow_waits_for_the_first() {
    let f = flow().await;
    let object = seed(&f.app, "cus_slow", "sub_slow", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link("cus_slow")).await;
    f.answer(&session, &csrf, "unused", "").await;
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_slow"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&object).set_delay(std::time::Duration::from_millis(1500)))
        .expect(1)
        .mount(&f.stripe)
        .await;
    let first = f.choose(&session, &csrf, "pause_1");
    let second = async {
        // Sent once the first holds the session (its lease is in the row).
        while f.session(&session).await.acting_until.is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        f.choose(&session, &csrf, "pause_1").await
    };
    let (first, second) = tokio::join!(first, second);
    let done = format!("{session}/done");
    for r in [first, second] {
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], done.as_str());
    }
    assert_eq!(f.session(&session).await.outcome.as_deref(), Some("paused"));
}
