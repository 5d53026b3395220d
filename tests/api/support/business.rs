//! The simulated business of the metrics tests: its events as signed-ready Stripe events in
//! any supported API version's shapes, delivery with bounded concurrency, the owner's
//! summary, and a comparison of summaries within a cent.

use futures::StreamExt;
use holdfast_sim::events::Shape;
use holdfast_sim::{Business, Params, events};
use serde_json::Value;

use crate::support::helpers::*;

pub const OWNER_TOKEN: &str = "owner-token-for-tests-0123456789";
pub const START: i64 = 1_735_689_600; // 2025-01-01
pub const DAY: i64 = 86_400;

pub fn business(seed: u64, customers: usize) -> Business {
    Business::simulate(Params { seed, customers, start: START, end: START + 425 * DAY, signup_until: START + 330 * DAY })
}

/// The business's events as signed-ready Stripe events on Stripe's example objects.
pub fn stripe_events(b: &Business) -> Vec<Value> {
    stripe_events_in(b, Shape::Basil)
}

/// The business's events in the shapes (and with the `api_version`) of one API version.
pub fn stripe_events_in(b: &Business, shape: Shape) -> Vec<Value> {
    let base = |resource: &str| fixture(resource);
    events::render_in(b, &base, shape)
        .into_iter()
        .map(|e| {
            let mut event = event_with_id(&e.id, e.kind, e.created, e.object);
            event["api_version"] = serde_json::json!(shape.api_version());
            event
        })
        .collect()
}

pub async fn deliver_all(app: &TestApp, events: &[Value], concurrency: usize) {
    futures::stream::iter(events).map(|e| app.deliver(e)).buffer_unordered(concurrency).collect::<Vec<()>>().await;
}

impl TestApp {
    pub async fn get_owner(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).bearer_auth(OWNER_TOKEN).send().await.expect("request sent")
    }

    pub async fn get_summary(&self, month: &str) -> Value {
        let response = self.get_owner(&format!("/api/summary?month={month}")).await;
        assert_eq!(response.status(), 200, "summary {month}");
        response.json().await.expect("summary JSON")
    }
}

/// Equal keys everywhere; numbers equal within a cent (money) or 2e-6 (rates), since the
/// two computations add in different orders.
pub fn assert_close(path: &str, got: &Value, want: &Value) {
    let mut diffs = Vec::new();
    diff(path, got, want, &mut diffs);
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.join("\n"));
}

fn diff(path: &str, got: &Value, want: &Value, diffs: &mut Vec<String>) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let (gk, wk): (Vec<_>, Vec<_>) = (g.keys().collect(), w.keys().collect());
            if gk != wk {
                diffs.push(format!("keys differ at {path}: got {gk:?}, want {wk:?}"));
            }
            for (k, v) in w {
                diff(&format!("{path}.{k}"), g.get(k).unwrap_or(&Value::Null), v, diffs);
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            if g.len() != w.len() {
                diffs.push(format!("lengths differ at {path}: got {got}, want {want}"));
            }
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                diff(&format!("{path}[{i}]"), a, b, diffs);
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let rate = path.contains("rate") || path.contains("retention") || path.ends_with("nrr") || path.ends_with("nrr_12m");
            let tolerance = if rate { 2e-6 } else { 0.0101 };
            let (a, b) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
            if (a - b).abs() > tolerance {
                diffs.push(format!("{path}: got {a}, want {b}"));
            }
        }
        _ if got != want => diffs.push(format!("{path}: got {got}, want {want}")),
        _ => {}
    }
}
