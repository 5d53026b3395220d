//! Observe-only mode's record: the Stripe calls held back, and the emails the outbox worker
//! marked `observed` instead of sending. Same SQL on both backends.

use serde::Serialize;

use crate::store::conn::{execute, fetch};
use crate::store::{Store, StoreError};

/// A call that would create or change something in Stripe, as the owner will read it.
#[derive(Debug, Clone, Serialize)]
pub struct IntendedCall<'a> {
    /// `POST`, `DELETE`.
    pub method: &'a str,
    /// `/v1/subscriptions/sub_123`.
    pub path: String,
    /// What the call would send (or what it would do, where the request is built by a typed
    /// builder): never the key.
    pub params: serde_json::Value,
    /// The feature that wanted it: `cancel_flow`, `billing_portal`, `comeback`.
    pub purpose: &'a str,
    pub customer: Option<&'a str>,
}

const INSERT: &str = "INSERT INTO observed_stripe_calls (method, path, params, purpose, customer, observed_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";
const CALLS: &str = "SELECT id, method, path, params, purpose, customer, observed_at FROM observed_stripe_calls \
     ORDER BY id DESC LIMIT $1";
const EMAILS: &str = "SELECT id, dedupe_key, recipient, template, subject, body_text, next_attempt_at AS due_at \
     FROM outbox WHERE status = 'observed' ORDER BY id DESC LIMIT $1";

/// A Stripe call observe mode held back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ObservedCall {
    pub id: i64,
    pub method: String,
    pub path: String,
    /// JSON of what the call would have sent.
    pub params: String,
    pub purpose: String,
    pub customer: Option<String>,
    pub observed_at: i64,
}

/// An email observe mode kept instead of sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ObservedEmail {
    pub id: i64,
    pub dedupe_key: String,
    pub recipient: String,
    pub template: String,
    pub subject: String,
    pub body_text: String,
    /// When it would have gone.
    pub due_at: i64,
}

impl Store {
    /// Record a Stripe call observe mode did not make.
    pub async fn record_observed_call(&self, call: &IntendedCall<'_>, now: i64) -> Result<(), StoreError> {
        let params = call.params.to_string();
        self.with_conn(async |c| {
            execute!(c, INSERT, call.method, &call.path, &params, call.purpose, call.customer, now).map(|_| ())
        })
        .await
    }

    /// The newest `limit` held-back Stripe calls.
    pub async fn observed_calls(&self, limit: i64) -> Result<Vec<ObservedCall>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, ObservedCall, CALLS, limit)).await
    }

    /// The newest `limit` emails observe mode kept.
    pub async fn observed_emails(&self, limit: i64) -> Result<Vec<ObservedEmail>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, ObservedEmail, EMAILS, limit)).await
    }
}
