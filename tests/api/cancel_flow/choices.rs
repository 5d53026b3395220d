//! The choices a customer makes at the end of the flow, carried out in Stripe with the exact
//! parameters and recorded: pause, downgrade, discount, cancel, with the survey's comment.

use holdfast::cancel::http::long_date;
use holdfast::cancel::rules::{RESUME_MARGIN_SECS, add_months};
use holdfast::telemetry::capability_ref;
use serde_json::{Value, json};

use crate::support::cancel_flow::*;
use crate::support::helpers::{event, now};

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
