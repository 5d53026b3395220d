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

// A folder of its own for the bench's modules, beside the file Cargo.toml names.
#[path = "summary_scale/server.rs"]
mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use holdfast::clock::Clock;
use holdfast::domain::event::Event;
use holdfast::ingest::signature::sign;
use holdfast::store::{IngestOptions, Store};
use holdfast_sim::{Business, Params, events};
use serde_json::json;

use server::{
    catch_up_ms, cpu_secs, free_port, rss_kib, sample_peak_rss, spawn_lag_watch, spawn_server, spawn_writer, time_dashboard,
    timed, wait_healthy,
};

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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
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

/// Loads the generated business into the (migrated) database and reports the rate.
async fn load_database(args: &Args) -> Result<()> {
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
    Ok(())
}

/// What the bench measured of the running server (times in ms unless named `secs`).
struct Measured {
    ready_ms: f64,
    first: f64,
    rss_idle: u64,
    /// The timed summaries, sorted, and the server's CPU and the wall time they took.
    warm: Vec<f64>,
    summary_cpu: f64,
    summary_wall: f64,
    /// Webhooks acknowledged while they ran, and in how long they were sent.
    written: usize,
    secs: f64,
    lag_ms: Option<f64>,
    max_lag_events: f64,
    max_lag_secs: f64,
    /// The dashboard timings, sorted, and the first.
    dashboard: Vec<f64>,
    dashboard_first: f64,
    peak: f64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let server = server_binary(&args)?;
    load_database(&args).await?;
    let measured = measure(&args, &server).await?;
    print_measured(&measured);
    Ok(())
}

/// Starts the server on the loaded database and times it while webhooks arrive.
async fn measure(args: &Args, server: &std::path::Path) -> Result<Measured> {
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let spawned = Instant::now();
    let mut child = spawn_server(server, &args.database_url, port)?;
    let pid = child.0.id();
    let (peak_kib, sampler) = sample_peak_rss(pid);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    wait_healthy(&mut child, &client, &base, spawned).await?;
    let ready_ms = spawned.elapsed().as_secs_f64() * 1000.0;
    let months: Vec<String> = (0..36).map(|i| format!("{}-{:02}", 2023 + i / 12, i % 12 + 1)).collect();
    let summary = |month: &str| client.get(format!("{base}/api/summary?month={month}")).bearer_auth(TOKEN);
    let first = timed(summary("2025-12")).await?;
    let rss_idle = rss_kib(pid);

    // Signed webhooks arrive while the requests are timed: another business's events.
    let incoming: Vec<String> = business_events(7_777, 2_000, "live").into_iter().map(|e| e.raw).collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let acked = Arc::new(AtomicUsize::new(0));
    let url = format!("{base}/webhooks/stripe");
    let writer = spawn_writer(&client, url, args.write_rate.max(1), incoming, stop_rx, acked.clone());
    let lag_watch = spawn_lag_watch(&client, &base, stop_tx.subscribe());
    let mut warm = Vec::with_capacity(args.requests);
    let (cpu_before, timed_from) = (cpu_secs(pid), Instant::now());
    for i in 0..args.requests {
        warm.push(timed(summary(&months[i % months.len()])).await?);
    }
    let (summary_cpu, summary_wall) = (cpu_secs(pid) - cpu_before, timed_from.elapsed().as_secs_f64());
    let mut dashboard = time_dashboard(&client, &base).await?;
    let dashboard_first = dashboard[0];
    let _ = stop_tx.send(true);
    let secs = writer.await?;
    let written = acked.load(Ordering::Relaxed);
    // The projector's lag: from the last acknowledged webhook until none is left unprojected.
    let lag_ms = catch_up_ms(&client, &base).await;
    let (max_lag_events, max_lag_secs) = lag_watch.await?;
    sampler.abort();
    let peak = peak_kib.load(Ordering::Relaxed).max(rss_kib(pid)) as f64 / 1024.0;
    drop(child);
    warm.sort_by(f64::total_cmp);
    dashboard.sort_by(f64::total_cmp);
    Ok(Measured {
        ready_ms,
        first,
        rss_idle,
        warm,
        summary_cpu,
        summary_wall,
        written,
        secs,
        lag_ms,
        max_lag_events,
        max_lag_secs,
        dashboard,
        dashboard_first,
        peak,
    })
}

fn print_measured(m: &Measured) {
    let Measured { ready_ms, first, written, secs, summary_cpu, summary_wall, max_lag_events, max_lag_secs, .. } = *m;
    let (warm, dashboard) = (&m.warm, &m.dashboard);
    println!("server: answered /healthz {ready_ms:.0} ms after spawn; GET /api/summary first after start {first:.1} ms");
    println!(
        "GET /api/summary while {written} signed webhooks were acknowledged in {secs:.1} s ({:.0} events/s): p50 {:.2} ms, p99 {:.2} ms ({} requests)",
        written as f64 / secs.max(1e-9),
        percentile(warm, 0.5),
        percentile(warm, 0.99),
        warm.len()
    );
    println!(
        "server CPU while they ran: {summary_cpu:.1} s in {summary_wall:.1} s ({:.1} ms per request, webhooks included)",
        summary_cpu * 1000.0 / warm.len().max(1) as f64
    );
    match m.lag_ms {
        Some(ms) => println!(
            "projector: at most {max_lag_events:.0} events / {max_lag_secs:.1} s behind while writing; caught up {ms:.0} ms after the last webhook was acknowledged"
        ),
        None => println!("projector: lag not reported by /metrics"),
    }
    println!("GET /dashboard: first {:.1} ms, p50 {:.1} ms", m.dashboard_first, percentile(dashboard, 0.5));
    println!(
        "server RSS: {:.0} MiB after the first request, peak {:.0} MiB (sampled every 50 ms from its start)",
        m.rss_idle as f64 / 1024.0,
        m.peak
    );
}
