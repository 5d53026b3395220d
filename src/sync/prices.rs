//! Tiers of tiered prices Holdfast never saw, fetched once from Stripe. A price's `tiers` are
//! left out of API answers and webhook payloads unless expanded, so a subscription whose item
//! has a tiered price usually arrives without them, and the item adds 0 to MRR until they are
//! known. When `STRIPE_SECRET_KEY` is set, each such price is fetched
//! (`GET /v1/prices/{id}?expand[]=tiers`), outside the projector's transaction, and stored
//! through the event log as a synthesized `price.updated` event: the projector keeps its tiers
//! in the `prices` table and recomputes the figures of the customers whose items name it, and
//! `reproject` keeps it. A price Stripe does not return is not asked for again by this
//! process; one a transient failure kept from us is asked for again on the next pass.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde_json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::clock::Clock;
use crate::domain::event::Event;
use crate::domain::pricing;
use crate::health::Outcome;
use crate::store::{IngestOptions, Store};
use crate::stripe_api::StripeApi;
use crate::sync::coupons::path_segment;
use crate::sync::stripe_list::{Retry, brief, is_transient};

/// Prices asked for per pass.
const BATCH: usize = 20;

/// Fetches the tiers of tiered prices subscription items name but Holdfast has no tiers for.
#[derive(Clone)]
pub struct PriceTiersFetcher {
    store: Store,
    api: StripeApi,
    clock: Clock,
    retry: Retry,
    /// Ids already asked for: at most one successful or refused call each per process.
    asked: Arc<Mutex<HashSet<String>>>,
}

/// Why a price could not be fetched.
enum Failure {
    /// Rate limits, Stripe's own failures, the network: worth asking again later.
    Transient(anyhow::Error),
    /// Stripe refused (no such price, another account's): not asked again.
    Refused(anyhow::Error),
}

impl PriceTiersFetcher {
    pub fn new(store: Store, api: StripeApi, clock: Clock) -> Self {
        let retry = Retry { attempts: 3, first_backoff: std::time::Duration::from_millis(500) };
        Self { store, api, clock, retry, asked: Arc::default() }
    }

    /// Retry policy per price (tests shorten it).
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Fetch and store the prices with unknown tiers not asked for yet; `Worked(n)` with the
    /// number stored. The projector applies them like any event.
    pub async fn try_run_once(&self) -> anyhow::Result<Outcome> {
        let unknown = self.store.unknown_tiers().await.context("listing tiered prices without tiers")?;
        let fresh: Vec<String> = {
            let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
            unknown.into_iter().filter(|id| asked.insert(id.clone())).take(BATCH).collect()
        };
        if fresh.is_empty() {
            return Ok(Outcome::Idle);
        }
        let mut events = Vec::new();
        for id in &fresh {
            match self.fetch(id).await {
                Ok(price) => events.extend(pricing::fetched_price_events(&price)),
                Err(Failure::Transient(e)) => {
                    tracing::warn!(error = format!("{e:#}"), "could not fetch a tiered price's tiers; asking again next pass");
                    self.asked.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                }
                // The item stays unresolved (the summary counts it) rather than costing a call
                // per pass.
                Err(Failure::Refused(e)) => tracing::warn!(error = format!("{e:#}"), "could not fetch a tiered price's tiers"),
            }
        }
        let parsed = events
            .iter()
            .map(|s| Event::parse(s.to_json().to_string().as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .context("synthesizing price events")?;
        let refs: Vec<&Event> = parsed.iter().collect();
        if !refs.is_empty() {
            self.store.ingest_with(&refs, self.clock.now(), IngestOptions::IMPORT).await.context("storing fetched prices")?;
        }
        Ok(Outcome::Worked(refs.len()))
    }

    async fn fetch(&self, id: &str) -> Result<Value, Failure> {
        let path = format!("/prices/{}", path_segment(id));
        let query: BTreeMap<&str, &str> = [("expand[]", "tiers")].into_iter().collect();
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 1;
        let body = loop {
            let request =
                RequestBuilder::new(StripeMethod::Get, path.clone()).query(&query).customize::<miniserde::json::Value>();
            match request.send(self.api.client()).await {
                Ok(body) => break body,
                Err(e) if attempt < self.retry.attempts && is_transient(&e) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(e) if is_transient(&e) => return Err(Failure::Transient(anyhow::anyhow!(brief(&e)))),
                Err(e) => return Err(Failure::Refused(anyhow::anyhow!(brief(&e)))),
            }
        };
        let value: Value = serde_json::from_str(&miniserde::json::to_string(&body))
            .map_err(|e| Failure::Refused(anyhow::anyhow!("price body is not JSON: {e}")))?;
        if value.get("object").and_then(Value::as_str) != Some("price") {
            return Err(Failure::Refused(anyhow::anyhow!("Stripe's answer is not a price")));
        }
        Ok(value)
    }
}
