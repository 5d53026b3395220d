//! Saves checked against billing, through the real server: a save made in the cancel flow
//! (Stripe answered by wiremock) stays pending until Stripe's invoice and subscription events
//! prove or reverse it, as the scheduler decides by the clock; the summary and the dashboard
//! report the states.

use holdfast::cancel::rules::{RESUME_MARGIN_SECS, add_months};
use holdfast::telemetry::capability_ref;
use serde_json::{Value, json};

use crate::support::cancel_flow::{Flow, OWNER_TOKEN, flow, flow_with, seed, signed_link};
use crate::support::helpers::{Config, event, invoice, now};

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
    let f = flow_with(Config::new().key("cancel_flow.save_confirm_days", 10)).await;
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

/// The first customer id `cus_<prefix><n>` on the wanted side of the holdout.
fn customer_in(experiment: &str, prefix: &str, held: bool) -> String {
    (0..1000)
        .map(|n| format!("cus_{prefix}{n}"))
        .find(|c| holdfast::domain::lift::held_out(experiment, c, 50) == held)
        .expect("a customer on each side")
}

/// The owner summary, as JSON.
async fn owner_summary(f: &Flow) -> Value {
    f.http
        .get(format!("{}/api/summary", f.app.address))
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

/// Retention after 30 and 90 days, per arm of experiment `x`: each arm's one session is too
/// recent to be decided.
fn assert_retention_per_arm_is_undecided_yet(x: &Value) {
    let retention = x["retention"].as_array().expect("retention");
    let kept_for = |v: &str, outcome: &str| {
        retention.iter().find(|a| a["variant"] == v && a["outcome"] == outcome).cloned().expect("retention arm")
    };
    for outcome in ["retained_30d", "retained_90d"] {
        let (a, holdout) = (kept_for("a", outcome), kept_for("holdout", outcome));
        assert_eq!((a["decided"].as_u64(), a["undecided"].as_u64()), (Some(0), Some(1)), "{x}");
        assert_eq!((holdout["decided"].as_u64(), holdout["undecided"].as_u64()), (Some(0), Some(1)), "{x}");
        assert_eq!(a["status"], "not_enough_data", "{x}");
    }
}

#[tokio::test]
async fn a_held_out_customer_sees_no_offer_cancels_and_the_summary_reports_the_arms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("holdfast.toml");
    std::fs::write(
        &config,
        "[[experiments]]\nname = \"price-save\"\nkind = \"save_offer\"\npercent_b = 0\nholdout_percent = 50\n\
         [experiments.offers_by_reason]\ntoo_expensive = [\"discount\"]\n",
    )
    .expect("write config");
    let f = flow_with(Config::new().file(&config)).await;

    // Held out: the survey, then only "cancel anyway"; the cancellation goes through.
    let held = customer_in("price-save", "ho", true);
    let sub = format!("sub_{}", &held[4..]);
    let object = seed(&f.app, &held, &sub, "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link(&held)).await;
    let offer = f.answer(&session, &csrf, "too_expensive", "").await;
    assert!(!offer.contains("choice-discount") && !offer.contains("choice-downgrade"), "{offer}");
    assert!(offer.contains("choice-cancel"), "{offer}");
    let id = session.trim_start_matches("/cancel/s/").split('/').next().expect("id").to_owned();
    f.expect_update(&sub, &format!("holdfast-cancel-{}-cancel-1", capability_ref(&id)), &object).await;
    assert_eq!(f.choose(&session, &csrf, "cancel").await.status(), 303);
    let row = f.session(&session).await;
    assert_eq!((row.outcome.as_deref(), row.variant.as_deref()), (Some("canceled"), Some("holdout")));
    // Stripe got the cancellation and nothing else.
    assert_eq!(f.stripe.received_requests().await.expect("recorded").len(), 1);

    // In the experiment: offered, saved, and the save confirmed by a paid renewal.
    let kept = customer_in("price-save", "in", false);
    let kept_sub = format!("sub_{}", &kept[4..]);
    save(&f, &kept, &kept_sub, "too_expensive", "discount").await;
    f.app.deliver(&paid("in_kept_renewal", &kept, &kept_sub, now() + 30 * DAY)).await;
    assert_eq!(f.app.scheduler.check_saves(now() + 30 * DAY + 60).await.expect("check"), 1);

    let summary = owner_summary(&f).await;
    let x = &summary["experiments"][0];
    assert_eq!((x["name"].as_str(), x["holdout_percent"].as_u64()), (Some("price-save"), Some(50)), "{x}");
    let arm = |v: &str| x["arms"].as_array().expect("arms").iter().find(|a| a["variant"] == v).cloned().expect("arm");
    let (a, holdout) = (arm("a"), arm("holdout"));
    assert_eq!((a["successes"].as_u64(), a["decided"].as_u64(), a["rate"].as_f64()), (Some(1), Some(1), Some(1.0)), "{x}");
    assert_eq!(a["status"], "not_enough_data", "{x}");
    assert!(a["lift"].is_null(), "{x}");
    assert_eq!((holdout["successes"].as_u64(), holdout["decided"].as_u64()), (Some(0), Some(1)), "{x}");
    assert_eq!((holdout["status"].as_str(), holdout["outcome"].as_str()), (Some("holdout"), Some("kept")), "{x}");
    // Retention after 30 and 90 days per arm: these sessions are too recent to be decided.
    assert_retention_per_arm_is_undecided_yet(x);
}

/// The update-payment link for `invoice` in the emails the sink received (text bodies).
fn link_for(sink: &crate::support::smtp_sink::SmtpSink, invoice: &str) -> Option<String> {
    let needle = format!("https://billing.acme.test/billing/update?token=cus_1.{invoice}.");
    sink.parsed().iter().find_map(|m| {
        let start = m.text.find(&needle)?;
        m.text[start..].split_whitespace().next().map(str::to_owned)
    })
}

#[tokio::test]
async fn recovered_payments_are_attributed_to_no_email_an_email_or_a_click() {
    use crate::support::mail_world::{DAY as MDAY, app_with_sink, invoice_paid, payment_failed, subscriber};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let stripe = MockServer::start().await;
    let (app, sink) = app_with_sink(Config::new().stripe_at(&stripe.uri()).owner_token(OWNER_TOKEN)).await;
    let mut portal = crate::support::helpers::fixture("billing_portal.session");
    portal["customer"] = json!("cus_1");
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&portal))
        .mount(&stripe)
        .await;
    let t = now() - 600;
    subscriber(&app, t - MDAY).await;

    // Paid before any email went out (Stripe's own retry).
    app.deliver(&payment_failed("in_before", t, Some(t + 3 * MDAY))).await;
    app.deliver(&invoice_paid("in_before", t + 60)).await;
    // An email sent, never clicked, then paid.
    app.deliver(&payment_failed("in_email", t, Some(t + 3 * MDAY))).await;
    // An email sent, its link clicked, then paid.
    app.deliver(&payment_failed("in_click", t, Some(t + 3 * MDAY))).await;
    app.outbox.run_until_idle_at(now()).await.expect("send");
    assert!(link_for(&sink, "in_before").is_none(), "recovered before its email");
    let link = link_for(&sink, "in_click").expect("a Holdfast link in in_click's email");
    let m = link.split("&m=").nth(1).expect("a per-email token");
    assert!(m.len() == 16 && m.chars().all(|c| c.is_ascii_hexdigit()), "{link}");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let click = client.get(link.replace("https://billing.acme.test", &app.address)).send().await.expect("click");
    assert_eq!(click.status(), 303);
    app.deliver(&invoice_paid("in_email", now() + 3_600)).await;
    app.deliver(&invoice_paid("in_click", now() + 3_600)).await;

    let summary: Value = app
        .client
        .get(format!("{}/api/summary", app.address))
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let a = &summary["recovery_attribution"];
    assert_eq!(a["before_email"], json!({"cases": 1, "amount": 2000}), "{a}");
    assert_eq!(a["after_email"], json!({"cases": 1, "amount": 2000}), "{a}");
    assert_eq!(a["after_click"], json!({"cases": 1, "amount": 2000}), "{a}");
}
