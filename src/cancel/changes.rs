//! The record of changes Holdfast made in Stripe (`stripe_changes`), written with the cancel
//! session's outcome that caused them.

// The outcome as the cancel flow records it (a save starts `pending`).
use crate::cancel::rules::Outcome;
use crate::cancel::storage::RECORD_OUTCOME;
use crate::cancel::stripe_actions::Sent;
use crate::store::conn::{Conn, execute};
use crate::store::{Store, StoreError};

/// A change Holdfast made in Stripe, to record with what caused it.
#[derive(Debug, Clone)]
pub struct NewStripeChange<'a> {
    pub customer: &'a str,
    pub subscription: Option<&'a str>,
    pub sent: &'a Sent,
    /// What the change was for (`cancel_flow`).
    pub purpose: &'static str,
    /// Who caused it, in words.
    pub triggered_by: &'static str,
    pub idempotency_key: Option<&'a str>,
    pub at: i64,
}

/// Who caused a cancel-flow change, by how the session began.
pub fn cancel_flow_trigger(source: &str) -> &'static str {
    match source {
        "minted" => "the customer, in the cancel flow (link made by the owner)",
        "pause_link" => "the customer, from the pause link of a re-engagement email",
        _ => "the customer, in the cancel flow (signed link from the app)",
    }
}

const INSERT_CHANGE: &str = "INSERT INTO stripe_changes (customer, subscription, method, path, params, purpose, triggered_by, \
     idempotency_key, made_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Record `change` in the caller's transaction, beside the state change it made (a cancel
/// session's outcome, an accepted annual offer).
pub(crate) async fn record_change(c: &mut Conn<'_>, change: &NewStripeChange<'_>) -> Result<(), sqlx::Error> {
    let params = change.sent.params.to_string();
    execute!(
        c,
        INSERT_CHANGE,
        change.customer,
        change.subscription,
        change.sent.method,
        &change.sent.path,
        &params,
        change.purpose,
        change.triggered_by,
        change.idempotency_key,
        change.at
    )?;
    Ok(())
}

impl Store {
    /// Record a cancel session's outcome and the Stripe change that made it, together.
    pub async fn record_cancel_outcome_and_change(
        &self,
        session: &str,
        outcome: Outcome,
        detail_json: &str,
        paused_until: Option<i64>,
        change: &NewStripeChange<'_>,
    ) -> Result<bool, StoreError> {
        self.in_transaction(async |c| {
            let done = execute!(c, RECORD_OUTCOME, session, outcome.as_str(), detail_json, paused_until, change.at)? == 1;
            if done {
                record_change(c, change).await?;
            }
            Ok(done)
        })
        .await
    }
}
