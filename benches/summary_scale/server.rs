//! The running server, seen from outside: started as its own process, timed over HTTP,
//! its memory and CPU read from `/proc`, fed signed webhooks while it is timed, and its
//! projector's lag read from `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

// The library's items come through the bench's root, the one file that names them.
use super::{Clock, SECRET, TOKEN, sign};

/// A process's resident memory in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    kib.unwrap_or(0)
}

/// A process's CPU time (user + system) in seconds, from `/proc/<pid>/stat` (0 once it is
/// gone). Clock ticks are 100 per second on Linux.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start at `state`: utime and stime are
    // the 12th and 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

pub async fn timed(request: reqwest::RequestBuilder) -> Result<f64> {
    let t = Instant::now();
    let response = request.send().await.context("request")?;
    anyhow::ensure!(response.status() == 200, "status {}", response.status());
    let _ = response.bytes().await?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// The projector's lag as `/metrics` reports it: (events not yet projected, age in seconds
/// of the oldest).
pub async fn projector_lag(client: &reqwest::Client, base: &str) -> Option<(f64, f64)> {
    let text = client.get(format!("{base}/metrics")).bearer_auth(TOKEN).send().await.ok()?.text().await.ok()?;
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse::<f64>().ok()))
    };
    Some((gauge("holdfast_projector_lag_events")?, gauge("holdfast_projector_lag_seconds")?))
}

/// The server process, stopped when the bench ends (or fails).
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `holdfast serve` on the loaded database at `port`, as its own process so its memory is
/// its own.
pub fn spawn_server(server: &std::path::Path, database_url: &str, port: u16) -> Result<Server> {
    let child = std::process::Command::new(server)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        .env("HOLDFAST_STRIPE_MODE", "test")
        .env("HOLDFAST_BIND", format!("127.0.0.1:{port}"))
        .env("HOLDFAST_OWNER_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", server.display()))?;
    Ok(Server(child))
}

/// Waits until the server answers `/healthz` (an error if it exits first or takes 5 minutes).
pub async fn wait_healthy(child: &mut Server, client: &reqwest::Client, base: &str, spawned: Instant) -> Result<()> {
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            anyhow::bail!("the server exited while starting: {status}");
        }
        if client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            return Ok(());
        }
        anyhow::ensure!(spawned.elapsed() < Duration::from_secs(300), "the server did not answer in 5 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The process's peak RSS in KiB, sampled every 50 ms until the task is aborted.
pub fn sample_peak_rss(pid: u32) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let peak_kib = Arc::new(AtomicU64::new(0));
    let peak = peak_kib.clone();
    let sampler = tokio::spawn(async move {
        loop {
            peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (peak_kib, sampler)
}

/// POSTs the signed webhooks at `rate` per second whatever each answer's latency (up to 64
/// in flight) until they run out or `stop`, counting the acknowledged in `acked`. The task
/// returns how long the sending took in seconds.
pub fn spawn_writer(
    client: &reqwest::Client,
    url: String,
    rate: u64,
    incoming: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
    acked: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<f64> {
    let client = client.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
        let mut posts = tokio::task::JoinSet::new();
        let began = Instant::now();
        for body in incoming {
            if *stop.borrow() {
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
}

/// The projector's greatest lag (events, seconds) `/metrics` reports until `stop`.
pub fn spawn_lag_watch(
    client: &reqwest::Client,
    base: &str,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(f64, f64)> {
    let (client, base) = (client.clone(), base.to_owned());
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
}

/// Twenty `GET /dashboard` as the logged-in owner (in milliseconds).
pub async fn time_dashboard(client: &reqwest::Client, base: &str) -> Result<Vec<f64>> {
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
    Ok(dashboard)
}

/// Milliseconds from now until no event is left unprojected (at most 2 minutes), or `None`
/// when `/metrics` does not report the lag.
pub async fn catch_up_ms(client: &reqwest::Client, base: &str) -> Option<f64> {
    let stopped = Instant::now();
    loop {
        let lag = projector_lag(client, base).await;
        if lag.is_none_or(|(events, _)| events == 0.0) || stopped.elapsed() > Duration::from_secs(120) {
            return lag.map(|_| stopped.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
