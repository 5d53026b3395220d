//! Paging through a Stripe list endpoint through async-stripe, keeping each object as raw JSON
//! (the projection reads JSON, tolerant of API versions), retrying 429 and 5xx with backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use stripe::StripeError;
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::stripe_api::StripeApi;

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    pub objects: Vec<Value>,
    pub has_more: bool,
}

/// How hard to insist on a page.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts per page, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubles each time, capped at `MAX_BACKOFF`.
    pub first_backoff: Duration,
}

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Default for Retry {
    fn default() -> Self {
        Self { attempts: 8, first_backoff: Duration::from_secs(1) }
    }
}

/// A Stripe list endpoint (`/customers`, `/subscriptions`, `/invoices`) and its fixed params.
#[derive(Debug, Clone)]
pub struct ListEndpoint {
    pub path: &'static str,
    pub params: &'static [(&'static str, &'static str)],
}

impl ListEndpoint {
    /// Fetch the page after `starting_after` (the first page when `None`).
    pub async fn page(&self, api: &StripeApi, limit: u32, starting_after: Option<&str>, retry: Retry) -> anyhow::Result<Page> {
        let mut query: BTreeMap<&str, String> = self.params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        query.insert("limit", limit.to_string());
        if let Some(after) = starting_after {
            query.insert("starting_after", after.to_owned());
        }
        let mut backoff = retry.first_backoff;
        let mut attempt = 1;
        loop {
            let request = RequestBuilder::new(StripeMethod::Get, self.path).query(&query).customize::<miniserde::json::Value>();
            match request.send(api.client()).await {
                Ok(body) => return to_page(&body).with_context(|| format!("reading a page of {}", self.path)),
                Err(e) if attempt < retry.attempts && is_transient(&e) => {
                    tracing::warn!(path = self.path, attempt, backoff_ms = backoff.as_millis() as u64, error = %brief(&e), "Stripe list call failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                Err(e) => return Err(anyhow::anyhow!(brief(&e))).with_context(|| format!("listing {} from Stripe", self.path)),
            }
        }
    }
}

/// Rate limits, Stripe's own failures and network trouble pass; a 4xx other than 429 won't.
pub(crate) fn is_transient(e: &StripeError) -> bool {
    match e {
        StripeError::Stripe(_, status) => *status == 429 || *status >= 500,
        StripeError::ClientError(_) | StripeError::Timeout => true,
        // A 5xx whose body isn't Stripe's error JSON (a proxy's page) lands here.
        StripeError::JSONDeserialize(msg) => msg.contains("error deserializing Stripe error"),
        StripeError::ConfigError(_) => false,
    }
}

/// A one-line description: status and Stripe's message, never the request (it has the key).
pub(crate) fn brief(e: &StripeError) -> String {
    match e {
        StripeError::Stripe(api, status) => {
            format!("Stripe answered {status}: {}", api.message.as_deref().unwrap_or("no message"))
        }
        other => other.to_string(),
    }
}

fn to_page(body: &miniserde::json::Value) -> anyhow::Result<Page> {
    // miniserde is what async-stripe decodes with; go through text to serde_json.
    let value: Value = serde_json::from_str(&miniserde::json::to_string(body)).context("list body is not JSON")?;
    let objects = value.get("data").and_then(Value::as_array).cloned().context("list body has no `data` array")?;
    let has_more = value.get("has_more").and_then(Value::as_bool).unwrap_or(false);
    Ok(Page { objects, has_more })
}
