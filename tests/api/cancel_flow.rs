//! The cancel flow through the real server: links, survey, offers, Stripe calls (answered by
//! wiremock with Stripe's example subscription), session records.

use holdfast::cancel::http::long_date;
use holdfast::cancel::links::sign;
use holdfast::cancel::rules::RESUME_MARGIN_SECS;
use holdfast::cancel::rules::add_months;
use holdfast::cancel::storage::NewCancelSession;
use holdfast::telemetry::capability_ref;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::cancel_flow::*;
use crate::support::helpers::{event, now};

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    p.sort();
    p
}

#[tokio::test]
async fn pause_is_carried_out_in_stripe_and_recorded() {
    let f = flow().await;
    let object = seed(&f.app, "cus_pause1", "sub_pause1", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link("cus_pause1")).await;
    let offer = f.answer(&session, &csrf, "unused", "busy season").await;
    assert!(offer.contains("choice-pause-1") && offer.contains("choice-pause-3"), "{offer}");
    // A monthly plan: the pause starts when the paid month ends and skips whole months; each
    // button names the day billing restarts.
    let period_end = object["items"]["data"][0]["current_period_end"].as_i64().expect("period end");
    let restarts = long_date(add_months(period_end, 2)).expect("a date");
    assert!(offer.contains(&format!("Pause for 2 months · billing restarts {restarts}")), "{offer}");
    assert!(!offer.contains("choice-discount") && !offer.contains("choice-downgrade"));
    assert!(offer.contains("choice-cancel"));
    let id = session_id(&session);
    f.expect_update("sub_pause1", &format!("holdfast-cancel-{}-pause_2-1", capability_ref(&id)), &object).await;

    let r = f.choose(&session, &csrf, "pause_2").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], format!("{session}/done").as_str());

    let row = f.session(&session).await;
    assert_eq!(row.outcome.as_deref(), Some("paused"));
    let resumes_at = (add_months(period_end, 2) - RESUME_MARGIN_SECS).to_string();
    assert_eq!(
        f.sent_params().await,
        vec![params(&[("pause_collection[behavior]", "void"), ("pause_collection[resumes_at]", &resumes_at)])]
    );
    assert_eq!(row.customer, "cus_pause1");
    assert_eq!(row.subscription.as_deref(), Some("sub_pause1"));
    assert_eq!(row.reason.as_deref(), Some("unused"));
    assert_eq!(row.feedback.as_deref(), Some("unused"));
    assert_eq!(row.comment.as_deref(), Some("busy season"));
    assert_eq!(row.offers_shown, r#"["pause"]"#);
    assert_eq!(row.paused_until, Some(add_months(period_end, 2)));
    assert!(row.started_at.is_some() && row.reason_at.is_some());
    let stats = f.app.store.cancel_flow_stats(0, i64::MAX, f.app.clock.now()).await.expect("stats");
    assert_eq!((stats.sessions, stats.paused, stats.saved, stats.canceled), (1, 1, 1, 0));
    assert_eq!(stats.save_rate(), Some(1.0));
    assert_eq!(stats.reasons.get("unused"), Some(&1));

    // The confirmation email went to the outbox, once, rendered from its template.
    let outbox = f.app.store.outbox_rows().await.expect("outbox");
    let mail: Vec<_> = outbox.iter().filter(|r| r.template.starts_with("cancel_confirmation")).collect();
    assert_eq!(mail.len(), 1, "{outbox:?}");
    assert_eq!(mail[0].template, "cancel_confirmation_paused");
    assert_eq!(mail[0].recipient, "cus_pause1@example.com");
    assert_eq!(mail[0].category, "transactional");
    assert!(mail[0].subject.contains("paused until"), "{}", mail[0].subject);

    let done = f.get(&format!("{session}/done")).await;
    assert_eq!(done.status(), 200);
    let html = unescape(&done.text().await.expect("html"));
    assert!(html.contains("Your subscription is paused") && html.contains("https://app.example.com/account"), "{html}");
    assert!(html.contains(&restarts), "{html}");
    // A finished session can't act again.
    let again = f.choose(&session, &csrf, "cancel").await;
    assert_eq!(again.status(), 303);
    assert_eq!(f.stripe.received_requests().await.expect("recorded").len(), 1);
}

#[tokio::test]
async fn downgrade_through_a_minted_link_changes_the_item_price() {
    let f = flow().await;
    let object = seed(&f.app, "cus_down1", "sub_down1", "price_pro_monthly", |_| {}).await;
    let minted = f
        .http
        .post(format!("{}/api/cancel-sessions", f.app.address))
        .bearer_auth(OWNER_TOKEN)
        .json(&json!({"customer": "cus_down1", "return_url": "https://app.example.com/billing"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(minted.status(), 201);
    let body: Value = minted.json().await.expect("json");
    let url = body["url"].as_str().expect("url");
    assert!(body["expires_at"].as_i64().expect("expires_at") > now());
    let link = &url[url.find("/cancel").expect("path")..];

    // The catalog, as Stripe's product and price events bring it: the offer names the plan.
    let t = now() - 86_400;
    let product = json!({"id": "prod_basic", "object": "product", "active": true, "created": t, "updated": t,
        "default_price": "price_basic_monthly", "description": null, "images": [], "livemode": false, "marketing_features": [],
        "metadata": {}, "name": "Basic", "package_dimensions": null, "shippable": null, "statement_descriptor": null,
        "tax_code": null, "unit_label": null, "url": null, "type": "service"});
    f.app.deliver(&event("product.created", t, product)).await;
    let price = json!({"id": "price_basic_monthly", "object": "price", "active": true, "billing_scheme": "per_unit",
        "created": t, "currency": "usd", "custom_unit_amount": null, "livemode": false, "lookup_key": null, "metadata": {},
        "nickname": null, "product": "prod_basic", "recurring": {"interval": "month", "interval_count": 1, "meter": null,
        "usage_type": "licensed", "trial_period_days": null}, "tax_behavior": "unspecified", "tiers_mode": null,
        "transform_quantity": null, "type": "recurring", "unit_amount": 900, "unit_amount_decimal": "900"});
    f.app.deliver(&event("price.created", t, price)).await;

    let (session, csrf) = f.open(link).await;
    let offer = f.answer(&session, &csrf, "too_expensive", "").await;
    assert!(offer.contains("choice-discount") && offer.contains("choice-downgrade"), "{offer}");
    assert!(offer.contains("Switch to Basic — $9.00 / month"), "{offer}");
    // With proration off the new price starts at the renewal, and the page says when.
    let renewal = long_date(object["items"]["data"][0]["current_period_end"].as_i64().expect("end")).expect("date");
    assert!(offer.contains(&format!("the new price applies from your next renewal on {renewal}")), "{offer}");
    assert!(!offer.contains("choice-pause"));
    assert!(offer.contains("https://app.example.com/billing"));
    let id = session_id(&session);
    f.expect_update("sub_down1", &format!("holdfast-cancel-{}-downgrade-1", capability_ref(&id)), &object).await;

    assert_eq!(f.choose(&session, &csrf, "downgrade").await.status(), 303);
    assert_eq!(
        f.sent_params().await,
        vec![params(&[("items[0][id]", "si_down1"), ("items[0][price]", "price_basic_monthly"), ("proration_behavior", "none")])]
    );
    let row = f.session(&session).await;
    assert_eq!(row.outcome.as_deref(), Some("downgraded"));
    assert_eq!(row.source, "minted");
    assert_eq!(row.offers_shown, r#"["discount","downgrade"]"#);
    // The one-time link is used up.
    let reused = f.get(link).await;
    assert_eq!(reused.status(), 403);
    assert!(reused.text().await.expect("html").contains("This link doesn&#x27;t work"));
}

#[tokio::test]
async fn discount_applies_the_configured_coupon() {
    let f = flow().await;
    let object = seed(&f.app, "cus_disc1", "sub_disc1", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link("cus_disc1")).await;
    f.answer(&session, &csrf, "too_expensive", "").await;
    let id = session_id(&session);
    f.expect_update("sub_disc1", &format!("holdfast-cancel-{}-discount-1", capability_ref(&id)), &object).await;
    assert_eq!(f.choose(&session, &csrf, "discount").await.status(), 303);
    assert_eq!(f.sent_params().await, vec![params(&[("discounts[0][coupon]", "SAVE30")])]);
    assert_eq!(f.session(&session).await.outcome.as_deref(), Some("discounted"));

    // Within the cooldown, a new session gets no second discount.
    let (session2, csrf2) = f.open(&signed_link("cus_disc1")).await;
    let offer = f.answer(&session2, &csrf2, "too_expensive", "").await;
    assert!(!offer.contains("choice-discount") && offer.contains("choice-downgrade"), "{offer}");
}

#[tokio::test]
async fn cancel_anyway_takes_two_clicks_and_sends_feedback_and_comment() {
    let f = flow().await;
    let object = seed(&f.app, "cus_canc1", "sub_canc1", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link("cus_canc1")).await;
    // Click 1: a reason button (the comment rides along).
    f.answer(&session, &csrf, "missing_features", "No SSO & no <export>").await;
    let id = session_id(&session);
    f.expect_update("sub_canc1", &format!("holdfast-cancel-{}-cancel-1", capability_ref(&id)), &object).await;
    // Click 2: cancel anyway.
    assert_eq!(f.choose(&session, &csrf, "cancel").await.status(), 303);
    assert_eq!(
        f.sent_params().await,
        vec![params(&[
            ("cancel_at_period_end", "true"),
            ("cancellation_details[comment]", "No SSO & no <export>"),
            ("cancellation_details[feedback]", "missing_features"),
        ])]
    );
    let row = f.session(&session).await;
    assert_eq!(row.outcome.as_deref(), Some("canceled"));
    let outbox = f.app.store.outbox_rows().await.expect("outbox");
    assert!(outbox.iter().any(|r| r.template == "cancel_confirmation_canceled" && r.recipient == "cus_canc1@example.com"));
    assert!(outbox.iter().any(|r| r.template == "cancel_confirmation_canceled" && r.body_text.starts_with("Hi Test Customer,")));
    assert_eq!(row.comment.as_deref(), Some("No SSO & no <export>"));
    let html = f.get(&format!("{session}/done")).await.text().await.expect("html");
    assert!(html.contains("Your subscription is cancelled"));
}

#[tokio::test]
async fn technical_problems_are_sent_as_other_with_the_comment() {
    let f = flow().await;
    let object = seed(&f.app, "cus_tech1", "sub_tech1", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link("cus_tech1")).await;
    f.answer(&session, &csrf, "technical_problems", "sync fails").await;
    let id = session_id(&session);
    f.expect_update("sub_tech1", &format!("holdfast-cancel-{}-cancel-1", capability_ref(&id)), &object).await;
    assert_eq!(f.choose(&session, &csrf, "cancel").await.status(), 303);
    assert_eq!(
        f.sent_params().await,
        vec![params(&[
            ("cancel_at_period_end", "true"),
            ("cancellation_details[comment]", "Technical problems: sync fails"),
            ("cancellation_details[feedback]", "other"),
        ])]
    );
}

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
async fn forged_foreign_expired_and_reused_links_are_refused() {
    let f = flow().await;
    seed(&f.app, "cus_link1", "sub_link1", "price_pro_monthly", |_| {}).await;
    seed(&f.app, "cus_link2", "sub_link2", "price_pro_monthly", |_| {}).await;
    let other_sig = sign("cus_link2", &SecretString::from(LINK_SECRET));
    let wrong_key = sign("cus_link1", &SecretString::from("another-secret-0123456789"));
    for link in [
        format!("/cancel?customer=cus_link1&sig={other_sig}"),
        format!("/cancel?customer=cus_link1&sig={wrong_key}"),
        "/cancel?customer=cus_link1&sig=00".to_owned(),
        "/cancel?customer=cus_link1".to_owned(),
        "/cancel?token=not-a-real-token".to_owned(),
        "/cancel".to_owned(),
        "/cancel/s/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned(),
        "/cancel/s/../../etc".to_owned(),
    ] {
        let r = f.get(&link).await;
        assert!(r.status() == 403 || r.status() == 404, "{link}: {}", r.status());
        let html = r.text().await.expect("html");
        assert!(!html.contains("cus_link") && !html.contains("sub_link"), "{link} leaked an id");
    }
    assert_eq!(f.get(&format!("/cancel?customer=cus_link1&sig={other_sig}")).await.status(), 403);

    // Minting for another customer's subscription is refused; so is minting without the token.
    let foreign = f
        .http
        .post(format!("{}/api/cancel-sessions", f.app.address))
        .bearer_auth(OWNER_TOKEN)
        .json(&json!({"customer": "cus_link1", "subscription": "sub_link2"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(foreign.status(), 404);
    let anonymous =
        f.http.post(format!("{}/api/cancel-sessions", f.app.address)).json(&json!({"customer": "cus_link1"})).send().await;
    assert_eq!(anonymous.expect("sent").status(), 401);

    // An expired minted link.
    let t = now();
    let token = "expired-token-0123456789";
    f.app
        .store
        .insert_cancel_session(&NewCancelSession {
            id: "e".repeat(64),
            link_token_hash: Some(holdfast::cancel::links::token_hash(token)),
            csrf_token: "c".repeat(64),
            customer: "cus_link1".into(),
            subscription: Some("sub_link1".into()),
            return_url: None,
            source: "minted",
            created_at: t - 100,
            link_expires_at: t - 1,
            started_at: None,
            deadline_at: None,
            experiment: None,
            variant: None,
        })
        .await
        .expect("insert");
    assert_eq!(f.get(&format!("/cancel?token={token}")).await.status(), 403);
    // Its session page was never opened, so it can't be used either.
    assert_eq!(f.get(&format!("/cancel/s/{}", "e".repeat(64))).await.status(), 403);
    assert!(f.stripe.received_requests().await.expect("recorded").is_empty());
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let f = flow().await;
    seed(&f.app, "cus_csrf1", "sub_csrf1", "price_pro_monthly", |_| {}).await;
    seed(&f.app, "cus_csrf2", "sub_csrf2", "price_pro_monthly", |_| {}).await;
    let (session_a, csrf_a) = f.open(&signed_link("cus_csrf1")).await;
    let (session_b, csrf_b) = f.open(&signed_link("cus_csrf2")).await;
    // A missing token is refused like a forged one.
    let no_token = f.post_form(&format!("{session_a}/reason"), &[("reason", "unused")]).await;
    assert_eq!(no_token.status(), 403);
    let no_token = f.choose(&session_a, "", "cancel").await;
    assert_eq!(no_token.status(), 403);
    let wrong = f.post_form(&format!("{session_a}/reason"), &[("csrf", "0000"), ("reason", "unused")]).await;
    assert_eq!(wrong.status(), 403);
    let borrowed = f.post_form(&format!("{session_a}/reason"), &[("csrf", &csrf_b), ("reason", "unused")]).await;
    assert_eq!(borrowed.status(), 403);
    let choose = f.choose(&session_b, &csrf_a, "cancel").await;
    assert_eq!(choose.status(), 403);
    assert!(f.stripe.received_requests().await.expect("recorded").is_empty());
    assert_eq!(f.session(&session_a).await.reason, None);
}

#[tokio::test]
async fn offers_appear_only_where_they_apply() {
    let f = flow().await;
    // Cheapest plan (no mapping): too expensive → discount only.
    seed(&f.app, "cus_app1", "sub_app1", "price_basic_monthly", |_| {}).await;
    let (s1, c1) = f.open(&signed_link("cus_app1")).await;
    let offer = f.answer(&s1, &c1, "too_expensive", "").await;
    assert!(offer.contains("choice-discount") && !offer.contains("choice-downgrade"), "{offer}");
    // A choice that wasn't offered is refused without calling Stripe.
    assert_eq!(f.choose(&s1, &c1, "downgrade").await.status(), 400);
    assert_eq!(f.choose(&s1, &c1, "pause_1").await.status(), 400);

    // Already paused: not using it → no pause, only "cancel".
    seed(&f.app, "cus_app2", "sub_app2", "price_pro_monthly", |s| {
        s["pause_collection"] = json!({"behavior": "void", "resumes_at": now() + 86_400 * 20});
    })
    .await;
    let (s2, c2) = f.open(&signed_link("cus_app2")).await;
    let offer = f.answer(&s2, &c2, "unused", "").await;
    assert!(!offer.contains("choice-pause") && offer.contains("Cancel my subscription"), "{offer}");
    assert_eq!(f.session(&s2).await.offers_shown, "[]");

    // A discount already in force: no discount offer.
    seed(&f.app, "cus_app3", "sub_app3", "price_pro_monthly", |s| {
        let mut d = crate::support::helpers::fixture("discount");
        d["id"] = json!("di_app3");
        d["customer"] = json!("cus_app3");
        d["subscription"] = json!("sub_app3");
        d["start"] = json!(now() - 86_400 * 30);
        s["discounts"] = json!([d]);
    })
    .await;
    let (s3, c3) = f.open(&signed_link("cus_app3")).await;
    let offer = f.answer(&s3, &c3, "too_expensive", "").await;
    assert!(!offer.contains("choice-discount") && offer.contains("choice-downgrade"), "{offer}");
    assert!(f.stripe.received_requests().await.expect("recorded").is_empty());
}

#[tokio::test]
async fn offers_follow_the_configuration() {
    let f = flow_with(&[("HOLDFAST_CANCEL_OFFERS", "pause"), ("HOLDFAST_CANCEL_PAUSE_MONTHS", "1,3")]).await;
    seed(&f.app, "cus_cfg1", "sub_cfg1", "price_pro_monthly", |_| {}).await;
    let (s, c) = f.open(&signed_link("cus_cfg1")).await;
    let offer = f.answer(&s, &c, "too_expensive", "").await;
    assert!(!offer.contains("choice-discount") && !offer.contains("choice-downgrade"), "{offer}");
    let (s, c) = f.open(&signed_link("cus_cfg1")).await;
    let offer = f.answer(&s, &c, "switched_service", "").await;
    assert!(offer.contains("choice-pause-1") && offer.contains("choice-pause-3") && !offer.contains("choice-pause-2"));
    assert_eq!(f.choose(&s, &c, "pause_2").await.status(), 400);
}

#[tokio::test]
async fn unfinished_sessions_expire_and_count_as_abandoned() {
    let f = flow().await;
    seed(&f.app, "cus_ab1", "sub_ab1", "price_pro_monthly", |_| {}).await;
    // A session opened long ago whose deadline has passed (written directly: no test waits
    // for a clock).
    let t = now();
    let id = "a".repeat(64);
    let csrf = "b".repeat(64);
    f.app
        .store
        .insert_cancel_session(&NewCancelSession {
            id: id.clone(),
            link_token_hash: None,
            csrf_token: csrf.clone(),
            customer: "cus_ab1".into(),
            subscription: Some("sub_ab1".into()),
            return_url: None,
            source: "signed_link",
            created_at: t - 7200,
            link_expires_at: t - 3600,
            started_at: Some(t - 7200),
            deadline_at: Some(t - 3600),
            experiment: None,
            variant: None,
        })
        .await
        .expect("insert");
    let session = format!("/cancel/s/{id}");
    let page = f.get(&session).await;
    assert_eq!(page.status(), 403);
    assert!(page.text().await.expect("html").contains("expired"));
    let late = f.choose(&session, &csrf, "cancel").await;
    assert_eq!(late.status(), 403);
    let stats = f.app.store.cancel_flow_stats(0, i64::MAX, f.app.clock.now()).await.expect("stats");
    assert_eq!((stats.sessions, stats.abandoned, stats.saved, stats.in_progress), (1, 1, 0, 0));

    // Opening a new link records the old one as abandoned; the new one is in progress.
    f.open(&signed_link("cus_ab1")).await;
    assert_eq!(f.session(&session).await.outcome.as_deref(), Some("abandoned"));
    let stats = f.app.store.cancel_flow_stats(0, i64::MAX, f.app.clock.now()).await.expect("stats");
    assert_eq!((stats.sessions, stats.abandoned, stats.in_progress), (2, 1, 1));
    assert_eq!(stats.save_rate(), Some(0.0));
    // Sessions are grouped by start time.
    let earlier = f.app.store.cancel_flow_stats(0, t - 3600, f.app.clock.now()).await.expect("stats");
    assert_eq!((earlier.sessions, earlier.abandoned), (1, 1));
    assert!(f.stripe.received_requests().await.expect("recorded").is_empty());
}

#[tokio::test]
async fn public_pages_are_rate_limited_and_bodies_are_small() {
    let f = flow_with(&[("HOLDFAST_CANCEL_RATE_LIMIT", "4")]).await;
    seed(&f.app, "cus_rl1", "sub_rl1", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link("cus_rl1")).await; // 2 requests
    let huge = "x".repeat(5000);
    let r = f.post_form(&format!("{session}/reason"), &[("csrf", &csrf), ("reason", "other"), ("comment", &huge)]).await;
    assert_eq!(r.status(), 413);
    assert!(r.text().await.expect("html").contains("shorten"));
    // Fixed one-minute windows: nine more requests overflow a limit of 4 even if a window
    // boundary passes during the test.
    let mut limited = None;
    for _ in 0..9 {
        let r = f.get(&session).await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let limited = limited.expect("a 429 once over the limit");
    assert!(limited.text().await.expect("html").contains("Too many requests"));
}

#[tokio::test]
async fn pages_are_self_contained_branded_and_escaped() {
    let f = flow_with(&[("HOLDFAST_BRAND_COLOR", "#ffcc00")]).await;
    seed(&f.app, "cus_page1", "sub_page1", "price_pro_monthly", |_| {}).await;
    let r = f.get(&signed_link("cus_page1")).await;
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let location = r.headers()["location"].to_str().expect("loc").to_owned();
    let page = f.get(&location).await;
    let csp = page.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    assert!(csp.contains("default-src 'none'"));
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.expect("html");
    assert!(html.contains("Acme Notes") && html.contains("--brand: #ffcc00") && html.contains("--on-brand: #000000"));
    assert!(html.contains("name=\"viewport\"") && html.contains("<label for=\"comment\">") && html.contains("<legend>"));
    assert!(!html.contains("http://") && !html.contains("<script"), "no external resources or scripts");
    let csrf = csrf_of(&html);
    let offer = f.answer(&location, &csrf, "other", "<script>alert(1)</script>").await;
    assert!(!offer.contains("<script>alert"));
}

/// A subscription billed every `count` `interval`s whose paid period ends `period_days` from
/// its start.
fn billed(s: &mut Value, interval: &str, count: i64, period_days: i64) {
    let item = &mut s["items"]["data"][0];
    item["price"]["recurring"]["interval"] = json!(interval);
    item["price"]["recurring"]["interval_count"] = json!(count);
    let start = item["current_period_start"].as_i64().expect("period start");
    item["current_period_end"] = json!(start + period_days * 86_400);
}

fn period_end(object: &Value) -> i64 {
    object["items"]["data"][0]["current_period_end"].as_i64().expect("period end")
}

/// A `holdfast.toml` for one test: a yearly coupon (amount off, in euros), a quarterly
/// coupon, and a segment for new yearly subscribers.
fn config_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("holdfast.toml");
    std::fs::write(
        &path,
        r#"
[cancel_flow]
pause_months = [1, 2, 3]

[[cancel_flow.discounts]]
interval = "year"
coupon = "YEAR40EUR"
text = "40 € off your next yearly renewal."
currency = "eur"

[[cancel_flow.discounts]]
interval = "month"
interval_count = 3
coupon = "QUARTER15"
text = "15 % off your next quarter."

[[cancel_flow.segments]]
interval = "year"
max_tenure_months = 11
[cancel_flow.segments.offers_by_reason]
unused = ["discount"]
"#,
    )
    .expect("write config");
    path.display().to_string()
}

#[tokio::test]
async fn a_quarterly_plan_pauses_only_whole_quarters_and_gets_its_own_coupon() {
    let dir = tempfile::tempdir().expect("dir");
    let file = config_file(&dir);
    let f = flow_with(&[("HOLDFAST_CONFIG_FILE", &file)]).await;
    let object = seed(&f.app, "cus_q1", "sub_q1", "price_pro_quarterly", |s| billed(s, "month", 3, 91)).await;
    let (session, csrf) = f.open(&signed_link("cus_q1")).await;
    let offer = f.answer(&session, &csrf, "unused", "").await;
    // 1 or 2 months would void a whole quarter's invoice: only the 3-month pause is offered.
    assert!(
        offer.contains("choice-pause-3") && !offer.contains("choice-pause-1") && !offer.contains("choice-pause-2"),
        "{offer}"
    );
    assert_eq!(f.choose(&session, &csrf, "pause_1").await.status(), 400, "a length not shown is refused");
    let id = session_id(&session);
    f.expect_update("sub_q1", &format!("holdfast-cancel-{}-pause_3-1", capability_ref(&id)), &object).await;
    assert_eq!(f.choose(&session, &csrf, "pause_3").await.status(), 303);
    let resumes_at = add_months(period_end(&object), 3) - RESUME_MARGIN_SECS;
    assert_eq!(
        f.sent_params().await,
        vec![params(&[("pause_collection[behavior]", "void"), ("pause_collection[resumes_at]", &resumes_at.to_string())])]
    );

    // Too expensive: the quarterly coupon, not the monthly one.
    let (session, csrf) = f.open(&signed_link("cus_q1")).await;
    let offer = f.answer(&session, &csrf, "too_expensive", "").await;
    assert!(offer.contains("15 % off your next quarter.") && offer.contains("choice-discount"), "{offer}");
    let id = session_id(&session);
    f.expect_update("sub_q1", &format!("holdfast-cancel-{}-discount-1", capability_ref(&id)), &object).await;
    assert_eq!(f.choose(&session, &csrf, "discount").await.status(), 303);
    assert_eq!(f.sent_params().await[1], params(&[("discounts[0][coupon]", "QUARTER15")]));
}

#[tokio::test]
async fn a_yearly_plan_is_never_paused_into_a_free_year_nor_given_a_monthly_coupon() {
    let dir = tempfile::tempdir().expect("dir");
    let file = config_file(&dir);
    let f = flow_with(&[("HOLDFAST_CONFIG_FILE", &file)]).await;
    // A yearly subscriber of a year and more, in US dollars: the euro coupon doesn't apply.
    seed(&f.app, "cus_y1", "sub_y1", "price_pro_yearly", |s| {
        billed(s, "year", 1, 365);
        s["start_date"] = json!(now() - 400 * 86_400);
    })
    .await;
    let (session, csrf) = f.open(&signed_link("cus_y1")).await;
    let offer = f.answer(&session, &csrf, "unused", "").await;
    assert!(!offer.contains("choice-pause"), "a pause would void the yearly renewal: {offer}");
    assert!(offer.contains("Cancel my subscription"), "{offer}");
    let (session, csrf) = f.open(&signed_link("cus_y1")).await;
    let offer = f.answer(&session, &csrf, "too_expensive", "").await;
    assert!(!offer.contains("choice-discount") && !offer.contains("SAVE30"), "{offer}");
    assert_eq!(f.choose(&session, &csrf, "pause_3").await.status(), 400);
    assert!(f.stripe.received_requests().await.expect("recorded").is_empty());

    // A new yearly subscriber in euros: the segment offers the yearly coupon for "not using it".
    let object = seed(&f.app, "cus_y2", "sub_y2", "price_pro_yearly", |s| {
        billed(s, "year", 1, 365);
        s["currency"] = json!("eur");
        s["items"]["data"][0]["price"]["currency"] = json!("eur");
    })
    .await;
    let (session, csrf) = f.open(&signed_link("cus_y2")).await;
    let offer = f.answer(&session, &csrf, "unused", "").await;
    assert!(offer.contains("40 € off your next yearly renewal.") && !offer.contains("choice-pause"), "{offer}");
    let id = session_id(&session);
    f.expect_update("sub_y2", &format!("holdfast-cancel-{}-discount-1", capability_ref(&id)), &object).await;
    assert_eq!(f.choose(&session, &csrf, "discount").await.status(), 303);
    assert_eq!(f.sent_params().await, vec![params(&[("discounts[0][coupon]", "YEAR40EUR")])]);
    // The cancel confirmation of another yearly customer names the end of the paid year.
    let end = long_date(period_end(&object)).expect("date");
    let (session, csrf) = f.open(&signed_link("cus_y1")).await;
    let offer = f.answer(&session, &csrf, "other", "").await;
    let y1_end = f.app.store.live_subscription_of("cus_y1", None).await.expect("store").expect("live").0.current_period_end;
    let y1_end = long_date(y1_end.expect("period end")).expect("date");
    assert!(offer.contains(&format!("your subscription ends on {y1_end}")), "{offer}");
    assert_eq!(end, y1_end, "both started a day ago");
    let id = session_id(&session);
    f.expect_update("sub_y1", &format!("holdfast-cancel-{}-cancel-1", capability_ref(&id)), &object).await;
    assert_eq!(f.choose(&session, &csrf, "cancel").await.status(), 303);
    let done = unescape(&f.get(&format!("{session}/done")).await.text().await.expect("html"));
    assert!(done.contains(&format!("ends on <strong>{y1_end}</strong>")), "{done}");
}

#[tokio::test]
async fn a_discount_keeps_the_discounts_already_in_force() {
    let f = flow().await;
    let object = seed(&f.app, "cus_keepd", "sub_keepd", "price_pro_monthly", |s| {
        let mut d = crate::support::helpers::fixture("discount");
        d["id"] = json!("di_founder");
        d["customer"] = json!("cus_keepd");
        d["subscription"] = json!("sub_keepd");
        // Outside the cooldown: a founder's discount from long ago.
        d["start"] = json!(now() - 86_400 * 500);
        d["end"] = Value::Null;
        s["discounts"] = json!([d]);
    })
    .await;
    let (session, csrf) = f.open(&signed_link("cus_keepd")).await;
    let offer = f.answer(&session, &csrf, "too_expensive", "").await;
    assert!(offer.contains("choice-discount"), "{offer}");
    let id = session_id(&session);
    f.expect_update("sub_keepd", &format!("holdfast-cancel-{}-discount-1", capability_ref(&id)), &object).await;
    assert_eq!(f.choose(&session, &csrf, "discount").await.status(), 303);
    // `discounts` replaces the list: the founder's discount is sent back with the new coupon.
    assert_eq!(
        f.sent_params().await,
        vec![params(&[("discounts[0][discount]", "di_founder"), ("discounts[1][coupon]", "SAVE30")])]
    );
}

#[tokio::test]
async fn a_scheduled_cancellation_is_undone_with_one_button_and_counted_once() {
    let f = flow().await;
    let object = seed(&f.app, "cus_undo", "sub_undo", "price_pro_monthly", |s| s["cancel_at_period_end"] = json!(true)).await;
    let ends_on = long_date(period_end(&object)).expect("date");
    let (session, csrf) = {
        let r = f.get(&signed_link("cus_undo")).await;
        assert_eq!(r.status(), 303);
        let location = r.headers()["location"].to_str().expect("location").to_owned();
        let html = f.get(&location).await.text().await.expect("html");
        assert!(html.contains(&format!("Your subscription ends on {ends_on}")), "{html}");
        assert!(html.contains("Keep my subscription") && !html.contains("why do you want to cancel"), "{html}");
        (location, csrf_of(&html))
    };
    // No survey, no offer, no second cancellation.
    let r = f.post_form(&format!("{session}/reason"), &[("csrf", &csrf), ("reason", "unused")]).await;
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().expect("loc")), (303, session.as_str()));
    let r = f.choose(&session, &csrf, "cancel").await;
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().expect("loc")), (303, session.as_str()));
    assert!(f.stripe.received_requests().await.expect("recorded").is_empty());

    let id = session_id(&session);
    f.expect_update("sub_undo", &format!("holdfast-cancel-{}-keep-1", capability_ref(&id)), &object).await;
    assert_eq!(f.choose(&session, &csrf, "keep").await.status(), 303);
    assert_eq!(f.sent_params().await, vec![params(&[("cancel_at", ""), ("cancel_at_period_end", "false")])]);
    let row = f.session(&session).await;
    assert_eq!(row.outcome.as_deref(), Some("resumed"));
    let html = f.get(&format!("{session}/done")).await.text().await.expect("html");
    assert!(html.contains("Your subscription continues"), "{html}");
    // A second click on the same button changes nothing.
    assert_eq!(f.choose(&session, &csrf, "keep").await.status(), 303);
    assert_eq!(f.stripe.received_requests().await.expect("recorded").len(), 1);
    let stats = f.app.store.cancel_flow_stats(0, i64::MAX, f.app.clock.now()).await.expect("stats");
    assert_eq!((stats.sessions, stats.resumed, stats.saved, stats.canceled), (1, 1, 0, 0));
    // The owner summary counts it once, on its own.
    let summary: Value = f
        .http
        .get(format!("{}/api/summary", f.app.address))
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(summary["cancel_flow"]["outcomes"]["resumed"], 1, "{summary}");
    assert_eq!(summary["cancel_flow"]["saved"], 0, "{summary}");

    // A future `cancel_at` is a scheduled cancellation too.
    let at = now() + 10 * 86_400;
    seed(&f.app, "cus_undo2", "sub_undo2", "price_pro_monthly", |s| s["cancel_at"] = json!(at)).await;
    let r = f.get(&signed_link("cus_undo2")).await;
    let location = r.headers()["location"].to_str().expect("location").to_owned();
    let html = f.get(&location).await.text().await.expect("html");
    assert!(html.contains(&format!("Your subscription ends on {}", long_date(at).expect("date"))), "{html}");
}

#[tokio::test]
async fn an_ended_subscription_points_to_the_come_back_checkout() {
    let f = flow().await;
    seed(&f.app, "cus_gone", "sub_gone", "price_pro_monthly", |s| {
        s["status"] = json!("canceled");
        s["ended_at"] = json!(now() - 3600);
        s["canceled_at"] = json!(now() - 3600);
    })
    .await;
    let inv = crate::support::helpers::invoice("in_gone", "cus_gone", "sub_gone", "paid", 2000, now() - 40 * 86_400);
    f.app.deliver(&crate::support::helpers::event("invoice.paid", now() - 40 * 86_400, inv)).await;
    let r = f.get(&signed_link("cus_gone")).await;
    assert_eq!(r.status(), 200);
    let html = unescape(&r.text().await.expect("html"));
    assert!(html.contains("Your subscription has ended") && html.contains("/comeback?token=cus_gone.in_gone."), "{html}");

    // A one-time link minted while the subscription was live, opened after it ended.
    let object = seed(&f.app, "cus_late_end", "sub_late_end", "price_pro_monthly", |_| {}).await;
    let minted = f
        .http
        .post(format!("{}/api/cancel-sessions", f.app.address))
        .bearer_auth(OWNER_TOKEN)
        .json(&json!({"customer": "cus_late_end"}))
        .send()
        .await
        .expect("sent");
    let url = minted.json::<Value>().await.expect("json")["url"].as_str().expect("url").to_owned();
    let mut ended = object.clone();
    ended["status"] = json!("canceled");
    ended["ended_at"] = json!(now());
    f.app.deliver(&event("customer.subscription.deleted", now(), ended)).await;
    let r = f.get(&url[url.find("/cancel").expect("path")..]).await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().expect("location").to_owned();
    let page = f.get(&location).await;
    assert_eq!(page.status(), 200);
    let html = unescape(&page.text().await.expect("html"));
    assert!(html.contains("Your subscription has ended") && html.contains("https://app.example.com/account"), "{html}");
    assert!(f.stripe.received_requests().await.expect("recorded").is_empty());
}

#[tokio::test]
async fn a_past_due_customer_is_offered_the_card_update_first_and_no_price_offer() {
    let f = flow().await;
    seed(&f.app, "cus_late", "sub_late", "price_pro_monthly", |s| s["status"] = json!("past_due")).await;
    let r = f.get(&signed_link("cus_late")).await;
    let location = r.headers()["location"].to_str().expect("location").to_owned();
    let html = unescape(&f.get(&location).await.text().await.expect("html"));
    let card = html.find("/billing/update?token=cus_late.-.").expect("an update-card link");
    assert!(card < html.find("why do you want to cancel").expect("the survey"), "the card comes first: {html}");
    let csrf = csrf_of(&html);
    let offer = f.answer(&location, &csrf, "too_expensive", "").await;
    assert!(!offer.contains("choice-discount") && !offer.contains("choice-downgrade"), "{offer}");
    assert!(!offer.contains("keep access until the end of the period you paid"), "{offer}");
    assert!(offer.contains("doesn't settle the payment that failed"), "{offer}");
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

#[tokio::test]
async fn a_comment_can_follow_the_reason_on_the_offer_page() {
    let f = flow().await;
    let object = seed(&f.app, "cus_late_c", "sub_late_c", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link("cus_late_c")).await;
    // The reason first, without a comment; the offer page has its own box.
    let offer = f.answer(&session, &csrf, "switched_service", "").await;
    assert!(offer.contains("<label for=\"late-comment\">") && offer.contains("name=\"comment\""), "{offer}");
    let id = session_id(&session);
    f.expect_update("sub_late_c", &format!("holdfast-cancel-{}-cancel-1", capability_ref(&id)), &object).await;
    let r = f
        .post_form(
            &format!("{session}/choose"),
            &[("csrf", &csrf), ("choice", "cancel"), ("comment", " Moved to a team plan elsewhere ")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        f.sent_params().await,
        vec![params(&[
            ("cancel_at_period_end", "true"),
            ("cancellation_details[comment]", "Moved to a team plan elsewhere"),
            ("cancellation_details[feedback]", "switched_service"),
        ])]
    );
    assert_eq!(f.session(&session).await.comment.as_deref(), Some("Moved to a team plan elsewhere"));
}

#[tokio::test]
async fn a_subscription_stripe_can_pause_is_paused_by_a_schedule_even_when_yearly() {
    let f = flow().await;
    let t = now();
    f.app.clock.set(t);
    // Flexible billing mode, charged automatically, no schedule: Stripe's own pause applies.
    let object = seed(&f.app, "cus_flex", "sub_flex", "price_pro_yearly", |s| {
        billed(s, "year", 1, 365);
        s["billing_mode"] = json!({"type": "flexible", "flexible": {"proration_discounts": "included"}});
        s["collection_method"] = json!("charge_automatically");
        s["schedule"] = Value::Null;
    })
    .await;
    let (session, csrf) = f.open(&signed_link("cus_flex")).await;
    let offer = f.answer(&session, &csrf, "unused", "").await;
    let restarts = long_date(add_months(t, 2)).expect("date");
    assert!(offer.contains(&format!("Pause for 2 months · billing restarts {restarts}")), "{offer}");
    assert!(offer.contains("Pause now: nothing is billed"), "{offer}");
    let id = session_id(&session);
    let schedule = json!({"id": "sub_sched_flex", "object": "subscription_schedule", "subscription": "sub_flex",
        "status": "active", "customer": "cus_flex"});
    Mock::given(method("POST"))
        .and(path("/v1/subscription_schedules"))
        .and(header("Idempotency-Key", format!("holdfast-cancel-{}-pause_2-1", capability_ref(&id)).as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(schedule))
        .expect(1)
        .mount(&f.stripe)
        .await;
    assert_eq!(f.choose(&session, &csrf, "pause_2").await.status(), 303);
    let resumes_at = add_months(t, 2).to_string();
    assert_eq!(
        f.sent_params().await,
        vec![params(&[
            ("from_subscription", "sub_flex"),
            ("pause_schedules[0][pause][pause_at][type]", "now"),
            ("pause_schedules[0][resume][resume_at][timestamp]", &resumes_at),
            ("pause_schedules[0][resume][resume_at][type]", "timestamp"),
        ])]
    );
    let row = f.session(&session).await;
    assert_eq!((row.outcome.as_deref(), row.paused_until), (Some("paused"), Some(add_months(t, 2))));
    let done = unescape(&f.get(&format!("{session}/done")).await.text().await.expect("html"));
    assert!(done.contains("paused from today") && done.contains(&restarts), "{done}");
    assert!(object["id"] == "sub_flex");

    // A flexible subscription with a schedule already attached can't be paused that way, and
    // being yearly it gets no collection pause either.
    seed(&f.app, "cus_flex2", "sub_flex2", "price_pro_yearly", |s| {
        billed(s, "year", 1, 365);
        s["billing_mode"] = json!({"type": "flexible"});
        s["schedule"] = json!("sub_sched_other");
    })
    .await;
    let (session, csrf) = f.open(&signed_link("cus_flex2")).await;
    let offer = f.answer(&session, &csrf, "unused", "").await;
    assert!(!offer.contains("choice-pause"), "{offer}");
}

#[tokio::test]
async fn the_downgrade_offer_prices_the_plan_in_its_own_currency() {
    for (currency, amount, shown) in [("jpy", 1200, "¥1,200"), ("kwd", 12_500, "12.500 KWD"), ("eur", 950, "€9.50")] {
        let f = flow().await;
        seed(&f.app, "cus_cur1", "sub_cur1", "price_pro_monthly", |_| {}).await;
        let minted = f
            .http
            .post(format!("{}/api/cancel-sessions", f.app.address))
            .bearer_auth(OWNER_TOKEN)
            .json(&json!({"customer": "cus_cur1"}))
            .send()
            .await
            .expect("sent");
        let body: Value = minted.json().await.expect("json");
        let url = body["url"].as_str().expect("url");
        let link = &url[url.find("/cancel").expect("path")..];
        let t = now() - 86_400;
        let product = json!({"id": "prod_basic", "object": "product", "active": true, "created": t, "updated": t,
            "livemode": false, "metadata": {}, "name": "Basic", "type": "service"});
        f.app.deliver(&event("product.created", t, product)).await;
        let price = json!({"id": "price_basic_monthly", "object": "price", "active": true, "billing_scheme": "per_unit",
            "created": t, "currency": currency, "livemode": false, "metadata": {}, "nickname": null, "product": "prod_basic",
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}, "type": "recurring",
            "unit_amount": amount, "unit_amount_decimal": amount.to_string()});
        f.app.deliver(&event("price.created", t, price)).await;

        let (session, csrf) = f.open(link).await;
        let offer = f.answer(&session, &csrf, "too_expensive", "").await;
        assert!(offer.contains(&format!("Switch to Basic — {shown} / month")), "{currency}: {offer}");
    }
}
