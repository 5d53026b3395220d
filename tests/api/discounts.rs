//! Discounts by id and coupons as their own objects: terms resolved from `coupon.*` events,
//! customer-level discounts, and a coupon never seen fetched once from Stripe (wiremock,
//! answering with a body shaped like Stripe's coupon).

use holdfast::stripe_api::StripeApi;
use holdfast::sync::coupons::CouponFetcher;
use holdfast::workers::Outcome;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::business::OWNER_TOKEN;
use crate::support::helpers::*;

fn at(y: i32, m: u32, d: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(y, m, d).and_then(|d| d.and_hms_opt(12, 0, 0)).map(|t| t.and_utc().timestamp()).expect("date")
}

/// Stripe's example coupon with our id and terms.
fn coupon(id: &str, terms: Value) -> Value {
    let mut c = fixture("coupon");
    c["id"] = json!(id);
    c["percent_off"] = Value::Null;
    c["duration_in_months"] = Value::Null;
    for (k, v) in terms.as_object().expect("terms object") {
        c[k] = v.clone();
    }
    c
}

/// Stripe's example discount (2025-09-30.clover: the coupon by id under `source`).
fn discount(id: &str, customer: &str, subscription: Option<&str>, coupon: &str, start: i64) -> Value {
    let mut d = fixture("discount");
    d["id"] = json!(id);
    d["customer"] = json!(customer);
    d["subscription"] = json!(subscription);
    d["source"] = json!({"type": "coupon", "coupon": coupon});
    d["start"] = json!(start);
    d["end"] = Value::Null;
    d
}

async fn start_business(app: &TestApp, subs: &[(&str, &str, i64)]) {
    for (sub, cus, amount) in subs {
        let created = at(2026, 1, 5);
        app.deliver(&event("customer.created", created, customer(cus, &format!("{cus}@example.com"), created))).await;
        let mut s = Sub::new(sub, cus, created);
        s.unit_amount = *amount;
        app.deliver(&event("customer.subscription.created", created, s.object())).await;
    }
}

async fn summary(app: &TestApp, month: &str) -> Value {
    let response =
        app.client.get(format!("{}/api/summary?month={month}", app.address)).bearer_auth(OWNER_TOKEN).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

async fn owner_app(config: Config) -> TestApp {
    spawn_app_with(Config::new().owner_token(OWNER_TOKEN).then(config)).await
}

#[tokio::test]
async fn discounts_named_by_id_take_their_coupons_terms_and_customer_discounts_apply() {
    let app = owner_app(Config::new()).await;
    start_business(&app, &[("sub_a", "cus_a", 2000), ("sub_b", "cus_b", 3000)]).await;
    let feb10 = at(2026, 2, 10);
    app.deliver(&event("coupon.created", feb10, coupon("HALF", json!({"percent_off": 50.0, "duration": "forever"})))).await;
    app.deliver(&event("coupon.created", feb10, coupon("FIVE", json!({"amount_off": 500, "duration": "forever"})))).await;
    // A subscription-level discount: the discount event, then the subscription listing its id.
    app.deliver(&event("customer.discount.created", feb10, discount("di_a", "cus_a", Some("sub_a"), "HALF", feb10))).await;
    let mut a = Sub::new("sub_a", "cus_a", at(2026, 1, 5)).object();
    a["discounts"] = json!(["di_a"]);
    app.deliver(&event("customer.subscription.updated", feb10, a)).await;
    // A customer-level discount: no subscription lists it.
    let feb15 = at(2026, 2, 15);
    app.deliver(&event("customer.discount.created", feb15, discount("di_b", "cus_b", None, "FIVE", feb15))).await;

    let jan = summary(&app, "2026-01").await;
    assert_eq!(jan["mrr_end"], 5000.0);
    let feb = summary(&app, "2026-02").await;
    // Hand computation: 2000 × 50 % + (3000 − 500) = 3500; the 1500 lost is contraction.
    assert_eq!((feb["mrr_start"].as_f64(), feb["mrr_end"].as_f64()), (Some(5000.0), Some(3500.0)));
    assert_eq!(feb["mrr_movements"]["contraction"], -1500.0);
    assert_eq!(feb["unresolved_discounts"], 0);

    // The customer's discount deleted on 2026-03-02: full price again from then on.
    let mar2 = at(2026, 3, 2);
    app.deliver(&event("customer.discount.deleted", mar2, discount("di_b", "cus_b", None, "FIVE", feb15))).await;
    let mar = summary(&app, "2026-03").await;
    assert_eq!((mar["mrr_end"].as_f64(), mar["mrr_movements"]["expansion"].as_f64()), (Some(4000.0), Some(500.0)));
}

#[tokio::test]
async fn a_coupon_never_seen_is_fetched_once_from_stripe_and_until_then_counts_at_list_price() {
    let stripe = MockServer::start().await;
    let uri = stripe.uri();
    let app = owner_app(Config::new().stripe_at(&uri)).await;
    start_business(&app, &[("sub_a", "cus_a", 2000), ("sub_b", "cus_b", 3000)]).await;
    let feb10 = at(2026, 2, 10);
    for (sub, cus, di, code) in [("sub_a", "cus_a", "di_a", "MYSTERY"), ("sub_b", "cus_b", "di_b", "GONE")] {
        app.deliver(&event("customer.discount.created", feb10, discount(di, cus, Some(sub), code, feb10))).await;
        let mut s = Sub::new(sub, cus, at(2026, 1, 5));
        s.unit_amount = if sub == "sub_a" { 2000 } else { 3000 };
        let mut s = s.object();
        s["discounts"] = json!([di]);
        app.deliver(&event("customer.subscription.updated", feb10, s)).await;
    }
    // Unknown terms never fail an event: list price, and the summary says how many.
    let before = summary(&app, "2026-02").await;
    assert_eq!((before["mrr_end"].as_f64(), before["unresolved_discounts"].as_u64()), (Some(5000.0), Some(2)));

    let found = coupon("MYSTERY", json!({"percent_off": 25.0, "duration": "forever"}));
    Mock::given(method("GET"))
        .and(path("/v1/coupons/MYSTERY"))
        .respond_with(ResponseTemplate::new(200).set_body_json(found))
        .expect(1)
        .mount(&stripe)
        .await;
    let missing =
        json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such coupon: 'GONE'"}});
    Mock::given(method("GET"))
        .and(path("/v1/coupons/GONE"))
        .respond_with(ResponseTemplate::new(404).set_body_json(missing))
        .expect(1)
        .mount(&stripe)
        .await;
    let api = StripeApi::new(&SecretString::from("sk_test_holdfast"), Some(&uri)).expect("client");
    let fetcher = CouponFetcher::new(app.store.clone(), api, app.clock.clone());
    assert_eq!(fetcher.try_run_once().await.expect("pass"), Outcome::Worked(1));
    // Fetched once: the found coupon is cached, the missing one is not asked for again.
    assert_eq!(fetcher.try_run_once().await.expect("pass"), Outcome::Idle);
    app.wait_projected().await;

    let after = summary(&app, "2026-02").await;
    // 2000 × 75 % + 3000 (GONE still unknown: list price).
    assert_eq!((after["mrr_end"].as_f64(), after["unresolved_discounts"].as_u64()), (Some(4500.0), Some(1)));
    stripe.verify().await;
}

#[tokio::test]
async fn an_items_own_discount_takes_off_that_item_only_before_the_subscriptions_discount() {
    let app = owner_app(Config::new()).await;
    let jan5 = at(2026, 1, 5);
    app.deliver(&event("customer.created", jan5, customer("cus_a", "cus_a@example.com", jan5))).await;
    // sub_a: the base plan (20.00) and an add-on (10.00); sub_c: another plan (10.00).
    let two_items = |item_discounts: Value, discounts: Value| {
        let mut s = Sub::new("sub_a", "cus_a", jan5).object();
        let mut addon = s["items"]["data"][0].clone();
        addon["id"] = json!("si_a_addon");
        addon["price"]["id"] = json!("price_addon");
        addon["price"]["product"] = json!("prod_addon");
        addon["price"]["unit_amount"] = json!(1000);
        addon["price"]["unit_amount_decimal"] = json!("1000");
        addon["discounts"] = item_discounts;
        s["items"]["data"].as_array_mut().expect("items").push(addon);
        s["discounts"] = discounts;
        s
    };
    app.deliver(&event("customer.subscription.created", jan5, two_items(json!([]), json!([])))).await;
    let mut c = Sub::new("sub_c", "cus_a", jan5);
    c.unit_amount = 1000;
    app.deliver(&event("customer.subscription.created", jan5, c.object())).await;

    let feb10 = at(2026, 2, 10);
    // 50 % off, limited to the add-on's product, on the add-on item; 5.00 off the subscription.
    let half = coupon("ADDON50", json!({"percent_off": 50.0, "duration": "forever", "applies_to": {"products": ["prod_addon"]}}));
    app.deliver(&event("coupon.created", feb10, half)).await;
    app.deliver(&event("coupon.created", feb10, coupon("FIVE", json!({"amount_off": 500, "duration": "forever"})))).await;
    let mut item_discount = discount("di_item", "cus_a", Some("sub_a"), "ADDON50", feb10);
    item_discount["subscription_item"] = json!("si_a_addon");
    app.deliver(&event("customer.discount.created", feb10, item_discount)).await;
    app.deliver(&event("customer.discount.created", feb10, discount("di_sub", "cus_a", Some("sub_a"), "FIVE", feb10))).await;
    app.deliver(&event("customer.subscription.updated", feb10, two_items(json!(["di_item"]), json!(["di_sub"])))).await;

    let jan = summary(&app, "2026-01").await;
    assert_eq!(jan["mrr_end"], 4000.0, "{jan}");
    let feb = summary(&app, "2026-02").await;
    // Hand computation: sub_a (2000 + 1000 × 50 %) − 500 = 2000; sub_c untouched: 1000.
    assert_eq!((feb["mrr_end"].as_f64(), feb["mrr_movements"]["contraction"].as_f64()), (Some(3000.0), Some(-1000.0)), "{feb}");
    assert_eq!(feb["unresolved_discounts"], 0);

    // The item's discount removed on 2026-03-02: only the subscription's 5.00 stays.
    let mar2 = at(2026, 3, 2);
    app.deliver(&event("customer.subscription.updated", mar2, two_items(json!([]), json!(["di_sub"])))).await;
    let mar = summary(&app, "2026-03").await;
    assert_eq!((mar["mrr_end"].as_f64(), mar["mrr_movements"]["expansion"].as_f64()), (Some(3500.0), Some(500.0)), "{mar}");
}

#[tokio::test]
async fn sync_asks_for_items_discounts_expanded_and_applies_them() {
    let stripe = MockServer::start().await;
    let uri = stripe.uri();
    let app = owner_app(Config::new()).await;
    let jan5 = at(2026, 1, 5);
    let feb10 = at(2026, 2, 10);
    // A subscription whose item carries its own discount, expanded (coupon by id, clover on).
    let mut s = Sub::new("sub_a", "cus_a", jan5).object();
    let mut item_discount = discount("di_item", "cus_a", Some("sub_a"), "HALF", feb10);
    item_discount["subscription_item"] = json!("si_a");
    s["items"]["data"][0]["discounts"] = json!([item_discount]);
    let list =
        |path: &str, data: Vec<Value>| json!({"object": "list", "url": format!("/v1{path}"), "has_more": false, "data": data});
    let pages = [
        ("/customers", vec![customer("cus_a", "cus_a@example.com", jan5)]),
        ("/invoices", vec![]),
        ("/products", vec![]),
        ("/prices", vec![]),
        ("/coupons", vec![coupon("HALF", json!({"percent_off": 50.0, "duration": "forever", "created": jan5}))]),
        ("/charges", vec![]),
        ("/disputes", vec![]),
        ("/credit_notes", vec![]),
    ];
    for (p, data) in pages {
        Mock::given(method("GET"))
            .and(path(format!("/v1{p}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(list(p, data)))
            .mount(&stripe)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions"))
        .and(query_param("expand[1]", "data.items.data.discounts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list("/subscriptions", vec![s])))
        .expect(1)
        .mount(&stripe)
        .await;
    let api = StripeApi::new(&SecretString::from("sk_test_holdfast"), Some(&uri)).expect("client");
    let options = holdfast::sync::SyncOptions {
        page_size: 100,
        retry: holdfast::sync::Retry { attempts: 1, first_backoff: std::time::Duration::from_millis(10) },
        progress: false,
        clock: app.clock.clone(),
    };
    holdfast::sync::run(&app.store, &api, &options).await.expect("sync");
    app.wait_projected().await;
    // The discount, recorded from the expanded item, starts 2026-02-10: 2000 × 50 % from then.
    assert_eq!(summary(&app, "2026-01").await["mrr_end"], 2000.0);
    let feb = summary(&app, "2026-02").await;
    assert_eq!((feb["mrr_end"].as_f64(), feb["unresolved_discounts"].as_u64()), (Some(1000.0), Some(0)), "{feb}");
    stripe.verify().await;
}
