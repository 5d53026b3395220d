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
//!
//! `events` builds and signs the requests, `client` sends them and counts, `database`
//! checks durability and samples the projector's lag, `report` prints the figures,
//! `backlog` times the projector alone.

mod backlog;
mod client;
mod database;
mod events;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

use client::{Target, Totals, send_all};
use database::{Lag, LagSampler, count_persisted};
use events::build_requests;

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

async fn run(args: Args) -> Result<()> {
    if let Some(count) = args.backlog {
        return backlog::run_backlog(&args, count).await;
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
        return dump_requests(path, &timed, &tag);
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
        warm_up(&args, Arc::clone(&host), warm, timeout).await;
    }
    let (t, client_cpu_us, lag) = timed_run(&args, host, timed, timeout).await?;
    if t.wall.as_secs() >= 290 {
        eprintln!(
            "holdfast-bench: warning: run took {}s; signatures were made before it started and may exceed the server's timestamp tolerance",
            t.wall.as_secs()
        );
    }
    let persisted = persisted(&args, &tag).await;
    report::print(&report::Run { args: &args, tag: &tag, url: &url, totals: &t, persisted, client_cpu_us, lag: lag.as_ref() });

    if t.sent > 0 && t.ok == 0 {
        bail!("no request succeeded");
    }
    Ok(())
}

/// `--dump-requests`: each request as `<length>\n<raw HTTP request>`, for `wrk`.
fn dump_requests(path: &std::path::Path, timed: &[Vec<u8>], tag: &str) -> Result<()> {
    let mut out = Vec::with_capacity(timed.iter().map(|r| r.len() + 8).sum());
    for request in timed {
        out.extend_from_slice(format!("{}\n", request.len()).as_bytes());
        out.extend_from_slice(request);
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("holdfast-bench: run tag {tag}; wrote {} signed requests to {}", timed.len(), path.display());
    Ok(())
}

/// The untimed warm-up events; their figures go to stderr only.
async fn warm_up(args: &Args, host: Arc<str>, warm: Vec<Vec<u8>>, timeout: Duration) {
    let w = send_all(host, warm, args.concurrency, timeout, None).await;
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

/// The timed events: their figures, this client's CPU per request, and the projector's lag
/// when `--projector` samples it.
async fn timed_run(
    args: &Args,
    host: Arc<str>,
    timed: Vec<Vec<u8>>,
    timeout: Duration,
) -> Result<(Totals, Option<f64>, Option<Lag>)> {
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
    Ok((t, client_cpu_us, lag))
}

/// This run's events the server stored, when `--database-url` is given (`None` if the check
/// failed: reported on stderr).
async fn persisted(args: &Args, tag: &str) -> Option<i64> {
    let db = args.database_url.as_ref()?;
    match count_persisted(db, tag).await {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!("holdfast-bench: persistence check failed: {e:#}");
            None
        }
    }
}

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
