//! Money in its own currency everywhere it is shown: the summary's per-currency sections,
//! CSV, the dashboard's currency picker, and a dunning email, for JPY (zero-decimal), KWD
//! (three-decimal) and EUR.

use serde_json::{Value, json};

use crate::support::business::OWNER_TOKEN;
use crate::support::helpers::*;
use crate::support::mail_world::{DAY, EMAIL, app_with_sink, deliver_now};

/// 2025-03-10 00:00 UTC: every subscription starts here; the summary is of March 2025.
const T: i64 = 1_741_564_800;

/// A monthly subscription of `amount` (minor units) in `currency`.
fn sub_in(id: &str, customer: &str, currency: &str, amount: i64) -> Value {
    let mut sub = Sub::new(id, customer, T);
    sub.unit_amount = amount;
    sub.price = format!("price_{currency}_monthly");
    let mut s = sub.object();
    s["currency"] = json!(currency);
    s["items"]["data"][0]["price"]["currency"] = json!(currency);
    s
}

/// Two USD customers ($20 + $20), one JPY (¥5,000 + ¥1,200), one KWD (12.500 KWD), one EUR (€9.50).
async fn business_in_four_currencies(app: &TestApp) {
    let subs = [
        ("cus_u1", sub_in("sub_u1", "cus_u1", "usd", 2000)),
        ("cus_u2", sub_in("sub_u2", "cus_u2", "usd", 2000)),
        ("cus_j1", sub_in("sub_j1", "cus_j1", "jpy", 5000)),
        ("cus_j2", sub_in("sub_j2", "cus_j2", "jpy", 1200)),
        ("cus_k1", sub_in("sub_k1", "cus_k1", "kwd", 12_500)),
        ("cus_e1", sub_in("sub_e1", "cus_e1", "eur", 950)),
    ];
    for (customer_id, sub) in subs {
        app.deliver(&event("customer.created", T, customer(customer_id, &format!("{customer_id}@example.com"), T))).await;
        app.deliver(&event("customer.subscription.created", T, sub)).await;
    }
}

async fn owner(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(format!("{}{path}", app.address)).bearer_auth(OWNER_TOKEN).send().await.expect("request sent")
}

#[tokio::test]
async fn the_summary_has_a_section_per_currency_and_never_adds_them_up() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    business_in_four_currencies(&app).await;

    // Without `currency`, the documented default: the most MRR counted in minor units.
    let body: Value = owner(&app, "/api/summary?month=2025-03").await.json().await.expect("JSON");
    assert_eq!(body["currency"], "kwd");
    assert_eq!((body["mrr_end"].as_f64(), body["active_customers_end"].as_u64()), (Some(12_500.0), Some(1)));
    let sections: Vec<(String, f64, u64)> = body["currencies"]
        .as_array()
        .expect("currencies")
        .iter()
        .map(|c| {
            (
                c["currency"].as_str().unwrap_or_default().to_owned(),
                c["mrr_end"].as_f64().unwrap_or(-1.0),
                c["active_customers_end"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        sections,
        [("eur".into(), 950.0, 1), ("jpy".into(), 6200.0, 2), ("kwd".into(), 12_500.0, 1), ("usd".into(), 4000.0, 2)]
    );

    let usd: Value = owner(&app, "/api/summary?month=2025-03&currency=USD").await.json().await.expect("JSON");
    assert_eq!((usd["currency"].as_str(), usd["mrr_end"].as_f64()), (Some("usd"), Some(4000.0)));
    assert_eq!(usd["active_customers_end"], 2);
    assert_eq!(usd["currencies"], body["currencies"], "every section whichever currency is picked");

    for bad in ["us", "usd1", "u$d", "dollars"] {
        let response = owner(&app, &format!("/api/summary?month=2025-03&currency={bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
        let error: Value = response.json().await.expect("JSON error");
        assert_eq!(error["error"]["code"], "bad_currency");
    }
}

#[tokio::test]
async fn csv_money_is_in_whole_units_with_each_currencys_decimals() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    business_in_four_currencies(&app).await;

    let csv = owner(&app, "/api/summary?month=2025-03&currency=kwd&format=csv").await.text().await.expect("body");
    assert!(csv.contains("\ncurrency,kwd\n") && csv.contains("\nmrr_end,12.500\n"), "{csv}");
    assert!(csv.contains("\narpu,12.500\n") && csv.contains("\nmrr_movements.new,12.500\n"), "{csv}");
    // The other currencies' sections, each in its own decimals.
    for line in ["\ncurrencies.jpy.mrr_end,6200\n", "\ncurrencies.eur.mrr_end,9.50\n", "\ncurrencies.usd.mrr_end,40.00\n"] {
        assert!(csv.contains(line), "{line:?} missing: {csv}");
    }

    let csv =
        owner(&app, "/api/metrics/monthly?from=2025-02&to=2025-03&currency=jpy&format=csv").await.text().await.expect("body");
    let lines: Vec<&str> = csv.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let march: Vec<&str> = lines[2].split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}"));
    assert_eq!((march[column("mrr_start")], march[column("mrr_end")], march[column("arpu")]), ("0", "6200", "3100"));

    let csv = owner(&app, "/api/summary?month=2025-03&currency=eur&format=csv").await.text().await.expect("body");
    assert!(csv.contains("\nmrr_end,9.50\n"), "{csv}");
}

#[tokio::test]
async fn the_dashboard_shows_each_currency_in_its_own_format_and_lets_the_owner_pick() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    business_in_four_currencies(&app).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let ok = client.post(format!("{}/dashboard/login", app.address)).form(&[("token", OWNER_TOKEN)]).send().await.expect("sent");
    let session = ok.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("cookie").to_owned();
    let page = |query: &'static str| {
        let (client, session, address) = (client.clone(), session.clone(), app.address.clone());
        async move {
            let response =
                client.get(format!("{address}/dashboard?{query}")).header("Cookie", session).send().await.expect("sent");
            (response.status().as_u16(), response.text().await.expect("html"))
        }
    };

    let (status, html) = page("month=2025-03").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<div class="value" id="mrr-end">12.500 KWD</div>"#), "three decimals for dinars");
    assert!(html.contains(r#"<nav id="currencies""#), "the picker is shown for a business in several currencies");
    for link in [
        r#"href="/dashboard?month=2025-03&amp;currency=eur" data-currency="eur">EUR · €9.50</a>"#,
        r#"href="/dashboard?month=2025-03&amp;currency=jpy" data-currency="jpy">JPY · ¥6,200</a>"#,
        r#"href="/dashboard?month=2025-03&amp;currency=usd" data-currency="usd">USD · $40.00</a>"#,
        r#"<strong aria-current="page" data-currency="kwd">KWD · 12.500 KWD</strong>"#,
    ] {
        assert!(html.contains(link), "{link} missing");
    }

    let (_, html) = page("month=2025-03&currency=jpy").await;
    assert!(html.contains(r#"id="mrr-end">¥6,200</div>"#), "JPY has no decimals");
    assert!(html.contains(r#"<div class="value">¥3,100</div>"#), "ARPU in yen");
    assert!(html.contains("href=\"/dashboard?month=2025-02&amp;currency=jpy\""), "month links keep the currency");
    let (_, html) = page("month=2025-03&currency=eur").await;
    assert!(html.contains(r#"id="mrr-end">€9.50</div>"#));
    assert!(html.contains("€9.50") && !html.contains("$9.50"));

    let (status, _) = page("month=2025-03&currency=%22%3E").await;
    assert_eq!(status, 400, "a currency that is not a code is refused");
}

#[tokio::test]
async fn a_dunning_email_states_the_amount_in_the_invoices_currency() {
    let (app, sink) = app_with_sink(Config::new()).await;
    app.clock.set(now());
    let t = app.clock.now() - 3600;
    deliver_now(&app, &event("customer.created", t - DAY, customer("cus_1", EMAIL, t - DAY))).await;
    deliver_now(&app, &event("customer.subscription.created", t - DAY, sub_in("sub_1", "cus_1", "jpy", 2000))).await;
    for (id, currency, amount, shown) in
        [("in_jpy", "jpy", 2000, "¥2,000"), ("in_kwd", "kwd", 2000, "2.000 KWD"), ("in_eur", "eur", 2000, "€20.00")]
    {
        let mut invoice = invoice(id, "cus_1", "sub_1", "open", amount, t);
        invoice["currency"] = json!(currency);
        invoice["attempt_count"] = json!(1);
        invoice["next_payment_attempt"] = json!(t + 3 * DAY);
        invoice["customer_email"] = json!(EMAIL);
        deliver_now(&app, &event("invoice.payment_failed", t, invoice)).await;
        app.outbox.run_until_idle_at(app.clock.now()).await.expect("pass");
        let m = sink.parsed().into_iter().last().expect("an email");
        let subject = m.header("Subject").unwrap_or_default();
        if shown.is_ascii() {
            assert_eq!(subject, format!("Your Acme payment of {shown} didn't go through"));
        } else {
            // Encoded as RFC 2047 words; the bodies say it plainly.
            assert!(subject.starts_with("Your Acme payment of =?utf-8?"), "{subject}");
        }
        assert!(m.text.contains(shown), "{}", m.text);
        assert!(m.html.contains(&format!("<strong>{shown}</strong>")), "{}", m.html);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holdfast_summary_prints_each_currency_in_its_own_format() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    business_in_four_currencies(&app).await;
    let url = app.database_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("dir");
        std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(["summary", "--month", "2025-03", "--currency", "jpy"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .current_dir(dir.path())
            .output()
            .expect("holdfast runs")
    })
    .await
    .expect("joined");
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("JPY") && table.contains("¥6,200") && table.contains("¥3,100"), "{table}");
    for section in ["EUR", "€9.50", "KWD", "12.500 KWD", "USD", "$40.00"] {
        assert!(table.contains(section), "{section} missing:\n{table}");
    }
}

#[tokio::test]
#[ignore = "needs Chromium (scripts/test runs it)"]
async fn browser_picks_a_currency_on_the_dashboard() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    business_in_four_currencies(&app).await;
    let (browser, _driver, _profile) = crate::support::requires::chromium(1280, 1600).await;
    browser.goto(&format!("{}/dashboard", app.address)).await.expect("login page");
    browser.find(fantoccini::Locator::Id("token")).await.expect("token field").send_keys(OWNER_TOKEN).await.expect("typed");
    browser.find(fantoccini::Locator::Id("sign-in")).await.expect("button").click().await.expect("clicked");
    browser.wait().for_element(fantoccini::Locator::Id("dashboard")).await.expect("dashboard after login");
    browser.goto(&format!("{}/dashboard?month=2025-03", app.address)).await.expect("March");
    let card = |b: &fantoccini::Client| {
        let b = b.clone();
        async move { b.find(fantoccini::Locator::Id("mrr-end")).await.expect("card").text().await.expect("text") }
    };
    assert_eq!(card(&browser).await, "12.500 KWD");
    for (code, shown) in [("jpy", "¥6,200"), ("eur", "€9.50"), ("usd", "$40.00")] {
        let link = format!("#currencies a[data-currency='{code}']");
        browser.find(fantoccini::Locator::Css(&link)).await.expect("picker link").click().await.expect("clicked");
        browser
            .wait()
            .for_element(fantoccini::Locator::Css(&format!("#currencies strong[data-currency='{code}']")))
            .await
            .expect("picked");
        assert_eq!(card(&browser).await, shown, "{code}");
    }
    browser.close().await.expect("browser closed");
}
