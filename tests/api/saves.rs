//! Saves checked against billing, through the real server: a save made in the cancel flow
//! (Stripe answered by wiremock) stays pending until Stripe's invoice and subscription events
//! prove or reverse it, as the scheduler decides by the clock; the summary and the dashboard
//! report the states.

use holdfast::domain::cancel::{RESUME_MARGIN_SECS, add_months};
use holdfast::telemetry::capability_ref;
use serde_json::{Value, json};

use crate::cancel_flow::{Flow, OWNER_TOKEN, flow, flow_with, seed, signed_link};
use crate::helpers::{event, invoice, now};

const DAY: i64 = 86_400;

/// Take `choice` ("discount", "pause_1", …) for `cus` through the cancel flow; returns the
/// subscription as seeded.
async fn save(f: &Flow, cus: &str, sub: &str, reason: &str, choice: &str) -> Value {
    let object = seed(&f.app, cus, sub, "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link(cus)).await;
    f.answer(&session, &csrf, reason, "").await;
    let id = session.trim_start_matches("/cancel/s/").split('/').next().expect("id").to_owned();
    f.expect_update(sub, &format!("holdfast-cancel-{}-{choice}-1", capability_ref(&id)), &object).await;
    assert_eq!(f.choose(&session, &csrf, choice).await.status(), 303);
    object
}

async fn saves(f: &Flow) -> Value {
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
    summary["saves"].clone()
}

fn paid(id: &str, cus: &str, sub: &str, created: i64) -> Value {
    event("invoice.paid", created, invoice(id, cus, sub, "paid", 2000, created))
}

#[tokio::test]
async fn a_discount_is_confirmed_by_the_next_paid_renewal_not_by_an_earlier_invoice() {
    let f = flow().await;
    save(&f, "cus_sv1", "sub_sv1", "too_expensive", "discount").await;
    let s = saves(&f).await;
    assert_eq!((s["pending"].as_u64(), s["confirmed"].as_u64(), s["reversed"].as_u64()), (Some(1), Some(0), Some(0)), "{s}");
    assert_eq!(s["by_outcome"]["discounted"]["pending"], 1, "{s}");
    assert!(s["confirmed_rate"].is_null(), "{s}");

    // An invoice paid before the save proves nothing.
    f.app.deliver(&paid("in_sv1_old", "cus_sv1", "sub_sv1", now() - 3_600)).await;
    assert_eq!(f.app.scheduler.check_saves(now()).await.expect("check"), 0);

    // The renewal after the save, paid: confirmed, with the subscription's MRR.
    let renewal = now() + 30 * DAY;
    f.app.deliver(&paid("in_sv1_renewal", "cus_sv1", "sub_sv1", renewal)).await;
    assert_eq!(f.app.scheduler.check_saves(renewal + 60).await.expect("check"), 1);
    assert_eq!(f.app.scheduler.check_saves(renewal + 120).await.expect("check again"), 0, "decided once");
    let s = saves(&f).await;
    assert_eq!((s["pending"].as_u64(), s["confirmed"].as_u64()), (Some(0), Some(1)), "{s}");
    assert_eq!(s["confirmed_rate"], 1.0, "{s}");
    assert_eq!(s["confirmed_saved_mrr"], 2000.0, "{s}");
    assert_eq!(s["by_outcome"]["discounted"]["confirmed"], 1, "{s}");

    // The dashboard shows the same numbers.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let login =
        client.post(format!("{}/dashboard/login", f.app.address)).form(&[("token", OWNER_TOKEN)]).send().await.expect("sent");
    let cookie = login.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("cookie").to_owned();
    let html = client
        .get(format!("{}/dashboard", f.app.address))
        .header("Cookie", cookie)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("html");
    assert!(html.contains(r#"id="saves-confirmed">1<"#) && html.contains(r#"id="saves-pending">0<"#), "{html}");
    assert!(html.contains(r#"id="saves-mrr">20.00 USD<"#), "{html}");
}

#[tokio::test]
async fn a_save_set_to_cancel_before_it_was_proven_is_reversed_for_good() {
    let f = flow().await;
    let mut object = save(&f, "cus_sv2", "sub_sv2", "too_expensive", "discount").await;
    object["cancel_at_period_end"] = json!(true);
    object["canceled_at"] = json!(now() + 5);
    f.app.deliver(&event("customer.subscription.updated", now() + 5, object.clone())).await;
    assert_eq!(f.app.scheduler.check_saves(now() + 10).await.expect("check"), 1);
    // A later payment does not turn it back: the cancellation came first.
    f.app.deliver(&paid("in_sv2_late", "cus_sv2", "sub_sv2", now() + 20 * DAY)).await;
    assert_eq!(f.app.scheduler.check_saves(now() + 21 * DAY).await.expect("check"), 0);
    let s = saves(&f).await;
    assert_eq!((s["pending"].as_u64(), s["confirmed"].as_u64(), s["reversed"].as_u64()), (Some(0), Some(0), Some(1)), "{s}");
    assert_eq!(s["confirmed_rate"], 0.0, "{s}");
    assert_eq!(s["confirmed_saved_mrr"], 0.0, "{s}");

    // A subscription that ended reverses its save too.
    let mut ended = save(&f, "cus_sv3", "sub_sv3", "too_expensive", "discount").await;
    ended["status"] = json!("canceled");
    ended["ended_at"] = json!(now() + 7);
    ended["canceled_at"] = json!(now() + 7);
    f.app.deliver(&event("customer.subscription.deleted", now() + 7, ended)).await;
    assert_eq!(f.app.scheduler.check_saves(now() + 8).await.expect("check"), 1);
    let s = saves(&f).await;
    assert_eq!(s["by_outcome"]["discounted"]["reversed"], 2, "{s}");
}

#[tokio::test]
async fn a_pause_is_confirmed_once_billing_restarts_and_paid_and_counts_in_the_resume_rate() {
    let f = flow().await;
    let object = save(&f, "cus_sv4", "sub_sv4", "unused", "pause_1").await;
    let period_end = object["items"]["data"][0]["current_period_end"].as_i64().expect("period end");
    let restarts = add_months(period_end, 1);
    // Thirty days after the save the customer is still paused: not "still paying".
    assert_eq!(f.app.scheduler.check_saves(now() + 31 * DAY).await.expect("check"), 0);
    let s = saves(&f).await;
    assert_eq!(s["by_outcome"]["paused"]["pending"], 1, "{s}");
    assert!(s["paused_resume_rate"].is_null(), "{s}");

    // The renewal that ends the pause (collection resumes just before it), paid.
    let renewal = restarts - RESUME_MARGIN_SECS + 60;
    f.app.deliver(&paid("in_sv4_resume", "cus_sv4", "sub_sv4", renewal)).await;
    assert_eq!(f.app.scheduler.check_saves(renewal + 60).await.expect("check"), 1);
    let s = saves(&f).await;
    assert_eq!(s["by_outcome"]["paused"]["confirmed"], 1, "{s}");
    assert_eq!(s["paused_resume_rate"], 1.0, "{s}");
}

#[tokio::test]
async fn a_save_still_paying_after_the_configured_days_is_confirmed() {
    let f = flow_with(&[("HOLDFAST_SAVE_CONFIRM_DAYS", "10")]).await;
    save(&f, "cus_sv5", "sub_sv5", "too_expensive", "discount").await;
    assert_eq!(f.app.scheduler.check_saves(now() + 9 * DAY).await.expect("check"), 0);
    // The scheduler's regular run decides it, at the server's clock.
    f.app.clock.set(now() + 11 * DAY);
    f.app.scheduler.try_run_once().await.expect("checks");
    f.app.clock.set(now());
    let s = saves(&f).await;
    assert_eq!((s["pending"].as_u64(), s["confirmed"].as_u64()), (Some(0), Some(1)), "{s}");
    assert_eq!(s["confirmed_saved_mrr"], 2000.0, "{s}");
}
