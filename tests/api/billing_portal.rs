//! The update-payment link: signed Holdfast link in the email, Billing Portal session created
//! at click time (Stripe answered by wiremock with its own example session), 303 to it.

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::helpers::{Config, TestApp, fixture, now};
use crate::support::mail_world::{DAY, app_with_sink, payment_failed, subscriber};
use crate::support::smtp_sink::SmtpSink;

async fn app_with_stripe() -> (TestApp, SmtpSink, MockServer) {
    let stripe = MockServer::start().await;
    let (app, sink) = app_with_sink(Config::new().stripe_at(&stripe.uri())).await;
    (app, sink, stripe)
}

/// The first dunning email's update link.
async fn emailed_link(app: &TestApp, sink: &SmtpSink) -> String {
    let t = now() - 60;
    subscriber(app, t - DAY).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 3 * DAY))).await;
    app.outbox.run_until_idle_at(now()).await.expect("pass");
    let text = sink.parsed()[0].text.clone();
    let start = text.find("https://billing.acme.test/billing/update?token=").expect("a Holdfast link in the email");
    text[start..].split_whitespace().next().expect("link").to_owned()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

#[tokio::test]
async fn clicking_the_link_opens_a_portal_session_on_the_payment_method_flow() {
    let (app, sink, stripe) = app_with_stripe().await;
    let mut session = fixture("billing_portal.session");
    session["customer"] = serde_json::json!("cus_1");
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&session))
        .expect(1)
        .mount(&stripe)
        .await;
    let link = emailed_link(&app, &sink).await;
    let local = link.replace("https://billing.acme.test", &app.address);

    let response = no_redirects().get(&local).send().await.expect("request");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], session["url"].as_str().expect("fixture url"));
    let requests = stripe.received_requests().await.expect("recorded");
    let mut form: Vec<(String, String)> = form_urlencoded::parse(&requests[0].body).into_owned().collect();
    form.sort();
    // No product URL configured: the portal returns to a Holdfast page, never a bare root.
    let expected = [
        ("customer", "cus_1"),
        ("flow_data[type]", "payment_method_update"),
        ("return_url", "https://billing.acme.test/billing/updated"),
    ];
    assert_eq!(form, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
    assert_eq!(requests[0].headers["authorization"], "Bearer sk_test_holdfast");

    // That page is a branded page.
    let page = no_redirects().get(format!("{}/billing/updated", app.address)).send().await.expect("request");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let html = page.text().await.expect("body");
    assert!(html.contains("<style>") && html.contains("Acme") && html.contains("Thank you"), "{html}");
}

#[tokio::test]
async fn the_portal_returns_to_the_owners_product_when_there_is_one() {
    let stripe = MockServer::start().await;
    let config = Config::new().stripe_at(&stripe.uri()).key("cancel_flow.return_url", "https://app.acme.test/account");
    let (app, sink) = app_with_sink(config).await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("billing_portal.session")))
        .expect(1)
        .mount(&stripe)
        .await;
    let link = emailed_link(&app, &sink).await.replace("https://billing.acme.test", &app.address);
    assert_eq!(no_redirects().get(&link).send().await.expect("request").status(), 303);
    let requests = stripe.received_requests().await.expect("recorded");
    let form: Vec<(String, String)> = form_urlencoded::parse(&requests[0].body).into_owned().collect();
    assert!(form.contains(&("return_url".to_owned(), "https://app.acme.test/account".to_owned())), "{form:?}");
}

#[tokio::test]
async fn when_stripe_fails_the_link_falls_back_to_the_hosted_invoice() {
    let (app, sink, stripe) = app_with_stripe().await;
    let error = serde_json::json!({"error": {"type": "api_error", "message": "boom"}});
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(error))
        .mount(&stripe)
        .await;
    let link = emailed_link(&app, &sink).await.replace("https://billing.acme.test", &app.address);

    let response = no_redirects().get(&link).send().await.expect("request");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "https://invoice.stripe.com/i/in_1");
}

#[tokio::test]
async fn a_tampered_link_gets_a_friendly_page_and_no_stripe_call() {
    let (app, sink, stripe) = app_with_stripe().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).expect(0).mount(&stripe).await;
    let link = emailed_link(&app, &sink).await.replace("https://billing.acme.test", &app.address);
    let tampered = link.replace("cus_1", "cus_2");

    let response = no_redirects().get(&tampered).send().await.expect("request");
    assert_eq!(response.status(), 400);
    assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    // Styled under the page's own policy: inline styles are allowed there, nothing else.
    let csp = response.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("style-src 'unsafe-inline'"), "{csp}");
    let html = response.text().await.expect("body");
    assert!(html.contains("not valid") && html.contains("<style>") && html.contains("--brand:"), "{html}");
    let missing = no_redirects().get(format!("{}/billing/update", app.address)).send().await.expect("request");
    assert_eq!(missing.status(), 400);
}
