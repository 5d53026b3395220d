//! Coupons Holdfast never saw, fetched once from Stripe. Since 2025-09-30.clover a discount
//! names its coupon by id only, and the coupon's own events may predate Holdfast: the
//! discount's terms are then unknown. When `STRIPE_SECRET_KEY` is set, each such coupon is
//! fetched (`GET /v1/coupons/{id}`) and stored through the event log as a synthesized
//! `coupon.updated` event, so it is cached like any other coupon and `reproject` keeps it.
//! A coupon Stripe does not return is not asked for again by this process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde_json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::clock::Clock;
use crate::domain::coupons;
use crate::domain::event::Event;
use crate::health::Outcome;
use crate::store::{IngestOptions, Store};
use crate::stripe_api::StripeApi;

/// Coupons asked for per pass.
const BATCH: i64 = 20;

/// Fetches the coupons discounts name but Holdfast has no terms for.
#[derive(Clone)]
pub struct CouponFetcher {
    store: Store,
    api: StripeApi,
    clock: Clock,
    /// Ids already asked for (found or not): at most one call each per process.
    asked: Arc<Mutex<HashSet<String>>>,
}

impl CouponFetcher {
    pub fn new(store: Store, api: StripeApi, clock: Clock) -> Self {
        Self { store, api, clock, asked: Arc::default() }
    }

    /// Fetch and store the unknown coupons not asked for yet; `Worked(n)` with the number
    /// stored. The projector applies them like any event.
    pub async fn try_run_once(&self) -> anyhow::Result<Outcome> {
        let unknown = self.store.unknown_coupons(BATCH + self.asked_count() as i64).await.context("listing unknown coupons")?;
        let fresh: Vec<String> = {
            let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
            unknown.into_iter().filter(|id| asked.insert(id.clone())).take(BATCH as usize).collect()
        };
        if fresh.is_empty() {
            return Ok(Outcome::Idle);
        }
        let mut events = Vec::new();
        for id in &fresh {
            match self.fetch(id).await {
                Ok(coupon) => events.extend(coupons::coupon_events(&coupon)),
                // Not retried by this process: a deleted or foreign coupon stays unresolved
                // (the summary counts it) rather than costing a call per pass.
                Err(e) => tracing::warn!(error = format!("{e:#}"), "could not fetch a coupon a discount names"),
            }
        }
        let parsed = events
            .iter()
            .map(|s| Event::parse(s.to_json().to_string().as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .context("synthesizing coupon events")?;
        let refs: Vec<&Event> = parsed.iter().collect();
        if !refs.is_empty() {
            self.store.ingest_with(&refs, self.clock.now(), IngestOptions::IMPORT).await.context("storing fetched coupons")?;
        }
        Ok(Outcome::Worked(refs.len()))
    }

    fn asked_count(&self) -> usize {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    async fn fetch(&self, id: &str) -> anyhow::Result<Value> {
        let path = format!("/coupons/{}", path_segment(id));
        let body = RequestBuilder::new(StripeMethod::Get, path)
            .customize::<miniserde::json::Value>()
            .send(self.api.client())
            .await
            .map_err(|e| anyhow::anyhow!(describe(&e)))
            .context("fetching a coupon from Stripe")?;
        let value: Value = serde_json::from_str(&miniserde::json::to_string(&body)).context("coupon body is not JSON")?;
        anyhow::ensure!(value.get("object").and_then(Value::as_str) == Some("coupon"), "Stripe's answer is not a coupon");
        Ok(value)
    }
}

/// Status and Stripe's message only: never the request (it carries the key).
fn describe(e: &stripe::StripeError) -> String {
    match e {
        stripe::StripeError::Stripe(api, status) => {
            format!("Stripe answered {status}: {}", api.message.as_deref().unwrap_or("no message"))
        }
        other => other.to_string(),
    }
}

/// Percent-encode everything but unreserved characters (coupon ids are chosen by the owner).
pub(crate) fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn coupon_ids_are_encoded_for_the_path() {
        assert_eq!(super::path_segment("SAVE 30/x"), "SAVE%2030%2Fx");
        assert_eq!(super::path_segment("half-off_2"), "half-off_2");
    }
}
