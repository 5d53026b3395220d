//! The monthly value recap end to end: activity posted to `/api/activity` with event names →
//! the app's clock moved to the customer's billing anniversary → the scheduler → the outbox
//! worker → a real SMTP server. Once per customer per month; unsubscribed customers get none;
//! names beyond the first 50 are counted as "other".

use chrono::TimeZone;
use serde_json::{Value, json};

use crate::support::helpers::{Config, Sub, TestApp, customer, event};
use crate::support::mail_world::{DAY, app_with_sink, deliver_now};
use crate::support::smtp_sink::SmtpSink;

const OWNER: &str = "owner-token-for-recap-tests-000001";

fn at(y: i32, m: u32, d: u32, h: u32) -> i64 {
    chrono::Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().expect("date").timestamp()
}

/// The subscriptions' billing anchor: 31 January 2026, 10:00 UTC. February's anniversary is
/// its last day, March's the 31st.
fn anchor() -> i64 {
    at(2026, 1, 31, 10)
}

/// An app with the recap on (labels and the question set typed, by their `holdfast.toml`
/// keys) and the owner API.
async fn recap_app() -> (TestApp, SmtpSink) {
    let labels = std::collections::BTreeMap::from([("login", "sign-ins"), ("report_created", "reports created")]);
    let config = Config::new()
        .owner_token(OWNER)
        .key("recap.enabled", true)
        .key("recap.question", "What should we build for you next?")
        .key("recap.labels", labels);
    let (app, sink) = app_with_sink(config).await;
    app.clock.set(anchor());
    (app, sink)
}

/// `cus` (`email`) subscribed at the anchor to $20.00 a month.
async fn subscribed(app: &TestApp, cus: &str, email: &str) {
    let t = anchor();
    deliver_now(app, &event("customer.created", t, customer(cus, email, t))).await;
    deliver_now(app, &event("customer.subscription.created", t, Sub::new(&format!("sub_{cus}"), cus, t).object())).await;
}

async fn post_activity(app: &TestApp, body: &Value) {
    let r = app.client.post(format!("{}/api/activity", app.address)).bearer_auth(OWNER).json(body).send().await.expect("POST");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

/// `n` uses of `name` by `cus` at `t`.
fn used(cus: &str, name: &str, t: i64, n: i64) -> Value {
    json!({"customer": cus, "at": t, "event": name, "count": n})
}

/// Run the scheduler at `t` and send what is due; the emails sent.
async fn run_at(app: &TestApp, t: i64) -> usize {
    app.clock.set(t);
    app.scheduler.try_run_once().await.expect("checks");
    app.outbox.run_until_idle_at(t).await.expect("send")
}

/// `cus_1`'s use in the previous month [28 Feb, 31 Mar) and the recap's month [31 Mar, 30 Apr),
/// with unnamed activity and some from before both.
async fn post_two_months_of_activity(app: &TestApp) {
    let before = at(2026, 3, 10, 9);
    let this = at(2026, 4, 12, 9);
    post_activity(
        app,
        &json!([
            used("cus_1", "login", before, 8),
            used("cus_1", "report_created", before, 3),
            used("cus_1", "login", this, 5),
            used("cus_1", "login", this + DAY, 7),
            used("cus_1", "report_created", this, 3),
            used("cus_1", "invite_sent", this, 2),
            // Unnamed activity is counted by day only, not in the recap.
            {"customer": "cus_1", "at": this, "count": 40},
            // Before the previous month: in neither.
            used("cus_1", "login", at(2026, 2, 20, 9), 100),
        ]),
    )
    .await;
}

/// The April recap to Ada: marketing mail that replies reach the owner, each named use against
/// March (most used first, unnamed and older activity left out), the plan at its price.
fn assert_aprils_recap_compares_each_use_with_march(sink: &SmtpSink) {
    let mail = &sink.parsed()[0];
    assert_eq!(sink.messages()[0].rcpt_to, vec!["ada@example.com".to_owned()]);
    assert_eq!(mail.header("Subject").as_deref(), Some("Your month with Acme"));
    assert_eq!(mail.header("Reply-To").as_deref(), Some("help@acme.test"), "replies reach the owner");
    assert!(mail.header("List-Unsubscribe").is_some(), "marketing mail: unsubscribable");
    let text = &mail.text;
    for line in [
        "(31 March 2026 to 29 April 2026)",
        "- sign-ins: 12 (+4 (+50 %) on the month before)",
        "- reports created: 3 (same as the month before)",
        "- invite_sent: 2 (new this month)",
        "What should we build for you next? Just reply to this email",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains("other activity") && !text.contains("100"), "{text}");
    // The plan's name is whatever Stripe's catalog says of it; its price is the subscription's.
    let plan = text.lines().find(|l| l.starts_with("Your plan: ")).expect("the plan line");
    assert!(plan.trim_end().ends_with("$20.00 / month"), "{plan}");
    let sign_ins = text.find("sign-ins").expect("listed");
    assert!(sign_ins < text.find("reports created").expect("listed"), "most used first: {text}");
}

#[tokio::test]
async fn the_recap_goes_on_the_billing_anniversary_with_the_month_against_the_one_before() {
    let (app, sink) = recap_app().await;
    subscribed(&app, "cus_1", "ada@example.com").await;
    // The previous month [28 Feb, 31 Mar) and the recap's month [31 Mar, 30 Apr).
    app.clock.set(at(2026, 4, 29, 12));
    post_two_months_of_activity(&app).await;

    // 30 April is the anniversary of a 31st in a 30-day month.
    assert_eq!(run_at(&app, at(2026, 4, 29, 23)).await, 0, "not before the anniversary");
    assert_eq!(run_at(&app, at(2026, 4, 30, 0) + 60).await, 1);
    // The scheduler runs hourly: the same month's recap is never queued twice.
    assert_eq!(run_at(&app, at(2026, 4, 30, 5)).await, 0);
    assert_eq!(run_at(&app, at(2026, 5, 2, 5)).await, 0);

    assert_aprils_recap_compares_each_use_with_march(&sink);
    let rows = app.store.outbox_rows().await.expect("outbox");
    assert_eq!(rows.iter().map(|r| r.dedupe_key.as_str()).collect::<Vec<_>>(), vec!["recap:cus_1:2026-04"]);
    assert_eq!(rows[0].category, "marketing");

    // May's anniversary is the 31st: the next recap, April's month as "before".
    app.clock.set(at(2026, 5, 29, 12));
    post_activity(&app, &json!([used("cus_1", "login", at(2026, 5, 10, 9), 6)])).await;
    assert_eq!(run_at(&app, at(2026, 5, 30, 12)).await, 0);
    assert_eq!(run_at(&app, at(2026, 5, 31, 1)).await, 1);
    let may = &sink.parsed()[1].text;
    assert!(may.contains("- sign-ins: 6 (−6 (−50 %) on the month before)"), "{may}");
    assert!(may.contains("- reports created: 0 (−3 (−100 %) on the month before)"), "{may}");
}

#[tokio::test]
async fn an_unsubscribed_customer_gets_no_recap() {
    let (app, sink) = recap_app().await;
    subscribed(&app, "cus_1", "ada@example.com").await;
    subscribed(&app, "cus_2", "bob@example.com").await;
    app.clock.set(at(2026, 3, 30, 12));
    let t = at(2026, 3, 5, 9);
    post_activity(&app, &json!([used("cus_1", "login", t, 3), used("cus_2", "login", t, 4)])).await;

    // Bob unsubscribes with the one-click link of a marketing email (RFC 8058 POST).
    let links = holdfast::mail::unsubscribe::UnsubscribeLinks::new(
        "https://billing.acme.test",
        None,
        &[secrecy::SecretString::from(crate::support::helpers::SECRET.to_owned())],
    );
    let r = app
        .client
        .post(format!("{}/unsubscribe?token={}", app.address, links.token("bob@example.com")))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);

    run_at(&app, at(2026, 3, 31, 2)).await;
    let to: Vec<Vec<String>> = sink.messages().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(to, vec![vec!["ada@example.com".to_owned()]]);
    let rows = app.store.outbox_rows().await.expect("outbox");
    let bob = rows.iter().find(|r| r.recipient == "bob@example.com").expect("decided, then withheld");
    assert_eq!(bob.status, "suppressed");
}

#[tokio::test]
async fn names_beyond_the_first_fifty_are_counted_as_other() {
    let (app, sink) = recap_app().await;
    subscribed(&app, "cus_1", "ada@example.com").await;
    app.clock.set(at(2026, 3, 30, 12));
    let t = at(2026, 3, 5, 9);
    // 55 names in one batch: the first 50 (in name order) are claimed, five go to "other".
    let first: Vec<Value> = (0..55).map(|i| used("cus_1", &format!("feature_{i:02}"), t, 1)).collect();
    post_activity(&app, &json!(first)).await;
    // Later batches: a known name keeps its line; a new one is "other" too.
    post_activity(&app, &json!([used("cus_1", "feature_07", t + 60, 2), used("cus_1", "brand_new", t + 60, 3)])).await;

    assert_eq!(run_at(&app, at(2026, 3, 31, 2)).await, 1);
    let text = &sink.parsed()[0].text;
    assert!(text.contains("- feature_07: 3 (new this month)"), "{text}");
    assert!(text.contains("- feature_49: 1 (new this month)"), "{text}");
    for beyond in ["feature_50", "feature_54", "brand_new"] {
        assert!(!text.contains(beyond), "{beyond} is not a line of its own: {text}");
    }
    assert!(text.contains("- other activity: 8 (new this month)"), "{text}");
    let lines = text.lines().filter(|l| l.starts_with("- ")).count();
    assert_eq!(lines, 51, "50 names and other: {text}");
    assert!(text.lines().rfind(|l| l.starts_with("- ")).is_some_and(|l| l.contains("other activity")), "other last");
}
