//! Rate limits per client behind a proxy: forwarding headers count only from a trusted peer,
//! and every public page that calls Stripe or sends mail is limited, `/billing/update`
//! included.

use holdfast::mail::links::LinkSigner;
use secrecy::SecretString;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use holdfast::config::TrustedProxy;

use crate::support::helpers::{Config, TestApp, fixture, now, spawn_app_with};

const LIMIT: usize = 3;
const STRIPE_KEY: &str = "sk_test_rate_limits";

async fn app(proxy: Option<&str>) -> (TestApp, MockServer) {
    let stripe = MockServer::start().await;
    let uri = stripe.uri();
    let mut config = Config::new()
        .key("cancel_flow.rate_limit_per_minute", LIMIT)
        .stripe_key(STRIPE_KEY)
        .with(move |s| s.stripe_api_base = Some(uri));
    if let Some(proxy) = proxy {
        let proxy = TrustedProxy::parse(proxy).expect("a proxy address");
        config = config.with(move |s| s.limits.trusted_proxy = proxy);
    }
    let app = spawn_app_with(config).await;
    // Stopped inside one limiter window, so no test straddles a minute boundary.
    app.clock.set(now());
    (app, stripe)
}

/// Statuses of `n` unsubscribe clicks claiming to come from `client` (through the proxy).
async fn clicks(app: &TestApp, client: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let r = app
            .client
            .get(format!("{}/unsubscribe?token=not-a-real-token", app.address))
            .header("X-Forwarded-For", format!("6.6.6.6, {client}"))
            .send()
            .await
            .expect("sent");
        statuses.push(r.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_bucket() {
    // The test connects from 127.0.0.1: that is the proxy here.
    let (app, _stripe) = app(Some("127.0.0.1/32")).await;
    let greedy = clicks(&app, "198.51.100.1", LIMIT + 2).await;
    assert!(greedy[..LIMIT].iter().all(|s| *s != 429), "{greedy:?}");
    assert!(greedy[LIMIT..].iter().all(|s| *s == 429), "the greedy client is limited: {greedy:?}");
    let other = clicks(&app, "198.51.100.2", 1).await;
    assert_ne!(other[0], 429, "another customer behind the same proxy is not");
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let (app, _stripe) = app(None).await;
    let greedy = clicks(&app, "198.51.100.1", LIMIT).await;
    assert!(greedy.iter().all(|s| *s != 429), "{greedy:?}");
    // Claiming another address does not buy a fresh bucket.
    assert_eq!(clicks(&app, "198.51.100.2", 1).await, vec![429]);
}

#[tokio::test]
async fn update_payment_links_are_limited_before_stripe_is_called() {
    let (app, stripe) = app(None).await;
    let mut session = fixture("billing_portal.session");
    session["customer"] = serde_json::json!("cus_rl");
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&session))
        .mount(&stripe)
        .await;
    let token = LinkSigner::from_stripe_key(&SecretString::from(STRIPE_KEY)).sign("cus_rl", None, now() + 86_400);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = http.get(format!("{}/billing/update?token={token}", app.address)).send().await.expect("sent");
        statuses.push(r.status().as_u16());
    }
    assert!(statuses[..LIMIT].iter().all(|s| *s == 303), "{statuses:?}");
    assert!(statuses[LIMIT..].iter().all(|s| *s == 429), "{statuses:?}");
    let calls = stripe.received_requests().await.expect("recorded").len();
    assert_eq!(calls, LIMIT, "20 clicks, {LIMIT} Stripe calls");
}
