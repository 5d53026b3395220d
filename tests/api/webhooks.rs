//! Every answer of `POST /webhooks/stripe`, and health.

use holdfast::ingest::signature::sign;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::helpers::*;

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("JSON error body");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "error has a message: {body}");
    body["error"]["code"].as_str().expect("error code").to_owned()
}

fn customer_event(id: &str) -> Value {
    event("customer.created", now(), customer(id, "ada@example.com", now()))
}

#[tokio::test]
async fn a_signed_event_is_stored_and_acknowledged() {
    let app = spawn_app().await;
    let event = customer_event("cus_store");

    let response = app.post_event(&event).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, json!({"received": true, "duplicate": false}));
    let state = app.state().await;
    assert_eq!(state.event_ids, vec![event["id"].as_str().expect("id").to_owned()]);
    assert_eq!(state.customers[0].email.as_deref(), Some("ada@example.com"));
}

#[tokio::test]
async fn a_redelivered_event_is_acknowledged_and_changes_nothing() {
    let app = spawn_app().await;
    let event = customer_event("cus_dup");
    app.deliver(&event).await;
    let before = app.state().await;

    let response = app.post_event(&event).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["duplicate"], true);
    assert_eq!(app.state().await, before);
}

#[tokio::test]
async fn a_missing_signature_header_is_refused() {
    let app = spawn_app().await;
    let response = app.post_raw(customer_event("cus_x").to_string(), None).await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "missing_signature");
    assert!(app.state().await.event_ids.is_empty());
}

#[tokio::test]
async fn malformed_signature_headers_are_refused() {
    let app = spawn_app().await;
    let body = customer_event("cus_x").to_string();
    for header in ["", "garbage", "t=notanumber,v1=abc", "v1=00", &format!("t={}", now()), &format!("t={},v1=zz", now())] {
        let response = app.post_raw(body.clone(), Some(header)).await;
        assert_eq!(response.status(), 400, "header {header:?}");
        assert_eq!(error_code(response).await, "malformed_signature", "header {header:?}");
    }
    assert!(app.state().await.event_ids.is_empty());
}

#[tokio::test]
async fn a_signature_from_another_secret_or_an_altered_body_is_refused() {
    let app = spawn_app().await;
    let body = customer_event("cus_x").to_string();
    let wrong_secret = sign(body.as_bytes(), "whsec_somebody_else", now());
    let response = app.post_raw(body.clone(), Some(&wrong_secret)).await;
    assert_eq!(response.status(), 400);
    let message: Value = response.json().await.expect("JSON");
    assert_eq!(message["error"]["code"], "bad_signature");
    assert!(!message.to_string().contains(SECRET), "the secret never appears in an answer");

    let header = sign(body.as_bytes(), SECRET, now());
    let altered = body.replace("ada@example.com", "eve@example.com");
    let response = app.post_raw(altered, Some(&header)).await;
    assert_eq!(error_code(response).await, "bad_signature");
    assert!(app.state().await.event_ids.is_empty());
}

#[tokio::test]
async fn timestamps_outside_the_tolerance_are_refused_both_ways() {
    let app = spawn_app().await;
    let body = customer_event("cus_x").to_string();
    let stale = sign(body.as_bytes(), SECRET, now() - 301);
    let response = app.post_raw(body.clone(), Some(&stale)).await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "timestamp_too_old");

    let future = sign(body.as_bytes(), SECRET, now() + 400);
    let response = app.post_raw(body.clone(), Some(&future)).await;
    assert_eq!(error_code(response).await, "timestamp_in_future");

    let recent = sign(body.as_bytes(), SECRET, now() - 200);
    assert_eq!(app.post_raw(body, Some(&recent)).await.status(), 200);
}

#[tokio::test]
async fn the_tolerance_is_configurable() {
    let app = spawn_app_typed(|s| s.webhook.tolerance_secs = 30).await;
    let body = customer_event("cus_x").to_string();
    let header = sign(body.as_bytes(), SECRET, now() - 120);
    assert_eq!(error_code(app.post_raw(body, Some(&header)).await).await, "timestamp_too_old");
}

#[tokio::test]
async fn during_a_secret_roll_either_secret_is_accepted() {
    let app = spawn_app_typed(|s| s.webhook.secrets = vec![SecretString::from(SECRET), SecretString::from(OLD_SECRET)]).await;
    let body = customer_event("cus_old").to_string();
    let t = now();
    let old_only = sign(body.as_bytes(), OLD_SECRET, t);
    assert_eq!(app.post_raw(body.clone(), Some(&old_only)).await.status(), 200);

    // Stripe sends one v1 per active secret; here the first belongs to a secret we dropped.
    let body = customer_event("cus_roll").to_string();
    let dropped = sign(body.as_bytes(), "whsec_dropped", t);
    let current = sign(body.as_bytes(), SECRET, t);
    let v1 = |h: &str| h.split_once(",v1=").map(|(_, v)| v.to_owned()).expect("v1");
    let header = format!("t={t},v1={},v1={},v0=00ff", v1(&dropped), v1(&current));
    assert_eq!(app.post_raw(body, Some(&header)).await.status(), 200);
    assert_eq!(app.state().await.event_ids.len(), 2);
}

#[tokio::test]
async fn a_signed_body_that_is_not_an_event_is_refused() {
    let app = spawn_app().await;
    for body in ["not json", "{}", r#"{"id":"evt_1","type":"customer.created","created":1}"#, "[1,2]"] {
        let header = sign(body.as_bytes(), SECRET, now());
        let response = app.post_raw(body, Some(&header)).await;
        assert_eq!(response.status(), 400, "body {body:?}");
        assert_eq!(error_code(response).await, "not_an_event", "body {body:?}");
    }
}

#[tokio::test]
async fn a_body_over_the_size_limit_gets_413() {
    let app = spawn_app_typed(|s| s.webhook.max_body_bytes = 4096).await;
    let mut event = customer_event("cus_big");
    event["data"]["object"]["metadata"] = json!({"padding": "x".repeat(5000)});
    let response = app.post_event(&event).await;
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");

    // Without a Content-Length (chunked), the limit still holds.
    let body = event.to_string();
    let header = sign(body.as_bytes(), SECRET, now());
    let chunks: Vec<Result<String, std::io::Error>> =
        body.as_bytes().chunks(1000).map(|c| Ok(String::from_utf8_lossy(c).into_owned())).collect();
    let stream = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = app.post_raw(stream, Some(&header)).await;
    assert_eq!(response.status(), 413);
    assert!(app.state().await.event_ids.is_empty());
}

#[tokio::test]
async fn unknown_event_types_are_stored_and_acknowledged() {
    let app = spawn_app().await;
    let event =
        event("radar.early_fraud_warning.created", now(), json!({"object": "radar.early_fraud_warning", "id": "issfr_1"}));
    app.deliver(&event).await;
    assert_eq!(app.state().await.event_ids.len(), 1);
}

#[tokio::test]
async fn a_storage_failure_is_answered_with_5xx_so_stripe_retries() {
    let app = spawn_app().await;
    holdfast_break_table(&app).await;

    let response = app.post_event(&customer_event("cus_lost")).await;

    assert!(response.status().is_server_error(), "got {}", response.status());
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "storage_unavailable");
    assert!(!body.to_string().contains("stripe_events"), "5xx bodies say nothing internal");
}

/// Rename the event table away, as a broken database would behave.
async fn holdfast_break_table(app: &TestApp) {
    let sql = "ALTER TABLE stripe_events RENAME TO stripe_events_gone";
    match &app.store {
        holdfast::store::Store::Sqlite(s) => sqlx::query(sql).execute(s.pool()).await.map(|_| ()),
        holdfast::store::Store::Postgres(s) => sqlx::query(sql).execute(s.pool()).await.map(|_| ()),
    }
    .expect("rename table");
}

#[tokio::test]
async fn an_unreachable_database_gets_503_and_readyz_says_so() {
    let app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.store.close().await;

    let response = app.post_event(&customer_event("cus_down")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn many_concurrent_webhooks_are_all_stored() {
    let app = spawn_app().await;
    let events: Vec<Value> = (0..300).map(|i| customer_event(&format!("cus_many_{i}"))).collect();

    let answers = futures::future::join_all(events.iter().map(|e| app.post_event(e))).await;

    assert!(answers.iter().all(|r| r.status() == 200));
    let state = app.state().await;
    assert_eq!(state.event_ids.len(), 300);
    assert_eq!(state.customers.len(), 300);
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let app = spawn_app().await;
    let response = app.get("/nope").await;
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(response).await, "not_found");
}
