//! What the lifecycle email tests share: the owner token they configure, Stripe events that
//! start or stop a series, and reading what went out (subjects, series, the owner summary and
//! the dashboard).

use serde_json::{Value, json};

use crate::support::helpers::{Sub, TestApp, event, invoice};
use crate::support::smtp_sink::SmtpSink;

/// The owner token the lifecycle tests configure.
pub const OWNER: &str = "owner-token-for-lifecycle-tests-01";

/// A first invoice of `sub` paid at `at`.
pub fn first_payment(id: &str, cus: &str, sub: &str, at: i64) -> Value {
    let mut i = invoice(id, cus, sub, "paid", 2000, at);
    i["billing_reason"] = json!("subscription_create");
    event("invoice.paid", at, i)
}

/// `sub_1` of `cus_1` canceled at `at`, for `reason` (`cancellation_requested`, `payment_failed`).
pub fn canceled(sub: &str, cus: &str, started: i64, at: i64, reason: &str) -> Value {
    let mut s = Sub::new(sub, cus, started).object();
    s["status"] = json!("canceled");
    s["canceled_at"] = json!(at);
    s["ended_at"] = json!(at);
    s["cancellation_details"] = json!({"comment": null, "feedback": null, "reason": reason});
    event("customer.subscription.deleted", at, s)
}

/// The subjects of every message the sink received, in order.
pub fn subjects(sink: &SmtpSink) -> Vec<String> {
    sink.parsed().iter().filter_map(|m| m.header("Subject")).collect()
}

/// Status and stop reason of every series of `campaign`.
pub async fn series_status(app: &TestApp, campaign: &str) -> Vec<(String, Option<String>)> {
    let rows = app.store.lifecycle_series().await.expect("series");
    rows.into_iter().filter(|s| s.campaign == campaign).map(|s| (s.status, s.stop_reason)).collect()
}

/// POST a batch to the activity API as the owner.
pub async fn post_activity(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client.post(format!("{}/api/activity", app.address)).bearer_auth(OWNER).json(body).send().await.expect("POST")
}

/// The owner summary, insisting on a 200.
pub async fn summary(app: &TestApp) -> Value {
    let r = app.client.get(format!("{}/api/summary", app.address)).bearer_auth(OWNER).send().await.expect("GET");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// The dashboard page, signed in with the owner token.
pub async fn dashboard(app: &TestApp) -> String {
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let login =
        no_redirects.post(format!("{}/dashboard/login", app.address)).form(&[("token", OWNER)]).send().await.expect("login");
    let cookie = login.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("name=value").to_owned();
    let dash = app.client.get(format!("{}/dashboard", app.address)).header("Cookie", cookie).send().await.expect("GET");
    dash.text().await.expect("html")
}
