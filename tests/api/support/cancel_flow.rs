//! The cancel flow's arrangement: the app with a Stripe stand-in (wiremock), a client that
//! does not follow redirects, a subscribed customer, signed links, and the steps of the flow
//! (open, answer, choose) as a customer's browser takes them.

use holdfast::cancel::links::sign;
use holdfast::cancel::storage::CancelSessionRow;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use std::collections::BTreeMap;

use crate::support::helpers::{Config, Sub, TestApp, customer, event, now, spawn_app_with};

pub const LINK_SECRET: &str = "link-secret-for-tests-0123456789";
pub const OWNER_TOKEN: &str = "owner-token-for-tests-0123456789";

/// The app, its Stripe stand-in and a client that does not follow redirects.
pub struct Flow {
    pub app: TestApp,
    pub stripe: MockServer,
    pub http: reqwest::Client,
}

/// The flow's app, with a Stripe stand-in, a link secret, the owner's token, a coupon and a
/// downgrade to offer, and a brand, changed by `config`.
pub async fn flow_with(config: Config) -> Flow {
    let stripe = MockServer::start().await;
    let defaults = Config::new()
        .stripe_at(&stripe.uri())
        .owner_token(OWNER_TOKEN)
        .key("cancel_flow.coupon", "SAVE30")
        .key("cancel_flow.downgrade", BTreeMap::from([("price_pro_monthly", "price_basic_monthly")]))
        .key("cancel_flow.return_url", "https://app.example.com/account")
        .key("brand.name", "Acme Notes")
        .with(|s| s.cancel_flow.link_secret = Some(SecretString::from(LINK_SECRET)));
    let app = spawn_app_with(defaults.then(config)).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    Flow { app, stripe, http }
}

pub async fn flow() -> Flow {
    flow_with(Config::new()).await
}

pub async fn seed(app: &TestApp, cus: &str, sub: &str, price: &str, tweak: impl FnOnce(&mut Value)) -> Value {
    let t = now() - 86_400;
    app.deliver(&event("customer.created", t, customer(cus, &format!("{cus}@example.com"), t))).await;
    let mut s = Sub::new(sub, cus, t);
    s.price = price.into();
    let mut object = s.object();
    tweak(&mut object);
    app.deliver(&event("customer.subscription.created", t + 1, object.clone())).await;
    object
}

pub fn signed_link(cus: &str) -> String {
    format!("/cancel?customer={cus}&sig={}", sign(cus, &SecretString::from(LINK_SECRET)))
}

/// minijinja escapes `/` in HTML; tests compare against plain URLs.
pub fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
}

pub fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("page has a csrf field") + 19;
    html[start..].split('"').next().expect("csrf value").to_owned()
}

pub fn session_id(location: &str) -> String {
    location.trim_start_matches("/cancel/s/").split('/').next().expect("id").to_owned()
}

impl Flow {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.app.address)).send().await.expect("GET sent")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.app.address)).form(form).send().await.expect("POST sent")
    }

    /// Open `link`, expect 303 to a session page; returns (session path, csrf).
    pub async fn open(&self, link: &str) -> (String, String) {
        let r = self.get(link).await;
        assert_eq!(r.status(), 303, "link {link} should start a session: {:?}", r.text().await);
        let location = r.headers()["location"].to_str().expect("location").to_owned();
        let page = self.get(&location).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.expect("html");
        assert!(html.contains("why do you want to cancel"), "{html}");
        (location, csrf_of(&html))
    }

    /// Answer the survey; returns the offer page's HTML.
    pub async fn answer(&self, session: &str, csrf: &str, reason: &str, comment: &str) -> String {
        let r = self.post_form(&format!("{session}/reason"), &[("csrf", csrf), ("reason", reason), ("comment", comment)]).await;
        assert_eq!(r.status(), 303, "{:?}", r.text().await);
        assert_eq!(r.headers()["location"], format!("{session}/offer").as_str());
        let page = self.get(&format!("{session}/offer")).await;
        assert_eq!(page.status(), 200);
        unescape(&page.text().await.expect("html"))
    }

    pub async fn choose(&self, session: &str, csrf: &str, choice: &str) -> reqwest::Response {
        self.post_form(&format!("{session}/choose"), &[("csrf", csrf), ("choice", choice)]).await
    }

    pub async fn session(&self, session: &str) -> CancelSessionRow {
        self.app.store.cancel_session(&session_id(session)).await.expect("store").expect("session exists")
    }

    /// Stripe answers an update of `sub` (with the given Idempotency-Key) with the example
    /// subscription.
    pub async fn expect_update(&self, sub: &str, key: &str, object: &Value) {
        Mock::given(method("POST"))
            .and(path(format!("/v1/subscriptions/{sub}")))
            .and(header("Idempotency-Key", key))
            .respond_with(ResponseTemplate::new(200).set_body_json(object))
            .expect(1)
            .mount(&self.stripe)
            .await;
    }

    /// The form parameters of every request Stripe received, decoded and sorted.
    pub async fn sent_params(&self) -> Vec<Vec<(String, String)>> {
        let requests = self.stripe.received_requests().await.expect("recording on");
        requests
            .iter()
            .map(|r| {
                let mut p: Vec<(String, String)> = serde_urlencoded::from_bytes(&r.body).expect("form body");
                p.sort();
                p
            })
            .collect()
    }
}

/// Form parameters as `sent_params` returns them (sorted), for comparing with what Stripe got.
pub fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    p.sort();
    p
}

/// A subscription billed every `count` `interval`s whose paid period ends `period_days` from
/// its start.
pub fn billed(s: &mut Value, interval: &str, count: i64, period_days: i64) {
    let item = &mut s["items"]["data"][0];
    item["price"]["recurring"]["interval"] = json!(interval);
    item["price"]["recurring"]["interval_count"] = json!(count);
    let start = item["current_period_start"].as_i64().expect("period start");
    item["current_period_end"] = json!(start + period_days * 86_400);
}

/// When the paid period of a subscription object ends.
pub fn period_end(object: &Value) -> i64 {
    object["items"]["data"][0]["current_period_end"].as_i64().expect("period end")
}
