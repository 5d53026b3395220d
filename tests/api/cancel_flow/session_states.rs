//! Sessions that are not a plain cancellation: abandoned, a cancellation already scheduled
//! (undone with one button), and a subscription that has already ended.

use holdfast::cancel::http::long_date;
use holdfast::cancel::storage::NewCancelSession;
use holdfast::telemetry::capability_ref;
use serde_json::{Value, json};

use crate::support::cancel_flow::*;
use crate::support::helpers::{event, now};

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
