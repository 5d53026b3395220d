//! The alert deliveries to Slack and the signed webhook (`alert_deliveries`): enqueue
//! (idempotent by `dedupe_key`) in a caller's transaction, claim due rows with a lease,
//! record outcomes under the claim's token.

use crate::mail::NewEmail;
use crate::store::conn::{Conn, execute, fetch};
use crate::store::plan::NewDelivery;
use crate::store::{Store, StoreError};

const INSERT: &str = "INSERT INTO alert_deliveries (dedupe_key, alert_id, kind, destination, body, status, attempts, \
     next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) ON CONFLICT (dedupe_key) DO NOTHING";

/// Enqueue `d` in the caller's transaction; `false` when its key was known.
pub async fn enqueue(conn: &mut Conn<'_>, d: &NewDelivery, now: i64) -> Result<bool, sqlx::Error> {
    Ok(execute!(conn, INSERT, &d.dedupe_key, &d.alert_id, d.kind, d.destination, &d.body, now)? == 1)
}

/// Due: pending, its time come, no live claim. The outer conditions are checked again on
/// the locked row (Postgres), so two replicas never hold the same row.
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE alert_deliveries SET claimed_until = $1 + $2, claim_token = $4 WHERE id IN (SELECT id FROM alert_deliveries \
             WHERE status = 'pending' AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1) \
             ORDER BY next_attempt_at, id LIMIT $3",
            $lock,
            ") AND status = 'pending' AND (claimed_until IS NULL OR claimed_until < $1) \
             RETURNING id, alert_id, destination, body, attempts"
        )
    };
}
const CLAIM_SQLITE: &str = claim!("");
const CLAIM_POSTGRES: &str = claim!(" FOR UPDATE SKIP LOCKED");

const SENT: &str = "UPDATE alert_deliveries SET status = 'sent', attempts = attempts + 1, sent_at = $3, last_error = NULL, \
     claimed_until = NULL, claim_token = NULL WHERE id = $1 AND claim_token = $2";
const RETRY: &str = "UPDATE alert_deliveries SET status = $4, attempts = attempts + 1, next_attempt_at = $3, last_error = $5, \
     claimed_until = NULL, claim_token = NULL WHERE id = $1 AND claim_token = $2";
const SESSION_CUSTOMER: &str = "SELECT customer FROM cancel_sessions WHERE id = $1";
const LIST: &str = "SELECT id, dedupe_key, alert_id, kind, destination, body, status, attempts, next_attempt_at, last_error, \
     created_at, sent_at FROM alert_deliveries ORDER BY id";

/// A row claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub alert_id: String,
    pub destination: String,
    pub body: String,
    pub attempts: i64,
}

/// What became of one claimed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Sent,
    Retry { error: String, retry_at: i64, give_up: bool },
    Failed { error: String },
}

/// A row as stored (tests, support).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub dedupe_key: String,
    pub alert_id: String,
    pub kind: String,
    pub destination: String,
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

impl Store {
    /// Enqueue an alert's emails and deliveries together; returns how many rows were new.
    pub async fn enqueue_alert(&self, emails: &[NewEmail], deliveries: &[NewDelivery], now: i64) -> Result<usize, StoreError> {
        self.in_transaction(async |c| {
            let mut n = 0;
            for e in emails {
                n += usize::from(crate::store::outbox::enqueue(c, e, now).await?);
            }
            for d in deliveries {
                n += usize::from(enqueue(c, d, now).await?);
            }
            Ok(n)
        })
        .await
    }

    /// Claim up to `limit` due rows for `lease_secs` under `token`.
    pub async fn claim_alert_deliveries(
        &self,
        now: i64,
        lease_secs: i64,
        limit: i64,
        token: &str,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        match self {
            Store::Sqlite(_) => {
                self.in_transaction(async |c| fetch!(c, fetch_all, ClaimedDelivery, CLAIM_SQLITE, now, lease_secs, limit, token))
                    .await
            }
            Store::Postgres(_) => {
                self.in_transaction(async |c| {
                    fetch!(c, fetch_all, ClaimedDelivery, CLAIM_POSTGRES, now, lease_secs, limit, token)
                })
                .await
            }
        }
    }

    /// Record claimed rows' outcomes (a row whose claim was lost is left alone).
    pub async fn record_alert_deliveries(
        &self,
        results: &[(ClaimedDelivery, DeliveryOutcome)],
        token: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.in_transaction(async |c| {
            for (row, outcome) in results {
                match outcome {
                    DeliveryOutcome::Sent => execute!(c, SENT, row.id, token, now)?,
                    DeliveryOutcome::Retry { error, retry_at, give_up } => {
                        let status = if *give_up { "failed" } else { "pending" };
                        execute!(c, RETRY, row.id, token, *retry_at, status, error)?
                    }
                    DeliveryOutcome::Failed { error } => execute!(c, RETRY, row.id, token, now, "failed", error)?,
                };
            }
            Ok(())
        })
        .await
    }

    /// The customer of a cancel session.
    pub async fn session_customer(&self, session: &str) -> Result<Option<String>, StoreError> {
        let row = self.with_conn(async |c| fetch!(c, fetch_optional, (Option<String>,), SESSION_CUSTOMER, session)).await?;
        Ok(row.and_then(|(c,)| c))
    }

    /// Every alert delivery row, oldest first.
    pub async fn alert_deliveries(&self) -> Result<Vec<DeliveryRow>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, DeliveryRow, LIST)).await
    }
}
