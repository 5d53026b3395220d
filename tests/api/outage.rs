//! Database outages: the webhook answers 503 (never 2xx, never 4xx, so Stripe retries), the
//! process keeps running, and it recovers on its own when the database is back.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;

use crate::support::helpers::{Config, Sub, TestApp, customer, event, fresh_database, now, spawn_app_on};
use crate::support::process::CuttableProxy;

fn customer_event(id: &str) -> Value {
    event("customer.created", now(), customer(id, "outage@example.com", now()))
}

/// Poll `/readyz` until it answers `want` (bounded: recovery must come by itself, quickly).
async fn wait_ready(app: &TestApp, want: u16) {
    for _ in 0..150 {
        if app.get("/readyz").await.status() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("/readyz never answered {want}");
}

/// `postgres://user:pass@host:port/db` → (`host:port`, its socket address).
fn postgres_host(url: &str) -> (String, SocketAddr) {
    let after_at = url.rsplit_once('@').map(|(_, rest)| rest).expect("URL has user@host");
    let host_port = after_at.split('/').next().expect("URL has a host").to_owned();
    let with_port = if host_port.contains(':') { host_port.clone() } else { format!("{host_port}:5432") };
    let addr = with_port.to_socket_addrs().expect("host resolves").next().expect("an address");
    (host_port, addr)
}

/// An app whose Postgres connections all go through a proxy the test can cut and restore.
async fn app_behind_a_cuttable_proxy() -> (TestApp, CuttableProxy) {
    crate::support::requires::database("postgres");
    let (url, dir) = fresh_database().await;
    let (host_port, upstream) = postgres_host(&url);
    let proxy = CuttableProxy::start(upstream);
    let app = spawn_app_on(url.replacen(&host_port, &proxy.addr.to_string(), 1), dir, Config::new()).await;
    (app, proxy)
}

/// A database away for a moment (a restart, a failover, a connection that died while idle)
/// costs a webhook a short wait, not a 503: the writer tries again on fresh connections
/// until its deadline, and the event is stored at its first delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs postgres"]
async fn postgres_only_a_database_away_for_a_moment_delays_a_webhook_and_stores_it() {
    let (app, proxy) = app_behind_a_cuttable_proxy().await;
    app.deliver(&customer_event("cus_before_blip")).await;

    proxy.cut();
    let refused_before = proxy.refused();
    let blip = customer_event("cus_during_blip");
    let (client, address, body) = (app.client.clone(), app.address.clone(), blip.clone());
    let delivery = tokio::spawn(async move { crate::support::helpers::post_signed(&client, &address, &body).await });
    // The writer has been refused at least twice (a fresh connection after the kept one
    // died, and another after a pause) before the database comes back.
    for _ in 0..500 {
        if proxy.refused() >= refused_before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(proxy.refused() >= refused_before + 2, "the writer never tried the cut database");
    assert!(!delivery.is_finished(), "the webhook was answered while the database was away");
    proxy.restore();

    assert_eq!(delivery.await.expect("request task"), 200, "stored once the database answered again");
    let stored = app.state().await.event_ids;
    assert!(stored.iter().any(|id| id == blip["id"].as_str().expect("id")), "the event is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs postgres"]
async fn postgres_only_an_outage_answers_503_and_recovers_by_itself() {
    let (app, proxy) = app_behind_a_cuttable_proxy().await;
    let before = customer_event("cus_before_outage");
    app.deliver(&before).await;

    // Cut the database while a burst of webhooks is in flight.
    let burst: Vec<Value> = (0..40).map(|n| customer_event(&format!("cus_burst{n:02}"))).collect();
    let mut in_flight = Vec::new();
    for (n, e) in burst.iter().enumerate() {
        if n == 10 {
            proxy.cut();
        }
        let (app_client, address, e) = (app.client.clone(), app.address.clone(), e.clone());
        in_flight.push(tokio::spawn(async move { crate::support::helpers::post_signed(&app_client, &address, &e).await }));
    }
    let mut acked = HashSet::new();
    for (e, task) in burst.iter().zip(in_flight) {
        let status = task.await.expect("request task");
        assert!(status == 200 || status == 503, "{} answered {status} during the outage", e["id"]);
        if status == 200 {
            acked.insert(e["id"].as_str().expect("id").to_owned());
        }
    }
    let during = customer_event("cus_during_outage");
    assert_eq!(app.post_event(&during).await.status(), 503, "a webhook during the outage must get 503");
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200, "the process stays up");

    proxy.restore();
    wait_ready(&app, 200).await;
    app.deliver(&during).await;
    for e in burst.iter().filter(|e| !acked.contains(e["id"].as_str().expect("id"))) {
        app.deliver(e).await;
    }
    let stored: HashSet<String> = app.state().await.event_ids.into_iter().collect();
    for e in burst.iter().chain([&before, &during]) {
        assert!(stored.contains(e["id"].as_str().expect("id")), "{} not stored after recovery", e["id"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs sqlite"]
async fn sqlite_only_a_locked_database_answers_503_then_recovers() {
    crate::support::requires::database("sqlite");
    let (url, dir) = fresh_database().await;
    let app = spawn_app_on(url.clone(), dir, Config::new()).await;
    app.deliver(&customer_event("cus_before_lock")).await;

    // Another process's write transaction holds the inbox's lock (SQLite's webhooks are
    // written there) past our wait: the webhook is refused with 503, not acknowledged.
    let mut other = sqlx::SqliteConnection::connect(&format!("{url}-inbox")).await.expect("second connection");
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut other).await.expect("exclusive lock");
    let sub = Sub::new("sub_locked", "cus_locked", now());
    let during = event("customer.subscription.created", now(), sub.object());
    assert_eq!(app.post_event(&during).await.status(), 503, "a webhook that cannot be written must get 503");
    assert_eq!(app.get("/healthz").await.status(), 200);
    sqlx::query("ROLLBACK").execute(&mut other).await.expect("release");
    app.deliver(&during).await;
    let state = app.state().await;
    assert!(state.subscriptions.iter().any(|s| s.id == "sub_locked"), "stored once the lock is gone");

    // The log's lock held instead: webhooks are still acknowledged (they wait in the inbox,
    // durably) and are projected once the lock is gone.
    let mut log = sqlx::SqliteConnection::connect(&url).await.expect("second connection");
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut log).await.expect("exclusive lock");
    let later = event("customer.created", now(), customer("cus_log_locked", "locked@example.com", now()));
    let body = later.to_string();
    let header = holdfast::ingest::signature::sign(body.as_bytes(), crate::support::helpers::SECRET, now());
    assert_eq!(app.post_raw(body, Some(&header)).await.status(), 200, "the inbox takes it while the log is locked");
    sqlx::query("ROLLBACK").execute(&mut log).await.expect("release");
    let state = app.state().await;
    assert!(state.customers.iter().any(|c| c.id == "cus_log_locked"), "projected once the lock is gone");
}

/// Mail is slow or hung: the outbox worker waits on the mail server while webhooks keep being
/// acknowledged and stored (the webhook path never touches mail). No timing is asserted: the
/// send is provably still in progress while every webhook is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_mail_server_holds_the_outbox_but_not_the_webhooks() {
    use crate::support::mail_world::{DAY, app_with_sink, payment_failed, subscriber};
    let (app, sink) = app_with_sink(Config::new()).await;
    let t = now() - 3600;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 14 * DAY))).await;
    sink.stall();
    let worker = app.outbox.clone();
    let pass = tokio::spawn(async move { worker.run_until_idle_at(now()).await });
    sink.wait_stuck().await;

    for i in 0..50 {
        let c = customer(&format!("cus_slow{i}"), &format!("slow{i}@example.com"), t);
        assert_eq!(app.post_event(&event("customer.created", t + i, c)).await.status(), 200);
    }
    assert!(!pass.is_finished(), "the send is still waiting on the mail server");
    let stored = app.state().await.customers.len();
    assert_eq!(stored, 51, "every acknowledged webhook is stored while mail hangs");

    sink.release();
    assert_eq!(pass.await.expect("join").expect("pass"), 1);
    assert_eq!(sink.messages().len(), 1);
}
