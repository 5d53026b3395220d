//! Refunds, disputes and credit notes: projected from `charge.refunded`, `charge.dispute.*`
//! and `credit_note.*` (Stripe-shaped bodies), recovered money later given back is not counted
//! as recovered, the summary says how much was refunded or disputed, and LTV is net of it.
//! `holdfast sync` brings the same objects from Stripe's list endpoints (wiremock).

use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::business::OWNER_TOKEN;
use crate::support::helpers::*;

const DAY: i64 = 86_400;
/// 2025-02-01 00:00 UTC: every customer starts here.
const FEB: i64 = 1_738_368_000;
/// 2025-03-01 00:00 UTC: failures, recoveries and what is given back happen in March.
const MAR: i64 = 1_740_787_200;

fn charge(id: &str, customer: &str, payment_intent: &str, amount_refunded: i64, created: i64) -> Value {
    json!({"id": id, "object": "charge", "amount": 2000, "amount_captured": 2000, "amount_refunded": amount_refunded,
           "captured": true, "created": created, "currency": "usd", "customer": customer, "disputed": false,
           "livemode": false, "paid": true, "payment_intent": payment_intent, "refunded": amount_refunded >= 2000,
           "status": "succeeded", "metadata": {}})
}

fn dispute(id: &str, charge: &str, payment_intent: &str, status: &str, created: i64) -> Value {
    json!({"id": id, "object": "dispute", "amount": 2000, "balance_transactions": [], "charge": charge,
           "created": created, "currency": "usd", "is_charge_refundable": false, "livemode": false, "metadata": {},
           "payment_intent": payment_intent, "reason": "fraudulent", "status": status})
}

fn credit_note(id: &str, invoice: &str, customer: &str, amount: i64, status: &str, created: i64) -> Value {
    json!({"id": id, "object": "credit_note", "amount": amount, "created": created, "currency": "usd",
           "customer": customer, "invoice": invoice, "livemode": false, "metadata": {}, "number": "CN-1",
           "out_of_band_amount": null, "post_payment_amount": amount, "pre_payment_amount": 0, "reason": null,
           "refunds": [], "status": status, "subtotal": amount, "total": amount, "type": "post_payment",
           "voided_at": if status == "void" { json!(created + DAY) } else { Value::Null }})
}

async fn owner_get(app: &TestApp, path: &str) -> Value {
    let response = app.client.get(format!("{}{path}", app.address)).bearer_auth(OWNER_TOKEN).send().await.expect("sent");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("JSON")
}

/// Four $20 customers since February. In March each of the first three has a failed invoice
/// that is then paid; afterwards $5 of the first is refunded, the second's payment is lost to
/// a dispute, the third gets $3 credited back (and a note that is voided); a won dispute gives
/// nothing back. The fourth cancels in March.
async fn business(app: &TestApp) {
    for n in 1..=4 {
        let (c, s) = (format!("cus_r{n}"), format!("sub_r{n}"));
        app.deliver(&event("customer.created", FEB, customer(&c, &format!("r{n}@example.com"), FEB))).await;
        app.deliver(&event("customer.subscription.created", FEB, Sub::new(&s, &c, FEB).object())).await;
    }
    for n in 1..=3 {
        let (c, s, i, pi) = (format!("cus_r{n}"), format!("sub_r{n}"), format!("in_r{n}"), format!("pi_r{n}"));
        let mut failed = invoice(&i, &c, &s, "open", 2000, MAR + 4 * DAY);
        failed["attempt_count"] = json!(1);
        app.deliver(&event("invoice.payment_failed", MAR + 4 * DAY, failed)).await;
        let mut paid = invoice(&i, &c, &s, "paid", 2000, MAR + 4 * DAY);
        paid["status_transitions"]["paid_at"] = json!(MAR + 5 * DAY);
        if n == 2 {
            // The 2024 shape names the payment intent on the invoice itself.
            paid["payment_intent"] = json!(pi);
        }
        app.deliver(&event("invoice.paid", MAR + 5 * DAY, paid)).await;
        if n != 2 {
            // Since 2025-03-31.basil the payment is its own object.
            let payment = json!({"id": format!("inpay_r{n}"), "object": "invoice_payment", "amount_paid": 2000,
                "amount_requested": 2000, "currency": "usd", "invoice": i, "is_default": true, "livemode": false,
                "payment": {"type": "payment_intent", "payment_intent": pi}, "status": "paid",
                "status_transitions": {"canceled_at": null, "paid_at": MAR + 5 * DAY}, "created": MAR + 5 * DAY});
            app.deliver(&event("invoice_payment.paid", MAR + 5 * DAY, payment)).await;
        }
    }
    // $5 refunded to the first; the charge names only its payment intent.
    app.deliver(&event("charge.refunded", MAR + 9 * DAY, charge("ch_r1", "cus_r1", "pi_r1", 500, MAR + 5 * DAY))).await;
    // The second's payment disputed and lost; a won dispute on the third gives nothing back.
    app.deliver(&event("charge.succeeded", MAR + 5 * DAY, charge("ch_r2", "cus_r2", "pi_r2", 0, MAR + 5 * DAY))).await;
    app.deliver(&event(
        "charge.dispute.created",
        MAR + 11 * DAY,
        dispute("dp_r2", "ch_r2", "pi_r2", "needs_response", MAR + 11 * DAY),
    ))
    .await;
    app.deliver(&event("charge.dispute.closed", MAR + 19 * DAY, dispute("dp_r2", "ch_r2", "pi_r2", "lost", MAR + 11 * DAY)))
        .await;
    app.deliver(&event("charge.dispute.closed", MAR + 19 * DAY, dispute("dp_r3", "ch_r3", "pi_r3", "won", MAR + 11 * DAY))).await;
    // $3 credited back to the third; a second note voided.
    app.deliver(&event(
        "credit_note.created",
        MAR + 14 * DAY,
        credit_note("cn_r3", "in_r3", "cus_r3", 300, "issued", MAR + 14 * DAY),
    ))
    .await;
    let voided = credit_note("cn_r3b", "in_r3", "cus_r3", 700, "void", MAR + 14 * DAY);
    let mut issued = voided.clone();
    issued["status"] = json!("issued");
    issued["voided_at"] = Value::Null;
    app.deliver(&event("credit_note.created", MAR + 14 * DAY, issued)).await;
    app.deliver(&event("credit_note.voided", MAR + 15 * DAY, voided)).await;
    // The fourth cancels.
    let mut canceled = Sub::new("sub_r4", "cus_r4", FEB).object();
    canceled["status"] = json!("canceled");
    canceled["canceled_at"] = json!(MAR + 24 * DAY);
    canceled["ended_at"] = json!(MAR + 24 * DAY);
    app.deliver(&event("customer.subscription.deleted", MAR + 24 * DAY, canceled)).await;
}

#[tokio::test]
async fn recovered_money_given_back_is_not_counted_and_ltv_is_net_of_it() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    business(&app).await;

    let s = owner_get(&app, "/api/summary?month=2025-03").await;
    let f = &s["failed_payments"];
    assert_eq!((f["failed_invoices"].as_u64(), f["recovered"].as_u64()), (Some(3), Some(3)), "{f}");
    // $60 recovered, of which $5 refunded, $3 credited back and $20 lost to a dispute.
    assert_eq!(f["refunded_amount"], 800, "{f}");
    assert_eq!(f["disputed_amount"], 2000, "{f}");
    assert_eq!(f["recovered_amount"], 6000 - 800 - 2000, "{f}");
    assert_eq!(s["given_back"], json!({"refunds": 500, "lost_disputes": 2000, "credit_notes": 300, "total": 2800}));

    // Three paying customers at $20: ARPU $20. One of four churned: 25 %. Net of the $28
    // given back in March, ARPU is 2000 − 2800/3 cents, so LTV = (2000 − 933.33…) / 0.25.
    assert_eq!(s["arpu"], 2000.0);
    assert_eq!(s["customer_churn_rate"], 0.25);
    assert_eq!(s["ltv"], 4266.67);

    // The month before gave nothing back.
    let feb = owner_get(&app, "/api/summary?month=2025-02").await;
    assert_eq!(feb["given_back"]["total"], 0);

    // The tables rebuilt from the log say the same.
    app.store.reproject().await.expect("reproject");
    let again = owner_get(&app, "/api/summary?month=2025-03").await;
    assert_eq!(again["failed_payments"], s["failed_payments"]);
    assert_eq!(again["given_back"], s["given_back"]);
    assert_eq!(again["ltv"], s["ltv"]);
}

#[tokio::test]
async fn refunds_and_disputes_arriving_in_any_order_and_twice_give_the_same_figures() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    // A partial refund then the rest, delivered newest first and each twice.
    let first = event("charge.refunded", MAR + 3 * DAY, charge("ch_x", "cus_x", "pi_x", 500, MAR));
    let second = event("charge.refunded", MAR + 40 * DAY, charge("ch_x", "cus_x", "pi_x", 2000, MAR));
    for e in [&second, &first, &second, &first] {
        app.deliver(e).await;
    }
    let mar = owner_get(&app, "/api/summary?month=2025-03").await;
    let apr = owner_get(&app, "/api/summary?month=2025-04").await;
    assert_eq!(mar["given_back"]["refunds"], 500, "dated when first reported");
    assert_eq!(apr["given_back"]["refunds"], 1500);
}

/// A list endpoint answering one page.
async fn mount_list(server: &MockServer, path_: &str, data: Value) {
    Mock::given(method("GET"))
        .and(path(format!("/v1{path_}")))
        .and(query_param_is_missing("starting_after"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "url": format!("/v1{path_}"), "has_more": false, "data": data})),
        )
        .mount(server)
        .await;
}

#[tokio::test]
async fn sync_brings_refunds_disputes_and_credit_notes_from_stripes_lists() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    let stripe = MockServer::start().await;
    for empty in ["/customers", "/subscriptions", "/invoices", "/products", "/prices", "/coupons"] {
        mount_list(&stripe, empty, json!([])).await;
    }
    let mut refunded = charge("ch_s1", "cus_s1", "pi_s1", 500, MAR - 20 * DAY);
    refunded["refunds"] = json!({"object": "list", "has_more": false, "data": [
        {"id": "re_s1", "object": "refund", "amount": 500, "charge": "ch_s1", "created": MAR + 9 * DAY,
         "currency": "usd", "status": "succeeded"}]});
    let untouched = charge("ch_s2", "cus_s2", "pi_s2", 0, MAR);
    mount_list(&stripe, "/charges", json!([refunded, untouched])).await;
    let mut lost = dispute("dp_s1", "ch_s3", "pi_s3", "lost", MAR + 11 * DAY);
    lost["balance_transactions"] = json!([{"id": "txn_1", "object": "balance_transaction", "created": MAR + 11 * DAY},
                                          {"id": "txn_2", "object": "balance_transaction", "created": MAR + 19 * DAY}]);
    mount_list(&stripe, "/disputes", json!([lost, dispute("dp_s2", "ch_s4", "pi_s4", "won", MAR)])).await;
    mount_list(
        &stripe,
        "/credit_notes",
        json!([
            credit_note("cn_s1", "in_s1", "cus_s1", 300, "issued", MAR + 14 * DAY),
            credit_note("cn_s2", "in_s1", "cus_s1", 700, "void", MAR + 14 * DAY)
        ]),
    )
    .await;

    let api =
        holdfast::stripe_api::StripeApi::new(&secrecy::SecretString::from("sk_test_sync"), Some(&stripe.uri())).expect("client");
    let options = holdfast::sync::SyncOptions { progress: false, ..Default::default() };
    let reports = holdfast::sync::run(&app.store, &api, &options).await.expect("sync");
    let objects: Vec<(&str, u64)> = reports.iter().map(|r| (r.name, r.objects)).collect();
    for kind in [("charges", 2), ("disputes", 2), ("credit_notes", 2)] {
        assert!(objects.contains(&kind), "{objects:?}");
    }
    let s = owner_get(&app, "/api/summary?month=2025-03").await;
    assert_eq!(s["given_back"], json!({"refunds": 500, "lost_disputes": 2000, "credit_notes": 300, "total": 2800}));
    // A second sync stores nothing new and changes nothing.
    holdfast::sync::run(&app.store, &api, &options).await.expect("sync again");
    assert_eq!(owner_get(&app, "/api/summary?month=2025-03").await["given_back"], s["given_back"]);
}
