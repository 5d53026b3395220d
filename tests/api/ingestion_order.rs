//! Any delivery order, with duplicates, ends in the state the ordered stream gives.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::support::helpers::*;

const T0: i64 = 1_767_225_600; // 2026-01-01
const DAY: i64 = 86_400;

/// A realistic stream for a handful of customers: signups, trials, plan changes, discounts,
/// pauses, failed payments recovered or lost, voluntary cancels. Events of one customer are
/// in time order; some share a second, as Stripe's often do.
fn business_stream(seed: u64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = Stream { seed, n: 0, events: Vec::new() };
    for c in 0..12 {
        let cus = format!("cus_s{seed}_{c}");
        let mut t = T0 + rng.random_range(0..30) * DAY;
        s.push("customer.created", t, customer(&cus, &format!("c{c}@example.com"), t));
        let mut sub = Sub::new(&format!("sub_s{seed}_{c}"), &cus, t);
        sub.status = "trialing";
        s.push("customer.subscription.created", t, sub.object());
        t += 14 * DAY;
        sub.status = "active";
        s.push("customer.subscription.updated", t, sub.object());
        for month in 0..rng.random_range(2..6) {
            let inv_id = format!("in_s{seed}_{c}_{month}");
            let (sub_id, amount) = (sub.id.clone(), sub.unit_amount * sub.quantity);
            let inv = |status: &str, at: i64| invoice(&inv_id, &cus, &sub_id, status, amount, at);
            s.push("invoice.created", t, inv("draft", t));
            s.push("invoice.finalized", t, inv("open", t));
            let ended = match rng.random_range(0..10) {
                0 => recovered_after_a_failure(&mut s, &mut sub, &inv, &mut t),
                1 => lost_after_a_failure(&mut s, &mut sub, &inv, &mut t),
                2 => upgraded(&mut s, &mut sub, &inv, t),
                3 => paused_for_60_days(&mut s, &sub, &inv, &mut t),
                4 => canceled_at_period_end(&mut s, &mut sub, &inv, &mut t),
                5 => discounted(&mut s, &sub, &inv, t, &format!("di_s{seed}_{c}")),
                _ => {
                    s.push("invoice.paid", t, inv("paid", t));
                    false
                }
            };
            if ended {
                break;
            }
            t += 30 * DAY;
        }
        if rng.random_bool(0.3) {
            s.push("customer.updated", t, customer(&cus, &format!("renamed{c}@example.com"), T0));
        }
    }
    let mut events = s.events;
    events.sort_by_key(|e| (e["created"].as_i64(), e["id"].as_str().map(str::to_owned)));
    events
}

/// A stream being built.
struct Stream {
    seed: u64,
    n: u32,
    events: Vec<Value>,
}

impl Stream {
    fn push(&mut self, kind: &str, at: i64, object: Value) {
        self.n += 1;
        // Ids increase with the stream. Same-second snapshots of one subscription differ in
        // status here, which the tie rule orders as the stream does; a change only the
        // content tells apart (plan, discount) comes a second later, as it does in Stripe.
        let (seed, n) = (self.seed, self.n);
        self.events.push(event_with_id(&format!("evt_{seed:03}_{n:05}"), kind, at, object));
    }
}

/// The month's invoice (`inv(status, at)`) fails, the subscription goes past due, and three
/// days later the retry pays. Returns whether the subscription ended (no).
fn recovered_after_a_failure(s: &mut Stream, sub: &mut Sub, inv: &dyn Fn(&str, i64) -> Value, t: &mut i64) -> bool {
    let mut failed = inv("open", *t);
    failed["attempt_count"] = json!(1);
    failed["next_payment_attempt"] = json!(*t + 3 * DAY);
    s.push("invoice.payment_failed", *t, failed);
    sub.status = "past_due";
    s.push("customer.subscription.updated", *t, sub.object());
    *t += 3 * DAY;
    s.push("invoice.paid", *t, inv("paid", *t));
    s.push("invoice.payment_succeeded", *t, inv("paid", *t));
    sub.status = "active";
    s.push("customer.subscription.updated", *t, sub.object());
    false
}

/// The month's invoice fails and is marked uncollectible 20 days later; the subscription
/// ends for the failed payment. Returns whether the subscription ended (yes).
fn lost_after_a_failure(s: &mut Stream, sub: &mut Sub, inv: &dyn Fn(&str, i64) -> Value, t: &mut i64) -> bool {
    s.push("invoice.payment_failed", *t, inv("open", *t));
    *t += 20 * DAY;
    s.push("invoice.marked_uncollectible", *t, inv("uncollectible", *t));
    sub.status = "canceled";
    let mut ended = sub.object();
    ended["canceled_at"] = json!(*t);
    ended["ended_at"] = json!(*t);
    ended["cancellation_details"] = json!({"reason": "payment_failed", "feedback": null, "comment": null});
    s.push("customer.subscription.deleted", *t, ended);
    true
}

/// The month is paid, then the plan changes to more seats of the pro price a second later.
fn upgraded(s: &mut Stream, sub: &mut Sub, inv: &dyn Fn(&str, i64) -> Value, t: i64) -> bool {
    sub.quantity += 1;
    sub.price = "price_pro_monthly".into();
    sub.unit_amount = 5000;
    s.push("invoice.paid", t, inv("paid", t));
    s.push("customer.subscription.updated", t + 1, sub.object());
    false
}

/// The month is paid, then collection pauses for 60 days and resumes.
fn paused_for_60_days(s: &mut Stream, sub: &Sub, inv: &dyn Fn(&str, i64) -> Value, t: &mut i64) -> bool {
    s.push("invoice.paid", *t, inv("paid", *t));
    let mut paused = sub.object();
    paused["pause_collection"] = json!({"behavior": "void", "resumes_at": *t + 60 * DAY});
    s.push("customer.subscription.updated", *t + 1, paused);
    *t += 60 * DAY;
    s.push("customer.subscription.updated", *t, sub.object());
    false
}

/// The month is paid, the customer schedules a cancellation a day later (not using it), and
/// the subscription ends 30 days on. Returns whether the subscription ended (yes).
fn canceled_at_period_end(s: &mut Stream, sub: &mut Sub, inv: &dyn Fn(&str, i64) -> Value, t: &mut i64) -> bool {
    s.push("invoice.paid", *t, inv("paid", *t));
    let mut leaving = sub.object();
    leaving["cancel_at_period_end"] = json!(true);
    leaving["canceled_at"] = json!(*t + DAY);
    leaving["cancellation_details"] = json!({"reason": "cancellation_requested", "feedback": "unused", "comment": null});
    s.push("customer.subscription.updated", *t + DAY, leaving.clone());
    *t += 30 * DAY;
    sub.status = "canceled";
    leaving["status"] = json!("canceled");
    leaving["ended_at"] = json!(*t);
    s.push("customer.subscription.deleted", *t, leaving);
    true
}

/// A 30 % coupon is applied (discount `discount_id`), then the month is paid.
fn discounted(s: &mut Stream, sub: &Sub, inv: &dyn Fn(&str, i64) -> Value, t: i64, discount_id: &str) -> bool {
    let mut d = fixture("discount");
    d["id"] = json!(discount_id);
    d["subscription"] = json!(sub.id);
    d["source"] = json!({"type": "coupon", "coupon": {"id": "SAVE30", "percent_off": 30.0, "duration": "repeating"}});
    d["start"] = json!(t);
    s.push("customer.discount.created", t, d);
    let mut discounted = sub.object();
    discounted["discounts"] = json!([discount_id]);
    s.push("customer.subscription.updated", t + 1, discounted);
    s.push("invoice.paid", t, inv("paid", t));
    false
}

/// Deliver in the given order, eight at a time, as Stripe's parallel retries would.
async fn deliver_all(app: &TestApp, events: &[Value]) {
    for chunk in events.chunks(8) {
        futures::future::join_all(chunk.iter().map(|e| app.deliver(e))).await;
    }
}

#[tokio::test]
async fn any_permutation_with_duplicates_ends_in_the_ordered_state() {
    for seed in 1..=4u64 {
        let stream = business_stream(seed);
        let ordered = spawn_app().await;
        for e in &stream {
            ordered.deliver(e).await;
        }
        let expected = ordered.state().await;
        assert_eq!(expected.event_ids.len(), stream.len());
        assert_last_snapshot_wins(&stream, &expected);

        let mut rng = StdRng::seed_from_u64(seed * 7919);
        for _ in 0..2 {
            let mut shuffled = stream.clone();
            let repeats: Vec<Value> = (0..stream.len() / 4).map(|_| stream[rng.random_range(0..stream.len())].clone()).collect();
            shuffled.extend(repeats);
            shuffled.shuffle(&mut rng);
            let app = spawn_app().await;
            deliver_all(&app, &shuffled).await;
            assert_eq!(app.state().await, expected, "seed {seed}: shuffled delivery diverged");
        }
    }
}

/// Independent of the store: each subscription row is the stream's last snapshot of it.
fn assert_last_snapshot_wins(stream: &[Value], state: &holdfast::store::StateDump) {
    for row in &state.subscriptions {
        let last = stream
            .iter()
            .filter(|e| e["data"]["object"]["object"] == "subscription" && e["data"]["object"]["id"] == row.id.as_str())
            .max_by_key(|e| {
                (e["data"]["object"]["status"] == "canceled", e["created"].as_i64(), e["id"].as_str().map(str::to_owned))
            })
            .expect("subscription came from the stream");
        assert_eq!(row.src_event_id, last["id"].as_str().unwrap_or_default(), "subscription {}", row.id);
        assert_eq!(row.status, last["data"]["object"]["status"].as_str().unwrap_or_default());
    }
    let history_rows = stream.iter().filter(|e| e["data"]["object"]["object"] == "subscription").count();
    assert_eq!(state.history.len(), history_rows, "one history row per subscription snapshot");
}

/// Two snapshots of one object in the same second, ids chosen so the greater id is the
/// older state: both delivery orders end in the state the objects say is newer.
#[tokio::test]
async fn a_same_second_pair_ends_in_the_same_correct_state_in_both_delivery_orders() {
    let t = T0 + 5 * DAY;
    let mut sub = Sub::new("sub_tie", "cus_tie", t);
    sub.status = "incomplete";
    let created = event_with_id("evt_tie_z", "customer.subscription.created", t, sub.object());
    sub.status = "active";
    let activated = event_with_id("evt_tie_a", "customer.subscription.updated", t, sub.object());
    // A renewal and a late copy of the period it ends, in one second.
    let mut renewed_sub = Sub::new("sub_renew", "cus_tie", t - 30 * DAY);
    let old_period = event_with_id("evt_ren_z", "customer.subscription.updated", t, renewed_sub.object());
    renewed_sub.created = t;
    let mut renewed = renewed_sub.object();
    renewed["created"] = json!(t - 30 * DAY);
    let renewal = event_with_id("evt_ren_a", "customer.subscription.updated", t, renewed);
    // The second failed attempt of an invoice and the first, in one second.
    let mut first = invoice("in_tie", "cus_tie", "sub_tie", "open", 2000, t);
    first["attempt_count"] = json!(1);
    let mut second = first.clone();
    second["attempt_count"] = json!(2);
    let first = event_with_id("evt_inv_z", "invoice.payment_failed", t, first);
    let second = event_with_id("evt_inv_a", "invoice.payment_failed", t, second);

    let pairs = [(&created, &activated), (&old_period, &renewal), (&first, &second)];
    let mut states = Vec::new();
    for newer_last in [true, false] {
        let app = spawn_app().await;
        for (older, newer) in pairs {
            let order = if newer_last { [older, newer] } else { [newer, older] };
            for e in order {
                app.deliver(e).await;
            }
        }
        let state = app.state().await;
        let row = |id: &str| state.subscriptions.iter().find(|s| s.id == id).cloned().expect("subscription row");
        assert_eq!((row("sub_tie").status.as_str(), row("sub_tie").src_event_id.as_str()), ("active", "evt_tie_a"));
        assert_eq!(row("sub_renew").src_event_id, "evt_ren_a", "the later period wins");
        assert_eq!(row("sub_renew").current_period_end, Some(t + 30 * DAY));
        let inv = state.invoices.iter().find(|i| i.id == "in_tie").expect("invoice row");
        assert_eq!((inv.attempt_count, inv.src_event_id.as_str()), (2, "evt_inv_a"));
        states.push(state);
    }
    assert_eq!(states[0], states[1], "both delivery orders end in one state");
}

/// Wait until the refetcher has settled every recorded tie (its answers are then in the log),
/// then for the projector to have applied them. Fails the test after 30 s.
async fn wait_refetched(app: &TestApp) -> holdfast::store::StateDump {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.store.pending_refetches().await.expect("refetch requests readable") > 0 {
        assert!(std::time::Instant::now() < deadline, "the tied objects were not fetched within 30 s");
        // The refetcher polls once a second: look again well within that.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.state().await
}

/// A Stripe stand-in that answers one GET of `sub_fetch` and one of `in_fetch` with Stripe's
/// current objects (checked by `verify`).
async fn stripe_answering_once(stripe_sub: &Value, stripe_invoice: &Value) -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_fetch"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_sub))
        .expect(1)
        .mount(&stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/invoices/in_fetch"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_invoice))
        .expect(1)
        .mount(&stripe)
        .await;
    stripe
}

/// The subscription and the invoice hold Stripe's answers (past due, paid), each from the
/// refetched event of the tie at `t`.
fn assert_stripes_answers_stand(state: &holdfast::store::StateDump, t: i64) {
    let row = state.subscriptions.iter().find(|s| s.id == "sub_fetch").expect("subscription row");
    assert_eq!(row.status, "past_due", "Stripe's answer wins");
    assert_eq!(row.src_event_id, format!("holdfast_refetch_sub_fetch_{t}"));
    let inv = state.invoices.iter().find(|i| i.id == "in_fetch").expect("invoice row");
    assert_eq!(
        (inv.status.as_deref(), inv.src_event_id.as_str()),
        (Some("paid"), format!("holdfast_refetch_in_fetch_{t}").as_str())
    );
}

/// The same-second pairs of the test above, with a Stripe key: once the burst is over the
/// tied subscription and invoice are fetched from Stripe, once each, and Stripe's answers are
/// what stays, whichever order the pairs came in.
#[tokio::test]
async fn with_a_stripe_key_a_same_second_tie_is_settled_by_stripes_answer_in_both_delivery_orders() {
    let t = now() - 3600;
    let mut sub = Sub::new("sub_fetch", "cus_fetch", t);
    sub.status = "incomplete";
    let created = event_with_id("evt_fetch_z", "customer.subscription.created", t, sub.object());
    sub.status = "active";
    let activated = event_with_id("evt_fetch_a", "customer.subscription.updated", t, sub.object());
    let mut first = invoice("in_fetch", "cus_fetch", "sub_fetch", "open", 2000, t);
    first["attempt_count"] = json!(1);
    let mut second = first.clone();
    second["attempt_count"] = json!(2);
    let first = event_with_id("evt_finv_z", "invoice.payment_failed", t, first);
    let second = event_with_id("evt_finv_a", "invoice.payment_failed", t, second);
    // Stripe's current state: neither snapshot (the payment failed since, then was paid).
    sub.status = "past_due";
    let stripe_sub = sub.object();
    let stripe_invoice = invoice("in_fetch", "cus_fetch", "sub_fetch", "paid", 2000, t);

    let mut states = Vec::new();
    for newer_last in [true, false] {
        let stripe = stripe_answering_once(&stripe_sub, &stripe_invoice).await;
        let uri = stripe.uri();
        let app = spawn_app_with(Config::new().stripe_at(&uri)).await;
        // Held still: nothing is due until the test moves the clock past the debounce.
        app.clock.set(t + 3600);
        for (older, newer) in [(&created, &activated), (&first, &second)] {
            let order = if newer_last { [older, newer] } else { [newer, older] };
            for e in order {
                app.deliver(e).await;
            }
        }
        // Until the burst is over, the tie rule's choice stands and nothing was asked.
        let before = app.state().await;
        let row = before.subscriptions.iter().find(|s| s.id == "sub_fetch").expect("subscription row");
        assert_eq!((row.status.as_str(), row.src_event_id.as_str()), ("active", "evt_fetch_a"));
        assert_eq!(app.store.pending_refetches().await.expect("readable"), 2, "both tied objects wait for a fetch");
        assert!(stripe.received_requests().await.unwrap_or_default().is_empty(), "fetched before the debounce");

        app.clock.advance(holdfast::store::refetch::DEBOUNCE_SECS + 1);
        let state = wait_refetched(&app).await;
        assert_stripes_answers_stand(&state, t);
        // The fetched events are in the log once; a second pass asks Stripe nothing more.
        assert_eq!(state.event_ids.iter().filter(|id| id.starts_with("holdfast_refetch_")).count(), 2);
        app.clock.advance(3600);
        assert_eq!(app.store.due_refetches(app.clock.now(), 10).await.expect("readable"), vec![]);
        // Reprojecting replays the fetched events from the log: the same state, no new fetch.
        app.store.reproject().await.expect("reproject");
        assert_eq!(app.store.pending_refetches().await.expect("readable"), 0, "a reprojection records no tie");
        assert_eq!(app.state().await, state, "reprojection gives the live state");
        states.push(state);
        stripe.verify().await;
    }
    assert_eq!(states[0], states[1], "both delivery orders end in one state");
}

/// Without a Stripe key the tie rule alone decides: nothing is recorded, nothing is fetched.
#[tokio::test]
async fn without_a_stripe_key_a_same_second_tie_is_not_fetched() {
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let stripe = MockServer::start().await;
    Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(500)).expect(0).mount(&stripe).await;
    let uri = stripe.uri();
    let app = spawn_app_typed(move |s| s.stripe_api_base = Some(uri)).await;
    let t = now() - 3600;
    let mut sub = Sub::new("sub_nokey", "cus_nokey", t);
    sub.status = "incomplete";
    app.deliver(&event_with_id("evt_nokey_a", "customer.subscription.created", t, sub.object())).await;
    sub.status = "active";
    app.deliver(&event_with_id("evt_nokey_b", "customer.subscription.updated", t, sub.object())).await;
    let state = app.state().await;
    let row = state.subscriptions.iter().find(|s| s.id == "sub_nokey").expect("subscription row");
    assert_eq!((row.status.as_str(), row.src_event_id.as_str()), ("active", "evt_nokey_b"));
    assert_eq!(app.store.pending_refetches().await.expect("readable"), 0);
    assert!(!state.event_ids.iter().any(|id| id.starts_with("holdfast_refetch_")));
    stripe.verify().await;
}
