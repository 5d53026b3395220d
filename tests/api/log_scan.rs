//! A full run of the real binary at `RUST_LOG=debug` with JSON logs: genuine events, forged
//! and stale ones, owner-token requests. Nothing secret or personal may reach the output.

use holdfast::ingest::signature::sign;
use serde_json::Value;

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::cancel_flow::{LINK_SECRET, signed_link};
use crate::support::helpers::{SECRET, Sub, customer, event, fresh_database, now, post_signed};
use crate::support::process::ServerProcess;

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

/// The csrf field of a cancel page.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").map(|i| i + 19).expect("page has a csrf field");
    html[start..].split('"').next().expect("csrf value").to_owned()
}

/// A Stripe stand-in that refuses every call (400, resource missing).
async fn stripe_refusing_every_call() -> MockServer {
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": {
            "type": "invalid_request_error", "code": "resource_missing", "message": "No such subscription: 'sub_logscan'"}})))
        .mount(&stripe)
        .await;
    stripe
}

/// `cus_logscan` and its subscription, posted signed to the server at `address`; then waits
/// until the server (on database `url`) has projected them: the cancel link needs the
/// subscription.
async fn subscribe_and_wait_projected(client: &reqwest::Client, address: &str, url: &str) {
    let t = now() - 86_400;
    let created = event("customer.created", t, customer("cus_logscan", EMAIL, t));
    assert_eq!(post_signed(client, address, &created).await, 200);
    let sub = event("customer.subscription.created", t + 1, Sub::new("sub_logscan", "cus_logscan", t).object());
    assert_eq!(post_signed(client, address, &sub).await, 200);
    // The cancel link needs the subscription projected (the server projects behind the log).
    let store = holdfast::store::Store::connect(url).await.expect("connect");
    let caught_up = store.wait_projected(crate::support::helpers::PROJECTOR_WAIT).await.expect("cursor readable");
    assert!(caught_up, "the server projected the subscription");
    store.close().await;
}

/// Opens `link` on the server at `address`, answers "not using it" and asks for a pause,
/// which Stripe refuses (502). Returns the session id and its csrf token.
async fn pause_refused_by_stripe(client: &reqwest::Client, address: &str, link: &str) -> (String, String) {
    let opened = client.get(format!("{address}{link}")).send().await.expect("sent");
    assert_eq!(opened.status(), 303);
    let session = opened.headers()["location"].to_str().expect("location").to_owned();
    let session_id = session.trim_start_matches("/cancel/s/").to_owned();
    let page = client.get(format!("{address}{session}")).send().await.expect("sent");
    let csrf = csrf_of(&page.text().await.expect("html"));
    let form = [("csrf", csrf.as_str()), ("reason", "unused"), ("comment", "")];
    let answered = client.post(format!("{address}{session}/reason")).form(&form).send().await.expect("sent");
    assert_eq!(answered.status(), 303);
    let form = [("csrf", csrf.as_str()), ("choice", "pause_1")];
    let chosen = client.post(format!("{address}{session}/choose")).form(&form).send().await.expect("sent");
    assert_eq!(chosen.status(), 502, "Stripe refused the change");
    (session_id, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_flow_logs_carry_no_session_id_link_signature_or_idempotency_key() {
    // Stripe refuses every call: the flow logs an ERROR about the session it could not act on.
    let stripe = stripe_refusing_every_call().await;
    let (url, _dir) = fresh_database().await;
    let stripe_uri = stripe.uri();
    let server = ServerProcess::start(&[
        ("DATABASE_URL", url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("STRIPE_SECRET_KEY", STRIPE_KEY),
        ("STRIPE_API_BASE", stripe_uri.as_str()),
        ("HOLDFAST_LINK_SECRET", LINK_SECRET),
        ("RUST_LOG", "debug"),
    ]);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    subscribe_and_wait_projected(&client, &server.address, &url).await;

    let link = signed_link("cus_logscan");
    let (session_id, csrf) = pause_refused_by_stripe(&client, &server.address, &link).await;
    let sent_keys: Vec<String> = stripe
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .collect();
    // Lines reach stdout a few milliseconds late (buffered); wait for the failure's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.output().contains("cancel flow: Stripe call failed") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let output = server.stop_and_collect();

    assert!(output.contains("cancel flow: Stripe call failed"), "the failure was logged:\n{output}");
    assert!(!sent_keys.is_empty(), "the change was tried with an idempotency key");
    let link_sig = link.rsplit_once("sig=").map(|(_, s)| s.to_owned()).expect("link signature");
    // The idempotency key itself may be logged (Stripe's client does at DEBUG): it carries a
    // hash of the session id, never the id.
    let needles = vec![session_id.as_str(), link_sig.as_str(), csrf.as_str(), STRIPE_KEY, EMAIL];
    for key in &sent_keys {
        assert!(!key.contains(&session_id), "the idempotency key sent to Stripe carries the session id: {key}");
    }
    let leaks: Vec<&str> = needles.into_iter().filter(|n| output.contains(n)).collect();
    assert!(leaks.is_empty(), "capabilities in the log output: {leaks:?}\n{output}");
}
