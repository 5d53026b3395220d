//! The cancel flow in a real browser: headless Chromium driven through chromedriver
//! (WebDriver, via fantoccini) against the real server, Stripe answered by wiremock. Clicks
//! reason → pause (target/screenshots/cancel_flow.png), then the yearly, undo, past-due and
//! ended paths at 375 px, checking that no page is wider than the phone.
//!
//! `browser_*` tests (see `support/requires.rs`): chosen by scripts/test when chromedriver is
//! installed, reported as skipped otherwise; run by hand without it, they fail.
//! `CHROMEDRIVER` / `CHROMIUM` override the binaries (default: on PATH).

use std::path::Path;

use fantoccini::Locator;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::cancel_flow::{Flow, flow_with, seed, signed_link};
use crate::support::helpers::Config;
use crate::support::requires::chromium;

/// The page's layout width and the viewport's: the page fits when the first is not larger.
async fn widths(browser: &fantoccini::Client) -> Result<(i64, i64), fantoccini::error::CmdError> {
    let v = browser
        .execute("return [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth];", vec![])
        .await?;
    let n = |i: usize| v[i].as_i64().unwrap_or(i64::MAX);
    Ok((n(0).max(n(1)), n(2)))
}

#[tokio::test]
#[ignore = "needs a browser (chromium + chromedriver)"]
async fn browser_a_customer_pauses_instead_of_cancelling() {
    let (browser, driver, _profile) = chromium(412, 915).await;
    let f = flow_with(Config::new()).await;
    let object = seed(&f.app, "cus_browser", "sub_browser", "price_pro_monthly", |_| {}).await;
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_browser"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&object))
        .expect(1)
        .mount(&f.stripe)
        .await;

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

/// The customers of the phone paths: a yearly subscriber, a scheduled cancellation, a past-due
/// customer and an ended subscription; Stripe accepts one update each of the first two.
/// Returns the date the yearly plan's paid year ends, as the pages write it.
async fn seed_the_phone_paths(f: &Flow) -> String {
    let yearly = seed(&f.app, "cus_byear", "sub_byear", "price_pro_yearly", |s| {
        let item = &mut s["items"]["data"][0];
        item["price"]["recurring"]["interval"] = json!("year");
        let start = item["current_period_start"].as_i64().unwrap_or_default();
        item["current_period_end"] = json!(start + 365 * 86_400);
    })
    .await;
    let undo = seed(&f.app, "cus_bundo", "sub_bundo", "price_pro_monthly", |s| s["cancel_at_period_end"] = json!(true)).await;
    seed(&f.app, "cus_blate", "sub_blate", "price_pro_monthly", |s| s["status"] = json!("past_due")).await;
    seed(&f.app, "cus_bgone", "sub_bgone", "price_pro_monthly", |s| s["status"] = json!("canceled")).await;
    for (sub, object) in [("sub_byear", &yearly), ("sub_bundo", &undo)] {
        Mock::given(method("POST"))
            .and(path(format!("/v1/subscriptions/{sub}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(object))
            .expect(1)
            .mount(&f.stripe)
            .await;
    }
    holdfast::cancel::http::long_date(yearly["items"]["data"][0]["current_period_end"].as_i64().expect("end")).expect("date")
}

/// What the browser saw of each page, by name: its widths (content, viewport) and its text.
#[derive(Default)]
struct Seen {
    pages: Vec<(String, (i64, i64))>,
    texts: Vec<(String, String)>,
}

impl Seen {
    async fn look(&mut self, browser: &fantoccini::Client, name: &str) -> Result<(), fantoccini::error::CmdError> {
        self.pages.push((name.to_owned(), widths(browser).await?));
        self.texts.push((name.to_owned(), browser.find(Locator::Css("main")).await?.text().await?));
        Ok(())
    }
}

/// Clicks through the yearly, undo, past-due and ended paths and the error pages of the app
/// at `address`, looking at each page; then a screenshot.
async fn walk_the_phone_paths(
    browser: &fantoccini::Client,
    address: &str,
) -> Result<(Seen, Vec<u8>), fantoccini::error::CmdError> {
    let mut seen = Seen::default();
    // Yearly: survey → offer (no pause) → cancel → done with the end date.
    browser.goto(&format!("{address}{}", signed_link("cus_byear"))).await?;
    browser.wait().for_element(Locator::Css("#reason-unused")).await?;
    seen.look(browser, "survey").await?;
    browser.find(Locator::Css("#reason-unused")).await?.click().await?;
    browser.wait().for_element(Locator::Css("#choice-cancel")).await?;
    seen.look(browser, "yearly offer").await?;
    browser.find(Locator::Css("#choice-cancel")).await?.click().await?;
    browser.wait().for_element(Locator::Css("#result")).await?;
    seen.look(browser, "yearly done").await?;
    // Undo: one button.
    browser.goto(&format!("{address}{}", signed_link("cus_bundo"))).await?;
    browser.wait().for_element(Locator::Css("#choice-keep")).await?;
    seen.look(browser, "scheduled").await?;
    browser.find(Locator::Css("#choice-keep")).await?.click().await?;
    browser.wait().for_element(Locator::Css("#result")).await?;
    seen.look(browser, "undo done").await?;
    // Past due: the card comes first; "too expensive" gets no price offer.
    browser.goto(&format!("{address}{}", signed_link("cus_blate"))).await?;
    browser.wait().for_element(Locator::Css("#update-card")).await?;
    seen.look(browser, "past-due survey").await?;
    browser.find(Locator::Css("#reason-too_expensive")).await?.click().await?;
    browser.wait().for_element(Locator::Css("#choice-cancel")).await?;
    seen.look(browser, "past-due offer").await?;
    // Ended, a forged link, and the billing portal's return page.
    browser.goto(&format!("{address}{}", signed_link("cus_bgone"))).await?;
    browser.wait().for_element(Locator::Css("#ended")).await?;
    seen.look(browser, "ended").await?;
    browser.goto(&format!("{address}/cancel?customer=cus_byear&sig=00")).await?;
    browser.wait().for_element(Locator::Css("[role=alert]")).await?;
    seen.look(browser, "error").await?;
    browser.goto(&format!("{address}/billing/updated")).await?;
    browser.wait().for_element(Locator::Css("#billing-updated")).await?;
    seen.look(browser, "billing updated").await?;
    let png = browser.screenshot().await?;
    Ok((seen, png))
}

/// Each path's pages say what they should: the yearly plan has no pause and names the end of
/// its paid year, the undo continues, the past-due survey puts the card first and its offer
/// has no price offer, the ended subscription says so.
fn assert_each_path_reads_right(texts: &[(String, String)], ends_on: &str) {
    let text = |name: &str| texts.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone()).unwrap_or_default();
    assert!(!text("yearly offer").contains("Pause for"), "{}", text("yearly offer"));
    assert!(text("yearly offer").contains(&format!("your subscription ends on {ends_on}")), "{}", text("yearly offer"));
    assert!(text("yearly done").contains(&format!("ends on {ends_on}")), "{}", text("yearly done"));
    assert!(text("scheduled").contains("Your subscription ends on"), "{}", text("scheduled"));
    assert!(text("undo done").contains("Your subscription continues"), "{}", text("undo done"));
    let late = text("past-due survey");
    assert!(late.find("Update your card") < late.find("why do you want to cancel"), "{late}");
    assert!(!text("past-due offer").contains("Stay with a discount"), "{}", text("past-due offer"));
    assert!(!text("past-due offer").contains("until the end of the period you paid"), "{}", text("past-due offer"));
    assert!(text("ended").contains("Your subscription has ended"), "{}", text("ended"));
}

/// Every cancel page a phone can reach, at 375 px: the yearly plan (no pause that would void
/// its renewal; the cancellation names its end date), the undo of a scheduled cancellation,
/// a past-due customer (the card first), an ended subscription, and the error pages.
#[tokio::test]
#[ignore = "needs a browser (chromium + chromedriver)"]
async fn browser_yearly_undo_and_past_due_paths_fit_a_375_px_phone() {
    let (browser, driver, _profile) = chromium(375, 812).await;
    let f = flow_with(Config::new()).await;
    let ends_on = seed_the_phone_paths(&f).await;

    let outcome = walk_the_phone_paths(&browser, &f.app.address).await;
    let _ = browser.close().await;
    drop(driver);
    let (Seen { pages, texts }, png) = outcome.expect("the browser paths complete");

    eprintln!("page widths (content, viewport): {pages:?}");
    for (name, (content, viewport)) in &pages {
        assert!(*viewport <= 400, "{name}: the viewport is phone-sized ({viewport} px)");
        assert!(content <= viewport, "{name}: {content} px of content in a {viewport} px viewport");
    }
    assert_each_path_reads_right(&texts, &ends_on);

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join("cancel_flow_375.png"), &png).expect("screenshot saved");
    let sent: Vec<Vec<(String, String)>> = f
        .stripe
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .map(|r| serde_urlencoded::from_bytes(&r.body).expect("form"))
        .collect();
    assert!(sent[0].contains(&("cancel_at_period_end".into(), "true".into())), "{sent:?}");
    assert!(sent[1].contains(&("cancel_at_period_end".into(), "false".into())), "{sent:?}");
    let stats = f.app.store.cancel_flow_stats(0, i64::MAX, f.app.clock.now()).await.expect("stats");
    assert_eq!((stats.canceled, stats.resumed), (1, 1));
}
