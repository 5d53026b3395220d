//! The cancel flow in a real browser: headless Chromium driven through chromedriver
//! (WebDriver, via fantoccini) against the real server, Stripe answered by wiremock. Clicks
//! reason → pause, checks the result page and saves target/screenshots/cancel_flow.png.
//!
//! A `browser_*` test (see `requires.rs`): chosen by scripts/test when chromedriver is
//! installed, reported as skipped otherwise; run by hand without it, it fails.
//! `CHROMEDRIVER` / `CHROMIUM` override the binaries (default: on PATH).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::cancel_flow::{flow_with, seed, signed_link};

fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file())
}

fn binary(var: &str, name: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_file()).or_else(|| on_path(name))
}

/// chromedriver, ended when the test ends (pass or fail).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

#[tokio::test]
#[ignore = "needs a browser (chromium + chromedriver)"]
async fn browser_a_customer_pauses_instead_of_cancelling() {
    let chromedriver = PathBuf::from(crate::requires::chromedriver());
    let chromium = binary("CHROMIUM", "chromium").expect("chromium next to chromedriver (apt-get install chromium)");

    let f = flow_with(&[]).await;
    let object = seed(&f.app, "cus_browser", "sub_browser", "price_pro_monthly", |_| {}).await;
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_browser"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&object))
        .expect(1)
        .mount(&f.stripe)
        .await;

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
                     "--no-first-run", "--window-size=412,915",
                     format!("--user-data-dir={}", profile.path().display())]
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");

    let outcome = async {
        browser.goto(&format!("{}{}", f.app.address, signed_link("cus_browser"))).await?;
        // Keyboard works: the comment field is reachable and typed into.
        browser.wait().for_element(Locator::Css("#comment")).await?.send_keys("Quiet months ahead").await?;
        browser.wait().for_element(Locator::Css("#reason-unused")).await?.click().await?;
        browser.wait().for_element(Locator::Css("#choice-pause-1")).await?.click().await?;
        let result = browser.wait().for_element(Locator::Css("#result")).await?;
        let text = result.text().await?;
        let png = browser.screenshot().await?;
        Ok::<_, fantoccini::error::CmdError>((text, png))
    }
    .await;
    let _ = browser.close().await;
    drop(driver);
    let (text, png) = outcome.expect("the browser flow completes");

    assert!(text.contains("Your subscription is paused"), "result page says: {text}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join("cancel_flow.png"), &png).expect("screenshot saved");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");

    let requests = f.stripe.received_requests().await.expect("recorded");
    let sent: Vec<(String, String)> = serde_urlencoded::from_bytes(&requests[0].body).expect("form");
    assert!(sent.contains(&("pause_collection[behavior]".into(), "void".into())), "{sent:?}");
    let stats = f.app.store.cancel_flow_stats(0, i64::MAX, f.app.clock.now()).await.expect("stats");
    assert_eq!((stats.sessions, stats.paused), (1, 1));
    assert_eq!(stats.reasons.get("unused"), Some(&1));
}
