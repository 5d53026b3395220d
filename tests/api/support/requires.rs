//! Tests that need something this machine may lack are chosen before the run, never skipped
//! from inside (libtest counts an early return as a pass). The convention:
//!
//! - `browser_*`: needs chromium + chromedriver, `#[ignore = "needs a browser …"]`;
//! - `postgres_only_*`: needs `TEST_DATABASE=postgres`, `#[ignore = "needs postgres"]`;
//! - `sqlite_only_*`: needs the SQLite run, `#[ignore = "needs sqlite"]`.
//!
//! `scripts/test` runs them with `--include-ignored` where the requirement is met and
//! `--skip`s (and reports as skipped) the rest. Run by hand without the requirement, such a
//! test fails with a message instead of passing without having run.
//!
//! The browser tests share one launcher here: `chromium(width, height)` starts chromedriver
//! and a headless Chromium session emulating a screen of that size.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::ClientBuilder;
use serde_json::json;

use crate::support::helpers::backend;

/// Fail unless the suite runs on `wanted` (`postgres` or `sqlite`).
pub fn database(wanted: &str) {
    assert_eq!(backend(), wanted, "this test needs the {wanted} run (scripts/test selects it by its name prefix {wanted}_only_)");
}

/// The chromedriver to use, or a failure naming what to install.
pub fn chromedriver() -> String {
    let candidates =
        [std::env::var("CHROMEDRIVER").ok(), Some("chromedriver".into()), Some("/usr/lib/chromium/chromedriver".into())];
    candidates
        .into_iter()
        .flatten()
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .unwrap_or_else(|| {
            panic!("this browser test needs chromedriver (apt-get install chromium chromium-driver, or set CHROMEDRIVER); scripts/test skips browser_* tests without it")
        })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file())
}

pub fn binary(var: &str, name: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_file()).or_else(|| on_path(name))
}

/// chromedriver, ended when the test ends (pass or fail).
pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A headless Chromium session at `width`×`height` (CSS pixels), with its chromedriver (a
/// missing chromedriver fails the test, naming what to install).
pub async fn chromium(width: u32, height: u32) -> (fantoccini::Client, Driver, tempfile::TempDir) {
    let chromedriver = PathBuf::from(crate::support::requires::chromedriver());
    let chromium = binary("CHROMIUM", "chromium").expect("chromium next to chromedriver (apt-get install chromium)");
    let port = free_port();
    let driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    // Wait (bounded) for chromedriver to listen.
    let mut listening = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listening, "chromedriver did not listen on port {port}");
    let profile = tempfile::tempdir().expect("profile dir");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--hide-scrollbars", format!("--window-size={width},{height}"),
                     format!("--user-data-dir={}", profile.path().display())],
            "mobileEmulation": {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0}}
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");
    (browser, driver, profile)
}
