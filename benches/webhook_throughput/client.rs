//! The sending side: a minimal HTTP/1.1 client over tokio, one keep-alive connection per
//! concurrent request, and the run's figures (status counts, latencies).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where requests go: `http://host:port/path` (plain HTTP/1.1 only: the bench talks to a
/// local server).
pub struct Target {
    /// `host:port`, for connecting and for the Host header.
    pub host: String,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str, path: &str) -> Result<Self> {
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

/// The figures of a whole run (latencies sorted).
#[derive(Default)]
pub struct Totals {
    pub sent: u64,
    pub ok: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub errors: u64,
    pub first_errors: Vec<String>,
    pub latencies_us: Vec<u32>,
    pub wall: Duration,
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

/// Sends every request over `concurrency` keep-alive connections (each taking the next
/// unsent request), paced at `rate` per second if given; the figures of all of them.
pub async fn send_all(
    host: Arc<str>,
    requests: Vec<Vec<u8>>,
    concurrency: usize,
    timeout: Duration,
    rate: Option<f64>,
) -> Totals {
    let total = requests.len();
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let per_worker = total / concurrency + 1;
    let sending = Sending { host, timeout, rate, start: Instant::now() };
    let mut handles = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.min(total) {
        let (requests, next, sending) = (Arc::clone(&requests), Arc::clone(&next), sending.clone());
        handles.push(tokio::spawn(worker(requests, next, sending, per_worker)));
    }
    let mut totals = Totals { latencies_us: Vec::with_capacity(total), ..Totals::default() };
    for h in handles {
        totals.add(h.await);
    }
    totals.wall = sending.start.elapsed();
    totals.latencies_us.sort_unstable();
    totals
}

/// Where and how the workers send: the server, the per-request timeout, the pace (`rate`
/// per second from `start`) if any.
#[derive(Clone)]
struct Sending {
    host: Arc<str>,
    timeout: Duration,
    rate: Option<f64>,
    start: Instant,
}

/// One connection's loop: takes the next unsent request until none is left.
async fn worker(requests: Arc<Vec<Vec<u8>>>, next: Arc<AtomicUsize>, sending: Sending, per_worker: usize) -> WorkerStats {
    let Sending { host, timeout, rate, start } = sending;
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
        st.record(us, res);
    }
    st
}

impl WorkerStats {
    fn record(&mut self, latency_us: u32, res: Result<u16>) {
        self.latencies_us.push(latency_us);
        match res {
            Ok(s) if (200..300).contains(&s) => self.ok += 1,
            Ok(s) => *self.by_status.entry(s).or_default() += 1,
            Err(e) => {
                self.errors += 1;
                if self.first_errors.len() < 3 {
                    self.first_errors.push(format!("{e:#}"));
                }
            }
        }
    }
}

impl Totals {
    /// Adds a worker's figures (or its panic, as an error).
    fn add(&mut self, joined: Result<WorkerStats, tokio::task::JoinError>) {
        match joined {
            Ok(st) => {
                self.sent += st.latencies_us.len() as u64;
                self.ok += st.ok;
                self.errors += st.errors;
                for (k, v) in st.by_status {
                    *self.by_status.entry(k).or_default() += v;
                }
                self.latencies_us.extend_from_slice(&st.latencies_us);
                for e in st.first_errors {
                    if self.first_errors.len() < 5 {
                        self.first_errors.push(e);
                    }
                }
            }
            Err(e) => {
                self.errors += 1;
                self.first_errors.push(format!("worker panicked: {e}"));
            }
        }
    }
}

/// Nearest-rank percentile in milliseconds.
pub fn pct_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[idx]) / 1000.0
}
