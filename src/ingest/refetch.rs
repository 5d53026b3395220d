//! Settling same-second ties with Stripe. The projector records a subscription or invoice
//! whose snapshots of one second differed (`store::refetch`); once no new tie of it has come
//! for `DEBOUNCE_SECS`, this fetches the object (`GET /v1/subscriptions/{id}`,
//! `GET /v1/invoices/{id}`) and appends Stripe's answer to the event log as an event of its
//! own, so the projector applies Stripe's current state like any event.
//!
//! The appended event's id is `holdfast_refetch_<object id>_<tied second>`: Stripe's event
//! ids start with `evt_`, so it can't collide with one, and a second fetch of the same tie
//! (another replica, a retry after a crash) is a duplicate the log refuses. Its `created` is
//! the time of the fetch: the answer is newer than every snapshot Stripe sent before it, and
//! loses to any sent after. It is appended as an import (it never emails: the webhooks that
//! caused the tie already drove the reactions).

use anyhow::Context;
use serde_json::{Value, json};
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::clock::Clock;
use crate::domain::event::Event;
use crate::health::Outcome;
use crate::store::refetch::{MAX_ATTEMPTS, RefetchRequest};
use crate::store::{IngestOptions, Store};
use crate::stripe_api::StripeApi;
use crate::sync::stripe_list::{brief, is_transient};

/// Objects fetched per pass.
const BATCH: i64 = 20;
/// First wait after a transient failure (rate limit, Stripe's 5xx, network); doubles per attempt.
const RETRY_AFTER_SECS: i64 = 10;
/// How often the loop looks for due requests (the debounce is counted on the clock).
pub const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Fetches the objects whose same-second snapshots differed.
#[derive(Clone, Debug)]
pub struct Refetcher {
    store: Store,
    api: StripeApi,
    clock: Clock,
}

/// Why one object was not fetched. Only `Transient` is worth another try later; the rest
/// will not work however often asked (unknown object, a key without access).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("{}", brief(.0))]
    Transient(#[source] stripe::StripeError),
    #[error("{}", brief(.0))]
    Refused(#[source] stripe::StripeError),
    #[error("no fetch for a {0:?}")]
    UnknownType(String),
    #[error("the object id is not a Stripe id")]
    NotAStripeId,
    #[error("Stripe's answer is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("Stripe's answer is not the object asked for")]
    NotTheObject,
}

impl Refetcher {
    /// The refetcher, and the store told to record ties from now on.
    pub fn new(store: Store, api: StripeApi, clock: Clock) -> Self {
        store.enable_tie_refetch();
        Self { store, api, clock }
    }

    /// Fetch the due objects and append Stripe's answers; `Worked(n)` with the number handled.
    pub async fn try_run_once(&self) -> anyhow::Result<Outcome> {
        let now = self.clock.now();
        let due = self.store.due_refetches(now, BATCH).await.context("listing objects to fetch")?;
        if due.is_empty() {
            return Ok(Outcome::Idle);
        }
        for request in &due {
            match self.fetch(request).await {
                Ok(object) => {
                    let event = synthesize(request, &object, self.clock.now())?;
                    let (_, _, durability) = self
                        .store
                        .append_committed(&[&event], self.clock.now(), IngestOptions::IMPORT)
                        .await
                        .context("appending a fetched object")?;
                    durability.wait().await.context("appending a fetched object")?;
                    self.store.settle_refetch(request).await.context("settling a fetch")?;
                    tracing::info!(object_type = %request.object_type, "same-second tie settled with Stripe's current object");
                }
                Err(e @ FetchError::Transient(_)) if request.attempts + 1 < MAX_ATTEMPTS => {
                    let wait = RETRY_AFTER_SECS.saturating_mul(1 << request.attempts.clamp(0, 16));
                    tracing::warn!(error = %e, retry_in_secs = wait, "fetching a tied object from Stripe failed; will retry");
                    self.store.retry_refetch(request, now + wait).await.context("rescheduling a fetch")?;
                }
                Err(e) => {
                    // The tie rule's choice stands.
                    tracing::warn!(error = %e, object_type = %request.object_type, "fetching a tied object from Stripe failed; given up");
                    self.store.settle_refetch(request).await.context("settling a fetch")?;
                }
            }
        }
        Ok(Outcome::Worked(due.len()))
    }

    async fn fetch(&self, request: &RefetchRequest) -> Result<Value, FetchError> {
        let (path, expand) = match request.object_type.as_str() {
            // As `holdfast sync` reads them: discounts and payments expanded.
            "subscription" => ("subscriptions", "discounts"),
            "invoice" => ("invoices", "payments"),
            other => return Err(FetchError::UnknownType(other.to_owned())),
        };
        if !is_stripe_id(&request.object_id) {
            return Err(FetchError::NotAStripeId);
        }
        let body = RequestBuilder::new(StripeMethod::Get, format!("/{path}/{}", request.object_id))
            .query(&[("expand[]", expand)])
            .customize::<miniserde::json::Value>()
            .send(self.api.client())
            .await
            .map_err(|e| if is_transient(&e) { FetchError::Transient(e) } else { FetchError::Refused(e) })?;
        let value: Value = serde_json::from_str(&miniserde::json::to_string(&body)).map_err(FetchError::NotJson)?;
        let same = value.get("object").and_then(Value::as_str) == Some(request.object_type.as_str())
            && value.get("id").and_then(Value::as_str) == Some(request.object_id.as_str());
        if !same {
            return Err(FetchError::NotTheObject);
        }
        Ok(value)
    }
}

/// Stripe ids are letters, digits and underscores; anything else is never put in a path.
fn is_stripe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The event carrying the fetched object.
fn synthesize(request: &RefetchRequest, object: &Value, now: i64) -> anyhow::Result<Event> {
    let kind = if request.object_type == "subscription" { "customer.subscription.updated" } else { "invoice.updated" };
    let body = json!({
        "id": format!("holdfast_refetch_{}_{}", request.object_id, request.tied_created),
        "object": "event",
        "type": kind,
        "created": now,
        "livemode": object.get("livemode").cloned().unwrap_or(Value::Bool(false)),
        "api_version": null,
        "pending_webhooks": 0,
        "request": {"id": null, "idempotency_key": null},
        "data": {"object": object},
        // Marks the event as ours, for anyone reading `stripe_events`.
        "holdfast": {"source": "refetch"},
    });
    Event::parse(body.to_string().as_bytes()).context("synthesizing the fetched object's event")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stripe_shaped_ids_reach_a_path() {
        assert!(is_stripe_id("sub_1NxYz2AbC"));
        assert!(!is_stripe_id("sub_1/../../customers"));
        assert!(!is_stripe_id(""));
    }

    #[test]
    fn the_synthetic_id_is_not_stripes_and_is_the_same_for_the_same_tie() {
        let request = RefetchRequest {
            object_id: "sub_1".into(),
            object_type: "subscription".into(),
            tied_created: 100,
            due_at: 105,
            attempts: 0,
        };
        let object = json!({"id": "sub_1", "object": "subscription", "status": "active", "customer": "cus_1"});
        let a = synthesize(&request, &object, 200).expect("event");
        let b = synthesize(&request, &object, 300).expect("event");
        assert_eq!(a.id, b.id);
        assert!(!a.id.starts_with("evt_"));
        assert_eq!((a.kind.as_str(), a.created), ("customer.subscription.updated", 200));
    }
}
