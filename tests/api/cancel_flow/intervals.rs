//! Offers by billing interval: quarterly and yearly plans get their own pause lengths and
//! coupons, and a subscription Stripe can pause is paused by a schedule.

use holdfast::cancel::http::long_date;
use holdfast::cancel::rules::{RESUME_MARGIN_SECS, add_months};
use holdfast::telemetry::capability_ref;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::cancel_flow::*;
use crate::support::helpers::{Config, now};

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
    let f = flow_with(Config::new().file(&file)).await;
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
    let f = flow_with(Config::new().file(&file)).await;
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
