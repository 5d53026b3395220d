//! Several replicas on one database: nothing lost or duplicated, and a killed projector is
//! replaced without projecting or emailing anything twice.

use std::time::Duration;

use holdfast::store::Store;
use serde_json::{Value, json};

use crate::support::helpers::{Sub, customer, event, fresh_database, invoice, now};
use crate::support::serve_child::{Server, customer_event, post};
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_replicas_on_one_database_lose_nothing_and_duplicate_nothing() {
    let (url, _db_dir) = fresh_database().await;
    let dir = tempfile::tempdir().expect("dir");
    let replicas: Vec<Server> = (0..3).map(|n| Server::start(&url, dir.path(), &format!("replica{n}"))).collect();
    let client = reqwest::Client::new();
    // 60 events, each delivered to every replica at once (Stripe retrying against another
    // machine), and 60 more spread one per replica.
    let shared: Vec<Value> = (0..60).map(customer_event).collect();
    let own: Vec<Value> = (60..120).map(customer_event).collect();
    let mut sends = Vec::new();
    for e in &shared {
        for r in &replicas {
            sends.push(post(&client, &r.address, e));
        }
    }
    for (i, e) in own.iter().enumerate() {
        sends.push(post(&client, &replicas[i % replicas.len()].address, e));
    }
    let responses = futures::future::join_all(sends).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.as_ref().map(|r| r.status().as_u16()).unwrap_or(0)).collect();
    assert!(statuses.iter().all(|s| *s == 200), "every delivery acknowledged: {statuses:?}");
    let mut duplicates = 0;
    for r in responses.into_iter().flatten() {
        let body: Value = r.json().await.expect("json");
        duplicates += usize::from(body["duplicate"] == true);
    }
    assert_eq!(duplicates, shared.len() * (replicas.len() - 1), "each shared event stored exactly once");
    let store = Store::connect(&url).await.expect("connect");
    // Counted once the log is projected: on SQLite an acknowledged webhook may still wait in
    // the inbox (durable there) until a projector pass copies it into the log.
    assert!(store.wait_projected(Duration::from_secs(30)).await.expect("cursor readable"), "the log is projected");
    assert_eq!(store.count_events().await.expect("count"), 120, "every event logged once");
    assert_eq!(store.dump_state().await.expect("state").customers.len(), 120);
    store.close().await;
    for r in replicas {
        r.sigterm();
        assert!(r.wait().success());
    }
}

/// The replica whose log says it took the projector lease (Postgres), waiting for one.
fn projector_leader(replicas: &[Server]) -> usize {
    for _ in 0..400 {
        if let Some(i) =
            replicas.iter().position(|r| std::fs::read_to_string(&r.log).unwrap_or_default().contains("projector lease taken"))
        {
            return i;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no replica took the projector lease");
}

/// Deliver `event` to the replicas, starting at `first`, until one acknowledges it (Stripe
/// retries a delivery that got no answer).
async fn deliver_somewhere(client: &reqwest::Client, addresses: &[String], first: usize, event: &Value) {
    for attempt in 0..addresses.len() * 20 {
        let address = &addresses[(first + attempt) % addresses.len()];
        if let Ok(r) = post(client, address, event).await
            && r.status() == 200
        {
            return;
        }
    }
    panic!("{} acknowledged by no replica", event["id"]);
}

/// Customer `n`'s events: created, subscribed, then a failed payment at `t` (one dunning email).
fn failing_journey(n: usize, t: i64) -> Vec<Value> {
    let (cus, sub, inv) = (format!("cus_k{n:04}"), format!("sub_k{n:04}"), format!("in_k{n:04}"));
    let mut failed = invoice(&inv, &cus, &sub, "open", 2000, t);
    failed["attempt_count"] = json!(1);
    failed["next_payment_attempt"] = json!(t + 3 * 86_400);
    failed["customer_email"] = json!(format!("k{n}@example.com"));
    vec![
        event("customer.created", t - 60, customer(&cus, &format!("k{n}@example.com"), t - 60)),
        event("customer.subscription.created", t - 60, Sub::new(&sub, &cus, t - 60).object()),
        event("invoice.payment_failed", t, failed),
    ]
}

/// When each replica but the killed `leader` logged that it took the projector lease.
fn lease_taken_by_survivors(replicas: &[Server], leader: usize) -> Vec<chrono::DateTime<chrono::Utc>> {
    replicas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .flat_map(|(_, r)| std::fs::read_to_string(&r.log).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| l.contains("projector lease taken"))
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .filter_map(|v| v["timestamp"].as_str().and_then(|t| t.parse().ok()))
        .collect()
}

/// Every one of `customers` has a dunning series in the outbox, the same number of steps
/// each, and no email is queued twice.
async fn assert_each_dunning_series_queued_once(store: &Store, customers: usize) {
    let rows = store.outbox_rows().await.expect("outbox");
    let mut per_customer = std::collections::BTreeMap::<&str, usize>::new();
    rows.iter().for_each(|r| *per_customer.entry(r.recipient.as_str()).or_default() += 1);
    let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.dedupe_key.as_str()).collect();
    assert_eq!(keys.len(), rows.len(), "no email queued twice");
    assert_eq!(per_customer.len(), customers, "every customer's dunning series queued");
    let series: std::collections::BTreeSet<usize> = per_customer.values().copied().collect();
    assert_eq!(series.len(), 1, "every customer got the same series (steps per customer: {series:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_projector_is_replaced_and_nothing_is_projected_or_emailed_twice() {
    const CUSTOMERS: usize = 150;
    let (url, _db_dir) = fresh_database().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut replicas: Vec<Server> = (0..3).map(|n| Server::start(&url, dir.path(), &format!("replica{n}"))).collect();
    // Postgres: the lease holder is the one to kill; SQLite has no lease (any replica projects).
    let leader = if crate::support::helpers::backend() == "postgres" { projector_leader(&replicas) } else { 0 };
    let addresses: Vec<String> = replicas.iter().map(|r| r.address.clone()).collect();
    let client = reqwest::Client::new();
    let t = now() - 3600;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let senders: Vec<_> = (0..CUSTOMERS)
        .map(|n| {
            let (client, addresses, done) = (client.clone(), addresses.clone(), done_tx.clone());
            let events = failing_journey(n, t);
            tokio::spawn(async move {
                for e in &events {
                    deliver_somewhere(&client, &addresses, n, e).await;
                }
                let _ = done.send(n);
            })
        })
        .collect();
    drop(done_tx);
    // SIGKILL the projecting replica mid-load.
    for _ in 0..CUSTOMERS / 3 {
        done_rx.recv().await.expect("deliveries progress");
    }
    replicas[leader].child.kill().expect("SIGKILL");
    let killed_at = std::time::Instant::now();
    let killed_utc = chrono::Utc::now();
    futures::future::join_all(senders).await;
    eprintln!("deliveries done {:?} after the kill", killed_at.elapsed());

    let store = Store::connect(&url).await.expect("connect");
    let caught_up = store.wait_projected(Duration::from_secs(30)).await.expect("cursor readable");
    assert!(caught_up, "the survivors projected the whole log");
    eprintln!("log projected {:?} after the kill", killed_at.elapsed());
    if crate::support::helpers::backend() == "postgres" {
        // The takeover: a survivor logs that it took the lease within 10 s of the kill.
        let taken = lease_taken_by_survivors(&replicas, leader);
        assert_eq!(taken.len(), 1, "exactly one survivor took the lease");
        let takeover = taken[0] - killed_utc;
        eprintln!("lease taken over {takeover:?} after the kill");
        assert!(takeover < chrono::TimeDelta::seconds(10), "takeover took {takeover:?}");
    }
    assert_eq!(store.count_events().await.expect("count"), (3 * CUSTOMERS) as i64, "every event logged once");
    let state = store.dump_state().await.expect("state");
    assert_eq!((state.customers.len(), state.subscriptions.len(), state.invoices.len()), (CUSTOMERS, CUSTOMERS, CUSTOMERS));
    assert_eq!(state.history.len(), CUSTOMERS, "one history row per subscription snapshot");
    assert_each_dunning_series_queued_once(&store, CUSTOMERS).await;
    assert_eq!(store.projector_lag(now()).await.expect("lag").parked_events, 0);
    store.close().await;
    for (i, r) in replicas.into_iter().enumerate() {
        if i != leader {
            r.sigterm();
            assert!(r.wait().success());
        }
    }
}
