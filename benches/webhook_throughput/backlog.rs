//! `--backlog N`: the projector alone. N events are appended to the log in one transaction
//! (as the accept path stores them: raw body and envelope), then the running server's
//! projector is timed from that commit until its cursor reaches the head and no customer's
//! figures wait for a recompute (`metric_stale` empty).

use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::Args;
use crate::database::LagSampler;
use crate::events::Generator;

/// Events appended per INSERT statement.
const CHUNK: usize = 1000;

/// A log row: id, type, created, payload.
type Row = (String, String, i64, String);

const INSERT: &str =
    "INSERT INTO stripe_events (id, type, created, livemode, api_version, account, payload, received_at, notify) ";

/// `--backlog N`: append N events to the log in one transaction, then time the projector.
pub async fn run_backlog(args: &Args, count: usize) -> Result<()> {
    let Some(database_url) = &args.database_url else { bail!("--backlog needs --database-url") };
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let now = chrono::Utc::now().timestamp();
    let rows = backlog_rows(&tag, args.customers.min(count / 5).max(1), count, now);
    let started = if database_url.starts_with("sqlite:") {
        append_sqlite(database_url, &rows, now).await?
    } else {
        append_postgres(database_url, &rows, now).await?
    };
    let sampler = LagSampler::start(database_url).await?;
    let lag = sampler.finish().await?;
    let secs = started.elapsed().as_secs_f64();
    let label = if args.label.is_empty() { String::new() } else { format!("[{}] ", args.label) };
    println!(
        "{label}projector backlog: {count} events appended in one commit, projected in {secs:.2} s = {:.0} ev/s (sampled drain: {} events at {:.0} ev/s)",
        count as f64 / secs,
        lag.drained,
        lag.drain_rate
    );
    if args.json {
        println!(
            "{}",
            json!({"label": args.label, "backlog": count, "backlog_secs": secs, "backlog_events_per_s": count as f64 / secs})
        );
    }
    Ok(())
}

/// `count` generated events as log rows.
fn backlog_rows(tag: &str, customers: usize, count: usize, now: i64) -> Vec<Row> {
    let mut generator = Generator::new(tag, customers, 7, now - 3_600);
    let bodies: Vec<Vec<u8>> = (0..count).map(|n| generator.event(n)).collect();
    bodies
        .into_iter()
        .map(|b| {
            let v: Value = serde_json::from_slice(&b).unwrap_or_default();
            let id = v["id"].as_str().unwrap_or_default().to_owned();
            let kind = v["type"].as_str().unwrap_or_default().to_owned();
            (id, kind, v["created"].as_i64().unwrap_or(now), String::from_utf8(b).unwrap_or_default())
        })
        .collect()
}

/// Appends the rows in one SQLite transaction; returns when it committed.
async fn append_sqlite(database_url: &str, rows: &[Row], now: i64) -> Result<Instant> {
    let mut conn = sqlx::SqliteConnection::connect(database_url).await.context("connecting to SQLite")?;
    sqlx::query("PRAGMA busy_timeout = 30000").execute(&mut conn).await?;
    let mut tx = conn.begin().await?;
    for chunk in rows.chunks(CHUNK) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(INSERT);
        q.push_values(chunk, |mut b, (id, kind, created, payload)| {
            b.push_bind(id).push_bind(kind).push_bind(created).push_bind(false).push_bind("2025-03-31.basil");
            b.push_bind(None::<String>).push_bind(payload).push_bind(now).push_bind(true);
        });
        q.build().execute(&mut *tx).await.context("appending the backlog")?;
    }
    tx.commit().await?;
    let committed = Instant::now();
    conn.close().await.ok();
    Ok(committed)
}

/// Appends the rows in one Postgres transaction; returns when it committed.
async fn append_postgres(database_url: &str, rows: &[Row], now: i64) -> Result<Instant> {
    let mut conn = sqlx::PgConnection::connect(database_url).await.context("connecting to Postgres")?;
    let mut tx = conn.begin().await?;
    // The accept path's lock: positions become visible in order.
    sqlx::query("SELECT pg_advisory_xact_lock(7242101140)").execute(&mut *tx).await?;
    for chunk in rows.chunks(CHUNK) {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(INSERT);
        q.push_values(chunk, |mut b, (id, kind, created, payload)| {
            b.push_bind(id).push_bind(kind).push_bind(created).push_bind(false).push_bind("2025-03-31.basil");
            b.push_bind(None::<String>).push_bind(payload).push_bind(now).push_bind(true);
        });
        q.build().execute(&mut *tx).await.context("appending the backlog")?;
    }
    tx.commit().await?;
    let committed = Instant::now();
    conn.close().await.ok();
    Ok(committed)
}
