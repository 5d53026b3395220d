//! Any delivery order, with duplicates, ends in the state the ordered stream gives.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::helpers::*;

const T0: i64 = 1_767_225_600; // 2026-01-01
const DAY: i64 = 86_400;

/// A realistic stream for a handful of customers: signups, trials, plan changes, discounts,
/// pauses, failed payments recovered or lost, voluntary cancels. Events of one customer are
/// in time order; some share a second, as Stripe's often do.
fn business_stream(seed: u64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut events = Vec::new();
    let mut n = 0u32;
    let mut push = |events: &mut Vec<Value>, kind: &str, at: i64, object: Value| {
        n += 1;
        // Ids increase with the stream, so a same-second tie breaks the stream's way.
        events.push(event_with_id(&format!("evt_{seed:03}_{n:05}"), kind, at, object));
    };
    for c in 0..12 {
        let cus = format!("cus_s{seed}_{c}");
        let mut t = T0 + rng.random_range(0..30) * DAY;
        push(&mut events, "customer.created", t, customer(&cus, &format!("c{c}@example.com"), t));
        let mut sub = Sub::new(&format!("sub_s{seed}_{c}"), &cus, t);
        sub.status = "trialing";
        push(&mut events, "customer.subscription.created", t, sub.object());
        t += 14 * DAY;
        sub.status = "active";
        push(&mut events, "customer.subscription.updated", t, sub.object());
        for month in 0..rng.random_range(2..6) {
            let inv_id = format!("in_s{seed}_{c}_{month}");
            let (sub_id, amount) = (sub.id.clone(), sub.unit_amount * sub.quantity);
            let inv = |status: &str, at: i64| invoice(&inv_id, &cus, &sub_id, status, amount, at);
            push(&mut events, "invoice.created", t, inv("draft", t));
            push(&mut events, "invoice.finalized", t, inv("open", t));
            match rng.random_range(0..10) {
                0 => {
                    let mut failed = inv("open", t);
                    failed["attempt_count"] = json!(1);
                    failed["next_payment_attempt"] = json!(t + 3 * DAY);
                    push(&mut events, "invoice.payment_failed", t, failed);
                    sub.status = "past_due";
                    push(&mut events, "customer.subscription.updated", t, sub.object());
                    t += 3 * DAY;
                    push(&mut events, "invoice.paid", t, inv("paid", t));
                    push(&mut events, "invoice.payment_succeeded", t, inv("paid", t));
                    sub.status = "active";
                    push(&mut events, "customer.subscription.updated", t, sub.object());
                }
                1 => {
                    push(&mut events, "invoice.payment_failed", t, inv("open", t));
                    t += 20 * DAY;
                    push(&mut events, "invoice.marked_uncollectible", t, inv("uncollectible", t));
                    sub.status = "canceled";
                    let mut ended = sub.object();
                    ended["canceled_at"] = json!(t);
                    ended["ended_at"] = json!(t);
                    ended["cancellation_details"] = json!({"reason": "payment_failed", "feedback": null, "comment": null});
                    push(&mut events, "customer.subscription.deleted", t, ended);
                    break;
                }
                2 => {
                    sub.quantity += 1;
                    sub.price = "price_pro_monthly".into();
                    sub.unit_amount = 5000;
                    push(&mut events, "invoice.paid", t, inv("paid", t));
                    push(&mut events, "customer.subscription.updated", t, sub.object());
                }
                3 => {
                    push(&mut events, "invoice.paid", t, inv("paid", t));
                    let mut paused = sub.object();
                    paused["pause_collection"] = json!({"behavior": "void", "resumes_at": t + 60 * DAY});
                    push(&mut events, "customer.subscription.updated", t + 1, paused);
                    t += 60 * DAY;
                    push(&mut events, "customer.subscription.updated", t, sub.object());
                }
                4 => {
                    push(&mut events, "invoice.paid", t, inv("paid", t));
                    let mut leaving = sub.object();
                    leaving["cancel_at_period_end"] = json!(true);
                    leaving["canceled_at"] = json!(t + DAY);
                    leaving["cancellation_details"] =
                        json!({"reason": "cancellation_requested", "feedback": "unused", "comment": null});
                    push(&mut events, "customer.subscription.updated", t + DAY, leaving.clone());
                    t += 30 * DAY;
                    sub.status = "canceled";
                    leaving["status"] = json!("canceled");
                    leaving["ended_at"] = json!(t);
                    push(&mut events, "customer.subscription.deleted", t, leaving);
                    break;
                }
                5 => {
                    let discount_id = format!("di_s{seed}_{c}");
                    let mut d = fixture("discount");
                    d["id"] = json!(discount_id);
                    d["subscription"] = json!(sub.id);
                    d["source"] =
                        json!({"type": "coupon", "coupon": {"id": "SAVE30", "percent_off": 30.0, "duration": "repeating"}});
                    d["start"] = json!(t);
                    push(&mut events, "customer.discount.created", t, d);
                    let mut discounted = sub.object();
                    discounted["discounts"] = json!([discount_id]);
                    push(&mut events, "customer.subscription.updated", t, discounted);
                    push(&mut events, "invoice.paid", t, inv("paid", t));
                }
                _ => push(&mut events, "invoice.paid", t, inv("paid", t)),
            }
            t += 30 * DAY;
        }
        if rng.random_bool(0.3) {
            push(&mut events, "customer.updated", t, customer(&cus, &format!("renamed{c}@example.com"), T0));
        }
    }
    events.sort_by_key(|e| (e["created"].as_i64(), e["id"].as_str().map(str::to_owned)));
    events
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
