//! `holdfast-lifecycle-bench`: product activity and the at-risk check at scale.
//!
//! Loads N paying customers (customer + active subscription events through the store's own
//! ingest path), starts the real server in-process (workers off), then measures:
//! - `POST /api/activity`: items/s over HTTP in batches of 1,000 (six weeks of daily activity
//!   per customer; a tenth of the customers went quiet 40 days ago, a tenth halved last week);
//! - the hourly at-risk check (`Scheduler::try_run_once_at`): its duration, the customers
//!   assessed and the re-engagement emails it enqueued; then a second run (nothing new).
//!
//! `holdfast-lifecycle-bench --customers 10000 --database-url sqlite:///tmp/l.db`

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use holdfast::domain::event::Event;
use holdfast::settings::Settings;
use holdfast::startup::Application;
use holdfast::store::Store;
use holdfast::workers::Outcome;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(name = "holdfast-lifecycle-bench", about = "Times product activity ingest and the at-risk check")]
struct Args {
    /// Paying customers to load.
    #[arg(long, default_value_t = 10_000)]
    customers: usize,
    /// A fresh database: `sqlite:///path.db` or `postgres://…/db`.
    #[arg(long)]
    database_url: String,
}

const DAY: i64 = 86_400;
const TOKEN: &str = "bench-owner-token-0123456789";

fn event(id: String, kind: &str, created: i64, object: Value) -> Event {
    let raw = json!({"id": id, "object": "event", "type": kind, "created": created, "data": {"object": object}}).to_string();
    Event { id, kind: kind.into(), created, livemode: false, api_version: None, account: None, object, raw }
}

async fn load(store: &Store, customers: usize, now: i64) -> Result<()> {
    let start = now - 120 * DAY;
    for chunk in (0..customers).collect::<Vec<_>>().chunks(2_000) {
        let mut evs = Vec::with_capacity(chunk.len() * 2);
        for &i in chunk {
            let cus = format!("cus_bench{i}");
            let customer =
                json!({"id": cus, "object": "customer", "email": format!("c{i}@example.com"), "name": "Bench", "created": start});
            let sub = json!({"id": format!("sub_bench{i}"), "object": "subscription", "customer": cus, "status": "active",
                "created": start, "start_date": start, "currency": "usd",
                "items": {"object": "list", "data": [{"id": format!("si_bench{i}"), "object": "subscription_item", "quantity": 1,
                    "price": {"id": "price_bench", "object": "price", "unit_amount": 2000, "currency": "usd",
                              "recurring": {"interval": "month", "interval_count": 1}}}]}});
            evs.push(event(format!("evt_c{i}"), "customer.created", start, customer));
            evs.push(event(format!("evt_s{i}"), "customer.subscription.created", start + 1, sub));
        }
        let refs: Vec<&Event> = evs.iter().collect();
        store.ingest(&refs, start).await.context("loading customers")?;
    }
    Ok(())
}

/// Six weeks of daily activity: steady (4 a day), quiet since day 40, or halved last week.
fn activity(customers: usize, now: i64) -> Vec<Value> {
    let mut items = Vec::new();
    for i in 0..customers {
        let cus = format!("cus_bench{i}");
        for d in 1..=42 {
            let count = match i % 10 {
                0 if d < 40 => 0,
                1 if d <= 7 => 1,
                _ => 4,
            };
            if count > 0 {
                items.push(json!({"customer": cus, "at": now - d * DAY, "count": count}));
            }
        }
    }
    items
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let now = chrono::Utc::now().timestamp();
    let store = Store::connect(&args.database_url).await.context("connecting")?;
    store.migrate().await?;
    let t = Instant::now();
    load(&store, args.customers, now).await?;
    println!("backend {}: {} paying customers loaded in {:.1} s", store.backend(), args.customers, t.elapsed().as_secs_f64());
    store.close().await;

    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", args.database_url.clone()),
        ("STRIPE_WEBHOOK_SECRET", "whsec_bench".to_string()),
        ("HOLDFAST_STRIPE_MODE", "test".to_string()),
        ("HOLDFAST_BIND", "127.0.0.1:0".to_string()),
        ("HOLDFAST_OWNER_TOKEN", TOKEN.to_string()),
        ("HOLDFAST_WORKERS", "off".to_string()),
        ("HOLDFAST_MAIL_DIR", std::env::temp_dir().join("holdfast-lifecycle-bench-mail").display().to_string()),
    ]);
    let app = Application::build(Settings::from_source(&vars)?).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let scheduler = app.scheduler();
    tokio::spawn(app.run_until_stopped());

    let items = activity(args.customers, now);
    let client = reqwest::Client::new();
    let t = Instant::now();
    // Each batch with its own Idempotency-Key, as the README recommends.
    for (n, batch) in items.chunks(1_000).enumerate() {
        let post = client.post(format!("{base}/api/activity")).bearer_auth(TOKEN);
        let r = post.header("Idempotency-Key", format!("bench-batch-{n}")).json(batch).send().await?;
        anyhow::ensure!(r.status() == 200, "activity answered {}", r.status());
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "POST /api/activity: {} items in batches of 1000 (with Idempotency-Key) in {secs:.2} s = {:.0} items/s",
        items.len(),
        items.len() as f64 / secs
    );

    for run in ["first", "second"] {
        let t = Instant::now();
        let outcome = scheduler.try_run_once_at(now).await?;
        let enqueued = match outcome {
            Outcome::Worked(n) => n,
            Outcome::Idle => 0,
        };
        println!(
            "at-risk check ({run} run): {} customers assessed in {:.1} ms, {enqueued} re-engagement emails enqueued",
            args.customers,
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}
