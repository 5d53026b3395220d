//! The accept path heals by itself: out of file descriptors, a full disk, a value the database
//! refuses. While a fault lasts webhooks get `503` (never a 2xx for an event not durably
//! stored) and `/readyz` says `503` with the reason; when the cause goes away both recover
//! without a restart. Errors are classified per backend: one event the database refuses
//! never fails its neighbours.

use std::process::Command;
use std::time::Duration;

use holdfast::clock::Clock;
use holdfast::domain::event::Event;
use holdfast::store::writer::{WriteError, Writer};
use holdfast::store::{Ingested, Store};
use rand::Rng;
use serde_json::{Value, json};

use crate::support::helpers::{SECRET, backend, customer, event, fresh_database, now, post_signed, spawn_app};
use crate::support::process::ServerProcess;

fn customer_event(id: &str) -> Value {
    event("customer.created", now(), customer(id, "heal@example.com", now()))
}

/// A client with one keep-alive connection: once open, requests need no new descriptor on
/// the server.
fn one_connection_client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client")
}

/// POST a signed event and read the whole answer, so the keep-alive connection is reused
/// (an unread body makes the client drop it, and the server's descriptor with it).
async fn post(client: &reqwest::Client, address: &str, event: &Value) -> u16 {
    let body = event.to_string();
    let header = holdfast::ingest::signature::sign(body.as_bytes(), SECRET, now());
    let response = client
        .post(format!("{address}/webhooks/stripe"))
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", header)
        .body(body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    status
}

/// `/readyz`: status and body.
async fn readyz(client: &reqwest::Client, address: &str) -> (u16, String) {
    let response = client.get(format!("{address}/readyz")).send().await.expect("readyz answers");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

/// Poll `/readyz` until it is ready again: recovery must come by itself, within seconds.
async fn wait_ready(client: &reqwest::Client, address: &str) {
    for _ in 0..100 {
        if readyz(client, address).await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz did not turn ready after the cause went away: {:?}", readyz(client, address).await);
}

/// Change a resource limit of a running process (`prlimit --pid`).
fn set_limit(pid: u32, limit: &str) {
    let status = Command::new("prlimit").args(["--pid", &pid.to_string(), limit]).status().expect("prlimit runs");
    assert!(status.success(), "prlimit {limit} failed");
}

fn soft_limit(pid: u32, name: &str) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/<pid>/limits");
    let line = limits.lines().find(|l| l.starts_with(name)).expect("limit listed");
    line[name.len()..].split_whitespace().next().expect("soft limit").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs sqlite"]
async fn sqlite_only_out_of_file_descriptors_answers_503_then_heals_by_itself() {
    crate::support::requires::database("sqlite");
    let (url, _dir) = fresh_database().await;
    let server = ServerProcess::start(&[("DATABASE_URL", url.as_str()), ("STRIPE_WEBHOOK_SECRET", SECRET)]);
    let client = one_connection_client();
    assert_eq!(post(&client, &server.address, &customer_event("cus_fd_before")).await, 200);
    assert_eq!(readyz(&client, &server.address).await.0, 200);

    let pid = server.pid();
    let original = soft_limit(pid, "Max open files");
    // A descriptor numbered at or above the limit can't be allocated; 0–2 are always open, so
    // with a limit of 3 every new one fails (EMFILE) while those already open stay usable.
    set_limit(pid, "--nofile=3:");
    // The append commits on its open connection; opening the WAL to sync it fails: the
    // event is not known durable, so it is not acknowledged.
    let during = customer_event("cus_fd_during");
    assert_eq!(post(&client, &server.address, &during).await, 503);
    let (status, body) = readyz(&client, &server.address).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("sqlite_wal_sync") && body.contains("os error 24"), "the reason is named: {body}");

    set_limit(pid, &format!("--nofile={original}:"));
    wait_ready(&client, &server.address).await;
    // Stripe's redelivery of the unacknowledged event, then a new one: both acknowledged.
    assert_eq!(post(&client, &server.address, &during).await, 200);
    assert_eq!(post(&client, &server.address, &customer_event("cus_fd_after")).await, 200);
    let store = Store::connect(&url).await.expect("database opens");
    let ids = store.dump_state().await.expect("state").event_ids;
    assert!(ids.contains(&during["id"].as_str().expect("id").to_owned()), "the redelivered event is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs sqlite"]
async fn sqlite_only_a_full_disk_answers_503_then_heals_by_itself() {
    crate::support::requires::database("sqlite");
    let (url, _dir) = fresh_database().await;
    let server =
        ServerProcess::start_ignoring_file_size_signal(&[("DATABASE_URL", url.as_str()), ("STRIPE_WEBHOOK_SECRET", SECRET)]);
    let client = one_connection_client();
    assert_eq!(post_signed(&client, &server.address, &customer_event("cus_disk_before")).await, 200);

    // Every write at an offset past 1 byte now fails with EFBIG, as writes do on a full disk.
    let pid = server.pid();
    set_limit(pid, "--fsize=1:");
    let during = customer_event("cus_disk_during");
    assert_eq!(post_signed(&client, &server.address, &during).await, 503);
    let (status, body) = readyz(&client, &server.address).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("event_log_append"), "the reason is named: {body}");
    // Still full: still refused, and the process stays up.
    assert_eq!(post_signed(&client, &server.address, &customer_event("cus_disk_during2")).await, 503);

    set_limit(pid, "--fsize=unlimited:");
    // The writer's own probe notices the space is back, without a webhook.
    wait_ready(&client, &server.address).await;
    assert_eq!(post_signed(&client, &server.address, &during).await, 200);
    assert_eq!(post_signed(&client, &server.address, &customer_event("cus_disk_after")).await, 200);
    let store = Store::connect(&url).await.expect("database opens");
    let ids = store.dump_state().await.expect("state").event_ids;
    assert!(ids.contains(&during["id"].as_str().expect("id").to_owned()), "the redelivered event is stored");
}

fn parsed(id: &str, customer_id: &str) -> Event {
    let body = json!({
        "id": id, "object": "event", "type": "customer.created", "created": now(),
        "data": {"object": {"id": customer_id, "object": "customer"}}
    });
    Event::parse(body.to_string().as_bytes()).expect("valid event")
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn postgres_only_an_event_the_database_refuses_fails_alone_and_its_neighbours_are_stored() {
    crate::support::requires::database("postgres");
    let (url, _db) = fresh_database().await;
    let store = Store::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let (writer, task) = Writer::start(store.clone(), Clock::system());
    // A NUL in a text column: Postgres refuses it (SQLSTATE 22021), whose digits once read as
    // SQLite's BUSY and failed the whole batch with 503. The parser refuses such envelopes, so
    // the event is built by hand to reach the database.
    let mut bad = parsed("evt_nul", "cus_nul");
    bad.id = "evt_\0nul".into();
    let good: Vec<Event> = (0..20).map(|n| parsed(&format!("evt_ok{n}"), &format!("cus_ok{n}"))).collect();
    let mut answers = Vec::new();
    for (n, e) in good.into_iter().enumerate() {
        if n == 10 {
            let w = writer.clone();
            let bad = bad.clone();
            answers.push(tokio::spawn(async move { w.submit(bad).await }));
        }
        let w = writer.clone();
        answers.push(tokio::spawn(async move { w.submit(e).await }));
    }
    let mut results = Vec::new();
    for a in answers {
        results.push(a.await.expect("task"));
    }
    assert_eq!(results.iter().filter(|r| **r == Err(WriteError::Refused)).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| **r == Ok(Ingested::Stored)).count(), 20, "{results:?}");
    assert!(store.health().faults().is_empty(), "one event's data is not a fault: {:?}", store.health().faults());
    drop(writer);
    task.await.expect("writer ends");
}

#[tokio::test]
async fn a_nul_in_an_envelope_field_is_refused_alike_on_both_databases() {
    let app = spawn_app().await;
    let mut e = customer_event("cus_nul_envelope");
    e["id"] = json!("evt_\u{0}x");
    let response = app.post_event(&e).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_an_event");
}

#[tokio::test]
async fn object_ids_the_database_cannot_index_are_acknowledged_and_do_not_stop_the_projector() {
    let app = spawn_app().await;
    // 10 KB of random characters: over Postgres' btree row limit even compressed (SQLSTATE
    // 54000), and a NUL in an id (22021). Both are stored in the log and acknowledged; their
    // projection fails alone (its customer is set aside) and every other customer goes on.
    let long: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(10 * 1024).map(char::from).collect();
    for bad in [format!("cus_{long}"), "cus_\u{0}nul".to_owned()] {
        let response = app.post_event(&customer_event(&bad)).await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }
    app.deliver(&customer_event("cus_after_the_bad_ones")).await;
    let state = app.state().await;
    assert!(state.customers.iter().any(|c| c.id == "cus_after_the_bad_ones"), "the projector went on ({})", backend());
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200, "one bad event is not a fault of the service");
}
