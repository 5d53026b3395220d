//! The annual-plan offer end to end: product activity and a monthly subscription → the
//! scheduler's offer email (real SMTP) → the signed link → the confirm page with Stripe's
//! invoice preview → the button's POST → the subscription update (wiremock asserts the exact
//! form bodies) → the owner's record of the change. Plus a headless Chromium click-through.

use fantoccini::Locator;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::helpers::{Config, Sub, TestApp, customer, event, fixture, now};
use crate::support::mail_world::{DAY, app_with_sink};
use crate::support::requires::chromium;
use crate::support::smtp_sink::SmtpSink;

const OWNER: &str = "owner-token-for-annual-tests-0123";
const PUBLIC: &str = "https://billing.acme.test";

/// An app offering `price_basic_yearly` for `price_basic_monthly`, with Stripe answered by
/// wiremock; the TempDir holds the config file.
async fn annual_app() -> (TestApp, SmtpSink, MockServer, tempfile::TempDir) {
    let stripe = MockServer::start().await;
    let uri = stripe.uri();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("holdfast.toml");
    std::fs::write(&file, "[lifecycle.annual_offer]\nafter_months = 3\n[lifecycle.annual_offer.prices]\nprice_basic_monthly = \"price_basic_yearly\"\n")
        .expect("config");
    let config = Config::new()
        .file(&file)
        .campaign_on("annual_offer")
        .owner_token(OWNER)
        .stripe_at(&uri)
        .key("cancel_flow.return_url", "https://app.acme.test/account");
    let (app, sink) = app_with_sink(config).await;
    // The yearly price, as Stripe's product and price events bring it.
    let t = now() - 200 * DAY;
    let product = json!({"id": "prod_basic", "object": "product", "active": true, "created": t, "updated": t,
        "default_price": "price_basic_monthly", "description": null, "images": [], "livemode": false, "marketing_features": [],
        "metadata": {}, "name": "Basic", "package_dimensions": null, "shippable": null, "statement_descriptor": null,
        "tax_code": null, "unit_label": null, "url": null, "type": "service"});
    app.deliver(&event("product.created", t, product)).await;
    let price = json!({"id": "price_basic_yearly", "object": "price", "active": true, "billing_scheme": "per_unit",
        "created": t, "currency": "usd", "custom_unit_amount": null, "livemode": false, "lookup_key": null, "metadata": {},
        "nickname": null, "product": "prod_basic", "recurring": {"interval": "year", "interval_count": 1, "meter": null,
        "usage_type": "licensed", "trial_period_days": null}, "tax_behavior": "unspecified", "tiers_mode": null,
        "transform_quantity": null, "type": "recurring", "unit_amount": 20000, "unit_amount_decimal": "20000"});
    app.deliver(&event("price.created", t, price)).await;
    (app, sink, stripe, dir)
}

/// `cus` with monthly subscription `sub` ($20.00 on price_basic_monthly) since `started`,
/// active on each of `active_days_ago`.
async fn monthly_customer(app: &TestApp, cus: &str, sub: &str, started: i64, active_days_ago: &[i64]) -> Value {
    app.deliver(&event("customer.created", started, customer(cus, &format!("{cus}@example.com"), started))).await;
    let object = Sub::new(sub, cus, started).object();
    app.deliver(&event("customer.subscription.created", started, object.clone())).await;
    if !active_days_ago.is_empty() {
        let batch: Vec<Value> =
            active_days_ago.iter().map(|d| json!({"customer": cus, "at": now() - d * DAY, "count": 3})).collect();
        let r =
            app.client.post(format!("{}/api/activity", app.address)).bearer_auth(OWNER).json(&batch).send().await.expect("POST");
        assert_eq!(r.status(), 200);
    }
    object
}

/// Stripe's preview of the change: $180.00 due today.
async fn mount_preview(stripe: &MockServer) {
    let mut invoice = fixture("invoice");
    invoice["amount_due"] = json!(18_000);
    invoice["currency"] = json!("usd");
    Mock::given(method("POST"))
        .and(path("/v1/invoices/create_preview"))
        .respond_with(ResponseTemplate::new(200).set_body_json(invoice))
        .mount(stripe)
        .await;
}

fn form_of(body: &[u8]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = serde_urlencoded::from_bytes(body).expect("form body");
    p.sort();
    p
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    p.sort();
    p
}

/// The confirm link in the one offer email, pointed at the test server.
fn confirm_link(app: &TestApp, sink: &SmtpSink) -> String {
    let mail = sink.parsed();
    assert_eq!(mail.len(), 1);
    let text = &mail[0].text;
    let start = text.find(&format!("{PUBLIC}/annual?token=")).expect("the confirm link");
    text[start..].split_whitespace().next().expect("link").replace(PUBLIC, &app.address)
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html.find(&marker).expect("hidden field") + marker.len();
    html[at..].split('"').next().expect("value").to_owned()
}

/// The one offer email went to `cus_1`: the saving and both prices, as marketing mail.
fn assert_the_offer_went_to_cus_1_as_marketing_mail(sink: &SmtpSink) {
    let email = &sink.parsed()[0];
    assert_eq!(sink.messages()[0].rcpt_to, vec!["cus_1@example.com".to_owned()]);
    assert_eq!(email.header("Subject").as_deref(), Some("Save $40.00 a year on Acme"));
    assert!(email.text.contains("at $200.00 / year instead of $20.00 / month"), "{}", email.text);
    assert!(email.header("List-Unsubscribe").is_some(), "an offer is marketing mail");
}

/// Asserts that the confirm page at `link` shows Stripe's preview ($180.00 today, the saving,
/// the plan), prorated at `t`, and that opening it asked Stripe for exactly that preview and
/// nothing else. Returns the page's hidden token and proration date.
async fn open_the_confirm_page(http: &reqwest::Client, link: &str, stripe: &MockServer, t: i64) -> (String, String) {
    let page = http.get(link).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Charged today: <strong id=\"today\">$180.00</strong>"), "{html}");
    assert!(html.contains("$40.00") && html.contains("Basic"), "{html}");
    let token = hidden(&html, "token");
    let at = hidden(&html, "proration_date");
    assert_eq!(at, t.to_string());
    let requests = stripe.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), "/v1/invoices/create_preview");
    assert_eq!(
        form_of(&requests[0].body),
        pairs(&[
            ("subscription", "sub_1"),
            ("subscription_details[items][0][id]", "si_1"),
            ("subscription_details[items][0][price]", "price_basic_yearly"),
            ("subscription_details[proration_behavior]", "always_invoice"),
            ("subscription_details[proration_date]", &at),
        ])
    );
    (token, at)
}

/// The owner's record of what Holdfast changed in Stripe: one change, to the yearly price
/// with proration, made for the customer accepting the offer.
async fn assert_the_owner_sees_the_change_to_the_yearly_price(app: &TestApp) {
    let record = app.store.customer_record("cus_1").await.expect("store").expect("record");
    assert_eq!(record.stripe_changes.len(), 1);
    let change = &record.stripe_changes[0];
    assert_eq!(
        (change.purpose.as_str(), change.triggered_by.as_str()),
        ("annual_offer", "the customer, accepting the annual-plan offer email")
    );
    let params: Value = serde_json::from_str(&change.params).expect("params");
    assert_eq!(params["items[0][price]"], "price_basic_yearly");
    assert_eq!(params["proration_behavior"], "always_invoice");
}

#[tokio::test]
async fn a_steady_monthly_customer_gets_one_offer_and_confirms_the_yearly_price_with_the_exact_stripe_calls() {
    let (app, sink, stripe, _dir) = annual_app().await;
    let object = monthly_customer(&app, "cus_1", "sub_1", now() - 100 * DAY, &[2, 40, 75]).await;
    // Not yet: three months old, but quiet in the oldest window.
    monthly_customer(&app, "cus_2", "sub_2", now() - 100 * DAY, &[2, 40]).await;
    // Not yet: steady, but only a month old.
    monthly_customer(&app, "cus_3", "sub_3", now() - 30 * DAY, &[2]).await;

    // The server's clock stops here: the page's proration date is exactly this time.
    let t = app.clock.now();
    app.clock.set(t);
    assert_eq!(app.scheduler.annual_offers(t).await.expect("offers"), 1);
    assert_eq!(app.scheduler.annual_offers(t + DAY).await.expect("offers"), 0, "one offer per subscription");
    assert_eq!(app.outbox.run_until_idle_at(t).await.expect("pass"), 1);
    assert_the_offer_went_to_cus_1_as_marketing_mail(&sink);
    let link = confirm_link(&app, &sink);

    // Opening the link asks Stripe for the preview and changes nothing.
    mount_preview(&stripe).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let (token, at) = open_the_confirm_page(&http, &link, &stripe, t).await;

    // The button: one subscription update, the customer pays the difference now.
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_1"))
        .and(header("Idempotency-Key", "holdfast-annual-sub_1-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&object))
        .expect(1)
        .mount(&stripe)
        .await;
    let form = [("token", token.as_str()), ("proration_date", at.as_str())];
    let posted = http.post(format!("{}/annual", app.address)).form(&form).send().await.expect("POST");
    assert_eq!(posted.status(), 303);
    // A repeated POST (a double click, a resubmitted form) updates nothing more.
    let again = http.post(format!("{}/annual", app.address)).form(&form).send().await.expect("POST");
    assert_eq!(again.status(), 303);
    let requests = stripe.received_requests().await.expect("recording");
    let updates: Vec<_> = requests.iter().filter(|r| r.url.path() == "/v1/subscriptions/sub_1").collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(
        form_of(&updates[0].body),
        pairs(&[
            ("items[0][id]", "si_1"),
            ("items[0][price]", "price_basic_yearly"),
            ("proration_behavior", "always_invoice"),
            ("proration_date", &at),
        ])
    );
    let done = http.get(&link).send().await.expect("GET").text().await.expect("html");
    assert!(done.contains("You're on yearly billing"), "{done}");

    // The owner's record of what Holdfast changed in Stripe.
    assert_the_owner_sees_the_change_to_the_yearly_price(&app).await;

    // A tampered token opens nothing.
    let forged = http.get(link.replace("annual-sub_1", "annual-sub_2")).send().await.expect("GET");
    assert_eq!(forged.status(), 403);
}

#[tokio::test]
async fn a_stale_page_shows_its_figure_again_and_a_changed_subscription_is_not_updated() {
    let (app, sink, stripe, _dir) = annual_app().await;
    monthly_customer(&app, "cus_1", "sub_1", now() - 100 * DAY, &[2, 40, 75]).await;
    // The server's clock stops here: the page's proration date is exactly this time.
    let t = app.clock.now();
    app.clock.set(t);
    assert_eq!(app.scheduler.annual_offers(t).await.expect("offers"), 1);
    assert_eq!(app.outbox.run_until_idle_at(t).await.expect("pass"), 1);
    let link = confirm_link(&app, &sink);
    let token = link.split("token=").nth(1).expect("token").to_owned();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");

    // A page shown more than an hour ago: back to the page, nothing sent to Stripe.
    let stale = (t - 2 * 3600).to_string();
    let r = http
        .post(format!("{}/annual", app.address))
        .form(&[("token", token.as_str()), ("proration_date", &stale)])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 303);
    assert!(stripe.received_requests().await.expect("recording").is_empty());

    // The customer moved to another price meanwhile: the offer no longer applies.
    let mut moved = Sub::new("sub_1", "cus_1", now() - 100 * DAY);
    moved.price = "price_pro_monthly".into();
    app.deliver(&event("customer.subscription.updated", now(), moved.object())).await;
    let page = http.get(&link).send().await.expect("GET").text().await.expect("html");
    assert!(page.contains("no longer applies"), "{page}");
    let r = http
        .post(format!("{}/annual", app.address))
        .form(&[("token", token.as_str()), ("proration_date", &t.to_string())])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    assert!(stripe.received_requests().await.expect("recording").is_empty(), "no Stripe call for a changed subscription");
}

#[tokio::test]
#[ignore = "needs a browser (chromium + chromedriver)"]
async fn browser_a_customer_switches_to_yearly_from_the_offer_email() {
    let (browser, driver, _profile) = chromium(412, 915).await;
    let (app, sink, stripe, _dir) = annual_app().await;
    let object = monthly_customer(&app, "cus_1", "sub_1", now() - 100 * DAY, &[2, 40, 75]).await;
    // The server's clock stops here: the page's proration date is exactly this time.
    let t = app.clock.now();
    app.clock.set(t);
    assert_eq!(app.scheduler.annual_offers(t).await.expect("offers"), 1);
    assert_eq!(app.outbox.run_until_idle_at(t).await.expect("pass"), 1);
    let link = confirm_link(&app, &sink);
    mount_preview(&stripe).await;
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&object))
        .expect(1)
        .mount(&stripe)
        .await;

    let outcome = async {
        browser.goto(&link).await?;
        let today = browser.wait().for_element(Locator::Css("#today")).await?.text().await?;
        browser.wait().for_element(Locator::Css("#confirm-annual")).await?.click().await?;
        let result = browser.wait().for_element(Locator::Css("#result")).await?.text().await?;
        Ok::<_, fantoccini::error::CmdError>((today, result))
    }
    .await;
    let _ = browser.close().await;
    drop(driver);
    let (today, result) = outcome.expect("the browser flow completes");
    assert_eq!(today, "$180.00");
    assert!(result.contains("You're on yearly billing"), "{result}");
    let requests = stripe.received_requests().await.expect("recording");
    let update = requests.iter().find(|r| r.url.path() == "/v1/subscriptions/sub_1").expect("the update");
    assert!(form_of(&update.body).contains(&("items[0][price]".into(), "price_basic_yearly".into())));
}
