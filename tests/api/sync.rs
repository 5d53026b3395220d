//! `holdfast sync` against Stripe answered at the HTTP level (wiremock), several pages each.

use std::time::Duration;

use holdfast::store::Store;
use holdfast::stripe_api::StripeApi;
use holdfast::sync::{KindReport, Retry, SyncOptions, run};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::helpers::{Sub, customer, event, fixture, invoice, spawn_app};

const DAY: i64 = 86_400;
const T0: i64 = 1_700_000_000;

fn api(server: &MockServer) -> StripeApi {
    StripeApi::new(&SecretString::from("sk_test_sync"), Some(&server.uri())).expect("client")
}

fn options() -> SyncOptions {
    SyncOptions {
        page_size: 2,
        retry: Retry { attempts: 3, first_backoff: Duration::from_millis(10) },
        progress: false,
        clock: holdfast::clock::Clock::system(),
    }
}

fn list(path: &str, data: &[Value], has_more: bool) -> Value {
    json!({"object": "list", "url": format!("/v1{path}"), "has_more": has_more, "data": data})
}

fn customers() -> Vec<Value> {
    (1..=3).map(|n| customer(&format!("cus_s{n}"), &format!("c{n}@example.com"), T0 + n)).collect()
}

/// Active since T0; trial converted; asked to cancel at T0+40d, ended at T0+60d.
fn subscriptions() -> Vec<Value> {
    let active = Sub::new("sub_s1", "cus_s1", T0).object();
    let mut trial = Sub::new("sub_s2", "cus_s2", T0).object();
    trial["trial_start"] = json!(T0);
    trial["trial_end"] = json!(T0 + 14 * DAY);
    let mut canceled = Sub::new("sub_s3", "cus_s3", T0).object();
    canceled["status"] = json!("canceled");
    canceled["cancel_at_period_end"] = json!(true);
    canceled["canceled_at"] = json!(T0 + 40 * DAY);
    canceled["ended_at"] = json!(T0 + 60 * DAY);
    canceled["cancellation_details"] = json!({"comment": null, "feedback": "too_expensive", "reason": "cancellation_requested"});
    vec![active, trial, canceled]
}

fn invoices() -> Vec<Value> {
    let mut paid = invoice("in_s1", "cus_s1", "sub_s1", "paid", 2000, T0);
    paid["status_transitions"]["paid_at"] = json!(T0 + 3600);
    vec![paid, invoice("in_s2", "cus_s2", "sub_s2", "open", 2000, T0 + DAY)]
}

/// A product and its price as Stripe's lists return them.
fn catalog_product() -> Value {
    json!({"id": "prod_sync_basic", "object": "product", "active": true, "created": T0, "updated": T0 + DAY,
           "name": "Basic", "livemode": false, "metadata": {}, "type": "service"})
}

fn catalog_price() -> Value {
    json!({"id": "price_sync_basic", "object": "price", "active": true, "created": T0, "currency": "usd",
           "livemode": false, "metadata": {}, "nickname": null, "product": "prod_sync_basic",
           "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}, "type": "recurring",
           "unit_amount": 900, "unit_amount_decimal": "900"})
}

/// Mount a list endpoint as pages of two, chained by `starting_after`.
async fn mount_pages(server: &MockServer, path_: &str, objects: &[Value]) {
    let mut pages: Vec<&[Value]> = objects.chunks(2).collect();
    if pages.is_empty() {
        pages.push(&[]);
    }
    for (i, page) in pages.iter().enumerate() {
        let has_more = i + 1 < pages.len();
        let mock = Mock::given(method("GET")).and(path(format!("/v1{path_}")));
        let mock = match i {
            0 => mock.and(query_param_is_missing("starting_after")),
            _ => mock.and(query_param("starting_after", pages[i - 1].last().and_then(|o| o["id"].as_str()).unwrap_or_default())),
        };
        mock.respond_with(ResponseTemplate::new(200).set_body_json(list(path_, page, has_more))).mount(server).await;
    }
}

async fn mount_stripe(server: &MockServer) {
    mount_pages(server, "/customers", &customers()).await;
    mount_pages(server, "/subscriptions", &subscriptions()).await;
    mount_pages(server, "/invoices", &invoices()).await;
    mount_pages(server, "/products", &[catalog_product()]).await;
    mount_pages(server, "/prices", &[catalog_price()]).await;
    for empty in ["/charges", "/disputes", "/credit_notes"] {
        mount_pages(server, empty, &[]).await;
    }
    mount_pages(server, "/coupons", &[catalog_coupon()]).await;
}

/// A coupon as Stripe's list returns it.
fn catalog_coupon() -> Value {
    let mut c = fixture("coupon");
    c["id"] = json!("SYNC25");
    c["percent_off"] = json!(25.0);
    c["created"] = json!(T0);
    c
}

fn totals(reports: &[KindReport]) -> (u64, u64) {
    (reports.iter().map(|r| r.stored).sum(), reports.iter().map(|r| r.duplicates).sum())
}

/// The subscription's status timeline by COMMON's rule: at each snapshot time, the state is
/// the history row with the greatest (src_rank, effective_at, event_id) at or before it;
/// consecutive equal statuses collapse. This is what metrics sample.
async fn timeline(store: &Store, subscription: &str) -> Vec<(i64, String)> {
    let history: Vec<_> =
        store.dump_state().await.expect("state").history.into_iter().filter(|h| h.subscription_id == subscription).collect();
    let mut times: Vec<i64> = history.iter().map(|h| h.effective_at).collect();
    times.sort();
    times.dedup();
    let mut out: Vec<(i64, String)> = Vec::new();
    for t in times {
        let state = history
            .iter()
            .filter(|h| h.effective_at <= t)
            .max_by(|a, b| (a.src_rank, a.effective_at, &a.event_id).cmp(&(b.src_rank, b.effective_at, &b.event_id)))
            .expect("a row at or before t");
        if out.last().is_none_or(|(_, s)| *s != state.status) {
            out.push((t, state.status.clone()));
        }
    }
    out
}

#[tokio::test]
async fn sync_backfills_every_page_with_history_from_the_objects_own_dates() {
    let app = spawn_app().await;
    let stripe = MockServer::start().await;
    mount_stripe(&stripe).await;

    let reports = run(&app.store, &api(&stripe), &options()).await.expect("sync succeeds");

    let objects: Vec<(&str, u64, u64)> = reports.iter().map(|r| (r.name, r.objects, r.pages)).collect();
    assert_eq!(
        objects,
        vec![
            ("customers", 3, 2),
            ("subscriptions", 3, 2),
            ("invoices", 2, 1),
            ("products", 1, 1),
            ("prices", 1, 1),
            ("coupons", 1, 1),
            ("charges", 0, 1),
            ("disputes", 0, 1),
            ("credit_notes", 0, 1)
        ]
    );
    // Plan names and amounts for the pages that show them.
    let plan = app.store.plan("price_sync_basic").await.expect("store").expect("the synced price");
    assert_eq!(plan.describe(), "Basic — $9.00 / month");
    let state = app.state().await;
    assert_eq!(state.customers.len(), 3);
    let statuses: Vec<(&str, &str)> = state.subscriptions.iter().map(|s| (s.id.as_str(), s.status.as_str())).collect();
    assert_eq!(statuses, vec![("sub_s1", "active"), ("sub_s2", "active"), ("sub_s3", "canceled")]);
    assert_eq!(
        timeline(&app.store, "sub_s3").await,
        vec![(T0, "active".into()), (T0 + 60 * DAY, "canceled".into())],
        "active from its start, canceled at ended_at"
    );
    let requested =
        state.history.iter().find(|h| h.subscription_id == "sub_s3" && h.effective_at == T0 + 40 * DAY).expect("request");
    assert!(requested.cancel_at_period_end, "the cancellation request is dated canceled_at");
    assert_eq!(timeline(&app.store, "sub_s2").await, vec![(T0, "trialing".into()), (T0 + 14 * DAY, "active".into())]);
    let paid = state.invoices.iter().find(|i| i.id == "in_s1").expect("invoice");
    assert_eq!((paid.status.as_deref(), paid.paid_at), (Some("paid"), Some(T0 + 3600)));
}

#[tokio::test]
async fn running_sync_twice_changes_nothing() {
    let app = spawn_app().await;
    let stripe = MockServer::start().await;
    mount_stripe(&stripe).await;
    let first = run(&app.store, &api(&stripe), &options()).await.expect("first sync");
    let before = app.state().await;

    let second = run(&app.store, &api(&stripe), &options()).await.expect("second sync");

    assert_eq!(totals(&second), (0, totals(&first).0), "the second run finds only duplicates");
    assert_eq!(app.state().await, before);
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_a_backoff() {
    let app = spawn_app().await;
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(json!({"error": {"type": "rate_limit_error", "message": "Too many requests"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream unavailable"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&stripe)
        .await;
    mount_stripe(&stripe).await;

    let reports = run(&app.store, &api(&stripe), &options()).await.expect("sync succeeds after retrying");

    assert_eq!(reports[0].objects, 3);
    assert_eq!(reports[1].objects, 3);
}

#[tokio::test]
async fn an_interrupted_sync_resumes_after_the_last_stored_page() {
    let app = spawn_app().await;
    let stripe = MockServer::start().await;
    let all = customers();
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list("/customers", &all[..2], true)))
        .mount(&stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(query_param("starting_after", "cus_s2"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {"type": "api_error", "message": "boom"}})))
        .mount(&stripe)
        .await;
    run(&app.store, &api(&stripe), &options()).await.expect_err("page 2 keeps failing");
    assert_eq!(app.store.sync_cursor("customers").await.expect("cursor"), Some("cus_s2".into()));
    assert_eq!(app.state().await.customers.len(), 2);

    // Stripe is back: the first page must not be asked for again.
    stripe.reset().await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list("/customers", &all[..2], true)))
        .expect(0)
        .mount(&stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(query_param("starting_after", "cus_s2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list("/customers", &all[2..], false)))
        .expect(1)
        .mount(&stripe)
        .await;
    for empty in ["/subscriptions", "/invoices", "/products", "/prices", "/coupons", "/charges", "/disputes", "/credit_notes"] {
        mount_pages(&stripe, empty, &[]).await;
    }
    let reports = run(&app.store, &api(&stripe), &options()).await.expect("resumed sync succeeds");

    assert!(reports[0].resumed);
    assert_eq!(reports[0].objects, 1);
    assert_eq!(app.state().await.customers.len(), 3);
    assert_eq!(app.store.sync_cursor("customers").await.expect("cursor"), None, "a finished pass clears its cursor");
}

#[tokio::test]
async fn a_webhook_and_a_sync_of_the_same_subscription_give_one_timeline() {
    // Sync alone.
    let synced_only = spawn_app().await;
    let stripe = MockServer::start().await;
    mount_stripe(&stripe).await;
    run(&synced_only.store, &api(&stripe), &options()).await.expect("sync");
    // The same history, with live webhooks at the same moments as the sync's snapshots.
    let both = spawn_app().await;
    let canceled = subscriptions().remove(2);
    let mut at_start = Sub::new("sub_s3", "cus_s3", T0).object();
    at_start["status"] = json!("active");
    both.deliver(&event("customer.subscription.created", T0, at_start)).await;
    both.deliver(&event("customer.subscription.deleted", T0 + 60 * DAY, canceled)).await;
    run(&both.store, &api(&stripe), &options()).await.expect("sync after webhooks");

    let expected = vec![(T0, "active".to_string()), (T0 + 60 * DAY, "canceled".to_string())];
    assert_eq!(timeline(&synced_only.store, "sub_s3").await, expected);
    assert_eq!(timeline(&both.store, "sub_s3").await, expected, "one state per moment: nothing counted twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_command_reads_its_settings_and_reports_each_kind() {
    let (url, _dir) = crate::support::helpers::fresh_database().await;
    let stripe = MockServer::start().await;
    mount_stripe(&stripe).await;
    let base = stripe.uri();
    let db = url.clone();

    let run_command = move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(["sync", "--page-size", "2"])
            .env_clear()
            .env("DATABASE_URL", &db)
            .env("STRIPE_SECRET_KEY", "sk_test_cli_sync")
            .env("STRIPE_API_BASE", &base)
            .output()
            .expect("holdfast runs")
    };
    let first = tokio::task::spawn_blocking(run_command.clone()).await.expect("joined");
    let second = tokio::task::spawn_blocking(run_command).await.expect("joined");

    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("customers: 3 objects in 2 pages"), "{stdout}");
    assert!(stdout.contains("subscriptions: 3 objects in 2 pages"), "{stdout}");
    assert!(String::from_utf8_lossy(&second.stdout).contains("0 new events"), "second run stores nothing");
    let logs = format!("{}{}", String::from_utf8_lossy(&first.stderr), stdout);
    assert!(!logs.contains("sk_test_cli_sync"), "the key never appears in output");
    let store = Store::connect(&url).await.expect("connect");
    assert_eq!(store.dump_state().await.expect("state").subscriptions.len(), 3);
    store.close().await;
}
