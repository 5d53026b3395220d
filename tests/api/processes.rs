//! Real `holdfast` processes (the built binary): graceful shutdown on SIGTERM, request ids and
//! no secrets in the logs, several replicas on one database, replay, and the Dockerfile's
//! runtime contract.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use holdfast::store::Store;
use serde_json::{Value, json};

use crate::support::helpers::{SECRET, Sub, customer, event, fresh_database, invoice, now};
use holdfast::ingest::signature::sign;

const BIN: &str = env!("CARGO_BIN_EXE_holdfast");
const OWNER_TOKEN: &str = "owner-token-never-logged-0123456789";

/// A `holdfast serve` child logging JSON to a file.
struct Server {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Server {
    fn start(database_url: &str, dir: &Path, name: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("HOLDFAST_STRIPE_MODE", "test")
            .env("HOLDFAST_OWNER_TOKEN", OWNER_TOKEN)
            .env("HOLDFAST_BIND", "127.0.0.1:0")
            .env("HOLDFAST_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .current_dir(dir)
            .stdout(Stdio::from(out.try_clone().expect("clone")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("holdfast starts");
        let port = wait_for_port(&log);
        Self { child, address: format!("http://127.0.0.1:{port}"), log }
    }

    fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
    }

    /// Wait (bounded) for the process to exit; its exit status.
    fn wait(mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("holdfast did not exit within 30 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The port from the "holdfast listening" line (the server binds port 0).
fn wait_for_port(log: &Path) -> u16 {
    for _ in 0..400 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("holdfast listening")) {
            if let Some(port) = serde_json::from_str::<Value>(line).ok().and_then(|v| v["port"].as_u64()) {
                return port as u16;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("holdfast did not start:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

async fn post(client: &reqwest::Client, address: &str, event: &Value) -> Result<reqwest::Response, reqwest::Error> {
    let body = event.to_string();
    client
        .post(format!("{address}/webhooks/stripe"))
        .header("Stripe-Signature", sign(body.as_bytes(), SECRET, now()))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
}

fn customer_event(n: usize) -> Value {
    json!({"id": format!("evt_proc_{n:05}"), "object": "event", "type": "customer.created", "created": 1_700_000_000 + n as i64,
           "livemode": false, "api_version": "2025-03-31.basil",
           "data": {"object": customer(&format!("cus_proc_{n:05}"), &format!("secret-person-{n}@example.com"), 1_700_000_000)}})
}

async fn stored_ids(url: &str) -> std::collections::BTreeSet<String> {
    let store = Store::connect(url).await.expect("connect");
    let ids = store.dump_state().await.expect("state").event_ids.into_iter().collect();
    store.close().await;
    ids
}

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
    assert_eq!(store.count_events().await.expect("count"), 120);
    assert!(store.wait_projected(Duration::from_secs(30)).await.expect("cursor readable"), "the log is projected");
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
    // Each customer: created, subscribed, then a failed payment (one dunning email).
    let journey = |n: usize| {
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
    };
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let senders: Vec<_> = (0..CUSTOMERS)
        .map(|n| {
            let (client, addresses, done) = (client.clone(), addresses.clone(), done_tx.clone());
            let events = journey(n);
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
        let taken: Vec<chrono::DateTime<chrono::Utc>> = replicas
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leader)
            .flat_map(|(_, r)| std::fs::read_to_string(&r.log).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|l| l.contains("projector lease taken"))
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .filter_map(|v| v["timestamp"].as_str().and_then(|t| t.parse().ok()))
            .collect();
        assert_eq!(taken.len(), 1, "exactly one survivor took the lease");
        let takeover = taken[0] - killed_utc;
        eprintln!("lease taken over {takeover:?} after the kill");
        assert!(takeover < chrono::TimeDelta::seconds(10), "takeover took {takeover:?}");
    }
    assert_eq!(store.count_events().await.expect("count"), (3 * CUSTOMERS) as i64, "every event logged once");
    let state = store.dump_state().await.expect("state");
    assert_eq!((state.customers.len(), state.subscriptions.len(), state.invoices.len()), (CUSTOMERS, CUSTOMERS, CUSTOMERS));
    assert_eq!(state.history.len(), CUSTOMERS, "one history row per subscription snapshot");
    let rows = store.outbox_rows().await.expect("outbox");
    let mut per_customer = std::collections::BTreeMap::<&str, usize>::new();
    rows.iter().for_each(|r| *per_customer.entry(r.recipient.as_str()).or_default() += 1);
    let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.dedupe_key.as_str()).collect();
    assert_eq!(keys.len(), rows.len(), "no email queued twice");
    assert_eq!(per_customer.len(), CUSTOMERS, "every customer's dunning series queued");
    let series: std::collections::BTreeSet<usize> = per_customer.values().copied().collect();
    assert_eq!(series.len(), 1, "every customer got the same series (steps per customer: {series:?})");
    assert_eq!(store.projector_lag(now()).await.expect("lag").parked_events, 0);
    store.close().await;
    for (i, r) in replicas.into_iter().enumerate() {
        if i != leader {
            r.sigterm();
            assert!(r.wait().success());
        }
    }
}

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

/// Builds the Dockerfile's build stage from a context of only what it copies (offline, dev
/// profile, a target directory under target/ kept between runs), then runs the result as
/// the runtime stage would. The first run compiles the dependencies once more (minutes);
/// reruns recompile only the crate. The image's database is SQLite (its default): one run.
#[test]
#[ignore = "needs sqlite"]
fn sqlite_only_the_dockerfile_builds_from_its_own_context_and_runs() {
    crate::support::requires::database("sqlite");
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/scripts/check-dockerfile")).output().expect("python3 runs the check");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// The check itself fails for a Dockerfile that forgets a directory the code embeds, and for
/// one that copies something the context does not have.
#[test]
fn the_dockerfile_check_refuses_a_missing_copy_or_an_include_outside_the_copied_set() {
    let root = env!("CARGO_MANIFEST_DIR");
    let original = std::fs::read_to_string(format!("{root}/Dockerfile")).expect("Dockerfile");
    let dir = tempfile::tempdir().expect("dir");
    let check = |dockerfile: &str| {
        let path = dir.path().join("Dockerfile");
        std::fs::write(&path, dockerfile).expect("write");
        let out = Command::new(format!("{root}/scripts/check-dockerfile"))
            .args(["--static-only", "--dockerfile"])
            .arg(&path)
            .output()
            .expect("python3 runs the check");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, said) = check(&original);
    assert!(ok, "the real Dockerfile passes the static check: {said}");

    let (ok, said) = check(&original.replace("COPY templates ./templates\n", ""));
    assert!(!ok, "a Dockerfile without templates/ must fail: {said}");
    assert!(said.contains("templates/email/_layout.html") && said.contains("outside the files the Dockerfile copies"), "{said}");

    let (ok, said) =
        check(&original.replace("COPY templates ./templates\n", "COPY templates ./templates\nCOPY assets ./assets\n"));
    assert!(!ok, "a COPY of a missing path must fail: {said}");
    assert!(said.contains("COPY assets: not in the build context"), "{said}");
}
