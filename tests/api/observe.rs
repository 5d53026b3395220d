//! Observe-only mode: everything is ingested, but no email leaves and no Stripe call that
//! would change something is made; both are listed for the owner at `GET /api/observed`.

use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::helpers::{Config, Sub, event, now};
use crate::support::mail_world::{DAY, app_with_sink, deliver_now, payment_failed_try, subscriber};

const OWNER: &str = "owner-token-0123456789abcdef";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// The link after `prefix` in the body of the observed email `template`.
fn link_in(rows: &[holdfast::store::outbox::OutboxRow], template: &str, prefix: &str) -> String {
    let row = rows.iter().find(|r| r.template == template).unwrap_or_else(|| panic!("{template} in {rows:?}"));
    let start = row.body_text.find(prefix).unwrap_or_else(|| panic!("{prefix} in {}", row.body_text));
    row.body_text[start..].split_whitespace().next().expect("link").to_owned()
}

/// The update-payment link of the observed failure email leads to Stripe's hosted invoice,
/// the come-back link of the stopped email to the product, both without calling Stripe.
async fn assert_the_links_lead_to_stripes_invoice_and_the_product(rows: &[holdfast::store::outbox::OutboxRow], address: &str) {
    let update = link_in(rows, "payment_failed", "https://billing.acme.test/billing/update?token=");
    let r = no_redirects().get(update.replace("https://billing.acme.test", address)).send().await.expect("request");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "https://invoice.stripe.com/i/in_1");
    let back = link_in(rows, "payment_stopped", "https://billing.acme.test/comeback?token=");
    let r = no_redirects().get(back.replace("https://billing.acme.test", address)).send().await.expect("request");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "https://app.acme.test/");
}

/// `GET /api/observed` lists both emails newest first (to the subscriber) and the two Stripe
/// calls that would have been made (come-back checkout, billing portal) for `cus_1`.
fn assert_the_list_holds_both_emails_and_both_calls(list: &Value) {
    let emails: Vec<&str> = list["emails"].as_array().expect("emails").iter().filter_map(|e| e["template"].as_str()).collect();
    assert_eq!(emails, ["payment_stopped", "payment_failed"], "newest first");
    assert_eq!(list["emails"][0]["recipient"], crate::support::mail_world::EMAIL);
    let calls = list["stripe_calls"].as_array().expect("calls");
    let seen: Vec<(&str, &str)> =
        calls.iter().map(|c| (c["purpose"].as_str().unwrap_or(""), c["path"].as_str().unwrap_or(""))).collect();
    assert_eq!(seen, [("comeback", "/v1/checkout/sessions"), ("billing_portal", "/v1/billing_portal/sessions")]);
    assert_eq!(calls[1]["customer"], "cus_1");
    let params: Value = serde_json::from_str(calls[0]["params"].as_str().expect("params")).expect("params json");
    assert_eq!(params["customer"], "cus_1");
}

/// The dashboard's HTML, signed in with the owner token.
async fn dashboard(address: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let login = client.post(format!("{address}/dashboard/login")).form(&[("token", OWNER)]).send().await.expect("login");
    let cookie = login.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("cookie").to_owned();
    client
        .get(format!("{address}/dashboard"))
        .header("Cookie", cookie)
        .send()
        .await
        .expect("dashboard")
        .text()
        .await
        .expect("html")
}

#[tokio::test]
async fn observe_mode_records_every_email_and_stripe_call_and_sends_or_changes_nothing() {
    let stripe = MockServer::start().await;
    // Any request reaching Stripe fails the test when the server is dropped.
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).expect(0).mount(&stripe).await;
    let uri = stripe.uri();
    let config =
        Config::new().stripe_at(&uri).owner_token(OWNER).key("lifecycle.product_url", "https://app.acme.test/").with(|s| {
            s.observe = true;
            s.dunning.stripe_tries = 4;
        });
    let (app, sink) = app_with_sink(config).await;
    let t = now();
    app.clock.set(t);
    subscriber(&app, t - DAY).await;

    // A failure, then Stripe's last try failing: two emails would go.
    deliver_now(&app, &payment_failed_try("in_1", t, 1, Some(t + 3 * DAY))).await;
    app.outbox.try_run_once().await.expect("pass");
    app.clock.set(t + 3 * DAY);
    deliver_now(&app, &payment_failed_try("in_1", t + 3 * DAY, 4, None)).await;
    let mut ended = Sub::new("sub_1", "cus_1", t - DAY);
    ended.status = "canceled";
    deliver_now(&app, &event("customer.subscription.deleted", t + 3 * DAY + 60, ended.object())).await;
    app.outbox.try_run_once().await.expect("pass");

    assert!(sink.messages().is_empty(), "observe mode sends no email");
    let rows = app.store.outbox_rows().await.expect("rows");
    let observed: Vec<_> = rows.iter().filter(|r| r.status == "observed").map(|r| r.template.as_str()).collect();
    assert_eq!(observed, ["payment_failed", "payment_stopped"]);
    // Ingested and figured as usual.
    let case = &app.store.dunning_cases().await.expect("cases")[0];
    assert_eq!((case.status.as_str(), case.attempt_count), ("lost", 4));

    // The customer's links still lead somewhere without calling Stripe.
    assert_the_links_lead_to_stripes_invoice_and_the_product(&rows, &app.address).await;
    assert!(stripe.received_requests().await.expect("recorded").is_empty(), "no call reached Stripe");

    // The owner sees what would have happened.
    let url = format!("{}/api/observed", app.address);
    let list: Value = crate::support::helpers::assert_owner_only(&app.client, reqwest::Method::GET, &url, OWNER)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["mode"], "observe");
    assert_the_list_holds_both_emails_and_both_calls(&list);
    assert!(!list.to_string().contains("sk_test_holdfast"), "the key is never listed");

    // And on the dashboard.
    let html = dashboard(&app.address).await;
    assert!(html.contains("Observe-only mode"), "{html}");
    assert!(html.contains("<span id=\"observed-emails\">2</span>") && html.contains("<span id=\"observed-calls\">2</span>"));
    assert!(
        html.contains("payment_stopped") && html.contains("billing portal") && html.contains("checkout&#x2f;sessions"),
        "{html}"
    );
}

#[tokio::test]
async fn observe_mode_holds_back_the_cancel_flows_change_and_records_no_outcome() {
    let f = crate::support::cancel_flow::flow_with(Config::new().with(|s| s.observe = true)).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).expect(0).mount(&f.stripe).await;
    crate::support::cancel_flow::seed(&f.app, "cus_obs", "sub_obs", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&crate::support::cancel_flow::signed_link("cus_obs")).await;
    f.answer(&session, &csrf, "missing_features", "").await;

    // The customer is told it didn't work (nothing changed), never that it did.
    let r = f.choose(&session, &csrf, "cancel").await;
    assert_eq!(r.status(), 503);
    let page = r.text().await.expect("html");
    assert!(page.contains("Nothing was changed") && page.contains("account page"), "{page}");
    assert!(!page.contains("Try again"), "retrying can't help while observing: {page}");
    assert!(f.stripe.received_requests().await.expect("recorded").is_empty(), "no call reached Stripe");
    assert_eq!(f.session(&session).await.outcome, None, "no outcome: nothing happened");
    assert!(f.app.store.outbox_rows().await.expect("rows").iter().all(|r| !r.template.starts_with("cancel_")));

    let list: Value = f
        .http
        .get(format!("{}/api/observed", f.app.address))
        .bearer_auth(crate::support::cancel_flow::OWNER_TOKEN)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let call = &list["stripe_calls"][0];
    assert_eq!((call["method"].as_str(), call["path"].as_str()), (Some("POST"), Some("/v1/subscriptions/sub_obs")));
    assert_eq!(call["purpose"], "cancel_flow");
    let params: Value = serde_json::from_str(call["params"].as_str().expect("params")).expect("json");
    assert_eq!(params["choice"], "cancel");
    assert_eq!(params["change"]["at_period_end"], true);
}
