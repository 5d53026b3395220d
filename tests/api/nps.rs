//! NPS end to end: the scheduler sends the survey at day 30 of a paying customer's life and
//! every six months (marketing, unsubscribable); a score link only opens a page (mail scanners
//! follow links), its button POSTs the score, stored once; the optional comment; a low score
//! from a paying customer opens an at-risk episode; NPS and its trend in the summary; each
//! answer on the customer's record. The browser test clicks through it in headless Chromium.

use fantoccini::Locator;
use serde_json::Value;

use crate::support::helpers::{Config, Sub, TestApp, customer, event};
use crate::support::mail_world::{DAY, app_with_sink, deliver_now};
use crate::support::smtp_sink::SmtpSink;

const OWNER: &str = "owner-token-for-nps-tests-00000001";
/// When the customers subscribe (the clock starts here): 2 March 2026, 10:00 UTC.
const START: i64 = 1_772_445_600;

/// The survey on, configured typed (the keys of `holdfast.toml`'s `[nps]`).
async fn nps_app(config: Config) -> (TestApp, SmtpSink) {
    let nps = Config::new()
        .owner_token(OWNER)
        .key("lifecycle.product_url", "https://app.acme.test")
        .key("nps.enabled", true)
        .key("nps.product", "Acme Notes")
        .key("nps.min_sample", 2);
    let (app, sink) = app_with_sink(nps.then(config)).await;
    app.clock.set(START);
    (app, sink)
}

async fn subscribed(app: &TestApp, cus: &str, email: &str) {
    deliver_now(app, &event("customer.created", START, customer(cus, email, START))).await;
    deliver_now(app, &event("customer.subscription.created", START, Sub::new(&format!("sub_{cus}"), cus, START).object())).await;
}

/// Run the scheduler at `t` and send what is due; the emails sent.
async fn run_at(app: &TestApp, t: i64) -> usize {
    app.clock.set(t);
    app.scheduler.try_run_once().await.expect("checks");
    app.outbox.run_until_idle_at(t).await.expect("send")
}

/// The link for `score` in a survey email's text, pointed at the test server.
fn score_link(app: &TestApp, text: &str, score: u8) -> String {
    let prefix = format!("{score}: https://billing.acme.test/nps/");
    let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("a link for {score} in {text}"));
    let url = line.split_once(": ").map(|(_, u)| u).expect("url");
    assert!(url.ends_with(&format!("?score={score}")), "{url}");
    url.replace("https://billing.acme.test", &app.address)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

async fn owner_get(app: &TestApp, path: &str) -> Value {
    let r = app.client.get(format!("{}{path}", app.address)).bearer_auth(OWNER).send().await.expect("GET");
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.expect("json")
}

async fn post_score(link: &str, score: &str) -> reqwest::Response {
    let action = link.split('?').next().expect("path");
    no_redirects().post(action).form(&[("score", score)]).send().await.expect("POST")
}

/// The one survey email: its subject, unsubscribable (marketing mail), its question, and a
/// link for every score from 0 to 10. Returns the link for 3, pointed at the test server.
fn the_surveys_link_for_3(app: &TestApp, sink: &SmtpSink) -> String {
    let mail = &sink.parsed()[0];
    assert_eq!(mail.header("Subject").as_deref(), Some("How likely are you to recommend Acme Notes?"));
    assert!(mail.header("List-Unsubscribe").is_some(), "marketing mail: unsubscribable");
    assert!(mail.text.contains("how likely are you to recommend Acme Notes to a friend or colleague?"), "{}", mail.text);
    let link = score_link(app, &mail.text, 3);
    for s in 0..=10 {
        score_link(app, &mail.text, s);
    }
    link
}

/// A scanner (or the customer) opening `link` twice gets the page with the link's score (3)
/// preselected and the button, each time.
async fn assert_opening_the_link_twice_only_asks(app: &TestApp, link: &str) {
    for _ in 0..2 {
        let page = app.client.get(link).send().await.expect("GET");
        assert_eq!(page.status(), 200);
        let html = page.text().await.expect("html");
        assert!(html.contains("id=\"score-3\" checked"), "the link's score is preselected");
        assert!(html.contains("id=\"send-score\""));
    }
}

/// A low score from a paying customer opens an at-risk episode (`low_nps`) with the
/// re-engagement series, and activity in the next days does not end it.
async fn assert_a_low_score_stays_at_risk_through_activity(app: &TestApp, record: &Value) {
    let at_risk = &record["at_risk"];
    assert_eq!((at_risk["status"].as_str(), at_risk["reason"].as_str()), (Some("at_risk"), Some("low_nps")));
    let series = app.store.lifecycle_series().await.expect("series");
    assert_eq!(
        series.iter().map(|s| (s.campaign.as_str(), s.status.as_str())).collect::<Vec<_>>(),
        vec![("reengagement", "active")]
    );
    // Activity in the next days does not end it: the customer uses the product but is unhappy.
    let activity = serde_json::json!([{"customer": "cus_1", "at": START + 31 * DAY, "event": "login"}]);
    let r =
        app.client.post(format!("{}/api/activity", app.address)).bearer_auth(OWNER).json(&activity).send().await.expect("POST");
    assert_eq!(r.json::<Value>().await.expect("json")["reengaged"], serde_json::json!([]));
}

/// April's summary (min_sample = 2): one detractor, too few for a score, in the trend too.
async fn assert_one_answer_is_too_few_for_a_score(app: &TestApp) {
    let s = owner_get(app, "/api/summary?month=2026-04").await;
    let nps = &s["nps"];
    assert_eq!((nps["n"].as_u64(), nps["detractors"].as_u64(), nps["too_few"].as_bool()), (Some(1), Some(1), Some(true)));
    assert!(nps["score"].is_null());
    let april = nps["by_month"].as_array().expect("trend").iter().find(|m| m["month"] == "2026-04").expect("April");
    assert_eq!((april["n"].as_u64(), april["too_few"].as_bool()), (Some(1), Some(true)));
}

#[tokio::test]
async fn the_survey_goes_at_day_30_a_link_only_opens_a_page_and_the_posted_score_is_stored_once() {
    let (app, sink) = nps_app(Config::new().campaign_on("reengagement")).await;
    subscribed(&app, "cus_1", "ada@example.com").await;

    assert_eq!(run_at(&app, START + 29 * DAY).await, 0, "not before day 30");
    assert_eq!(run_at(&app, START + 30 * DAY).await, 1);
    assert_eq!(run_at(&app, START + 31 * DAY).await, 0, "one survey per wave");
    let link = the_surveys_link_for_3(&app, &sink);

    // A scanner (or the customer) opening the link twice records nothing: the page asks.
    assert_opening_the_link_twice_only_asks(&app, &link).await;
    let record = owner_get(&app, "/api/customers/cus_1").await;
    assert_eq!(record["nps_answers"], serde_json::json!([]), "no answer from a GET");

    // The button's POST stores it; a second POST (another score) changes nothing.
    let r = post_score(&link, "3").await;
    assert_eq!(r.status(), 303);
    let comment_url = format!("{}{}", app.address, r.headers()["location"].to_str().expect("location"));
    assert!(comment_url.ends_with("/comment"));
    assert_eq!(post_score(&link, "10").await.status(), 303);
    assert_eq!(post_score(&link, "11").await.status(), 400, "0–10 only");
    let again = app.client.get(&link).send().await.expect("GET").text().await.expect("html");
    assert!(again.contains("id=\"answered-score\">3<"), "the first answer stands");

    // The comment, once.
    let c = app.client.post(&comment_url).form(&[("comment", "Too slow on big notebooks")]).send().await.expect("POST");
    assert_eq!(c.status(), 200);
    assert!(c.text().await.expect("html").contains("id=\"comment-done\""));
    app.client.post(&comment_url).form(&[("comment", "changed my mind")]).send().await.expect("POST");

    let record = owner_get(&app, "/api/customers/cus_1").await;
    let answers = record["nps_answers"].as_array().expect("answers");
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0]["score"].as_i64(), answers[0]["comment"].as_str()), (Some(3), Some("Too slow on big notebooks")));
    let timeline = record["timeline"].to_string();
    assert!(timeline.contains("NPS answer: 3 (detractor), said: “Too slow on big notebooks”"), "{timeline}");

    // A low score from a paying customer starts the at-risk path, with its series.
    assert_a_low_score_stays_at_risk_through_activity(&app, &record).await;

    // The summary: one answer is too few for a score (min_sample = 2).
    assert_one_answer_is_too_few_for_a_score(&app).await;

    // A forged or damaged token is refused and records nothing.
    let forged = link.replace("/nps/", "/nps/00");
    assert_eq!(post_score(&forged, "9").await.status(), 400);
    assert_eq!(app.client.get(&forged).send().await.expect("GET").status(), 400);

    // Forgetting the customer erases the comment (personal data) and keeps the score.
    app.store.forget_customer("cus_1").await.expect("forget");
    let record = owner_get(&app, "/api/customers/cus_1").await;
    assert_eq!((record["nps_answers"][0]["score"].as_i64(), record["nps_answers"][0]["comment"].is_null()), (Some(3), true));
}

#[tokio::test]
async fn nps_is_reported_with_its_trend_and_the_survey_comes_back_every_six_months_but_not_to_the_unsubscribed() {
    let (app, sink) = nps_app(Config::new()).await;
    subscribed(&app, "cus_1", "ada@example.com").await;
    subscribed(&app, "cus_2", "bob@example.com").await;
    subscribed(&app, "cus_3", "cy@example.com").await;
    assert_eq!(run_at(&app, START + 30 * DAY).await, 3);
    let link_of = |to: &str, score: u8| {
        let i = sink.messages().iter().position(|m| m.rcpt_to == vec![to.to_owned()]).expect("sent to");
        score_link(&app, &sink.parsed()[i].text, score)
    };
    for (to, score) in [("ada@example.com", 10), ("bob@example.com", 9), ("cy@example.com", 0)] {
        let link = link_of(to, score);
        assert_eq!(post_score(&link, &score.to_string()).await.status(), 303);
    }
    // (2 promoters − 1 detractor) / 3 answers = 33.3.
    let s = owner_get(&app, "/api/summary?month=2026-04").await;
    let nps = &s["nps"];
    assert_eq!((nps["n"].as_u64(), nps["score"].as_f64(), nps["too_few"].as_bool()), (Some(3), Some(33.3), Some(false)));
    assert_eq!((nps["from_month"].as_str(), nps["to_month"].as_str()), (Some("2025-05"), Some("2026-04")));
    let trend: Vec<(String, u64)> = nps["by_month"]
        .as_array()
        .expect("trend")
        .iter()
        .map(|m| (m["month"].as_str().unwrap_or_default().to_owned(), m["n"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(trend.len(), 12);
    assert_eq!(trend.iter().filter(|(_, n)| *n > 0).collect::<Vec<_>>(), vec![&("2026-04".to_owned(), 3)]);
    // The dashboard card shows it.
    let login = no_redirects().post(format!("{}/dashboard/login", app.address)).form(&[("token", OWNER)]).send().await;
    let cookie =
        login.expect("login").headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("cookie").to_owned();
    let html =
        app.client.get(format!("{}/dashboard?month=2026-04", app.address)).header("Cookie", cookie).send().await.expect("GET");
    let html = html.text().await.expect("html");
    assert!(html.contains("id=\"nps-score\">33<"), "{}", &html[html.find("id=\"nps\"").unwrap_or(0)..][..400.min(html.len())]);

    // Bob unsubscribes (the survey's one-click link); six months on, Ada and Cy get the next one.
    let bob = sink.messages().iter().position(|m| m.rcpt_to == vec!["bob@example.com".to_owned()]).expect("sent to Bob");
    let url = sink.parsed()[bob]
        .header("List-Unsubscribe")
        .expect("List-Unsubscribe")
        .trim_matches(['<', '>'])
        .replace("https://billing.acme.test", &app.address);
    assert_eq!(app.client.post(url).form(&[("List-Unsubscribe", "One-Click")]).send().await.expect("POST").status(), 200);
    run_at(&app, START + 30 * DAY + 182 * DAY).await;
    assert_eq!(sink.messages().len(), 5, "Ada's and Cy's second survey; none to Bob");
    let keys: Vec<String> =
        app.store.outbox_rows().await.expect("outbox").into_iter().map(|r| format!("{} {}", r.dedupe_key, r.status)).collect();
    assert!(keys.contains(&"nps:cus_1:w1 sent".to_owned()) && keys.contains(&"nps:cus_2:w1 suppressed".to_owned()), "{keys:?}");
}

#[tokio::test]
#[ignore = "needs a browser (chromium + chromedriver)"]
async fn browser_nps_score_link_button_and_comment_store_the_answer_once() {
    let (app, sink) = nps_app(Config::new()).await;
    subscribed(&app, "cus_1", "ada@example.com").await;
    assert_eq!(run_at(&app, START + 30 * DAY).await, 1);
    let link = score_link(&app, &sink.parsed()[0].text, 8);

    let (browser, driver, _profile) = crate::support::requires::chromium(1024, 800).await;
    let clicked = async {
        // Opened twice (a scanner, then the customer): the page only asks.
        browser.goto(&link).await?;
        browser.goto(&link).await?;
        let preselected = browser.find(Locator::Css("#score-8")).await?.prop("checked").await?;
        browser.find(Locator::Css("#send-score")).await?.click().await?;
        browser.wait().for_element(Locator::Css("#comment")).await?.send_keys("Love the search").await?;
        browser.find(Locator::Css("#send-comment")).await?.click().await?;
        let done = browser.wait().for_element(Locator::Css("#comment-done")).await?.text().await?;
        // The link again, after answering: it says so, and a click changes nothing.
        browser.goto(&link).await?;
        let answered = browser.wait().for_element(Locator::Css("#answered-score")).await?.text().await?;
        Ok::<_, fantoccini::error::CmdError>((preselected, done, answered))
    }
    .await;
    let _ = browser.close().await;
    drop(driver);
    let (preselected, done, answered) = clicked.expect("the survey works in Chromium");
    assert_eq!(preselected.as_deref(), Some("true"), "the link's score is preselected");
    assert!(done.contains("We have your comment"), "{done}");
    assert_eq!(answered, "8");

    let record = owner_get(&app, "/api/customers/cus_1").await;
    let answers = record["nps_answers"].as_array().expect("answers");
    assert_eq!(answers.len(), 1, "stored once: {answers:?}");
    assert_eq!((answers[0]["score"].as_i64(), answers[0]["comment"].as_str()), (Some(8), Some("Love the search")));
    assert!(record["at_risk"].is_null(), "8 is not a low score");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survey_tokens_and_comments_never_reach_the_logs() {
    use crate::support::helpers::{SECRET, fresh_database, now, post_signed};
    const LINK_SECRET: &str = "link-secret-for-nps-logs-0123456789";
    const EMAIL: &str = "leak.check+nps@example.org";
    const COMMENT: &str = "a private remark 7f3e9c";

    let (url, _dir) = fresh_database().await;
    let server = crate::support::process::ServerProcess::start(&[
        ("DATABASE_URL", url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("HOLDFAST_LINK_SECRET", LINK_SECRET),
        ("HOLDFAST_NPS", "on"),
        ("RUST_LOG", "debug"),
    ]);
    let client = no_redirects();
    let t = now() - 40 * DAY;
    assert_eq!(post_signed(&client, &server.address, &event("customer.created", t, customer("cus_npslog", EMAIL, t))).await, 200);
    let sub = event("customer.subscription.created", t + 1, Sub::new("sub_npslog", "cus_npslog", t).object());
    assert_eq!(post_signed(&client, &server.address, &sub).await, 200);
    let store = holdfast::store::Store::connect(&url).await.expect("connect");
    assert!(store.wait_projected(crate::support::helpers::PROJECTOR_WAIT).await.expect("cursor readable"), "projected");

    // The survey's link as the server signs it (the same key derivation, the same secret).
    let links =
        holdfast::lifecycle::nps::NpsLinks::new(&server.address, Some(&secrecy::SecretString::from(LINK_SECRET.to_owned())), &[]);
    let token = links.token(&holdfast::lifecycle::nps::Survey { customer: "cus_npslog".into(), wave: 0 });
    let page = format!("{}/nps/{token}", server.address);
    assert_eq!(client.get(format!("{page}?score=2")).send().await.expect("GET").status(), 200);
    assert_eq!(client.post(&page).form(&[("score", "2")]).send().await.expect("POST").status(), 303);
    let commented = client.post(format!("{page}/comment")).form(&[("comment", COMMENT)]).send().await.expect("POST");
    assert_eq!(commented.status(), 200);
    let forged = format!("{}/nps/{}00", server.address, token);
    assert_eq!(client.post(&forged).form(&[("score", "9")]).send().await.expect("POST").status(), 400);
    assert_eq!(store.nps_answer("nps:cus_npslog:w0").await.expect("read"), Some((2, Some(COMMENT.to_owned()))));
    store.close().await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.output().contains("nps comment recorded") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let output = server.stop_and_collect();
    assert!(output.contains("nps answer recorded") && output.contains("nps comment recorded"), "{output}");
    let (payload, signature) = token.split_once('.').expect("token");
    let leaks: Vec<&str> = [payload, signature, EMAIL, COMMENT, LINK_SECRET].into_iter().filter(|n| output.contains(n)).collect();
    assert!(leaks.is_empty(), "capabilities or personal data in the log output: {leaks:?}\n{output}");
}
