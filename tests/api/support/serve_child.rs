//! The built `holdfast` binary run as `holdfast serve` children logging JSON to a file, and
//! the requests the process tests send them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use holdfast::ingest::signature::sign;
use holdfast::store::Store;
use serde_json::{Value, json};

use crate::support::helpers::{SECRET, customer, now};

pub const BIN: &str = env!("CARGO_BIN_EXE_holdfast");
pub const OWNER_TOKEN: &str = "owner-token-never-logged-0123456789";

/// A `holdfast serve` child logging JSON to a file.
pub struct Server {
    pub child: Child,
    pub address: String,
    pub log: PathBuf,
}

impl Server {
    pub fn start(database_url: &str, dir: &Path, name: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("HOLDFAST_STRIPE_MODE", "test")
            .env("HOLDFAST_OWNER_TOKEN", OWNER_TOKEN)
            .env("HOLDFAST_BIND", "127.0.0.1:0")
            .env("HOLDFAST_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .current_dir(dir)
            .stdout(Stdio::from(out.try_clone().expect("clone")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("holdfast starts");
        let port = wait_for_port(&log);
        Self { child, address: format!("http://127.0.0.1:{port}"), log }
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
    }

    /// Wait (bounded) for the process to exit; its exit status.
    pub fn wait(mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("holdfast did not exit within 30 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The port from the "holdfast listening" line (the server binds port 0).
fn wait_for_port(log: &Path) -> u16 {
    for _ in 0..400 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("holdfast listening")) {
            if let Some(port) = serde_json::from_str::<Value>(line).ok().and_then(|v| v["port"].as_u64()) {
                return port as u16;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("holdfast did not start:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

pub async fn post(client: &reqwest::Client, address: &str, event: &Value) -> Result<reqwest::Response, reqwest::Error> {
    let body = event.to_string();
    client
        .post(format!("{address}/webhooks/stripe"))
        .header("Stripe-Signature", sign(body.as_bytes(), SECRET, now()))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
}

pub fn customer_event(n: usize) -> Value {
    json!({"id": format!("evt_proc_{n:05}"), "object": "event", "type": "customer.created", "created": 1_700_000_000 + n as i64,
           "livemode": false, "api_version": "2025-03-31.basil",
           "data": {"object": customer(&format!("cus_proc_{n:05}"), &format!("secret-person-{n}@example.com"), 1_700_000_000)}})
}

pub async fn stored_ids(url: &str) -> std::collections::BTreeSet<String> {
    let store = Store::connect(url).await.expect("connect");
    let ids = store.dump_state().await.expect("state").event_ids.into_iter().collect();
    store.close().await;
    ids
}
