//! Stripe's API, through async-stripe. Built once from `STRIPE_SECRET_KEY`; `STRIPE_API_BASE`
//! points it elsewhere (tests answer it with wiremock). Feature modules (billing portal,
//! subscription changes, sync) take a `&StripeApi` and use `client()`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Per-attempt timeout for Stripe calls: a slow Stripe must not hold a page or a worker.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A configured Stripe client. `Debug` never shows the key.
#[derive(Clone)]
pub struct StripeApi {
    client: stripe::Client,
    base: Option<String>,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeApi").field("base", &self.base).field("secret_key", &"[redacted]").finish()
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
        Ok(Self { client: builder.build()?, base: api_base.map(str::to_owned) })
    }

    /// The async-stripe client, for the request builders of the `stripe_*` crates.
    pub fn client(&self) -> &stripe::Client {
        &self.client
    }
}
