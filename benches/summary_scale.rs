//! `holdfast-summary-bench`: `/api/summary` latency and server memory at scale.
//!
//! Generates a simulated business (src/sim: N customers over 3 years of history), writes
//! its events straight into a fresh database through the store's own ingest path in large
//! batches (no HTTP, no signatures: the loading is not what is measured), then starts the
//! real server in-process and times `GET /api/summary` over HTTP:
//! - cold: the first request (loads the history, computes the report);
//! - warm: p50/p99 over `--requests` requests cycling through every month;
//! - after a write: one webhook-ingest later, the next request (cache invalidated).
//!
//! `holdfast-summary-bench --customers 100000 --database-url sqlite:///tmp/s.db`

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use holdfast::config::Settings;
use holdfast::domain::event::Event;
use holdfast::sim::{Business, Params, events};
use holdfast::startup::Application;
use holdfast::store::Store;
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
}

const START: i64 = 1_672_531_200; // 2023-01-01
const DAY: i64 = 86_400;
const CHUNK: usize = 2_000;
const TOKEN: &str = "bench-owner-token";

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

async fn load(store: &Store, customers: usize, batch: usize) -> Result<usize> {
    let empty = |_: &str| json!({});
    let mut total = 0;
    for (chunk, first) in (0..customers).step_by(CHUNK).enumerate() {
        let n = CHUNK.min(customers - first);
        let params = Params {
            seed: 1000 + chunk as u64,
            customers: n,
            start: START,
            end: START + 1095 * DAY,
            signup_until: START + 1030 * DAY,
        };
        let business = Business::simulate(params);
        let evs: Vec<Event> = events::render(&business, &empty)
            .into_iter()
            .map(|e| {
                let raw = json!({"id": e.id, "object": "event", "type": e.kind, "created": e.created, "livemode": false,
                                 "api_version": "2025-03-31.basil", "data": {"object": e.object}})
                .to_string();
                Event {
                    id: e.id,
                    kind: e.kind.to_string(),
                    created: e.created,
                    livemode: false,
                    api_version: None,
                    account: None,
                    object: e.object,
                    raw,
                }
            })
            .collect();
        for part in evs.chunks(batch) {
            let refs: Vec<&Event> = part.iter().collect();
            store.ingest(&refs, START + 1100 * DAY).await.context("bulk ingest")?;
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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let store = Store::connect(&args.database_url).await.context("connecting")?;
    store.migrate().await?;
    let started = Instant::now();
    let n_events = load(&store, args.customers, args.batch).await?;
    println!(
        "backend {}: {} customers, {n_events} events loaded in {:.1} s",
        store.backend(),
        args.customers,
        started.elapsed().as_secs_f64()
    );
    store.close().await;

    let rss_before = rss_mib();
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", args.database_url.clone()),
        ("STRIPE_WEBHOOK_SECRET", "whsec_bench".to_string()),
        ("HOLDFAST_STRIPE_MODE", "test".to_string()),
        ("HOLDFAST_BIND", "127.0.0.1:0".to_string()),
        ("HOLDFAST_OWNER_TOKEN", TOKEN.to_string()),
    ]);
    let app = Application::build(Settings::from_source(&vars)?).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let app_store = app.store();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let months: Vec<String> = (0..36).map(|i| format!("{}-{:02}", 2023 + i / 12, i % 12 + 1)).collect();
    let get = |month: &str| {
        let request = client.get(format!("{base}/api/summary?month={month}")).bearer_auth(TOKEN);
        async move {
            let t = Instant::now();
            let response = request.send().await.context("request")?;
            anyhow::ensure!(response.status() == 200, "status {}", response.status());
            let _ = response.bytes().await?;
            Ok::<f64, anyhow::Error>(t.elapsed().as_secs_f64() * 1000.0)
        }
    };
    let cold = get("2025-12").await?;
    let mut warm = Vec::with_capacity(args.requests);
    for i in 0..args.requests {
        warm.push(get(&months[i % months.len()]).await?);
    }
    warm.sort_by(f64::total_cmp);
    // One new event invalidates the cache: the next request recomputes.
    let late = Event {
        id: "evt_bench_late".into(),
        kind: "customer.created".into(),
        created: START,
        livemode: false,
        api_version: None,
        account: None,
        object: json!({"object": "customer", "id": "cus_bench_late"}),
        raw: "{}".into(),
    };
    app_store.ingest(&[&late], START).await?;
    let after_write = get("2025-12").await?;
    println!(
        "GET /api/summary: cold {cold:.1} ms; warm p50 {:.2} ms, p99 {:.2} ms ({} requests); after a write {after_write:.1} ms",
        percentile(&warm, 0.5),
        percentile(&warm, 0.99),
        warm.len()
    );
    println!("memory (VmRSS): {rss_before:.0} MiB before the server, {:.0} MiB after the requests", rss_mib());
    Ok(())
}
