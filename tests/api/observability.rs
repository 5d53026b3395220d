//! `/metrics` (owner only, Prometheus text) and the `x-request-id` response header.

use serde_json::json;

use crate::support::helpers::{Config, customer, event, spawn_app_with, spawn_owner_app};

const TOKEN: &str = "owner-token-for-metrics-0123456789";

#[tokio::test]
async fn metrics_count_webhooks_by_type_and_outcome_for_the_owner_only() {
    let app = spawn_owner_app(TOKEN).await;
    let created = event("customer.created", 1_700_000_000, customer("cus_m1", "m1@example.com", 1_700_000_000));
    app.deliver(&created).await;
    app.deliver(&created).await;
    app.deliver(&event("customer.updated", 1_700_000_100, customer("cus_m1", "m1@example.com", 1_700_000_000))).await;
    let forged = app.post_raw(json!({"id": "evt_forged"}).to_string(), Some("t=1,v1=00")).await;
    assert_eq!(forged.status(), 400);

    let anonymous = app.get("/metrics").await;
    let owner = app.client.get(format!("{}/metrics", app.address)).bearer_auth(TOKEN).send().await.expect("sent");

    assert_eq!(anonymous.status(), 401);
    assert_eq!(owner.status(), 200);
    assert!(owner.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/plain; version=0.0.4"));
    let text = owner.text().await.expect("body");
    for line in [
        "holdfast_webhook_events_total{type=\"customer.created\",outcome=\"stored\"} 1",
        "holdfast_webhook_events_total{type=\"customer.created\",outcome=\"duplicate\"} 1",
        "holdfast_webhook_events_total{type=\"customer.updated\",outcome=\"stored\"} 1",
        "holdfast_webhook_events_total{type=\"unverified\",outcome=\"rejected\"} 1",
        "holdfast_webhook_duration_seconds_count 4",
        "holdfast_webhook_duration_seconds_bucket{le=\"+Inf\"} 4",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn every_response_carries_its_own_request_id() {
    let app = spawn_app_with(Config::new()).await;
    let ids: Vec<String> = futures::future::join_all((0..3).map(|_| app.get("/healthz")))
        .await
        .iter()
        .map(|r| r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
        .collect();
    let webhook = app.post_event(&event("customer.created", 1, customer("cus_r", "r@example.com", 1))).await;

    assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()), "{ids:?}");
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);
    assert!(webhook.headers().contains_key("x-request-id"));
}
