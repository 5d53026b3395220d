//! Bounded by construction: stalled uploads, slow headers and slow bodies hold a known amount
//! of memory for a known time, and a genuine webhook still gets through while they do.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use holdfast::ingest::signature::sign;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::helpers::{Config, SECRET, customer, event, fresh_database, now, spawn_app_typed, spawn_app_with};
use crate::support::process::ServerProcess;

const OWNER_TOKEN: &str = "owner-token-resources-0123456789";
const STALLED: usize = 500;
const BODY_BYTES: usize = 1024 * 1024;
const BUFFER_CAP: usize = 32 * 1024 * 1024;
/// 150 MB (README, "Resource bounds"), in bytes: 143 MiB.
const RSS_LIMIT_BYTES: u64 = 150_000_000;

/// One upload's body, shared by all of them (the test must not hold 500 MiB itself).
static BODY: LazyLock<Vec<u8>> = LazyLock::new(|| vec![b'x'; BODY_BYTES - 2]);

/// Headers of a webhook upload declaring `length` bytes.
fn upload_head(length: usize) -> String {
    format!(
        "POST /webhooks/stripe HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Stripe-Signature: t=1,v1=00\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// The status of the first response on `stream`, if one comes.
async fn read_status(stream: &mut TcpStream) -> Option<u16> {
    let mut buf = vec![0u8; 1024];
    let mut got = 0;
    while got < 12 {
        match stream.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got += n,
        }
    }
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}

/// Resident memory of a process, from `/proc/<pid>/status`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status readable (Linux)");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS line");
    kb * 1024
}

/// A gauge's value in `/metrics`.
async fn gauge(client: &reqwest::Client, address: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{address}/metrics"))
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .expect("metrics answered")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

/// The soft open-file limit of this process (the server child inherits it).
fn open_file_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits readable (Linux)");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| if v == "unlimited" { Some(u64::MAX) } else { v.parse().ok() })
        .expect("Max open files line")
}

/// The real binary with a webhook buffer budget of `BUFFER_CAP` and a body deadline long
/// enough that no stalled upload is cut off by it during the test: the budget alone must
/// bound them.
fn start_with_the_buffer_cap(url: &str) -> ServerProcess {
    ServerProcess::start(&[
        ("DATABASE_URL", url),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("HOLDFAST_OWNER_TOKEN", OWNER_TOKEN),
        ("HOLDFAST_WORKERS", "off"),
        // Long enough that no stalled upload is cut off by the deadline during the test: the
        // budget alone must bound them.
        ("HOLDFAST_BODY_TIMEOUT_SECS", "120"),
        ("HOLDFAST_WEBHOOK_BUFFER_BYTES", &BUFFER_CAP.to_string()),
    ])
}

/// `STALLED` uploads to `addr`, each declaring a 1 MiB body and sending all of it but its last
/// 2 bytes, then holding its connection open; each sends the status it got (if any) on `answers_tx`.
async fn start_stalled_uploads(
    addr: &str,
    answers_tx: tokio::sync::mpsc::UnboundedSender<Option<u16>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut uploads = Vec::new();
    for _ in 0..STALLED {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let tx = answers_tx.clone();
        uploads.push(tokio::spawn(async move {
            // Headers and all of the body but its last 2 bytes; then wait for an answer.
            let _ = stream.write_all(upload_head(BODY_BYTES).as_bytes()).await;
            let write = stream.write_all(&BODY);
            // A refused upload is not read: the write blocks once the socket buffers are full.
            let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
            let status = read_status(&mut stream).await;
            let _ = tx.send(status);
            // Hold the connection open until the test ends.
            std::future::pending::<()>().await;
        }));
    }
    drop(answers_tx);
    uploads
}

/// A genuine signed webhook on another connection is stored (200, JSON) with a 2 s client
/// timeout: a bound on the answer, not a timing assertion.
async fn assert_a_signed_webhook_is_stored_within_2s(client: &reqwest::Client, address: &str) {
    let genuine = event("customer.created", now(), customer("cus_stalled", "stalled@example.com", now())).to_string();
    let signed = client
        .post(format!("{address}/webhooks/stripe"))
        .header("Stripe-Signature", sign(genuine.as_bytes(), SECRET, now()))
        .header("Content-Type", "application/json")
        .body(genuine)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .expect("the signed webhook is answered within 2 s");
    assert_eq!(signed.status(), 200);
    assert_eq!(signed.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
}

/// Once the uploads are gone, every reservation is returned (waited for, at most 30 s).
async fn assert_nothing_stays_buffered(client: &reqwest::Client, address: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while gauge(client, address, "holdfast_webhook_buffered_bytes").await > 0.0 {
        assert!(Instant::now() < deadline, "buffered bytes never went back to 0 after the uploads closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_uploads_hold_bounded_memory_and_a_signed_webhook_still_gets_through() {
    // 500 connections on each side, plus the rest of the suite: fail loudly rather than
    // measure descriptor exhaustion instead of memory.
    let limit = open_file_limit();
    assert!(limit >= 4096, "this test needs `ulimit -n` of at least 4096 (it is {limit})");
    let (url, _dir) = fresh_database().await;
    let server = start_with_the_buffer_cap(&url);
    let pid = server.pid();
    let client = reqwest::Client::new();
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let uploads = start_stalled_uploads(server.address.trim_start_matches("http://"), answers_tx).await;

    // Large bodies may fill three quarters of the budget (the rest is kept for small ones,
    // the size of Stripe's events); every upload beyond that is answered 503 at once.
    let fit = BUFFER_CAP / 4 * 3 / BODY_BYTES;
    let mut statuses = Vec::new();
    let mut peak_rss = 0;
    let mut peak_buffered: f64 = 0.0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while statuses.len() < STALLED - fit {
        assert!(Instant::now() < deadline, "only {} of {STALLED} uploads answered", statuses.len());
        if let Ok(Some(status)) = tokio::time::timeout(Duration::from_millis(200), answers.recv()).await {
            statuses.push(status);
        }
        peak_rss = peak_rss.max(rss_bytes(pid));
        peak_buffered = peak_buffered.max(gauge(&client, &server.address, "holdfast_webhook_buffered_bytes").await);
    }
    assert!(statuses.iter().all(|s| *s == Some(503)), "every extra upload gets 503: {statuses:?}");

    // A genuine webhook on another connection: a 2 s client timeout, not a timing assertion.
    assert_a_signed_webhook_is_stored_within_2s(&client, &server.address).await;

    peak_rss = peak_rss.max(rss_bytes(pid));
    peak_buffered = peak_buffered.max(gauge(&client, &server.address, "holdfast_webhook_buffered_bytes").await);
    assert!(peak_buffered <= BUFFER_CAP as f64, "buffered {peak_buffered} bytes, cap {BUFFER_CAP}");
    assert!(peak_buffered > 0.0, "the stalled uploads were counted");
    assert!(peak_rss < RSS_LIMIT_BYTES, "RSS reached {} MiB under attack", peak_rss / (1024 * 1024));
    let refused = gauge(&client, &server.address, "holdfast_webhook_bodies_refused").await;
    assert_eq!(refused, (STALLED - fit) as f64, "refusals counted");

    // The attack ends: every reservation is returned.
    for upload in &uploads {
        upload.abort();
    }
    assert_nothing_stays_buffered(&client, &server.address).await;
    let after = rss_bytes(pid);
    assert!(after < RSS_LIMIT_BYTES, "RSS {} MiB after the attack", after / (1024 * 1024));
    eprintln!(
        "stalled uploads: peak RSS {} MiB, after {} MiB, peak buffered {} MiB",
        peak_rss / (1024 * 1024),
        after / (1024 * 1024),
        peak_buffered / (1024.0 * 1024.0)
    );
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_off_with_408_and_its_bytes_returned() {
    let app = spawn_app_typed(|s| s.limits.body_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://")).await.expect("connect");
    stream.write_all(upload_head(100).as_bytes()).await.expect("headers sent");
    stream.write_all(&[b'{'; 50]).await.expect("half the body sent");
    let status = tokio::time::timeout(Duration::from_secs(10), read_status(&mut stream)).await.expect("answered");
    assert_eq!(status, Some(408));
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = spawn_app_typed(|s| s.limits.header_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://")).await.expect("connect");
    stream.write_all(b"POST /webhooks/stripe HTTP/1.1\r\nHost: localhost\r\n").await.expect("half the headers sent");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was closed by the server");
    let text = String::from_utf8_lossy(&rest);
    assert!(rest.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn a_chunked_body_is_counted_as_it_grows_and_refused_beyond_the_budget() {
    let app = spawn_app_with(Config::new().owner_token(OWNER_TOKEN).with(|s| s.limits.webhook_buffer_bytes = 65_536)).await;
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://")).await.expect("connect");
    let head = "POST /webhooks/stripe HTTP/1.1\r\nHost: localhost\r\nStripe-Signature: t=1,v1=00\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("headers sent");
    let chunk = vec![b' '; 32 * 1024];
    let mut status = None;
    for _ in 0..4 {
        let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk.clone(), b"\r\n".to_vec()].concat();
        if stream.write_all(&framed).await.is_err() {
            break;
        }
        if let Ok(answered) = tokio::time::timeout(Duration::from_millis(500), read_status(&mut stream)).await {
            status = answered;
            break;
        }
    }
    assert_eq!(status, Some(503), "a body outgrowing the budget is refused");
    let buffered = gauge(&app.client, &app.address, "holdfast_webhook_buffered_bytes").await;
    assert!(buffered <= 65536.0, "{buffered}");
}

#[tokio::test]
async fn a_refused_upload_whose_client_keeps_sending_is_answered_then_disconnected() {
    // Refused on its declared length, so the body is never read by the handler: the server
    // answers, then discards what still arrives for a short while before closing.
    let app = spawn_app_typed(|_| {}).await;
    let stream = TcpStream::connect(app.address.trim_start_matches("http://")).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(upload_head(64 * 1024 * 1024).as_bytes()).await.expect("headers sent");
    let sender = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        // Until the server closes the connection; the test's deadline bounds it.
        while writer.write_all(&chunk).await.is_ok() {}
    });
    let mut answer = vec![0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), reader.read_exact(&mut answer))
        .await
        .expect("answered while the client was still sending")
        .expect("the answer's status line");
    assert_eq!(&answer[9..12], b"413", "{}", String::from_utf8_lossy(&answer));
    tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .expect("the server closed the connection although the client never stopped sending")
        .expect("sender task");
}
