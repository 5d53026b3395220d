//! `holdfast replay`: a file imported idempotently like the webhook, and a bad file refused.

use std::process::Command;

use holdfast::store::Store;
use serde_json::json;

use crate::support::helpers::{Sub, customer, event, fresh_database, invoice};
use crate::support::serve_child::{BIN, stored_ids};
#[tokio::test]
async fn replay_imports_a_file_idempotently_like_the_webhook() {
    let (url, _db_dir) = fresh_database().await;
    let dir = tempfile::tempdir().expect("dir");
    let t = 1_700_000_000;
    let events = [
        event("customer.created", t, customer("cus_rp", "rp@example.com", t)),
        event("customer.subscription.created", t, Sub::new("sub_rp", "cus_rp", t).object()),
        event("invoice.paid", t + 60, invoice("in_rp", "cus_rp", "sub_rp", "paid", 2000, t)),
    ];
    let lines: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(dir.path().join("events.jsonl"), lines).expect("write");
    let list = json!({"object": "list", "has_more": false, "data": [events[2], events[0]]});
    std::fs::write(dir.path().join("events.json"), list.to_string()).expect("write");
    let replay = |file: &str| {
        Command::new(BIN)
            .args(["replay", file])
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("HOLDFAST_STRIPE_MODE", "test")
            .current_dir(dir.path())
            .output()
            .expect("runs")
    };

    let first = replay("events.jsonl");
    let again = replay("events.json");

    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("3 new events, 0 already stored"));
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 new events, 2 already stored"));
    // The same events by webhook give the same state.
    let live = crate::support::helpers::spawn_app().await;
    for e in &events {
        live.deliver(e).await;
    }
    let store = Store::connect(&url).await.expect("connect");
    assert_eq!(store.dump_state().await.expect("state"), live.state().await);
    store.close().await;
}

#[tokio::test]
async fn replay_refuses_a_bad_file_naming_the_line_and_writes_nothing() {
    let (url, _db_dir) = fresh_database().await;
    let dir = tempfile::tempdir().expect("dir");
    let good = event("customer.created", 1, customer("cus_bad", "b@example.com", 1));
    std::fs::write(dir.path().join("bad.jsonl"), format!("{good}\n{{\"id\": \"evt_x\"}}\n")).expect("write");

    let out = Command::new(BIN)
        .args(["replay", "bad.jsonl"])
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("HOLDFAST_STRIPE_MODE", "test")
        .current_dir(dir.path())
        .output()
        .expect("runs");

    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stored_ids(&url).await.is_empty());
}
