//! What the flow refuses: forged, foreign, expired and reused links, forms without the
//! session's CSRF token, too many requests and oversized bodies; and what its pages carry.

use holdfast::cancel::links::sign;
use holdfast::cancel::storage::NewCancelSession;
use secrecy::SecretString;
use serde_json::json;

use crate::support::cancel_flow::*;
use crate::support::helpers::{Config, now};

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
    let token = "expired-token-0123456789";
    insert_expired_minted_session(&f, token, &"e".repeat(64)).await;
    assert_eq!(f.get(&format!("/cancel?token={token}")).await.status(), 403);
    // Its session page was never opened, so it can't be used either.
    assert_eq!(f.get(&format!("/cancel/s/{}", "e".repeat(64))).await.status(), 403);
    assert!(f.stripe.received_requests().await.expect("recorded").is_empty());
}

/// A minted link for `cus_link1` whose expiry has passed, written straight to the store
/// (no test waits for a clock), under session `id`, never opened.
async fn insert_expired_minted_session(f: &Flow, token: &str, id: &str) {
    let t = now();
    f.app
        .store
        .insert_cancel_session(&NewCancelSession {
            id: id.to_owned(),
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
async fn public_pages_are_rate_limited_and_bodies_are_small() {
    let f = flow_with(Config::new().key("cancel_flow.rate_limit_per_minute", 4)).await;
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
    let f = flow_with(Config::new().key("brand.color", "#ffcc00")).await;
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
