//! Input that can't poison: correctly signed events no real Stripe object looks like (nested
//! 1,000 deep, a 10 KB id, a 70 KB string, a NUL) are stored and acknowledged, quarantined
//! instead of projected, counted in `/metrics` and listed for the owner — and the summary,
//! the monthly series and the dashboard still answer, with the same figures.

use holdfast::ingest::signature::sign;
use serde_json::{Value, json};

use crate::support::business::{OWNER_TOKEN, business, deliver_all, stripe_events};
use crate::support::helpers::*;

/// A signed body posted as is (the deep one is built as text: a `Value` that deep is what the
/// test is about), waiting for the projector to pass it.
async fn post_body(app: &TestApp, body: String) -> reqwest::Response {
    let header = sign(body.as_bytes(), SECRET, now());
    let response = app.post_raw(body, Some(&header)).await;
    if response.status() == 200 {
        app.wait_projected().await;
    }
    response
}

/// The poison events and the reason each must be quarantined with. Each names a real
/// invoice, customer or subscription of the business where it can, so that projecting it
/// would change the figures.
fn poison_bodies(invoice: &Value, customer_id: &str) -> Vec<(String, &'static str)> {
    let t = 1_740_000_000;
    let depth = 1000;
    let mut deep_invoice = invoice.clone();
    deep_invoice["status"] = json!("open");
    deep_invoice["metadata"] = json!({"deep": "__DEEP__"});
    let deep = event_with_id("evt_poison_deep", "invoice.payment_failed", t, deep_invoice)
        .to_string()
        .replace("\"__DEEP__\"", &format!("{}1{}", "[".repeat(depth), "]".repeat(depth)));
    let long_id = event_with_id(
        "evt_poison_long_id",
        "customer.created",
        t,
        customer(&format!("cus_{}", "x".repeat(10_000)), "a@example.com", t),
    );
    let mut huge = customer(customer_id, "b@example.com", t);
    huge["description"] = json!("y".repeat(70 * 1024));
    let huge = event_with_id("evt_poison_huge_string", "customer.updated", t, huge);
    let mut nul = customer(customer_id, "c@example.com", t);
    nul["name"] = json!("Ada\u{0}Lovelace");
    let nul = event_with_id("evt_poison_nul", "customer.updated", t, nul);
    vec![
        (deep, "nested deeper than 128 levels"),
        (long_id.to_string(), "`id` is longer than 255 bytes"),
        (huge.to_string(), "a string is longer than 65536 bytes"),
        (nul.to_string(), "a string contains a NUL character"),
    ]
}

async fn dashboard(app: &TestApp, month: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let login =
        client.post(format!("{}/dashboard/login", app.address)).form(&[("token", OWNER_TOKEN)]).send().await.expect("sent");
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("name=value").to_owned();
    client.get(format!("{}/dashboard?month={month}", app.address)).header("Cookie", cookie).send().await.expect("sent")
}

fn gauge(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// `GET /api/quarantine` is owner-only and lists the poison events (sent with `reasons`, in
/// order) newest first with their reasons, never their payloads.
async fn assert_the_owner_lists_them_newest_first_without_payloads(app: &TestApp, reasons: &[&str]) {
    let listed =
        assert_owner_only(&app.client, reqwest::Method::GET, &format!("{}/api/quarantine", app.address), OWNER_TOKEN).await;
    let listed: Value = listed.json().await.expect("JSON");
    assert_eq!(listed["count"], reasons.len());
    let by_id: Vec<(&str, &str)> = listed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap_or(""), e["reason"].as_str().unwrap_or("")))
        .collect();
    let ids = ["evt_poison_nul", "evt_poison_huge_string", "evt_poison_long_id", "evt_poison_deep"];
    let reasons: Vec<&str> = reasons.iter().rev().copied().collect();
    assert_eq!(by_id, ids.into_iter().zip(reasons).collect::<Vec<_>>(), "newest first, with the reason");
    assert!(!listed.to_string().contains("xxxxxxxxxx"), "the list never carries payloads");
}

#[tokio::test]
async fn poison_events_are_stored_acknowledged_quarantined_and_leave_every_figure_as_it_was() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    let b = business(5, 25);
    let events = stripe_events(&b);
    deliver_all(&app, &events, 8).await;
    let (first, last) = ("2025-01", "2026-02");
    let series_path = format!("/api/metrics/monthly?from={first}&to={last}");
    let summary_before = app.get_summary("2025-08").await;
    let series_before: Value = app.get_owner(&series_path).await.json().await.expect("series");
    let state_before = app.state().await;
    let invoice = events.iter().find(|e| e["type"].as_str().is_some_and(|t| t.starts_with("invoice."))).expect("an invoice")["data"]["object"].clone();
    let customer_id = state_before.customers[0].id.clone();

    let poisons = poison_bodies(&invoice, &customer_id);
    for (body, reason) in &poisons {
        let response = post_body(&app, body.clone()).await;
        assert_eq!(response.status(), 200, "a signed event is acknowledged even when quarantined ({reason})");
    }

    // Every report answers, with the figures it had.
    let summary_after = app.get_summary("2025-08").await;
    assert_eq!(summary_after, summary_before);
    let series = app.get_owner(&series_path).await;
    assert_eq!(series.status(), 200);
    assert_eq!(series.json::<Value>().await.expect("series"), series_before);
    let page = dashboard(&app, "2025-08").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("chart-mrr"));
    // Nothing of them reached the tables; the log keeps them (listed below with their ids).
    let state_after = app.state().await;
    assert_eq!(state_after.customers, state_before.customers);
    assert_eq!(state_after.invoices, state_before.invoices);
    assert_eq!(state_after.event_ids.len(), state_before.event_ids.len() + poisons.len());

    let metrics = app.get_owner("/metrics").await.text().await.expect("metrics");
    assert_eq!(gauge(&metrics, "holdfast_events_quarantined"), poisons.len() as f64);
    assert_eq!(gauge(&metrics, "holdfast_projector_parked_events"), 0.0, "quarantined, not parked");
    assert_eq!(gauge(&metrics, "holdfast_projector_lag_events"), 0.0, "the log moved on");

    let reasons: Vec<&str> = poisons.iter().map(|(_, r)| *r).collect();
    assert_the_owner_lists_them_newest_first_without_payloads(&app, &reasons).await;

    // A later event of the same customer is projected: quarantine parks no one.
    let mut later = customer(&customer_id, "later@example.com", now());
    later["name"] = json!("Later");
    app.deliver(&event_with_id("evt_after_poison", "customer.updated", now(), later)).await;
    let state = app.state().await;
    assert!(state.customers.iter().any(|c| c.id == customer_id && c.email.as_deref() == Some("later@example.com")));

    // Rebuilding the tables passes over them again.
    app.store.reproject().await.expect("reproject");
    assert_eq!(app.get_summary("2025-08").await, summary_before);
}
