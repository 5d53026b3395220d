//! Parking: an event whose projection fails is parked with its error (in `parked_events`)
//! instead of stopping the log; later events of the same customer are parked behind it, in
//! order, and every other customer goes on. Parked customers are retried with back-off
//! ([`Store::retry_parked`]).

use std::collections::HashSet;

use crate::ingest::project::{Projected, in_transaction, project_events};
use crate::store::conn::{Conn, execute, fetch};
use crate::store::log::{self, customer_key, is_outage};
use crate::store::reactions::ReactionHook;
use crate::store::{Store, StoreError};

/// First retry of a parked customer after this long; doubles per failed attempt.
const PARK_RETRY_SECS: i64 = 10;
/// Longest pause between two retries of a parked customer.
const PARK_RETRY_MAX_SECS: i64 = 3600;

const PARKED_KEYS: &str = "SELECT DISTINCT customer_key FROM parked_events";
const PARK: &str = "INSERT INTO parked_events (seq, event_id, customer_key, error, attempts, next_attempt_at, parked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// Parked customers whose retry time came, each with the position of its first event.
const DUE_PARKED: &str = "SELECT customer_key, MIN(seq) FROM parked_events GROUP BY customer_key \
     HAVING COALESCE(MIN(CASE WHEN error IS NOT NULL THEN next_attempt_at END), 0) <= $1 ORDER BY MIN(seq) LIMIT 100";
const PARKED_OF: &str = "SELECT seq, attempts FROM parked_events WHERE customer_key = $1 ORDER BY seq";
const UNPARK: &str = "DELETE FROM parked_events WHERE seq = $1";
const PARK_FAILED_AGAIN: &str = "UPDATE parked_events SET error = $2, attempts = $3, next_attempt_at = $4 WHERE seq = $1";

/// Back-off after `attempts` failed attempts.
fn retry_after(attempts: i64) -> i64 {
    let shift = attempts.clamp(0, 20) as u32;
    PARK_RETRY_SECS.saturating_mul(1_i64 << shift).min(PARK_RETRY_MAX_SECS)
}

/// The customers with parked events (their later events are parked behind them).
pub(super) async fn parked_keys(conn: &mut Conn<'_>) -> Result<HashSet<String>, StoreError> {
    let parked: Vec<(String,)> = fetch!(conn, fetch_all, (String,), PARKED_KEYS)?;
    Ok(parked.into_iter().map(|(k,)| k).collect())
}

/// Park the event at `seq` behind its customer's parked events: no error of its own, retried
/// with them.
pub(super) async fn park_behind(conn: &mut Conn<'_>, seq: i64, event_id: &str, key: &str, now: i64) -> Result<(), StoreError> {
    execute!(conn, PARK, seq, event_id, key, None::<String>, 0_i64, now, now)?;
    Ok(())
}

/// Park the event right after the cursor with `error`, and move the cursor past it.
pub(super) async fn park_next(conn: &mut Conn<'_>, error: &str, now: i64) -> Result<Projected, StoreError> {
    let position = log::lock_cursor(conn).await?;
    let Some(row) = log::read_after(conn, position, 1).await?.pop() else {
        return Ok(Projected { position, ..Projected::default() });
    };
    let seq = row.0;
    let (event_id, key) = match log::parse(row) {
        Ok(l) => (l.event.id.clone(), customer_key(&l.event)),
        Err(_) => (format!("seq:{seq}"), format!("seq:{seq}")),
    };
    execute!(conn, PARK, seq, event_id.as_str(), key.as_str(), Some(error), 1_i64, now + retry_after(0), now)?;
    log::advance_cursor(conn, position, seq).await?;
    Ok(Projected { events: 1, parked: 1, position: seq, ..Projected::default() })
}

/// Retry one parked customer: its events in log order, as far as they go.
async fn retry_customer(
    conn: &mut Conn<'_>,
    key: &str,
    reactor: Option<&dyn ReactionHook>,
    acts_on: Option<bool>,
    record_ties: bool,
) -> Result<usize, StoreError> {
    // Postgres: queue behind the projector, which may be parking this customer's next event.
    log::lock_cursor(conn).await?;
    let parked: Vec<(i64, i64)> = fetch!(conn, fetch_all, (i64, i64), PARKED_OF, key)?;
    let mut events = Vec::with_capacity(parked.len());
    for (seq, _) in &parked {
        let row = log::read_at(conn, *seq).await?;
        // Parked before the quarantine existed: quarantined now, and unparked below.
        let (mut row, _) = log::screen(conn, vec![row]).await?;
        if let Some(row) = row.pop() {
            events.push(log::parse(row).map_err(|(_, e)| StoreError::Projection(e))?);
        }
    }
    let enqueued = project_events(conn, &events, reactor, acts_on, crate::figures::storage::Recompute::Now, record_ties).await?;
    for (seq, _) in &parked {
        execute!(conn, UNPARK, *seq)?;
    }
    Ok(enqueued)
}

impl Store {
    /// Retry the parked customers whose time came. A customer whose events all project now
    /// is unparked; one that fails again waits longer. Returns the customers unparked.
    pub async fn retry_parked(&self, now: i64) -> Result<usize, StoreError> {
        let due: Vec<(String, i64)> = self.with_conn(async |c| fetch!(c, fetch_all, (String, i64), DUE_PARKED, now)).await?;
        let reactor = self.reactor();
        let mut projected = 0;
        for (key, _) in due {
            let retried: Result<usize, StoreError> = in_transaction!(self, |conn| retry_customer(
                conn,
                &key,
                reactor.as_deref(),
                self.acts_on(),
                self.refetches_ties()
            )
            .await);
            match retried {
                Ok(enqueued) => {
                    projected += 1;
                    tracing::info!(customer = %key, "parked customer projected");
                    self.after_projection(&Projected { enqueued, ..Projected::default() });
                }
                Err(e) if e.is_projection_failure() && !is_outage(&e) => {
                    let error = e.to_string();
                    tracing::warn!(error = ?e, customer = %key, "parked customer failed again");
                    let first: Vec<(i64, i64)> =
                        self.with_conn(async |c| fetch!(c, fetch_all, (i64, i64), PARKED_OF, key.as_str())).await?;
                    if let Some((seq, attempts)) = first.first().copied() {
                        let next = now + retry_after(attempts);
                        self.with_conn(async |c| execute!(c, PARK_FAILED_AGAIN, seq, error.as_str(), attempts + 1, next)).await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(projected)
    }
}
