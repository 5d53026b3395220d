//! `holdfast-bench`: throughput/latency client for `POST /webhooks/stripe`.
//!
//! Standalone on purpose: it does not link the `holdfast` library, so it
//! measures the server exactly as Stripe would see it. Everything (event
//! bodies, signatures, fully built requests) is prepared before the clock
//! starts; the timed loop only writes a pre-built HTTP/1.1 request on one of
//! `--concurrency` keep-alive connections, reads the response and records the
//! latency. The client is deliberately minimal (raw HTTP/1.1 over tokio, one
//! thread by default): it shares the CPUs with the server under test.
//!
//! Run `holdfast-bench --help` for options; `benches/run.sh` drives it
//! against a real server for SQLite and Postgres.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Connection as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(
    name = "holdfast-bench",
    about = "Sends signed Stripe webhook events to a Holdfast server and reports throughput, latency and durability"
)]
struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Webhook signing secret (the full `whsec_...` string).
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,
    /// Number of timed events.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Concurrent in-flight requests (one keep-alive connection each).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Database the server writes to; only read once, after the run, to count
    /// this run's persisted events. Omit to skip the check.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Untimed warm-up events (separate id tag, not counted).
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Distinct customers the events are spread over (capped at events/5).
    #[arg(long, default_value_t = 1_000)]
    customers: usize,
    /// Threads for the client (default 1: the client shares the machine with the server, and
    /// one thread drives 64 connections with the least overhead; 0 = number of CPUs).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Webhook path appended to --url.
    #[arg(long, default_value = "/webhooks/stripe")]
    path: String,
    /// Free-form label echoed in the output (e.g. "sqlite").
    #[arg(long, default_value = "")]
    label: String,
    /// Also print the figures as one JSON line.
    #[arg(long)]
    json: bool,
    /// Send at this steady rate (events/s) instead of as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Measure the projector (needs --database-url): sample the log's head and the
    /// projector's cursor every 100 ms during the run, then until the projector has caught up;
    /// report the lag (events, seconds: how long ago the head passed the cursor) and the
    /// projector's rate while draining the backlog left at the end of the run.
    #[arg(long)]
    projector: bool,
    /// Measure the projector alone on a backlog of this many events (needs --database-url):
    /// append them to the log in one transaction (as the accept path stores them: raw body
    /// and envelope), then time the running server's projector from that commit until its
    /// cursor reaches the head. No HTTP; the other options except --customers are ignored.
    #[arg(long)]
    backlog: Option<usize>,
    /// Write the timed requests (built and signed as for a run) to this file and exit, for
    /// `wrk -s benches/wrk_replay.lua` (each request as `<length>\n<raw HTTP request>`). The
    /// signatures carry the time of writing: replay within the server's tolerance (300 s).
    #[arg(long)]
    dump_requests: Option<std::path::PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.events == 0 || args.concurrency == 0 {
        bail!("--events and --concurrency must be at least 1");
    }
    let mut rt = if args.client_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    rt.enable_all();
    if args.client_threads > 1 {
        rt.worker_threads(args.client_threads);
    }
    rt.build()?.block_on(run(args))
}

// ---------------------------------------------------------------------------
// Event generation
// ---------------------------------------------------------------------------

/// splitmix64: tiny deterministic PRNG so generation needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Plan {
    nick: &'static str,
    amount: i64,
    interval: &'static str,
}

const PLANS: [Plan; 4] = [
    Plan { nick: "starter_monthly", amount: 900, interval: "month" },
    Plan { nick: "pro_monthly", amount: 2900, interval: "month" },
    Plan { nick: "team_monthly", amount: 9900, interval: "month" },
    Plan { nick: "pro_yearly", amount: 29000, interval: "year" },
];

/// Per-customer state so a customer's events tell a consistent story.
struct Customer {
    plan: usize,
    quantity: i64,
    status: &'static str,
    period_start: i64,
    invoices: u64,
}

struct Generator {
    tag: String,
    rng: Rng,
    customers: Vec<Customer>,
    base_time: i64,
}

impl Generator {
    fn new(tag: &str, customers: usize, seed: u64, base_time: i64) -> Self {
        let mut rng = Rng(seed);
        let customers = (0..customers.max(1))
            .map(|_| Customer {
                plan: rng.below(PLANS.len() as u64) as usize,
                quantity: 1 + rng.below(5) as i64,
                status: "active",
                period_start: base_time - 86_400 * rng.below(25) as i64,
                invoices: 0,
            })
            .collect();
        Self { tag: tag.to_owned(), rng, customers, base_time }
    }

    fn id(&self, prefix: &str, n: impl std::fmt::Display) -> String {
        format!("{prefix}_bench_{}_{n}", self.tag)
    }

    fn subscription(&self, c: usize) -> Value {
        let cu = &self.customers[c];
        let plan = &PLANS[cu.plan];
        let period = if plan.interval == "year" { 365 * 86_400 } else { 30 * 86_400 };
        let sub_id = self.id("sub", c);
        json!({
            "id": sub_id,
            "object": "subscription",
            "customer": self.id("cus", c),
            "status": cu.status,
            "currency": "usd",
            "collection_method": "charge_automatically",
            "cancel_at_period_end": false,
            "created": cu.period_start,
            "start_date": cu.period_start,
            "current_period_start": cu.period_start,
            "current_period_end": cu.period_start + period,
            "latest_invoice": self.id("in", format!("{c}_{}", cu.invoices)),
            "livemode": false,
            "metadata": {},
            "items": {
                "object": "list",
                "has_more": false,
                "url": format!("/v1/subscription_items?subscription={sub_id}"),
                "data": [{
                    "id": self.id("si", c),
                    "object": "subscription_item",
                    "subscription": sub_id,
                    "quantity": cu.quantity,
                    "current_period_start": cu.period_start,
                    "current_period_end": cu.period_start + period,
                    "price": {
                        "id": self.id("price", plan.nick),
                        "object": "price",
                        "active": true,
                        "product": self.id("prod", plan.nick),
                        "nickname": plan.nick,
                        "unit_amount": plan.amount,
                        "currency": "usd",
                        "type": "recurring",
                        "recurring": {
                            "interval": plan.interval,
                            "interval_count": 1,
                            "usage_type": "licensed"
                        }
                    }
                }]
            }
        })
    }

    fn invoice(&self, c: usize, paid: bool, reason: &str) -> Value {
        let cu = &self.customers[c];
        let due = PLANS[cu.plan].amount * cu.quantity;
        json!({
            "id": self.id("in", format!("{c}_{}", cu.invoices)),
            "object": "invoice",
            "customer": self.id("cus", c),
            "subscription": self.id("sub", c),
            "status": if paid { "paid" } else { "open" },
            "amount_due": due,
            "amount_paid": if paid { due } else { 0 },
            "amount_remaining": if paid { 0 } else { due },
            "currency": "usd",
            "attempt_count": if paid { 1 } else { 1 + self.rng.0 % 3 },
            "attempted": true,
            "paid": paid,
            "billing_reason": reason,
            "collection_method": "charge_automatically",
            "period_start": cu.period_start,
            "period_end": cu.period_start,
            "created": cu.period_start,
            "livemode": false,
            "next_payment_attempt": if paid { Value::Null } else { json!(cu.period_start + 3 * 86_400) },
        })
    }

    /// Builds event number `n`. Event k of a customer (k = n / customers):
    /// 0 customer.created, 1 subscription.created, 2 invoice.paid
    /// (subscription_create), then a mix of subscription updates, paid and
    /// failed renewal invoices.
    fn event(&mut self, n: usize) -> Vec<u8> {
        let c = n % self.customers.len();
        let k = n / self.customers.len();
        let (kind, object) = match k {
            0 => {
                let email = format!("bench+{}_{c}@example.com", self.tag);
                (
                    "customer.created",
                    json!({
                        "id": self.id("cus", c),
                        "object": "customer",
                        "email": email,
                        "name": format!("Bench Customer {c}"),
                        "created": self.base_time,
                        "currency": null,
                        "delinquent": false,
                        "livemode": false,
                        "metadata": {},
                    }),
                )
            }
            1 => ("customer.subscription.created", self.subscription(c)),
            2 => ("invoice.paid", self.invoice(c, true, "subscription_create")),
            _ => match self.rng.below(10) {
                0..=3 => {
                    let cu = &mut self.customers[c];
                    match self.rng.0 % 3 {
                        0 => cu.quantity += 1,
                        1 => cu.plan = (cu.plan + 1) % PLANS.len(),
                        _ => cu.status = if cu.status == "active" { "past_due" } else { "active" },
                    }
                    ("customer.subscription.updated", self.subscription(c))
                }
                4..=7 => {
                    let cu = &mut self.customers[c];
                    cu.invoices += 1;
                    cu.period_start += 30 * 86_400;
                    cu.status = "active";
                    ("invoice.paid", self.invoice(c, true, "subscription_cycle"))
                }
                _ => {
                    let cu = &mut self.customers[c];
                    cu.invoices += 1;
                    cu.period_start += 30 * 86_400;
                    cu.status = "past_due";
                    ("invoice.payment_failed", self.invoice(c, false, "subscription_cycle"))
                }
            },
        };
        let event = json!({
            "id": self.id("evt", n),
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": self.base_time + (n / 10) as i64,
            "livemode": false,
            "type": kind,
            "data": { "object": object },
            "request": { "id": null, "idempotency_key": null },
            "pending_webhooks": 1,
            "account": null,
        });
        // serde_json never fails on a Value.
        serde_json::to_vec(&event).unwrap_or_default()
    }
}

/// `t=<ts>,v1=<hex hmac_sha256(secret, "<ts>.<body>")>` as Stripe sends it.
fn sign(secret: &str, ts: i64, body: &[u8]) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).context("invalid HMAC key length")?;
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("t={ts},v1={}", hex::encode(mac.finalize().into_bytes())))
}

/// Generates, signs and serializes `count` HTTP/1.1 requests tagged `tag`.
fn build_requests(target: &Target, secret: &str, tag: &str, count: usize, customers: usize, seed: u64) -> Result<Vec<Vec<u8>>> {
    let now = chrono::Utc::now().timestamp();
    let mut generator = Generator::new(tag, customers, seed, now - 3_600);
    let mut out = Vec::with_capacity(count);
    for n in 0..count {
        let body = generator.event(n);
        let signature = sign(secret, now, &body)?;
        let mut req = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n\
             Content-Type: application/json; charset=utf-8\r\nStripe-Signature: {signature}\r\nContent-Length: {}\r\n\r\n",
            target.path,
            target.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        out.push(req);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------

/// Where requests go: `http://host:port/path` (plain HTTP/1.1 only: the bench talks to a
/// local server).
struct Target {
    /// `host:port`, for connecting and for the Host header.
    host: String,
    path: String,
}

impl Target {
    fn parse(url: &str, path: &str) -> Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else { bail!("--url must start with http:// (got {url})") };
        let host = rest.trim_end_matches('/');
        if host.contains('/') {
            bail!("--url takes no path (use --path)");
        }
        let host = if host.contains(':') { host.to_owned() } else { format!("{host}:80") };
        Ok(Self { host, path: format!("/{}", path.trim_start_matches('/')) })
    }
}

#[derive(Default)]
struct WorkerStats {
    latencies_us: Vec<u32>,
    ok: u64,
    by_status: BTreeMap<u16, u64>,
    errors: u64,
    first_errors: Vec<String>,
}

#[derive(Default)]
struct Totals {
    sent: u64,
    ok: u64,
    by_status: BTreeMap<u16, u64>,
    errors: u64,
    first_errors: Vec<String>,
    latencies_us: Vec<u32>,
    wall: Duration,
}

/// One keep-alive connection: writes a pre-built request, reads the whole response (status
/// line, headers, `Content-Length` body). A minimal client on purpose: it shares the CPU with
/// the server, so every cycle it spends is one the server does not get.
struct Connection {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Connection {
    async fn exchange(&mut self, host: &str, request: &[u8]) -> Result<u16> {
        if self.stream.is_none() {
            let s = TcpStream::connect(host).await.with_context(|| format!("connecting to {host}"))?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let result = self.round_trip(request).await;
        if result.is_err() {
            // Start afresh on the next request (the server may have closed the connection).
            self.stream = None;
        }
        result
    }

    async fn round_trip(&mut self, request: &[u8]) -> Result<u16> {
        let Some(stream) = self.stream.as_mut() else { bail!("not connected") };
        stream.write_all(request).await.context("sending request")?;
        self.buf.clear();
        loop {
            if let Some((status, head_len, body_len, close)) = parse_head(&self.buf)? {
                while self.buf.len() < head_len + body_len {
                    read_some(stream, &mut self.buf).await?;
                }
                if close {
                    self.stream = None;
                }
                return Ok(status);
            }
            read_some(stream, &mut self.buf).await?;
        }
    }
}

async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<()> {
    buf.reserve(4096);
    if stream.read_buf(buf).await.context("reading response")? == 0 {
        bail!("connection closed by server");
    }
    Ok(())
}

/// `(status, head length, Content-Length, Connection: close)` once the head is complete.
fn parse_head(buf: &[u8]) -> Result<Option<(u16, usize, usize, bool)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).context("malformed status line")?;
    let (mut length, mut close) = (0, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().context("malformed Content-Length")?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported by this client");
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    Ok(Some((status, end + 4, length, close)))
}

async fn send_all(host: Arc<str>, requests: Vec<Vec<u8>>, concurrency: usize, timeout: Duration, rate: Option<f64>) -> Totals {
    let total = requests.len();
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let per_worker = total / concurrency + 1;
    let start = Instant::now();
    let mut handles = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.min(total) {
        let (requests, next, host) = (Arc::clone(&requests), Arc::clone(&next), Arc::clone(&host));
        handles.push(tokio::spawn(async move {
            let mut st = WorkerStats { latencies_us: Vec::with_capacity(per_worker), ..WorkerStats::default() };
            let mut conn = Connection { stream: None, buf: Vec::with_capacity(4096) };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = requests.get(i) else { break };
                if let Some(rate) = rate {
                    // Paced: request i leaves at i/rate seconds (a steady arrival rate).
                    tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into()).await;
                }
                let t0 = Instant::now();
                let res = match tokio::time::timeout(timeout, conn.exchange(&host, req)).await {
                    Ok(res) => res,
                    Err(_) => {
                        conn.stream = None;
                        Err(anyhow::anyhow!("no response within {timeout:?}"))
                    }
                };
                let us = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
                st.latencies_us.push(us);
                match res {
                    Ok(s) if (200..300).contains(&s) => st.ok += 1,
                    Ok(s) => *st.by_status.entry(s).or_default() += 1,
                    Err(e) => {
                        st.errors += 1;
                        if st.first_errors.len() < 3 {
                            st.first_errors.push(format!("{e:#}"));
                        }
                    }
                }
            }
            st
        }));
    }
    let mut totals = Totals { latencies_us: Vec::with_capacity(total), ..Totals::default() };
    for h in handles {
        match h.await {
            Ok(st) => {
                totals.sent += st.latencies_us.len() as u64;
                totals.ok += st.ok;
                totals.errors += st.errors;
                for (k, v) in st.by_status {
                    *totals.by_status.entry(k).or_default() += v;
                }
                totals.latencies_us.extend_from_slice(&st.latencies_us);
                for e in st.first_errors {
                    if totals.first_errors.len() < 5 {
                        totals.first_errors.push(e);
                    }
                }
            }
            Err(e) => {
                totals.errors += 1;
                totals.first_errors.push(format!("worker panicked: {e}"));
            }
        }
    }
    totals.wall = start.elapsed();
    totals.latencies_us.sort_unstable();
    totals
}

/// Nearest-rank percentile in milliseconds.
fn pct_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[idx]) / 1000.0
}

// ---------------------------------------------------------------------------
// Persistence check
// ---------------------------------------------------------------------------

async fn count_persisted(database_url: &str, tag: &str) -> Result<i64> {
    // `_` is a LIKE wildcard; escape it so only this run's ids match.
    let pattern = format!("evt\\_bench\\_{tag}\\_%");
    if database_url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(database_url).await.context("connecting to SQLite")?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE id LIKE ?1 ESCAPE '\\'")
            .bind(&pattern)
            .fetch_one(&mut conn)
            .await
            .context("counting stripe_events in SQLite")?;
        conn.close().await.ok();
        Ok(n)
    } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        let mut conn = sqlx::PgConnection::connect(database_url).await.context("connecting to Postgres")?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE id LIKE $1 ESCAPE '\\'")
            .bind(&pattern)
            .fetch_one(&mut conn)
            .await
            .context("counting stripe_events in Postgres")?;
        conn.close().await.ok();
        Ok(n)
    } else {
        bail!("unsupported DATABASE_URL scheme (expected sqlite: or postgres:)")
    }
}

// ---------------------------------------------------------------------------
// Projector lag
// ---------------------------------------------------------------------------

enum Db {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Db {
    /// (the log's head, the projector's cursor)
    async fn positions(&mut self) -> Result<(i64, i64)> {
        Ok(match self {
            Self::Sqlite(c) => {
                sqlx::query_as(
                    "SELECT (SELECT COALESCE(MAX(rowid), 0) FROM stripe_events), (SELECT position FROM projector_cursor)",
                )
                .fetch_one(c)
                .await?
            }
            Self::Postgres(c) => {
                sqlx::query_as(
                    "SELECT (SELECT COALESCE(MAX(seq), 0) FROM stripe_events), (SELECT position FROM projector_cursor)",
                )
                .fetch_one(c)
                .await?
            }
        })
    }
}

struct Lag {
    events_p99: i64,
    events_max: i64,
    seconds_p99: f64,
    seconds_max: f64,
    drained: i64,
    drain_secs: f64,
    drain_rate: f64,
}

/// Samples (time, head, cursor) every 100 ms on its own connection.
struct LagSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<Vec<(f64, i64, i64)>>>,
}

impl LagSampler {
    async fn start(database_url: &str) -> Result<Self> {
        let mut db = if database_url.starts_with("sqlite:") {
            Db::Sqlite(sqlx::SqliteConnection::connect(database_url).await.context("connecting to SQLite")?)
        } else {
            Db::Postgres(sqlx::PgConnection::connect(database_url).await.context("connecting to Postgres")?)
        };
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let (head, cursor) = db.positions().await?;
                samples.push((t0.elapsed().as_secs_f64(), head, cursor));
                // After the run: until the projector has passed the head (or 10 minutes).
                if *stopped.borrow_and_update() && (cursor >= head || t0.elapsed() > Duration::from_secs(600)) {
                    return Ok(samples);
                }
            }
        });
        Ok(Self { stop, task })
    }

    async fn finish(self) -> Result<Lag> {
        // A send fails only if the task already ended (its error is returned below).
        let _ = self.stop.send(true);
        let samples = self.task.await.context("sampler task")??;
        // Lag at a sample: events between the cursor and the head, and how long ago the first
        // of them arrived (the first sample whose head had passed the cursor).
        let mut seconds = Vec::with_capacity(samples.len());
        let mut events = Vec::with_capacity(samples.len());
        for &(t, head, cursor) in &samples {
            let behind = (head - cursor).max(0);
            events.push(behind);
            let since = samples.iter().find(|s| s.1 > cursor).map_or(t, |s| s.0);
            seconds.push(if behind > 0 { (t - since).max(0.0) } else { 0.0 });
        }
        events.sort_unstable();
        seconds.sort_by(f64::total_cmp);
        let pick = |n: usize| ((n as f64 * 0.99).ceil() as usize).clamp(1, n.max(1)) - 1;
        let (events_p99, events_max) =
            (events.get(pick(events.len())).copied().unwrap_or(0), events.last().copied().unwrap_or(0));
        let (seconds_p99, seconds_max) =
            (seconds.get(pick(seconds.len())).copied().unwrap_or(0.0), seconds.last().copied().unwrap_or(0.0));
        // Drain: from the last sample with the load running (the highest head) to caught up.
        let head_end = samples.last().map_or(0, |s| s.1);
        let start = samples.iter().position(|s| s.1 >= head_end).unwrap_or(0);
        let (t_start, cursor_start) = (samples[start].0, samples[start].2);
        let t_end = samples.last().map_or(t_start, |s| s.0);
        let drained = head_end - cursor_start;
        let drain_secs = (t_end - t_start).max(0.1);
        Ok(Lag { events_p99, events_max, seconds_p99, seconds_max, drained, drain_secs, drain_rate: drained as f64 / drain_secs })
    }
}

// ---------------------------------------------------------------------------

/// CPU time this process has used so far (user + system), from `/proc/self/stat`.
fn own_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports these in USER_HZ, 100 per second on every platform it runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// `--backlog N`: append N events to the log in one transaction, then time the projector.
async fn run_backlog(args: &Args, count: usize) -> Result<()> {
    let Some(database_url) = &args.database_url else { bail!("--backlog needs --database-url") };
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let now = chrono::Utc::now().timestamp();
    let mut generator = Generator::new(&tag, args.customers.min(count / 5).max(1), 7, now - 3_600);
    let bodies: Vec<Vec<u8>> = (0..count).map(|n| generator.event(n)).collect();
    let rows: Vec<(String, String, i64, String)> = bodies
        .into_iter()
        .map(|b| {
            let v: Value = serde_json::from_slice(&b).unwrap_or_default();
            let id = v["id"].as_str().unwrap_or_default().to_owned();
            let kind = v["type"].as_str().unwrap_or_default().to_owned();
            (id, kind, v["created"].as_i64().unwrap_or(now), String::from_utf8(b).unwrap_or_default())
        })
        .collect();
    const CHUNK: usize = 1000;
    let started;
    if database_url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(database_url).await.context("connecting to SQLite")?;
        sqlx::query("PRAGMA busy_timeout = 30000").execute(&mut conn).await?;
        let mut tx = conn.begin().await?;
        for chunk in rows.chunks(CHUNK) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO stripe_events (id, type, created, livemode, api_version, account, payload, received_at, notify) ",
            );
            q.push_values(chunk, |mut b, (id, kind, created, payload)| {
                b.push_bind(id).push_bind(kind).push_bind(created).push_bind(false).push_bind("2025-03-31.basil");
                b.push_bind(None::<String>).push_bind(payload).push_bind(now).push_bind(true);
            });
            q.build().execute(&mut *tx).await.context("appending the backlog")?;
        }
        tx.commit().await?;
        started = Instant::now();
        conn.close().await.ok();
    } else {
        let mut conn = sqlx::PgConnection::connect(database_url).await.context("connecting to Postgres")?;
        let mut tx = conn.begin().await?;
        // The accept path's lock: positions become visible in order.
        sqlx::query("SELECT pg_advisory_xact_lock(7242101140)").execute(&mut *tx).await?;
        for chunk in rows.chunks(CHUNK) {
            let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO stripe_events (id, type, created, livemode, api_version, account, payload, received_at, notify) ",
            );
            q.push_values(chunk, |mut b, (id, kind, created, payload)| {
                b.push_bind(id).push_bind(kind).push_bind(created).push_bind(false).push_bind("2025-03-31.basil");
                b.push_bind(None::<String>).push_bind(payload).push_bind(now).push_bind(true);
            });
            q.build().execute(&mut *tx).await.context("appending the backlog")?;
        }
        tx.commit().await?;
        started = Instant::now();
        conn.close().await.ok();
    }
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

async fn run(args: Args) -> Result<()> {
    if let Some(count) = args.backlog {
        return run_backlog(&args, count).await;
    }
    let target = Target::parse(&args.url, &args.path)?;
    let url = format!("http://{}{}", target.host, target.path);
    let run_id = uuid::Uuid::new_v4();
    let hexid = run_id.simple().to_string();
    // Distinct random tags for timed and warm-up events, so the persistence
    // count only sees the timed ones.
    let tag = hexid[..8].to_owned();
    let warm_tag = hexid[8..16].to_owned();
    let seed = run_id.as_u64_pair().0;

    let prep = Instant::now();
    let warm =
        build_requests(&target, &args.secret, &warm_tag, args.warmup, args.customers.min(args.warmup / 5).max(1), seed ^ 1)?;
    let timed = build_requests(
        &target,
        &args.secret,
        &tag,
        args.events,
        // Keep >= ~5 events per customer so small runs still get the full mix.
        args.customers.min(args.events / 5).max(1),
        seed,
    )?;
    if let Some(path) = &args.dump_requests {
        let mut out = Vec::with_capacity(timed.iter().map(|r| r.len() + 8).sum());
        for request in &timed {
            out.extend_from_slice(format!("{}\n", request.len()).as_bytes());
            out.extend_from_slice(request);
        }
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("holdfast-bench: run tag {tag}; wrote {} signed requests to {}", timed.len(), path.display());
        return Ok(());
    }
    eprintln!(
        "holdfast-bench: run tag {tag}; prepared {} + {} warm-up signed events in {:.2}s; target {url}",
        args.events,
        args.warmup,
        prep.elapsed().as_secs_f64()
    );

    let host: Arc<str> = Arc::from(target.host.as_str());
    let timeout = Duration::from_secs(args.timeout_secs);
    if !warm.is_empty() {
        let w = send_all(Arc::clone(&host), warm, args.concurrency, timeout, None).await;
        eprintln!(
            "holdfast-bench: warm-up {} events: {} 2xx, {} non-2xx {:?}, {} errors",
            w.sent,
            w.ok,
            w.by_status.values().sum::<u64>(),
            w.by_status,
            w.errors
        );
        for e in &w.first_errors {
            eprintln!("holdfast-bench:   warm-up error: {e}");
        }
    }

    let sampler = match (&args.database_url, args.projector) {
        (Some(db), true) => Some(LagSampler::start(db).await?),
        _ => None,
    };
    let cpu_before = own_cpu();
    let t = send_all(host, timed, args.concurrency, timeout, args.rate).await;
    let client_cpu_us = match (cpu_before, own_cpu()) {
        (Some(a), Some(b)) if t.sent > 0 => Some((b - a).as_secs_f64() * 1e6 / t.sent as f64),
        _ => None,
    };
    let lag = match sampler {
        Some(s) => Some(s.finish().await?),
        None => None,
    };
    if t.wall.as_secs() >= 290 {
        eprintln!(
            "holdfast-bench: warning: run took {}s; signatures were made before it started and may exceed the server's timestamp tolerance",
            t.wall.as_secs()
        );
    }

    let persisted = match &args.database_url {
        Some(db) => match count_persisted(db, &tag).await {
            Ok(n) => Some(n),
            Err(e) => {
                eprintln!("holdfast-bench: persistence check failed: {e:#}");
                None
            }
        },
        None => None,
    };

    let secs = t.wall.as_secs_f64();
    let rps = if secs > 0.0 { t.sent as f64 / secs } else { 0.0 };
    let non2xx: u64 = t.by_status.values().sum();
    let (p50, p90, p99) = (pct_ms(&t.latencies_us, 50.0), pct_ms(&t.latencies_us, 90.0), pct_ms(&t.latencies_us, 99.0));
    let max = t.latencies_us.last().map_or(0.0, |&v| f64::from(v) / 1000.0);
    let status_str = if t.by_status.is_empty() {
        "-".to_owned()
    } else {
        t.by_status.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(",")
    };
    let verdict = match persisted {
        Some(p) if p == t.ok as i64 => format!("persisted == acknowledged ({p})"),
        Some(p) if p < t.ok as i64 => {
            format!("persisted != acknowledged: {p} persisted < {} acknowledged (LOST {})", t.ok, t.ok as i64 - p)
        }
        Some(p) => format!(
            "persisted != acknowledged: {p} persisted > {} acknowledged ({} committed but not acked)",
            t.ok,
            p - t.ok as i64
        ),
        None => "persisted: not checked".to_owned(),
    };
    let label = if args.label.is_empty() { String::new() } else { format!("[{}] ", args.label) };

    println!(
        "{label}c={} n={} {:.0} ev/s wall={secs:.2}s 2xx={} non2xx={non2xx} errors={} p50={p50:.2}ms p90={p90:.2}ms p99={p99:.2}ms max={max:.2}ms | {verdict}",
        args.concurrency, t.sent, rps, t.ok, t.errors
    );
    println!("  {:<22} {}", "run tag", tag);
    println!("  {:<22} {}", "concurrency", args.concurrency);
    println!("  {:<22} {}", "events sent", t.sent);
    println!("  {:<22} {}", "2xx", t.ok);
    println!("  {:<22} {non2xx} ({status_str})", "non-2xx");
    println!("  {:<22} {}", "errors", t.errors);
    println!("  {:<22} {secs:.3} s", "wall time");
    println!("  {:<22} {rps:.1}", "events/s");
    println!("  {:<22} {p50:.2} / {p90:.2} / {p99:.2} / {max:.2}", "p50/p90/p99/max ms");
    println!(
        "  {:<22} holdfast-bench (raw HTTP/1.1, {} thread(s)), {} µs CPU per request",
        "load client",
        args.client_threads,
        client_cpu_us.map_or_else(|| "n/a".to_owned(), |c| format!("{c:.1}"))
    );
    println!("  {:<22} {}", "persisted", persisted.map_or_else(|| "n/a".to_owned(), |p| p.to_string()));
    println!("  {:<22} {verdict}", "durability");
    for e in &t.first_errors {
        println!("  error: {e}");
    }
    if let Some(l) = &lag {
        println!("  {:<22} {} / {}", "lag events p99/max", l.events_p99, l.events_max);
        println!("  {:<22} {:.2} / {:.2}", "lag seconds p99/max", l.seconds_p99, l.seconds_max);
        println!("  {:<22} {} events in {:.2} s = {:.0} ev/s", "projector drain", l.drained, l.drain_secs, l.drain_rate);
    }

    if args.json {
        let line = json!({
            "label": args.label,
            "tag": tag,
            "url": url,
            "concurrency": args.concurrency,
            "events": t.sent,
            "ok_2xx": t.ok,
            "non_2xx": non2xx,
            "non_2xx_by_status": t.by_status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "errors": t.errors,
            "wall_s": secs,
            "events_per_s": rps,
            "p50_ms": p50,
            "p90_ms": p90,
            "p99_ms": p99,
            "max_ms": max,
            "persisted": persisted,
            "persisted_eq_acknowledged": persisted.map(|p| p == t.ok as i64),
            "lag_events_p99": lag.as_ref().map(|l| l.events_p99),
            "lag_seconds_p99": lag.as_ref().map(|l| l.seconds_p99),
            "lag_seconds_max": lag.as_ref().map(|l| l.seconds_max),
            "drain_events": lag.as_ref().map(|l| l.drained),
            "drain_events_per_s": lag.as_ref().map(|l| l.drain_rate),
            "client_cpu_us_per_request": client_cpu_us,
        });
        println!("{line}");
    }

    if t.sent > 0 && t.ok == 0 {
        bail!("no request succeeded");
    }
    Ok(())
}
