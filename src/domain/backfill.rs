//! History from an object's own dates, for `holdfast sync`. Stripe's list API gives one
//! object as it is now; this turns it into the events that would have described its life,
//! each stamped with the object's own timestamps, so metrics computed from a backfill match
//! the ones a live webhook stream would have produced:
//!
//! - customer: one snapshot at `created`;
//! - subscription: `start_date` (trialing or active), `trial_end` (active), the cancellation
//!   request at `canceled_at` (still active, `cancel_at_period_end`), `ended_at` (canceled),
//!   and, while live, the object as it is now at its latest own date (current period start,
//!   cancellation request or trial end);
//! - invoice: `created` (open), then `paid_at` / `voided_at` / `marked_uncollectible_at`.
//!
//! Event ids are `evt_sync_<object id>_<time>`: deterministic, so a second sync inserts only
//! duplicates. At most one snapshot per object and second (a later, more current one
//! replaces an earlier one at the same second).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::domain::fields::{int_at, list, path, str_at};

/// One synthesized event: its id, type, time and the object as of that time.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    pub id: String,
    pub kind: &'static str,
    pub created: i64,
    pub object: Value,
}

impl Synthetic {
    /// The event as Stripe would send it (what `stripe_events.payload` keeps).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "event",
            "type": self.kind,
            "created": self.created,
            "livemode": self.object.get("livemode").cloned().unwrap_or(Value::Bool(false)),
            "api_version": null,
            "pending_webhooks": 0,
            "request": {"id": null, "idempotency_key": null},
            "data": {"object": self.object},
            // Marks the event as ours, for anyone reading `stripe_events`.
            "holdfast": {"source": "sync"},
        })
    }
}

/// Snapshots per time, the latest insert at a time winning.
#[derive(Default)]
struct Timeline(BTreeMap<i64, (&'static str, Value)>);

impl Timeline {
    fn at(&mut self, time: i64, kind: &'static str, object: Value) {
        self.0.insert(time, (kind, object));
    }

    fn into_events(self, id: &str) -> Vec<Synthetic> {
        self.0
            .into_iter()
            .map(|(created, (kind, object))| Synthetic { id: format!("evt_sync_{id}_{created}"), kind, created, object })
            .collect()
    }
}

/// A customer: one snapshot at its creation.
pub fn customer_events(c: &Value) -> Vec<Synthetic> {
    let (Some(id), Some(created)) = (str_at(c, "id"), int_at(c, "created")) else { return Vec::new() };
    let mut t = Timeline::default();
    t.at(created, "customer.created", c.clone());
    t.into_events(&id)
}

/// A subscription's life from its own dates (see the module doc).
pub fn subscription_events(s: &Value) -> Vec<Synthetic> {
    let Some(id) = str_at(s, "id") else { return Vec::new() };
    let Some(start) = int_at(s, "start_date").or_else(|| int_at(s, "created")) else { return Vec::new() };
    let status = str_at(s, "status").unwrap_or_default();
    let mut t = Timeline::default();
    if matches!(status.as_str(), "incomplete" | "incomplete_expired") {
        // Never paid: it never was active; its one state is the current one.
        t.at(start, "customer.subscription.created", s.clone());
        return t.into_events(&id);
    }
    let ended_at = int_at(s, "ended_at");
    let canceled_at = int_at(s, "canceled_at");
    let trial_end = int_at(s, "trial_end").filter(|&te| te > start && int_at(s, "trial_start").is_some());
    let started_trialing = trial_end.is_some();
    t.at(start, "customer.subscription.created", before_changes(s, if started_trialing { "trialing" } else { "active" }));
    if let Some(te) = trial_end.filter(|&te| status != "trialing" && ended_at.is_none_or(|e| te < e)) {
        t.at(te, "customer.subscription.updated", before_changes(s, "active"));
    }
    match ended_at {
        Some(ended) => {
            if let Some(requested) = canceled_at.filter(|&c| c < ended && c > start) {
                let live = if trial_end.is_some_and(|te| requested < te) { "trialing" } else { "active" };
                t.at(requested, "customer.subscription.updated", cancel_requested(s, live));
            }
            t.at(ended, "customer.subscription.deleted", s.clone());
        }
        None => {
            // The object as it is now, at the latest of its own dates.
            let period_start = int_at(s, "current_period_start")
                .or_else(|| list(s.get("items")).iter().filter_map(|i| int_at(i, "current_period_start")).max());
            let latest = [Some(start), period_start, canceled_at, trial_end.filter(|_| status != "trialing")]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(start);
            let kind = if latest == start { "customer.subscription.created" } else { "customer.subscription.updated" };
            t.at(latest, kind, s.clone());
        }
    }
    t.into_events(&id)
}

/// An invoice: open at `created`, then its final state at the time it was reached.
pub fn invoice_events(i: &Value) -> Vec<Synthetic> {
    let (Some(id), Some(created)) = (str_at(i, "id"), int_at(i, "created")) else { return Vec::new() };
    let transition = |key| path(i, &["status_transitions", key]).and_then(Value::as_i64);
    let settled = match str_at(i, "status").as_deref() {
        Some("paid") => transition("paid_at").map(|at| (at, "invoice.paid")),
        Some("void") => transition("voided_at").map(|at| (at, "invoice.voided")),
        Some("uncollectible") => transition("marked_uncollectible_at").map(|at| (at, "invoice.marked_uncollectible")),
        _ => None,
    };
    let mut t = Timeline::default();
    match settled {
        Some((at, kind)) if at > created => {
            let mut open = i.clone();
            open["status"] = json!("open");
            open["amount_paid"] = json!(0);
            open["amount_remaining"] = i.get("amount_due").cloned().unwrap_or(json!(0));
            t.at(created, "invoice.created", open);
            t.at(at, kind, i.clone());
        }
        Some((_, kind)) => t.at(created, kind, i.clone()),
        None => t.at(created, "invoice.created", i.clone()),
    }
    t.into_events(&id)
}

/// The subscription before any cancellation or pause: `status`, no cancel fields.
fn before_changes(s: &Value, status: &str) -> Value {
    let mut o = s.clone();
    o["status"] = json!(status);
    for key in ["canceled_at", "ended_at", "cancel_at", "pause_collection"] {
        o[key] = Value::Null;
    }
    o["cancel_at_period_end"] = json!(false);
    o["cancellation_details"] = json!({"comment": null, "feedback": null, "reason": null});
    o
}

/// The subscription after the customer asked to cancel, before it ended.
fn cancel_requested(s: &Value, status: &str) -> Value {
    let mut o = s.clone();
    o["status"] = json!(status);
    o["ended_at"] = Value::Null;
    if o.get("cancel_at").is_none_or(Value::is_null) {
        o["cancel_at_period_end"] = json!(true);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(extra: Value) -> Value {
        let mut s = json!({"id": "sub_1", "object": "subscription", "status": "active", "created": 100, "start_date": 100,
                           "current_period_start": 100, "canceled_at": null, "ended_at": null, "trial_start": null, "trial_end": null});
        for (k, v) in extra.as_object().expect("object") {
            s[k] = v.clone();
        }
        s
    }

    fn summary(events: &[Synthetic]) -> Vec<(i64, &'static str, String)> {
        events.iter().map(|e| (e.created, e.kind, e.object["status"].as_str().unwrap_or("").to_owned())).collect()
    }

    #[test]
    fn a_canceled_subscription_has_start_request_and_end() {
        let s = sub(json!({"status": "canceled", "canceled_at": 500, "ended_at": 900, "cancel_at_period_end": true}));
        let events = subscription_events(&s);
        assert_eq!(
            summary(&events),
            vec![
                (100, "customer.subscription.created", "active".into()),
                (500, "customer.subscription.updated", "active".into()),
                (900, "customer.subscription.deleted", "canceled".into()),
            ]
        );
        assert_eq!(events[1].object["cancel_at_period_end"], true);
        assert_eq!(events[0].object["canceled_at"], Value::Null);
        assert_eq!(events[2].id, "evt_sync_sub_1_900");
    }

    #[test]
    fn a_converted_trial_is_trialing_then_active_and_current_now() {
        let s = sub(json!({"trial_start": 100, "trial_end": 200, "current_period_start": 800, "status": "past_due"}));
        assert_eq!(
            summary(&subscription_events(&s)),
            vec![
                (100, "customer.subscription.created", "trialing".into()),
                (200, "customer.subscription.updated", "active".into()),
                (800, "customer.subscription.updated", "past_due".into()),
            ]
        );
    }

    #[test]
    fn a_live_subscription_in_its_first_period_is_one_snapshot() {
        assert_eq!(summary(&subscription_events(&sub(json!({})))), vec![(100, "customer.subscription.created", "active".into())]);
    }

    #[test]
    fn a_paid_invoice_is_open_then_paid() {
        let i = json!({"id": "in_1", "object": "invoice", "status": "paid", "created": 10, "amount_due": 500,
                       "status_transitions": {"paid_at": 70}});
        let events = invoice_events(&i);
        assert_eq!(summary(&events), vec![(10, "invoice.created", "open".into()), (70, "invoice.paid", "paid".into())]);
        assert_eq!(events[0].object["amount_remaining"], 500);
    }

    #[test]
    fn the_same_object_always_gives_the_same_events() {
        let s = sub(json!({"status": "canceled", "canceled_at": 500, "ended_at": 900}));
        assert_eq!(subscription_events(&s), subscription_events(&s));
    }
}
