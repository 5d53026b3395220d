//! Pricing shapes through webhooks → `/api/summary`, each against a hand computation: tiered
//! prices (volume and graduated), metered prices (latest finalized invoice line), tax-inclusive
//! prices (net of tax), and the causes of status `paused` beside `pause_collection`. Objects
//! are Stripe's example objects with our values.

use holdfast::stripe_api::StripeApi;
use holdfast::sync::Retry;
use holdfast::sync::prices::PriceTiersFetcher;
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

/// Stripe's example price with our id and fields.
fn price(id: &str, fields: Value) -> Value {
    let mut p = fixture("price");
    p["id"] = json!(id);
    p["transform_quantity"] = Value::Null;
    for (k, v) in fields.as_object().expect("fields object") {
        p[k] = v.clone();
    }
    p
}

fn tiered(id: &str, mode: &str, tiers: Option<Value>) -> Value {
    let mut p =
        price(id, json!({"billing_scheme": "tiered", "tiers_mode": mode, "unit_amount": null, "unit_amount_decimal": null}));
    if let Some(t) = tiers {
        p["tiers"] = t;
    }
    p
}

/// A subscription (2025+ shape) whose one item has `price` and `quantity` (`None`: metered
/// items carry no quantity).
fn subscription(id: &str, customer: &str, created: i64, price: &Value, quantity: Option<i64>) -> Value {
    let mut s = Sub::new(id, customer, created).object();
    let item = &mut s["items"]["data"][0];
    item["price"] = price.clone();
    item["quantity"] = json!(quantity);
    s
}

async fn start(app: &TestApp, customer_id: &str, sub: &Value, created: i64) {
    app.deliver(&event("customer.created", created, customer(customer_id, &format!("{customer_id}@example.com"), created))).await;
    app.deliver(&event("customer.subscription.created", created, sub.clone())).await;
}

/// A finalized invoice (2025+ shape) of `subscription` with one line per `(line id, item,
/// amount, inclusive tax)`.
fn invoice_with_lines(id: &str, customer: &str, subscription: &str, finalized: i64, lines: &[(&str, &str, i64, i64)]) -> Value {
    let total: i64 = lines.iter().map(|l| l.2).sum();
    let mut inv = invoice(id, customer, subscription, "paid", total, finalized);
    let data: Vec<Value> = lines
        .iter()
        .map(|(line, item, amount, tax)| {
            let mut l = inv["lines"]["data"][0].clone();
            l["id"] = json!(line);
            l["invoice"] = json!(id);
            l["amount"] = json!(amount);
            l["parent"] = json!({"type": "subscription_item_details", "invoice_item_details": null,
                "subscription_item_details": {"invoice_item": null, "proration": false, "proration_details": {"credited_items": null},
                                              "subscription": subscription, "subscription_item": item}});
            l["taxes"] = if *tax > 0 {
                json!([{"amount": tax, "tax_behavior": "inclusive", "tax_rate_details": null, "taxability_reason": "standard_rated",
                        "taxable_amount": amount - tax, "type": "tax_rate_details"}])
            } else {
                json!([])
            };
            l
        })
        .collect();
    inv["lines"]["data"] = json!(data);
    inv
}

async fn summary(app: &TestApp, month: &str) -> Value {
    let response =
        app.client.get(format!("{}/api/summary?month={month}", app.address)).bearer_auth(OWNER_TOKEN).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

async fn owner_app() -> TestApp {
    spawn_owner_app(OWNER_TOKEN).await
}

#[tokio::test]
async fn tiered_prices_count_from_their_tiers_in_volume_and_graduated_mode() {
    let app = owner_app().await;
    let jan5 = at(2026, 1, 5);
    let volume_tiers = json!([{"up_to": 10, "unit_amount": 1500, "flat_amount": null, "unit_amount_decimal": "1500", "flat_amount_decimal": null},
                              {"up_to": null, "unit_amount": 1000, "flat_amount": null, "unit_amount_decimal": "1000", "flat_amount_decimal": null}]);
    let graduated_tiers =
        json!([{"up_to": 5, "unit_amount": 1000, "flat_amount": 500}, {"up_to": null, "unit_amount": 800, "flat_amount": null}]);
    // The volume price's tiers arrive on the price's own event, after the subscription (as
    // `holdfast sync` would bring them); the graduated one's on the item's expanded price; the
    // third price's tiers are never seen.
    let volume = tiered("price_vol", "volume", None);
    let graduated = tiered("price_grad", "graduated", Some(graduated_tiers));
    let unknown = tiered("price_unknown", "volume", None);
    start(&app, "cus_v", &subscription("sub_v", "cus_v", jan5, &volume, Some(12)), jan5).await;
    start(&app, "cus_g", &subscription("sub_g", "cus_g", jan5, &graduated, Some(7)), jan5).await;
    start(&app, "cus_u", &subscription("sub_u", "cus_u", jan5, &unknown, Some(3)), jan5).await;
    let mut with_tiers = volume.clone();
    with_tiers["tiers"] = volume_tiers;
    app.deliver(&event("price.updated", at(2026, 1, 6), with_tiers)).await;

    // Volume: all 12 units at the 11+ tier, 12 × 10.00. Graduated: 5 × 10.00 + 5.00 flat,
    // then 2 × 8.00. Unknown tiers: 0, reported.
    let jan = summary(&app, "2026-01").await;
    assert_eq!(jan["mrr_end"], json!(12000.0 + 5500.0 + 1600.0), "{jan}");
    assert_eq!(jan["active_customers_end"], json!(3));
    assert_eq!(jan["unresolved_prices"], json!(1));

    // 12 graduated units: 5500 + 7 × 800 = 11100, an expansion of 4000.
    app.deliver(&event(
        "customer.subscription.updated",
        at(2026, 2, 10),
        subscription("sub_g", "cus_g", jan5, &graduated, Some(12)),
    ))
    .await;
    let feb = summary(&app, "2026-02").await;
    assert_eq!(feb["mrr_end"], json!(12000.0 + 11100.0), "{feb}");
    assert_eq!(feb["mrr_movements"]["expansion"], json!(4000.0));
}

#[tokio::test]
async fn unresolved_prices_are_counted_per_month_as_they_stood_at_its_end() {
    let app = owner_app().await;
    let jan5 = at(2026, 1, 5);
    let unknown = tiered("price_unknown", "volume", None);
    start(&app, "cus_u", &subscription("sub_u", "cus_u", jan5, &unknown, Some(3)), jan5).await;
    // Canceled in March: January and February still had the unknown price in force at
    // their end, March no longer.
    let mar10 = at(2026, 3, 10);
    let mut canceled = subscription("sub_u", "cus_u", jan5, &unknown, Some(3));
    canceled["status"] = json!("canceled");
    canceled["canceled_at"] = json!(mar10);
    canceled["ended_at"] = json!(mar10);
    app.deliver(&event("customer.subscription.deleted", mar10, canceled)).await;
    for (month, n) in [("2026-01", 1), ("2026-02", 1), ("2026-03", 0)] {
        assert_eq!(summary(&app, month).await["unresolved_prices"], json!(n), "{month}");
    }
}

#[tokio::test]
async fn metered_prices_count_their_latest_finalized_invoice_line_per_month() {
    let app = owner_app().await;
    let jan5 = at(2026, 1, 5);
    let metered = price(
        "price_api",
        json!({"unit_amount": 5, "unit_amount_decimal": "5",
        "recurring": {"interval": "month", "interval_count": 1, "meter": "mtr_1", "usage_type": "metered", "trial_period_days": null}}),
    );
    start(&app, "cus_m", &subscription("sub_m", "cus_m", jan5, &metered, None), jan5).await;
    let jan = summary(&app, "2026-01").await;
    assert_eq!((jan["mrr_end"].clone(), jan["active_customers_end"].clone()), (json!(0.0), json!(1)), "{jan}");
    assert_eq!(jan["unresolved_prices"], json!(1), "no usage billed yet");

    // February's invoice bills 840 units: 42.00. March's bills 63.00 (a proration line beside
    // it is not usage). A draft never counts.
    let feb5 = at(2026, 2, 5);
    app.deliver(&event(
        "invoice.finalized",
        feb5,
        invoice_with_lines("in_feb", "cus_m", "sub_m", feb5, &[("il_1", "si_m", 4200, 0)]),
    ))
    .await;
    let mar5 = at(2026, 3, 5);
    let mut march =
        invoice_with_lines("in_mar", "cus_m", "sub_m", mar5, &[("il_2", "si_m", 6300, 0), ("il_3", "si_m", -1000, 0)]);
    march["lines"]["data"][1]["parent"]["subscription_item_details"]["proration"] = json!(true);
    app.deliver(&event("invoice.paid", mar5, march)).await;
    let mut draft = invoice_with_lines("in_apr", "cus_m", "sub_m", at(2026, 4, 5), &[("il_4", "si_m", 99900, 0)]);
    draft["status"] = json!("draft");
    app.deliver(&event("invoice.created", at(2026, 4, 5), draft)).await;

    let feb = summary(&app, "2026-02").await;
    assert_eq!((feb["mrr_end"].clone(), feb["mrr_movements"]["new"].clone()), (json!(4200.0), json!(4200.0)), "{feb}");
    assert_eq!(feb["unresolved_prices"], json!(0));
    let mar = summary(&app, "2026-03").await;
    assert_eq!((mar["mrr_end"].clone(), mar["mrr_movements"]["expansion"].clone()), (json!(6300.0), json!(2100.0)), "{mar}");
    assert_eq!(summary(&app, "2026-04").await["mrr_end"], json!(6300.0));
}

#[tokio::test]
async fn tax_inclusive_prices_count_net_of_their_tax() {
    let app = owner_app().await;
    let jan5 = at(2026, 1, 5);
    // 25.00 including 25 % tax by the subscription's default rate: 20.00 net.
    let with_rate = price("price_incl", json!({"unit_amount": 2500, "unit_amount_decimal": "2500", "tax_behavior": "inclusive"}));
    let mut a = subscription("sub_a", "cus_a", jan5, &with_rate, Some(1));
    a["default_tax_rates"] = json!([{"id": "txr_1", "object": "tax_rate", "percentage": 25.0, "effective_percentage": 25.0,
                                      "inclusive": true, "active": true, "display_name": "VAT"}]);
    start(&app, "cus_a", &a, jan5).await;
    // 11.90 including tax at a rate Holdfast is not told (Stripe Tax): gross until the first
    // finalized invoice shows 1.90 of it is tax.
    let automatic = price("price_auto", json!({"unit_amount": 1190, "unit_amount_decimal": "1190", "tax_behavior": "inclusive"}));
    start(&app, "cus_b", &subscription("sub_b", "cus_b", jan5, &automatic, Some(1)), jan5).await;
    let jan = summary(&app, "2026-01").await;
    assert_eq!(jan["mrr_end"], json!(2000.0 + 1190.0), "{jan}");

    let feb5 = at(2026, 2, 5);
    app.deliver(&event("invoice.paid", feb5, invoice_with_lines("in_b", "cus_b", "sub_b", feb5, &[("il_b", "si_b", 1190, 190)])))
        .await;
    let feb = summary(&app, "2026-02").await;
    assert_eq!(feb["mrr_end"], json!(2000.0 + 1000.0), "{feb}");
    assert_eq!(feb["mrr_movements"]["contraction"], json!(-190.0));
}

#[tokio::test]
async fn each_cause_of_a_pause_counts_as_documented() {
    let app = owner_app().await;
    let jan5 = at(2026, 1, 5);
    for (sub, cus) in [("sub_req", "cus_req"), ("sub_fail", "cus_fail"), ("sub_coll", "cus_coll")] {
        start(&app, cus, &Sub::new(sub, cus, jan5).object(), jan5).await;
    }
    let mut trial = Sub::new("sub_trial", "cus_trial", jan5);
    trial.status = "trialing";
    let mut t = trial.object();
    t["trial_start"] = json!(jan5);
    t["trial_end"] = json!(at(2026, 3, 5));
    start(&app, "cus_trial", &t, jan5).await;

    let mar10 = at(2026, 3, 10);
    // Stripe's shape: `status_details.paused = {type: "subscription", transitioned_at,
    // subscription: {type: <reason>}}`.
    let paused = |sub: &str, cus: &str, reason: &str| {
        let mut s = Sub::new(sub, cus, jan5);
        s.status = "paused";
        let mut o = s.object();
        o["status_details"] =
            json!({"paused": {"type": "subscription", "transitioned_at": mar10, "subscription": {"type": reason}}});
        o
    };
    // Stripe's Pause endpoint; a pause after a failed payment; a trial that ended without a
    // payment method; `pause_collection` on an active subscription.
    app.deliver(&event("customer.subscription.paused", mar10, paused("sub_req", "cus_req", "pause_requested"))).await;
    app.deliver(&event("customer.subscription.paused", mar10, paused("sub_fail", "cus_fail", "final_payment_failure"))).await;
    let mut ended_trial = paused("sub_trial", "cus_trial", "trial_end_without_payment_method");
    ended_trial["trial_start"] = json!(jan5);
    ended_trial["trial_end"] = json!(at(2026, 3, 5));
    app.deliver(&event("customer.subscription.paused", mar10, ended_trial)).await;
    let mut collection = Sub::new("sub_coll", "cus_coll", jan5).object();
    collection["pause_collection"] = json!({"behavior": "void", "resumes_at": null});
    app.deliver(&event("customer.subscription.updated", mar10, collection)).await;

    let feb = summary(&app, "2026-02").await;
    assert_eq!((feb["mrr_end"].clone(), feb["active_customers_end"].clone()), (json!(6000.0), json!(3)), "{feb}");
    let mar = summary(&app, "2026-03").await;
    // The two paused by status churn (one voluntary, one involuntary: the payment failure);
    // the trial never counted; `pause_collection` keeps its customer at 0 MRR.
    assert_eq!(mar["mrr_end"], json!(0.0), "{mar}");
    assert_eq!(mar["active_customers_end"], json!(1));
    assert_eq!(mar["churned_customers"], json!(2));
    assert_eq!(mar["churned_customers_voluntary"], json!(1));
    assert_eq!(mar["churned_customers_involuntary"], json!(1));
    assert_eq!(mar["mrr_movements"]["churned"], json!(-4000.0));
    assert_eq!(mar["mrr_movements"]["paused"], json!(-2000.0));
    assert_eq!(mar["new_customers"], json!(0));

    // Resumed from Stripe's pause: a reactivation.
    app.deliver(&event("customer.subscription.resumed", at(2026, 4, 10), Sub::new("sub_req", "cus_req", jan5).object())).await;
    let apr = summary(&app, "2026-04").await;
    assert_eq!(apr["mrr_movements"]["reactivation"], json!(2000.0), "{apr}");
}

/// Stripe's answers for the tiers: `price_seats` (graduated) fails once with a 500, then
/// answers with its tiers; `price_gone` no longer exists (404). Each is asked exactly so often.
async fn mount_the_tier_answers(stripe: &MockServer) {
    let mut answer = tiered(
        "price_seats",
        "graduated",
        Some(
            json!([{"up_to": 5, "unit_amount": 1000, "flat_amount": 500, "unit_amount_decimal": "1000", "flat_amount_decimal": "500"},
                                                  {"up_to": null, "unit_amount": 800, "flat_amount": null, "unit_amount_decimal": "800", "flat_amount_decimal": null}]),
        ),
    );
    answer["created"] = json!(at(2025, 12, 1));
    let failure = json!({"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}});
    Mock::given(method("GET"))
        .and(path("/v1/prices/price_seats"))
        .and(query_param("expand[]", "tiers"))
        .respond_with(ResponseTemplate::new(500).set_body_json(failure))
        .up_to_n_times(1)
        .expect(1)
        .mount(stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/prices/price_seats"))
        .and(query_param("expand[]", "tiers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(stripe)
        .await;
    let missing =
        json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such price: 'price_gone'"}});
    Mock::given(method("GET"))
        .and(path("/v1/prices/price_gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(missing))
        .expect(1)
        .mount(stripe)
        .await;
}

#[tokio::test]
async fn a_tiered_price_without_its_tiers_is_fetched_once_from_stripe_when_a_key_is_set() {
    let stripe = MockServer::start().await;
    let uri = stripe.uri();
    let app = spawn_app_with(Config::new().owner_token(OWNER_TOKEN).stripe_at(&uri)).await;
    let jan5 = at(2026, 1, 5);
    // Webhook payloads leave a price's tiers out: both items arrive without them.
    let seats = tiered("price_seats", "graduated", None);
    start(&app, "cus_t", &subscription("sub_t", "cus_t", jan5, &seats, Some(7)), jan5).await;
    let gone = tiered("price_gone", "volume", None);
    start(&app, "cus_g", &subscription("sub_g", "cus_g", jan5, &gone, Some(2)), jan5).await;
    let before = summary(&app, "2026-01").await;
    assert_eq!((before["mrr_end"].clone(), before["unresolved_prices"].clone()), (json!(0.0), json!(2)), "{before}");

    // Stripe answers the expanded price; the first attempt for it fails (a 500, retried).
    mount_the_tier_answers(&stripe).await;
    let api = StripeApi::new(&SecretString::from("sk_test_holdfast"), Some(&uri)).expect("client");
    let quick = Retry { attempts: 2, first_backoff: std::time::Duration::from_millis(10) };
    let fetcher = PriceTiersFetcher::new(app.store.clone(), api.clone(), app.clock.clone()).with_retry(quick);
    assert_eq!(fetcher.try_run_once().await.expect("pass"), Outcome::Worked(1));
    app.wait_projected().await;
    // Fetched once: the found tiers are stored, the missing price is not asked for again,
    // and another process finds the tiers stored (it asks only for the missing one's).
    assert_eq!(fetcher.try_run_once().await.expect("pass"), Outcome::Idle);
    assert_eq!(app.store.unknown_tiers().await.expect("unknown tiers"), vec!["price_gone".to_string()]);

    // Graduated, 7 units: 5 × 10.00 + 5.00 flat, then 2 × 8.00 = 71.00; the other stays unresolved.
    let after = summary(&app, "2026-01").await;
    assert_eq!((after["mrr_end"].clone(), after["unresolved_prices"].clone()), (json!(7100.0), json!(1)), "{after}");
    assert_eq!(after["mrr_movements"]["new"], json!(7100.0));
    stripe.verify().await;
}

#[tokio::test]
async fn without_a_key_no_price_is_fetched_and_the_item_stays_unresolved() {
    let app = owner_app().await;
    let jan5 = at(2026, 1, 5);
    start(&app, "cus_t", &subscription("sub_t", "cus_t", jan5, &tiered("price_seats", "volume", None), Some(3)), jan5).await;
    let jan = summary(&app, "2026-01").await;
    assert_eq!((jan["mrr_end"].clone(), jan["unresolved_prices"].clone()), (json!(0.0), json!(1)), "{jan}");
    assert_eq!(app.store.unknown_tiers().await.expect("unknown tiers"), vec!["price_seats".to_string()]);
    // The service built without `STRIPE_SECRET_KEY` has no fetcher, so it never calls Stripe.
    let mail_dir = tempfile::tempdir().expect("mail dir");
    let settings = settings_on(&app.database_url, &mail_dir, Config::new());
    let built = holdfast::startup::Application::build(settings).await.expect("app builds");
    assert!(built.price_tiers_fetcher().is_none() && built.coupon_fetcher().is_none());
}
