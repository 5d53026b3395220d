//! Outbox throughput: enqueue N emails, then time the outbox worker(s) delivering them over
//! real SMTP to a counting sink in this process (localhost; no TLS).
//!
//!     cargo run --release --bin holdfast-outbox-bench -- [ROWS] [WORKERS]
//!
//! `DATABASE_URL` picks the store (default: a temporary SQLite file).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use holdfast::mail::transport::Mailer;
use holdfast::mail::{Category, EmailContent, NewEmail};
use holdfast::settings::Settings;
use holdfast::store::Store;
use holdfast::workers::outbox::OutboxWorker;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args.get(1).map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let workers: usize = args.get(2).map(|a| a.parse()).transpose()?.unwrap_or(1);
    let file = std::env::temp_dir().join(format!("holdfast-outbox-bench-{}.db", uuid::Uuid::new_v4().simple()));
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{}", file.display()));
    let (port, delivered) = sink().await?;

    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let now = chrono::Utc::now().timestamp();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let emails: Vec<NewEmail> = (0..rows).map(|i| email(&run, i, now)).collect();
    store.enqueue_emails(&emails, now).await?;

    let vars: HashMap<&str, String> = [
        ("STRIPE_WEBHOOK_SECRET", "whsec_bench".to_owned()),
        ("HOLDFAST_STRIPE_MODE", "test".to_owned()),
        ("SMTP_URL", format!("smtp://127.0.0.1:{port}")),
    ]
    .into_iter()
    .collect();
    let settings = Settings::from_source(&vars)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let worker = OutboxWorker::new(Store::connect(&url).await?, Mailer::new(&settings.mail)?, 8);
        tasks.push(tokio::spawn(async move { worker.run_until_idle_at(now).await }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = delivered.load(Ordering::Relaxed);
    let _ = std::fs::remove_file(&file);
    println!(
        "{} backend, {workers} worker(s): {n} of {rows} emails delivered over SMTP in {secs:.2} s = {:.0} emails/s",
        store.backend(),
        n as f64 / secs
    );
    Ok(())
}

fn email(run: &str, i: usize, at: i64) -> NewEmail {
    NewEmail {
        dedupe_key: format!("bench:{run}:{i}"),
        case_key: None,
        category: Category::Transactional,
        customer: None,
        recipient: format!("user{i}@example.com"),
        template: "bench".into(),
        content: EmailContent { subject: format!("bench {i}"), text: "hello ".repeat(100), html: "<p>hello</p>".repeat(50) },
        send_at: at,
        unsubscribe_url: None,
    }
}

/// A minimal SMTP server that accepts everything and counts messages.
async fn sink() -> anyhow::Result<(u16, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let count = Arc::new(AtomicUsize::new(0));
    let shared = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = shared.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read);
                let _ = write.write_all(b"220 bench\r\n").await;
                let (mut line, mut in_data) = (String::new(), false);
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let reply: &[u8] = if in_data {
                        if line != ".\r\n" {
                            continue;
                        }
                        in_data = false;
                        count.fetch_add(1, Ordering::Relaxed);
                        b"250 ok\r\n"
                    } else if line.starts_with("EHLO") {
                        b"250-bench\r\n250 8BITMIME\r\n"
                    } else if line.starts_with("DATA") {
                        in_data = true;
                        b"354 go\r\n"
                    } else if line.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((port, count))
}
