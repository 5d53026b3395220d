//! `holdfast-summary-bench`: the owner's numbers at scale, while webhooks arrive.
//!
//! Generates a simulated business (crates/sim: N customers over 3 years of history) and writes
//! its events straight into a fresh database through the store's own append-and-project
//! path in large batches (no HTTP, no signatures: the loading is not what is measured; the
//! maintained figures are built as the events are projected, and the rate is reported as
//! the projector's). Then it starts the real server as its own process (the `holdfast`
//! binary next to this one, `holdfast serve`) and measures over HTTP:
//! - the first `GET /api/summary` once the server answers `/healthz`;
//! - p50/p99 over `--requests` requests cycling through every month **while signed
//!   webhooks arrive**: another simulated business's events are POSTed to
//!   `/webhooks/stripe` at `--write-rate` per second (the achieved rate is reported), and the
//!   projector's lag (last webhook acknowledged → projected) once they stop;
//! - the dashboard page (logged in), first and p50;
//! - the server process's RSS, sampled every 50 ms from its start to the end (peak).
//!
//! `holdfast-summary-bench --customers 100000 --database-url sqlite:///tmp/s.db`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use holdfast::clock::Clock;
use holdfast::domain::event::Event;
use holdfast::ingest::signature::sign;
use holdfast::store::{IngestOptions, Store};
use holdfast_sim::{Business, Params, events};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(name = "holdfast-summary-bench", about = "Times GET /api/summary over a generated business")]
struct Args {
    /// Customers to generate.
    #[arg(long, default_value_t = 10_000)]
    customers: usize,
    /// A fresh database: `sqlite:///path.db` or `postgres://…/db` (it is migrated and filled).
    #[arg(long)]
    database_url: String,
    /// Timed warm requests.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Events per ingest transaction while loading.
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    /// Signed webhooks per second POSTed while the timed requests run.
    #[arg(long, default_value_t = 60)]
    write_rate: u64,
    /// The server binary (default: `holdfast` next to this one).
    #[arg(long)]
    server: Option<std::path::PathBuf>,
}

const START: i64 = 1_672_531_200; // 2023-01-01
const DAY: i64 = 86_400;
const CHUNK: usize = 2_000;
const TOKEN: &str = "bench-owner-token";
const SECRET: &str = "whsec_bench";

/// A process's resident memory in KiB (0 once it is gone).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    kib.unwrap_or(0)
}

/// A simulated business of `n` customers as the store's events; `tag` keeps ids apart.
fn business_events(seed: u64, n: usize, tag: &str) -> Vec<Event> {
    let empty = |_: &str| json!({});
    let params = Params { seed, customers: n, start: START, end: START + 1095 * DAY, signup_until: START + 1030 * DAY };
    let business = Business::simulate(params);
    let retag = |v: serde_json::Value| -> serde_json::Value {
        if tag.is_empty() {
            return v;
        }
        let mut text = v.to_string();
        for prefix in ["cus_", "sub_", "in_", "di_", "si_", "pm_", "ch_", "pi_"] {
            text = text.replace(&format!("\"{prefix}"), &format!("\"{prefix}{tag}"));
        }
        serde_json::from_str(&text).unwrap_or(v)
    };
    events::render(&business, &empty)
        .into_iter()
        .map(|e| {
            let object = retag(e.object);
            let id = format!("{}{tag}", e.id);
            let raw = json!({"id": id, "object": "event", "type": e.kind, "created": e.created, "livemode": false,
                             "api_version": "2025-03-31.basil", "data": {"object": object}})
            .to_string();
            Event {
                id,
                kind: e.kind.to_string(),
                created: e.created,
                livemode: false,
                api_version: None,
                account: None,
                object,
                raw,
            }
        })
        .collect()
}

async fn load(store: &Store, customers: usize, batch: usize) -> Result<usize> {
    let mut total = 0;
    for (chunk, first) in (0..customers).step_by(CHUNK).enumerate() {
        let n = CHUNK.min(customers - first);
        let evs = business_events(1000 + chunk as u64, n, "");
        for part in evs.chunks(batch) {
            let refs: Vec<&Event> = part.iter().collect();
            // As seen by the server's clock (the system's): the due times of the figures are
            // computed against it, so the server finds nothing left to recompute from the load.
            store.ingest_with(&refs, Clock::system().now(), IngestOptions::IMPORT).await.context("bulk ingest")?;
        }
        total += evs.len();
        eprint!("\r  loaded {} customers, {total} events", first + n);
    }
    eprintln!();
    Ok(total)
}

/// A process's CPU time (user + system) in seconds, from `/proc/<pid>/stat` (0 once it is
/// gone). Clock ticks are 100 per second on Linux.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start at `state`: utime and stime are
    // the 12th and 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn timed(request: reqwest::RequestBuilder) -> Result<f64> {
    let t = Instant::now();
    let response = request.send().await.context("request")?;
    anyhow::ensure!(response.status() == 200, "status {}", response.status());
    let _ = response.bytes().await?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// The projector's lag as `/metrics` reports it: (events not yet projected, age in seconds
/// of the oldest).
async fn projector_lag(client: &reqwest::Client, base: &str) -> Option<(f64, f64)> {
    let text = client.get(format!("{base}/metrics")).bearer_auth(TOKEN).send().await.ok()?.text().await.ok()?;
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse::<f64>().ok()))
    };
    Some((gauge("holdfast_projector_lag_events")?, gauge("holdfast_projector_lag_seconds")?))
}

/// The server binary: `--server`, else `holdfast` next to this binary.
fn server_binary(args: &Args) -> Result<std::path::PathBuf> {
    if let Some(path) = &args.server {
        return Ok(path.clone());
    }
    let me = std::env::current_exe().context("locating this binary")?;
    let path = me.with_file_name("holdfast");
    anyhow::ensure!(path.exists(), "{} is missing: build it (cargo build --release --bins) or pass --server", path.display());
    Ok(path)
}

/// The server process, stopped when the bench ends (or fails).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let server = server_binary(&args)?;
    let store = Store::connect(&args.database_url).await.context("connecting")?;
    store.migrate().await?;
    let started = Instant::now();
    let n_events = load(&store, args.customers, args.batch).await?;
    let load_secs = started.elapsed().as_secs_f64();
    println!(
        "backend {}: {} customers, {n_events} events appended and projected in {load_secs:.1} s ({:.0} events/s, figures maintained)",
        store.backend(),
        args.customers,
        n_events as f64 / load_secs.max(1e-9)
    );
    store.close().await;

    // The server, as its own process, so its memory is its own.
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let spawned = Instant::now();
    let mut child = Server(
        std::process::Command::new(&server)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &args.database_url)
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("HOLDFAST_STRIPE_MODE", "test")
            .env("HOLDFAST_BIND", format!("127.0.0.1:{port}"))
            .env("HOLDFAST_OWNER_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?,
    );
    let pid = child.0.id();
    let peak_kib = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak_kib.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            anyhow::bail!("the server exited while starting: {status}");
        }
        if client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        anyhow::ensure!(spawned.elapsed() < Duration::from_secs(300), "the server did not answer in 5 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_ms = spawned.elapsed().as_secs_f64() * 1000.0;
    let months: Vec<String> = (0..36).map(|i| format!("{}-{:02}", 2023 + i / 12, i % 12 + 1)).collect();
    let summary = |month: &str| client.get(format!("{base}/api/summary?month={month}")).bearer_auth(TOKEN);
    let first = timed(summary("2025-12")).await?;
    let rss_idle = rss_kib(pid);

    // Signed webhooks arrive while the requests are timed: another business's events, POSTed
    // at the asked rate whatever each answer's latency (up to 64 in flight).
    let incoming: Vec<String> = business_events(7_777, 2_000, "live").into_iter().map(|e| e.raw).collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (client, url, acked) = (client.clone(), format!("{base}/webhooks/stripe"), acked.clone());
        let rate = args.write_rate.max(1);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
            let mut posts = tokio::task::JoinSet::new();
            let began = Instant::now();
            for body in incoming {
                if *stop_rx.borrow() {
                    break;
                }
                tick.tick().await;
                let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
                let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
                posts.spawn(async move {
                    let header = sign(body.as_bytes(), SECRET, Clock::system().now());
                    let sent = client
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .header("Stripe-Signature", header)
                        .body(body)
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(permit);
                });
            }
            let sending = began.elapsed().as_secs_f64();
            while posts.join_next().await.is_some() {}
            sending
        })
    };
    // The projector's lag while webhooks arrive, from `/metrics`.
    let lag_watch = {
        let (client, base, mut stop) = (client.clone(), base.clone(), stop_tx.subscribe());
        tokio::spawn(async move {
            let (mut events, mut secs) = (0.0_f64, 0.0_f64);
            while !*stop.borrow() {
                if let Some((e, s)) = projector_lag(&client, &base).await {
                    (events, secs) = (events.max(e), secs.max(s));
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.changed() => {}
                }
            }
            (events, secs)
        })
    };
    let mut warm = Vec::with_capacity(args.requests);
    let (cpu_before, timed_from) = (cpu_secs(pid), Instant::now());
    for i in 0..args.requests {
        warm.push(timed(summary(&months[i % months.len()])).await?);
    }
    let (summary_cpu, summary_wall) = (cpu_secs(pid) - cpu_before, timed_from.elapsed().as_secs_f64());
    let login = client.post(format!("{base}/dashboard/login")).form(&[("token", TOKEN)]).send().await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .context("dashboard login sets a cookie")?
        .to_string();
    let mut dashboard = Vec::new();
    for _ in 0..20 {
        dashboard.push(timed(client.get(format!("{base}/dashboard")).header("Cookie", &cookie)).await?);
    }
    let dashboard_first = dashboard[0];
    let _ = stop_tx.send(true);
    let secs = writer.await?;
    let written = acked.load(Ordering::Relaxed);
    // The projector's lag: from the last acknowledged webhook until none is left unprojected.
    let stopped = Instant::now();
    let lag_ms = loop {
        let lag = projector_lag(&client, &base).await;
        if lag.is_none_or(|(events, _)| events == 0.0) || stopped.elapsed() > Duration::from_secs(120) {
            break lag.map(|_| stopped.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (max_lag_events, max_lag_secs) = lag_watch.await?;
    sampler.abort();
    let peak = peak_kib.load(Ordering::Relaxed).max(rss_kib(pid)) as f64 / 1024.0;
    drop(child);
    warm.sort_by(f64::total_cmp);
    dashboard.sort_by(f64::total_cmp);
    println!("server: answered /healthz {ready_ms:.0} ms after spawn; GET /api/summary first after start {first:.1} ms");
    println!(
        "GET /api/summary while {written} signed webhooks were acknowledged in {secs:.1} s ({:.0} events/s): p50 {:.2} ms, p99 {:.2} ms ({} requests)",
        written as f64 / secs.max(1e-9),
        percentile(&warm, 0.5),
        percentile(&warm, 0.99),
        warm.len()
    );
    println!(
        "server CPU while they ran: {summary_cpu:.1} s in {summary_wall:.1} s ({:.1} ms per request, webhooks included)",
        summary_cpu * 1000.0 / warm.len().max(1) as f64
    );
    match lag_ms {
        Some(ms) => println!(
            "projector: at most {max_lag_events:.0} events / {max_lag_secs:.1} s behind while writing; caught up {ms:.0} ms after the last webhook was acknowledged"
        ),
        None => println!("projector: lag not reported by /metrics"),
    }
    println!("GET /dashboard: first {dashboard_first:.1} ms, p50 {:.1} ms", percentile(&dashboard, 0.5));
    println!(
        "server RSS: {:.0} MiB after the first request, peak {peak:.0} MiB (sampled every 50 ms from its start)",
        rss_idle as f64 / 1024.0
    );
    Ok(())
}
