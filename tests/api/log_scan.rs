//! A full run of the real binary at `RUST_LOG=debug` with JSON logs: genuine events, forged
//! and stale ones, owner-token requests. Nothing secret or personal may reach the output.

use holdfast::webhook::signature::sign;
use serde_json::Value;

use crate::helpers::{SECRET, customer, event, fresh_database, now};
use crate::process::ServerProcess;

const OWNER_TOKEN: &str = "owner-token-logscan-5f1d2c3b4a";
const STRIPE_KEY: &str = "sk_test_logscan_51Hx9ExampleKey000000";
const EMAIL: &str = "leak.check+logscan@example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_full_run_contain_no_secrets_signatures_or_emails() {
    let (url, _dir) = fresh_database().await;
    let server = ServerProcess::start(&[
        ("DATABASE_URL", url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("HOLDFAST_OWNER_TOKEN", OWNER_TOKEN),
        ("STRIPE_SECRET_KEY", STRIPE_KEY),
        ("RUST_LOG", "debug"),
    ]);
    let client = reqwest::Client::new();
    let hook = format!("{}/webhooks/stripe", server.address);
    let mut signatures = Vec::new();
    let mut send = |body: String, header: String| {
        let sig = header.split_once("v1=").map(|(_, s)| s.to_owned()).unwrap_or_default();
        signatures.push(sig);
        client.post(&hook).header("Content-Type", "application/json").header("Stripe-Signature", header).body(body).send()
    };

    let genuine = event("customer.created", now(), customer("cus_logscan", EMAIL, now())).to_string();
    let header = sign(genuine.as_bytes(), SECRET, now());
    assert_eq!(send(genuine.clone(), header).await.expect("sent").status(), 200);
    let forged = sign(genuine.as_bytes(), "whsec_not_the_right_one", now());
    assert_eq!(send(genuine.clone(), forged).await.expect("sent").status(), 400);
    let stale = sign(genuine.as_bytes(), SECRET, now() - 3600);
    assert_eq!(send(genuine.clone(), stale).await.expect("sent").status(), 400);
    let altered = genuine.replace("cus_logscan", "cus_logscan_altered");
    let for_original = sign(genuine.as_bytes(), SECRET, now());
    assert_eq!(send(altered, for_original).await.expect("sent").status(), 400);
    let not_an_event = format!("{{\"email\": \"{EMAIL}\"}}");
    let header = sign(not_an_event.as_bytes(), SECRET, now());
    assert_eq!(send(not_an_event, header).await.expect("sent").status(), 400);
    let garbage = format!("t={},v1={},v1=zz{}", now(), "ab".repeat(32), "cd".repeat(31));
    assert_eq!(send(genuine.clone(), garbage).await.expect("sent").status(), 400);

    // Owner credentials in a header and (wrongly) in a query string.
    for auth in [format!("Bearer {OWNER_TOKEN}"), "Bearer wrong-owner-token".to_owned()] {
        let _ = client.get(format!("{}/owner/anything", server.address)).header("Authorization", auth).send().await;
    }
    let _ = client.get(format!("{}/cancel?token={OWNER_TOKEN}&email={EMAIL}", server.address)).send().await;
    // A refused webhook (logged as a warning) on a URL carrying a token and an email.
    let url = format!("{hook}?token={OWNER_TOKEN}&email={EMAIL}");
    let refused = client.post(url).header("Stripe-Signature", "t=1,v1=00").body("{}").send().await.expect("sent");
    assert_eq!(refused.status(), 400);
    let output = server.stop_and_collect();
    assert!(output.contains("batch committed"), "debug logging was on:\n{output}");
    let mut needles = vec![SECRET, OWNER_TOKEN, STRIPE_KEY, EMAIL, "whsec_not_the_right_one"];
    needles.extend(signatures.iter().map(String::as_str).filter(|s| s.len() >= 16));
    let leaks: Vec<&str> = needles.into_iter().filter(|n| output.contains(n)).collect();
    assert!(leaks.is_empty(), "secrets in the log output: {leaks:?}\n{output}");
    // Every line is JSON (a log shipper can parse all of it).
    for line in output.lines() {
        assert!(serde_json::from_str::<Value>(line).is_ok(), "not a JSON log line: {line}");
    }
}
