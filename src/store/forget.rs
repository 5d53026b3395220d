//! `holdfast forget <customer>`: erase a customer's personal data — from the projected tables,
//! the outbox and the raw event payloads — and keep the figures (ids, amounts, statuses and
//! times stay, so MRR, churn and cohorts do not change). Stripe keeps its own copy: delete the
//! customer there too, or later events bring the data back.

use serde_json::Value;

use crate::store::conn::{execute, fetch};
use crate::store::log::COUNT_REWRITE;
use crate::store::{Store, StoreError};

/// Keys whose values are personal data wherever they appear in a Stripe object.
const PERSONAL_KEYS: [&str; 14] = [
    "email",
    "name",
    "phone",
    "address",
    "shipping",
    "billing_details",
    "customer_email",
    "customer_name",
    "customer_phone",
    "customer_address",
    "customer_shipping",
    "receipt_email",
    "description",
    "metadata",
];

/// Replace the value of every personal key, at any depth, with `null`; true if any changed.
pub fn redact(value: &mut Value) -> bool {
    match value {
        Value::Object(map) => {
            let mut changed = false;
            for (key, v) in map.iter_mut() {
                if PERSONAL_KEYS.contains(&key.as_str()) {
                    if !v.is_null() {
                        *v = Value::Null;
                        changed = true;
                    }
                } else {
                    changed |= redact(v);
                }
            }
            changed
        }
        Value::Array(items) => items.iter_mut().fold(false, |changed, v| redact(v) | changed),
        _ => false,
    }
}

/// Whether an event's object is the customer or belongs to it.
fn concerns(payload: &Value, customer: &str) -> bool {
    let object = &payload["data"]["object"];
    object["id"] == customer || object["customer"] == customer || object["customer"]["id"] == customer
}

/// What `forget` changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    pub events: u64,
    pub emails: u64,
}

// `_` in a customer id is a LIKE wildcard: the match is a superset, filtered by `concerns`.
const CANDIDATE_EVENTS: &str = "SELECT id, payload FROM stripe_events WHERE payload LIKE '%' || $1 || '%'";
const SAVE_PAYLOAD: &str = "UPDATE stripe_events SET payload = $2 WHERE id = $1";
const CUSTOMER: &str = "UPDATE customers SET email = NULL, name = NULL, metadata = NULL WHERE id = $1";
/// The dashboard's copy of the metadata (the customer's channel shows as "(none)" from now on).
const ACQUISITION: &str = "UPDATE metric_acquisition SET metadata = NULL WHERE customer = $1";
const SUBSCRIPTIONS: &str = "UPDATE subscriptions SET cancel_comment = NULL WHERE customer = $1";
const CANCEL_SESSIONS: &str = "UPDATE cancel_sessions SET comment = NULL WHERE customer = $1";
const NPS_COMMENTS: &str = "UPDATE nps_answers SET comment = NULL WHERE customer = $1";
const OUTBOX_UNSENT: &str =
    "UPDATE outbox SET status = 'cancelled', last_error = 'customer forgotten' WHERE customer = $1 AND status = 'pending'";
const OUTBOX: &str = "UPDATE outbox SET recipient = '', subject = '', body_text = '', body_html = '' WHERE customer = $1";

const OLD_EVENTS: &str = "SELECT id, payload FROM stripe_events WHERE created < $1 AND id > $2 ORDER BY id LIMIT 500";

impl Store {
    /// Null the personal fields of every raw payload of an event created before `cutoff`
    /// (unix seconds), a page at a time; returns how many payloads changed. Already pruned
    /// payloads are read but not rewritten, so running it daily is cheap to repeat.
    pub async fn prune_payloads_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        let (mut after, mut changed) = (String::new(), 0);
        // A transaction a page: the rewrites and their count (`log::COUNT_REWRITE`) together.
        while let Some((last, page_changed)) = self
            .in_transaction(async |c| {
                let rows = fetch!(c, fetch_all, (String, String), OLD_EVENTS, cutoff, &after)?;
                let Some((last, _)) = rows.last() else { return Ok(None) };
                let last = last.clone();
                let mut page_changed = 0;
                for (id, payload) in rows {
                    let Ok(mut json) = serde_json::from_str::<Value>(&payload) else { continue };
                    if redact(&mut json["data"]["object"]) {
                        execute!(c, SAVE_PAYLOAD, &id, json.to_string())?;
                        page_changed += 1;
                    }
                }
                if page_changed > 0 {
                    execute!(c, COUNT_REWRITE)?;
                }
                Ok(Some((last, page_changed)))
            })
            .await?
        {
            after = last;
            changed += page_changed;
        }
        Ok(changed)
    }

    /// Erase `customer`'s personal data, in one transaction (and, on SQLite, the webhooks of
    /// theirs still waiting in the inbox, in one transaction there).
    pub async fn forget_customer(&self, customer: &str) -> Result<Forgotten, StoreError> {
        let mut forgotten = self.forget_in_log(customer).await?;
        if let Store::Sqlite(s) = self
            && let Some(inbox) = s.inbox()
        {
            forgotten.events +=
                inbox.rewrite_payloads(customer, |json| concerns(json, customer) && redact(&mut json["data"]["object"])).await?;
        }
        Ok(forgotten)
    }

    async fn forget_in_log(&self, customer: &str) -> Result<Forgotten, StoreError> {
        self.in_transaction(async |c| {
            let rows = fetch!(c, fetch_all, (String, String), CANDIDATE_EVENTS, customer)?;
            let mut forgotten = Forgotten::default();
            for (id, payload) in rows {
                // A payload that is not JSON was never projected; leave it to the owner.
                let Ok(mut json) = serde_json::from_str::<Value>(&payload) else { continue };
                if concerns(&json, customer) && redact(&mut json["data"]["object"]) {
                    execute!(c, SAVE_PAYLOAD, &id, json.to_string())?;
                    forgotten.events += 1;
                }
            }
            if forgotten.events > 0 {
                execute!(c, COUNT_REWRITE)?;
            }
            for statement in [CUSTOMER, ACQUISITION, SUBSCRIPTIONS, CANCEL_SESSIONS, NPS_COMMENTS, OUTBOX_UNSENT] {
                execute!(c, statement, customer)?;
            }
            forgotten.emails = execute!(c, OUTBOX, customer)?;
            Ok(forgotten)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn personal_fields_are_nulled_at_any_depth_and_figures_kept() {
        let mut invoice = json!({
            "id": "in_1", "customer": "cus_1", "customer_email": "a@example.com", "amount_paid": 2000,
            "lines": {"data": [{"amount": 2000, "description": "Pro plan for Ann"}]},
            "customer_address": {"line1": "1 Main St"}, "status": "paid"
        });
        assert!(redact(&mut invoice));
        assert_eq!(invoice["customer_email"], Value::Null);
        assert_eq!(invoice["customer_address"], Value::Null);
        assert_eq!(invoice["lines"]["data"][0]["description"], Value::Null);
        assert_eq!((invoice["amount_paid"].clone(), invoice["status"].clone()), (json!(2000), json!("paid")));
        assert!(!redact(&mut invoice), "nothing left to change");
        let event = json!({"data": {"object": {"id": "sub_1", "customer": "cus_1"}}});
        assert!(concerns(&event, "cus_1") && !concerns(&event, "cus_10"));
    }
}
