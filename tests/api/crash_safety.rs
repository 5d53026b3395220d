//! SIGKILL in the middle of a load run: every acknowledged event survives, and after
//! redelivering what was not acknowledged (as Stripe does) the projections equal those of a
//! clean, ordered delivery of the same events.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use holdfast::ingest::signature::sign;
use holdfast::store::Store;
use serde_json::Value;
use tokio::sync::Notify;

use crate::support::helpers::{SECRET, Sub, customer, event_with_id, fresh_database, invoice, now, spawn_app};
use crate::support::process::ServerProcess;

const CUSTOMERS: usize = 24;
const CONCURRENCY: usize = 16;

/// Customers, subscriptions changing over time (quantity, price, status) and invoices: the
/// projection must keep the latest snapshot of each whatever order they arrive in.
fn workload() -> Vec<Value> {
    let t0 = 1_700_000_000;
    let mut events = Vec::new();
    for c in 0..CUSTOMERS {
        let cus = format!("cus_crash{c:03}");
        let sub_id = format!("sub_crash{c:03}");
        let t = t0 + i64::try_from(c).expect("small") * 1000;
        events.push(event_with_id(&format!("evt_crash_{c:03}_c"), "customer.created", t, customer(&cus, "x@example.com", t)));
        let mut sub = Sub::new(&sub_id, &cus, t);
        for step in 0..10_i64 {
            sub.quantity = 1 + step % 4;
            sub.unit_amount = 1000 + 500 * (step % 3);
            sub.status = if step == 9 && c % 3 == 0 { "canceled" } else { "active" };
            let kind = if step == 0 { "customer.subscription.created" } else { "customer.subscription.updated" };
            let id = format!("evt_crash_{c:03}_s{step:02}");
            events.push(event_with_id(&id, kind, t + 10 * step, sub.object()));
        }
        for n in 0..4_i64 {
            let status = if n == 3 && c % 2 == 0 { "open" } else { "paid" };
            let inv = invoice(&format!("in_crash{c:03}_{n}"), &cus, &sub_id, status, 2000, t + 100 + n);
            events.push(event_with_id(&format!("evt_crash_{c:03}_i{n}"), "invoice.updated", t + 100 + n, inv));
        }
    }
    events
}

fn id_of(event: &Value) -> String {
    event["id"].as_str().expect("event id").to_owned()
}

async fn post(client: &reqwest::Client, address: &str, body: &str) -> Result<reqwest::StatusCode, reqwest::Error> {
    let header = sign(body.as_bytes(), SECRET, now());
    let response = client
        .post(format!("{address}/webhooks/stripe"))
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", header)
        .body(body.to_owned())
        .send()
        .await?;
    Ok(response.status())
}

/// The load under way: the ids acknowledged so far, a signal once a third of the events are,
/// and the workers (done when every event was sent once).
struct Load {
    acked: Arc<Mutex<HashSet<String>>>,
    third_acked: Arc<Notify>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// `CONCURRENCY` workers sending `events` to `address`, each once; a client error fails them.
fn start_load(events: &[Value], client: &reqwest::Client, address: &str) -> Load {
    let total = events.len();
    let queue: Arc<Mutex<Vec<(String, String)>>> =
        Arc::new(Mutex::new(events.iter().rev().map(|e| (id_of(e), e.to_string())).collect()));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let ack_count = Arc::new(AtomicUsize::new(0));
    let third_acked = Arc::new(Notify::new());
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (queue, acked, ack_count, third_acked) = (queue.clone(), acked.clone(), ack_count.clone(), third_acked.clone());
        let (client, address) = (client.clone(), address.to_owned());
        workers.push(tokio::spawn(async move {
            loop {
                let Some((id, body)) = queue.lock().expect("queue").pop() else { break };
                // Anything but a 200 (refused, reset, 5xx) is "not acknowledged": Stripe retries.
                if let Ok(status) = post(&client, &address, &body).await {
                    assert!(!status.is_client_error(), "{id} refused with {status}");
                    if status == 200 {
                        acked.lock().expect("acked").insert(id);
                        if ack_count.fetch_add(1, Ordering::SeqCst) + 1 == total / 3 {
                            third_acked.notify_one();
                        }
                    }
                }
            }
        }));
    }
    Load { acked, third_acked, workers }
}

/// The projections of `events` delivered one by one in order, to a fresh database.
async fn clean_ordered_state(events: &[Value]) -> holdfast::store::StateDump {
    let clean = spawn_app().await;
    let mut ordered = events.to_vec();
    ordered.sort_by_key(|e| (e["created"].as_i64(), id_of(e)));
    for e in &ordered {
        clean.deliver(e).await;
    }
    clean.state().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_sigkill_and_redelivery_converges() {
    let events = workload();
    let total = events.len();
    let (url, _dir) = fresh_database().await;
    let env = [("DATABASE_URL", url.as_str()), ("STRIPE_WEBHOOK_SECRET", SECRET)];
    let mut server = ServerProcess::start(&env);

    // Concurrent load; the process is killed once a third of the events are acknowledged.
    let client = reqwest::Client::new();
    let Load { acked, third_acked, workers } = start_load(&events, &client, &server.address);
    tokio::time::timeout(std::time::Duration::from_secs(120), third_acked.notified())
        .await
        .unwrap_or_else(|_| panic!("a third of the events were never acknowledged:\n{}", server.output()));
    server.kill();
    for worker in workers {
        worker.await.expect("load worker");
    }
    let acked = acked.lock().expect("acked").clone();
    assert!(acked.len() >= total / 3 && acked.len() < total, "the kill must land mid-run: {}/{total} acknowledged", acked.len());

    // Restart on the same database: every acknowledged event is there before any redelivery.
    let server = ServerProcess::start(&env);
    let store = Store::connect(&url).await.expect("database reopens");
    let stored: HashSet<String> = store.dump_state().await.expect("state").event_ids.into_iter().collect();
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost after SIGKILL: {lost:?}");

    // Stripe redelivers everything it has no 2xx for (some were committed but not answered).
    let unacked: Vec<&Value> = events.iter().filter(|e| !acked.contains(&id_of(e))).collect();
    for e in &unacked {
        let status = post(&client, &server.address, &e.to_string()).await.expect("restarted server answers");
        assert_eq!(status, 200, "redelivery of {}", e["id"]);
    }
    // The restarted server projects behind its answers: wait until it has passed the head.
    assert!(store.wait_projected(std::time::Duration::from_secs(60)).await.expect("cursor readable"), "the log is projected");
    let after_crash = store.dump_state().await.expect("state");
    store.close().await;

    // The same events, delivered one by one in order, to a fresh database.
    let reference = clean_ordered_state(&events).await;
    assert_eq!(after_crash.event_ids.len(), total);
    assert_eq!(after_crash, reference, "projections after crash + redelivery differ from a clean delivery");
    eprintln!(
        "crash test: {total} events, {} acknowledged before SIGKILL, {} committed at kill time, {} redelivered",
        acked.len(),
        stored.len(),
        unacked.len()
    );
}
