//! Which offers a customer sees: only those that apply to the subscription, as configured,
//! and none that would hide a failed payment.

use serde_json::json;

use crate::support::cancel_flow::*;
use crate::support::helpers::{Config, now};

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
    let f = flow_with(Config::new().key("cancel_flow.offers", ["pause"]).key("cancel_flow.pause_months", [1, 3])).await;
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
