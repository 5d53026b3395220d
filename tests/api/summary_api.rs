//! The owner API's edges: authentication, parameters, CSV, the empty business.

use serde_json::Value;

use crate::support::business::{OWNER_TOKEN, business, deliver_all, stripe_events};
use crate::support::helpers::*;

async fn owner_app() -> TestApp {
    spawn_owner_app(OWNER_TOKEN).await
}

#[tokio::test]
async fn the_summary_refuses_requests_without_the_owner_token() {
    let app = owner_app().await;
    for auth in [None, Some("Bearer wrong-token"), Some("owner-token-for-tests-0123456789")] {
        let mut request = app.client.get(format!("{}/api/summary", app.address));
        if let Some(a) = auth {
            request = request.header("Authorization", a);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), 401, "{auth:?}");
        let body: Value = response.json().await.expect("JSON error");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(app.get("/api/metrics/monthly").await.status(), 401);
}

#[tokio::test]
async fn a_bad_month_or_range_is_a_400_json_error() {
    let app = owner_app().await;
    for path in [
        "/api/summary?month=2025-13",
        "/api/summary?month=april",
        "/api/metrics/monthly?from=2025-05&to=2025-01",
        "/api/metrics/monthly?from=2010-01&to=2025-01",
        "/api/summary?format=xml",
    ] {
        let response = app.get_owner(path).await;
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.expect("JSON error");
        assert!(body["error"]["code"].as_str().is_some_and(|c| c.starts_with("bad_")), "{path}: {body}");
    }
}

#[tokio::test]
async fn an_empty_business_has_a_summary_for_the_current_month_with_null_rates() {
    let app = owner_app().await;
    // The server's clock, set to the last second of a month: the summary is of that month.
    let last_second_of_march = chrono::NaiveDate::from_ymd_opt(2026, 4, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp() - 1)
        .expect("a valid date");
    app.clock.set(last_second_of_march);
    let body: Value = app.get_owner("/api/summary").await.json().await.expect("JSON");
    assert_eq!(body["month"], "2026-03");
    assert_eq!(body["currency"], "usd");
    assert_eq!(body["mrr_end"], 0.0);
    assert!(body["customer_churn_rate"].is_null() && body["nrr"].is_null() && body["ltv"].is_null());
    assert_eq!(body["cancel_flow"]["save_rate"], Value::Null);
}

#[tokio::test]
async fn both_endpoints_answer_csv_with_the_same_figures() {
    let app = owner_app().await;
    let b = business(5, 25);
    deliver_all(&app, &stripe_events(&b), 8).await;
    let json = app.get_summary("2025-08").await;

    let response = app.get_owner("/api/summary?month=2025-08&format=csv").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap_or("").starts_with("text/csv"));
    let csv = response.text().await.expect("body");
    assert!(csv.starts_with("field,value\n"), "{csv}");
    // Money in whole dollars with cents (the JSON's is in cents).
    let dollars = |v: &Value| format!("{:.2}", v.as_f64().unwrap_or(f64::NAN) / 100.0);
    assert!(csv.contains(&format!("\nmrr_end,{}\n", dollars(&json["mrr_end"]))), "{csv}");
    assert!(csv.contains(&format!("\nmrr_movements.new,{}\n", dollars(&json["mrr_movements"]["new"]))), "{csv}");

    let response = app.get_owner("/api/metrics/monthly?from=2025-03&to=2025-08&format=csv").await;
    assert_eq!(response.status(), 200);
    let csv = response.text().await.expect("body");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 7, "header and six months: {csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let last: Vec<&str> = lines[6].split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}"));
    assert_eq!(last[column("month")], "2025-08");
    assert_eq!(last[column("mrr_end")], dollars(&json["mrr_end"]));
    assert_eq!(last[column("active_customers_end")], json["active_customers_end"].to_string());
}
