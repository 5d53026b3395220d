//! `holdfast-summary-bench`: `/api/summary` latency and server memory at scale.
//!
//! Generates a simulated business (src/sim: N customers over 3 years of history), writes
//! its events straight into a fresh database through the store's own ingest path in large
//! batches (no HTTP, no signatures: the loading is not what is measured; the maintained
//! figures are built as the events are projected), then starts the real server in-process
//! and measures over HTTP:
//! - first request after start;
//! - p50/p99 over `--requests` requests cycling through every month **while webhooks
//!   arrive**: a writer appends `--write-rate` events per second of another simulated
//!   business through the same append-and-project path, and the achieved rate is reported;
//! - the dashboard page (logged in), first and p50;
//! - the process's RSS (server and bench share it), at its highest while measuring.
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
    /// Events per second written while the timed requests run.
    #[arg(long, default_value_t = 60)]
    write_rate: u64,
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

async fn timed(request: reqwest::RequestBuilder) -> Result<f64> {
    let t = Instant::now();
    let response = request.send().await.context("request")?;
    anyhow::ensure!(response.status() == 200, "status {}", response.status());
    let _ = response.bytes().await?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
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
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let months: Vec<String> = (0..36).map(|i| format!("{}-{:02}", 2023 + i / 12, i % 12 + 1)).collect();
    let summary = |month: &str| client.get(format!("{base}/api/summary?month={month}")).bearer_auth(TOKEN);
    let first = timed(summary("2025-12")).await?;

    // Webhooks arrive while the requests are timed: another business's events, appended and
    // projected through the same path as a webhook's, at the asked rate.
    let mut peak_rss = rss_mib();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let incoming = business_events(7_777, 2_000, "live");
    let rate = args.write_rate.max(1);
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_micros(1_000_000 / rate));
        let (began, mut written) = (Instant::now(), 0_usize);
        for e in &incoming {
            if *stop_rx.borrow() {
                break;
            }
            tick.tick().await;
            if app_store.ingest(&[e], START + 1100 * DAY).await.is_ok() {
                written += 1;
            }
        }
        (written, began.elapsed().as_secs_f64())
    });
    let mut warm = Vec::with_capacity(args.requests);
    for i in 0..args.requests {
        warm.push(timed(summary(&months[i % months.len()])).await?);
        if i % 20 == 0 {
            peak_rss = peak_rss.max(rss_mib());
        }
    }
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
    peak_rss = peak_rss.max(rss_mib());
    let _ = stop_tx.send(true);
    let (written, secs) = writer.await?;
    warm.sort_by(f64::total_cmp);
    dashboard.sort_by(f64::total_cmp);
    println!("GET /api/summary: first after start {first:.1} ms");
    println!(
        "GET /api/summary while writing {:.0} events/s ({written} events in {secs:.1} s): p50 {:.2} ms, p99 {:.2} ms ({} requests)",
        written as f64 / secs.max(1e-9),
        percentile(&warm, 0.5),
        percentile(&warm, 0.99),
        warm.len()
    );
    println!("GET /dashboard: first {dashboard_first:.1} ms, p50 {:.1} ms", percentile(&dashboard, 0.5));
    println!("memory (VmRSS, server and bench): {rss_before:.0} MiB before the server, peak {peak_rss:.0} MiB while measuring");
    Ok(())
}
