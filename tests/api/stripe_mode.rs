//! One Stripe mode per instance: events of the other mode are stored and acknowledged, never
//! acted on (no projection, no metric, no email), `/metrics` counts them, and `reproject`
//! rebuilds what the live path made. Without a key naming a mode, the setting is required.

use std::process::{Command, Stdio};

use holdfast::config::StripeMode;
use serde_json::{Value, json};

use crate::support::business::OWNER_TOKEN;
use crate::support::helpers::*;
use crate::support::mail_world::{DAY, EMAIL, app_with_sink, deliver_now};

/// `event` as the other world would send it.
fn in_mode(mut event: Value, livemode: bool) -> Value {
    event["livemode"] = json!(livemode);
    event["data"]["object"]["livemode"] = json!(livemode);
    event
}

/// A customer, an active $20 subscription and a failed invoice, all of `livemode`.
fn paying_customer_with_a_failure(id: &str, livemode: bool, t: i64) -> Vec<Value> {
    let sub = format!("sub_{id}");
    let mut invoice = invoice(&format!("in_{id}"), id, &sub, "open", 2000, t);
    invoice["attempt_count"] = json!(1);
    invoice["next_payment_attempt"] = json!(t + 3 * DAY);
    invoice["customer_email"] = json!(EMAIL);
    vec![
        in_mode(event("customer.created", t - DAY, customer(id, EMAIL, t - DAY)), livemode),
        in_mode(event("customer.subscription.created", t - DAY, Sub::new(&sub, id, t - DAY).object()), livemode),
        in_mode(event("invoice.payment_failed", t, invoice), livemode),
    ]
}

async fn other_mode_count(app: &TestApp) -> f64 {
    let body = app.client.get(format!("{}/metrics", app.address)).bearer_auth(OWNER_TOKEN).send().await.expect("sent");
    let text = body.text().await.expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("holdfast_other_mode_events_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no holdfast_other_mode_events_total in:\n{text}"))
}

#[tokio::test]
async fn a_test_instance_stores_live_events_and_never_acts_on_them() {
    let (app, sink) = app_with_sink(Config::new().owner_token(OWNER_TOKEN)).await;
    app.clock.set(now());
    let t = app.clock.now() - 3600;
    for e in paying_customer_with_a_failure("cus_live", true, t) {
        deliver_now(&app, &e).await;
    }
    // Acknowledged and in the log, and nothing else.
    let state = app.state().await;
    assert_eq!(state.event_ids.len(), 3, "stored");
    assert!(state.customers.is_empty() && state.subscriptions.is_empty() && state.invoices.is_empty(), "{state:?}");
    app.outbox.run_until_idle_at(app.clock.now() + 10 * DAY).await.expect("pass");
    assert!(sink.parsed().is_empty(), "no email for another mode's failed payment");
    assert_eq!(other_mode_count(&app).await, 3.0);

    // The same business in the instance's own mode is acted on.
    for e in paying_customer_with_a_failure("cus_test", false, t) {
        deliver_now(&app, &e).await;
    }
    let state = app.state().await;
    assert_eq!(state.customers.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["cus_test"]);
    assert_eq!(state.subscriptions.len(), 1);
    app.outbox.run_until_idle_at(app.clock.now()).await.expect("pass");
    assert_eq!(sink.parsed().len(), 1, "the test-mode failure is dunned");
    assert_eq!(other_mode_count(&app).await, 3.0);
    let month = chrono::DateTime::from_timestamp(t, 0).expect("time").format("%Y-%m").to_string();
    let summary: Value = app
        .client
        .get(format!("{}/api/summary?month={month}", app.address))
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert_eq!((summary["mrr_end"].as_f64(), summary["active_customers_end"].as_u64()), (Some(2000.0), Some(1)));
}

#[tokio::test]
async fn a_live_instance_ignores_test_events_and_reproject_agrees_with_the_live_path() {
    let app = spawn_app_with(Config::new().owner_token(OWNER_TOKEN).with(|s| s.stripe_mode = StripeMode::Live)).await;
    let t = now() - 3600;
    let live = paying_customer_with_a_failure("cus_live", true, t);
    let test = paying_customer_with_a_failure("cus_test", false, t);
    // Interleaved, as one endpoint receiving both would see them.
    for (l, s) in live.iter().zip(&test) {
        app.deliver(s).await;
        app.deliver(l).await;
    }
    let live_path = app.state().await;
    assert_eq!(live_path.customers.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["cus_live"]);
    assert_eq!(live_path.invoices.len(), 1);
    assert_eq!(other_mode_count(&app).await, 3.0);

    let applied = app.store.reproject().await.expect("reproject");
    assert_eq!(applied, 3, "only this mode's events are applied");
    let rebuilt = app.store.dump_state().await.expect("state");
    assert_eq!(format!("{rebuilt:?}"), format!("{live_path:?}"), "reproject rebuilds what the live path made");
}

#[test]
fn serve_refuses_to_start_without_a_mode_and_names_the_setting() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("h.db").display()))
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        .env("HOLDFAST_BIND", "127.0.0.1:0")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("holdfast runs");
    assert!(!out.status.success(), "it must not start");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("HOLDFAST_STRIPE_MODE") && said.contains("live or test"), "{said}");
}
