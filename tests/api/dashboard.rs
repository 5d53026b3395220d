//! The dashboard: login by token, a signed session cookie, server-drawn charts — and a real
//! headless Chromium loading it (screenshot in target/screenshots/dashboard.png).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::business::{OWNER_TOKEN, business, deliver_all, stripe_events};
use crate::support::helpers::*;

async fn login(app: &TestApp, token: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    client.post(format!("{}/dashboard/login", app.address)).form(&[("token", token)]).send().await.expect("sent")
}

#[tokio::test]
async fn the_owner_logs_in_with_the_token_and_gets_a_strict_signed_cookie() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    let page = app.get("/dashboard").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("name=\"token\""), "login form first");

    assert_eq!(login(&app, "wrong").await.status(), 401);
    let ok = login(&app, OWNER_TOKEN).await;
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()["set-cookie"].to_str().expect("ascii").to_string();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains(OWNER_TOKEN), "the cookie must not carry the token");
    let session = cookie.split(';').next().expect("name=value").to_string();

    let dash = app.client.get(format!("{}/dashboard", app.address)).header("Cookie", &session).send().await.expect("sent");
    assert_eq!(dash.status(), 200);
    let html = dash.text().await.expect("html");
    for id in ["chart-mrr", "chart-churn", "chart-cohorts", "chart-recovery", "chart-cancel_flow"] {
        assert!(html.contains(id), "{id} missing");
    }
    assert!(!html.contains("<script"), "no scripts");

    let forged = session.replace("v1.", "v1.9");
    let dash = app.client.get(format!("{}/dashboard", app.address)).header("Cookie", forged).send().await.expect("sent");
    assert!(dash.text().await.expect("html").contains("name=\"token\""), "a forged cookie gets the login form");
}

#[tokio::test]
async fn each_dashboard_refusal_answers_its_status_with_the_reason_on_the_page() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    let wrong = login(&app, "wrong").await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.expect("html").contains("That token is not right."));
    let no_session = app.get("/dashboard/customers/cus_1").await;
    assert_eq!(no_session.status(), 200, "without a session every page is the login form");
    assert!(no_session.text().await.expect("html").contains("name=\"token\""));

    let ok = login(&app, OWNER_TOKEN).await;
    let cookie = ok.headers()["set-cookie"].to_str().expect("ascii").to_string();
    let session = cookie.split(';').next().expect("name=value").to_string();
    let get = |path: &str| app.client.get(format!("{}{path}", app.address)).header("Cookie", &session).send();
    let cases = [
        ("/dashboard?month=2026-13", 400, "month must be YYYY-MM"),
        ("/dashboard?currency=dollars", 400, "currency must be a three-letter code such as usd"),
        ("/dashboard/lists/nope", 400, "no such list; the lists are:"),
        ("/dashboard/customers?q=", 400, "q must be 1 to 200 printable characters"),
        ("/dashboard/customers/cus_nobody", 404, "No customer with that id has been seen."),
    ];
    for (path, status, words) in cases {
        let page = get(path).await.expect("sent");
        assert_eq!(page.status(), status, "{path}");
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8", "{path}");
        let html = page.text().await.expect("html");
        assert!(html.contains(words), "{path}: {words:?} missing");
    }
    let missing = get("/dashboard/customers/cus_nobody").await.expect("sent").text().await.expect("html");
    assert!(missing.contains("value=\"cus_nobody\""), "the id asked for is kept in the search form");
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "needs a browser (chromium + chromedriver)"]
async fn browser_signs_in_and_sees_the_charts() {
    let driver_bin = crate::support::requires::chromedriver();
    let app = spawn_owner_app(OWNER_TOKEN).await;
    deliver_all(&app, &stripe_events(&business(7, 70)), 16).await;

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let _driver = Driver(
        Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let profile = tempfile::tempdir().expect("profile dir");
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "goog:chromeOptions": {"args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--window-size=1280,2400", format!("--user-data-dir={}", profile.path().display())]}
    }))
    .expect("caps");
    let mut client = None;
    for _ in 0..100 {
        match fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let browser = client.expect("chromedriver answers");
    browser.goto(&format!("{}/dashboard", app.address)).await.expect("login page");
    browser.find(fantoccini::Locator::Id("token")).await.expect("token field").send_keys(OWNER_TOKEN).await.expect("typed");
    browser.find(fantoccini::Locator::Id("sign-in")).await.expect("button").click().await.expect("clicked");
    browser.wait().for_element(fantoccini::Locator::Id("dashboard")).await.expect("dashboard after login");
    browser.goto(&format!("{}/dashboard?month=2026-02", app.address)).await.expect("a month with data");
    let bars = browser.find_all(fantoccini::Locator::Css("#chart-mrr rect")).await.expect("bars");
    assert!(bars.len() > 12, "MRR chart drawn");
    let mrr = browser.find(fantoccini::Locator::Id("mrr-end")).await.expect("card").text().await.expect("text");
    let summary = app.get_summary("2026-02").await;
    assert_eq!(mrr, holdfast::domain::money::format(summary["mrr_end"].as_f64().unwrap_or(0.0), "usd"));
    let png = browser.screenshot().await.expect("screenshot");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join("dashboard.png"), png).expect("screenshot saved");
    browser.close().await.expect("browser closed");
}
