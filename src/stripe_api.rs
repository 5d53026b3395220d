//! Stripe's API, through async-stripe. Built once from `STRIPE_SECRET_KEY`; `STRIPE_API_BASE`
//! points it elsewhere (tests answer it with wiremock). Feature modules (billing portal,
//! subscription changes, sync) take a `&StripeApi` and use `client()`.
//!
//! Observe-only mode: every place that would make a call creating or changing something in
//! Stripe asks `recorded_instead` first; in observe mode the call is written to the
//! `observed_stripe_calls` table for the owner and must not be made. Reads (sync) go ahead.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
// The held-back call is the store's row (observe mode records it); callers name it from here.
pub use crate::store::observed::IntendedCall;

use crate::clock::Clock;
use crate::store::Store;

/// Per-attempt timeout for Stripe calls: a slow Stripe must not hold a page or a worker.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A configured Stripe client. `Debug` never shows the key.
#[derive(Clone)]
pub struct StripeApi {
    client: stripe::Client,
    base: Option<String>,
    observe: Option<ObserveLog>,
}

/// Where observe-only mode records the calls it holds back.
#[derive(Clone, Debug)]
pub struct ObserveLog {
    store: Store,
    clock: Clock,
}

impl ObserveLog {
    pub fn new(store: Store, clock: Clock) -> Self {
        Self { store, clock }
    }
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeApi")
            .field("base", &self.base)
            .field("secret_key", &"[redacted]")
            .field("observe", &self.observe.is_some())
            .finish()
    }
}

impl StripeApi {
    /// A client for `secret_key`, at `api_base` when given (must end without a path, e.g.
    /// `http://127.0.0.1:12111`).
    pub fn new(secret_key: &SecretString, api_base: Option<&str>) -> Result<Self, stripe::StripeError> {
        let mut builder = stripe::ClientBuilder::new(secret_key.expose_secret()).timeout(TIMEOUT);
        if let Some(base) = api_base {
            builder = builder.url(base);
        }
        Ok(Self { client: builder.build()?, base: api_base.map(str::to_owned), observe: None })
    }

    /// In observe-only mode (`Some`), record calls that would change Stripe instead of making them.
    pub fn observing(mut self, log: Option<ObserveLog>) -> Self {
        self.observe = log;
        self
    }

    /// Whether this client only observes.
    pub fn observes(&self) -> bool {
        self.observe.is_some()
    }

    /// The async-stripe client, for the request builders of the `stripe_*` crates.
    pub fn client(&self) -> &stripe::Client {
        &self.client
    }

    /// Call before any request that creates or changes something in Stripe. `false`: go
    /// ahead. `true`: observe-only mode recorded `call` and the caller must not make it (also
    /// when the record itself failed: observing never changes Stripe).
    pub async fn recorded_instead(&self, call: IntendedCall<'_>) -> bool {
        let Some(log) = &self.observe else { return false };
        if let Err(e) = log.store.record_observed_call(&call, log.clock.now()).await {
            tracing::error!(error = %e, purpose = call.purpose, "observe mode: the held-back Stripe call could not be recorded");
        } else {
            tracing::info!(purpose = call.purpose, path = %call.path, "observe mode: Stripe call recorded, not made");
        }
        true
    }
}
