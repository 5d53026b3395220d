//! A real `holdfast serve` process: SIGTERM finishes the webhooks in flight, and its log lines
//! carry the request id and never a secret or an email.

use serde_json::Value;

use crate::support::helpers::{SECRET, fresh_database};
use crate::support::serve_child::{OWNER_TOKEN, Server, customer_event, post, stored_ids};
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_in_flight_webhooks_and_exits_zero() {
    let (url, _db_dir) = fresh_database().await;
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&url, dir.path(), "shutdown");
    let client = reqwest::Client::new();
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();

    let senders: Vec<_> = (0..300)
        .map(|n| {
            let (client, address, acked) = (client.clone(), server.address.clone(), acked_tx.clone());
            tokio::spawn(async move {
                let e = customer_event(n);
                if let Ok(response) = post(&client, &address, &e).await
                    && response.status() == 200
                {
                    let _ = acked.send(e["id"].as_str().unwrap_or_default().to_owned());
                }
            })
        })
        .collect();
    // SIGTERM while webhooks are in flight: after the first acknowledgements.
    let first = acked_rx.recv().await.expect("at least one webhook acknowledged");
    server.sigterm();
    futures::future::join_all(senders).await;
    drop(acked_tx);
    let mut acked = vec![first];
    while let Some(id) = acked_rx.recv().await {
        acked.push(id);
    }
    let status = server.wait();
    eprintln!("{} of 300 webhooks acknowledged around the SIGTERM", acked.len());

    assert!(status.success(), "exit status {status:?}");
    let stored = stored_ids(&url).await;
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_carry_the_request_id_and_never_a_secret_or_an_email() {
    let (url, _db_dir) = fresh_database().await;
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&url, dir.path(), "logs");
    let client = reqwest::Client::new();
    let e = customer_event(1);

    let response = post(&client, &server.address, &e).await.expect("sent");
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let refused =
        client.get(format!("{}/metrics", server.address)).bearer_auth("wrong-token-0123456789").send().await.expect("sent");
    assert_eq!(refused.status(), 401);
    server.sigterm();
    // Log lines are written a few milliseconds after they happen (buffered, see
    // telemetry.rs) and flushed at exit: read them once the process is gone.
    let log = server.log.clone();
    let _ = server.wait();
    let logs = std::fs::read_to_string(&log).unwrap_or_default();

    let handled: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "webhook handled" || v["fields"]["message"] == "webhook handled")
        .collect();
    assert_eq!(handled.len(), 1, "one line per webhook:\n{logs}");
    let line = handled[0].to_string();
    assert!(line.contains(&request_id), "request id {request_id} missing from {line}");
    assert!(line.contains("evt_proc_00001"), "{line}");
    for secret in [SECRET, OWNER_TOKEN, "wrong-token-0123456789", "secret-person-1@example.com", "v1="] {
        assert!(!logs.contains(secret), "{secret:?} appears in the logs:\n{logs}");
    }
}
