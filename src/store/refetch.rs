//! Same-second ties to settle with Stripe. When two snapshots of one subscription or invoice
//! carry the same `created` and differ, the tie rule (`domain::watermark`) picks one from the
//! objects alone; with `STRIPE_SECRET_KEY` set, the projector also records the object in
//! `refetch_requests`, inside its transaction, and the refetcher (`webhook::refetch`) later
//! fetches it and appends Stripe's answer to the log as an event of its own. Reprojection
//! never records anything (it runs without reactions), so it calls no Stripe API.

use std::collections::HashMap;

use crate::domain::watermark::Watermark;
use crate::store::batch::{Tie, Writes, is_tie};
use crate::store::conn::{Conn, execute, fetch};
use crate::store::{Store, StoreError};

/// Seconds after the last tie of an object before it is fetched: a burst of updates settles
/// first, and the object is fetched once for the whole burst.
pub const DEBOUNCE_SECS: i64 = 5;
/// Attempts per object before it is given up (transient failures only; each waits longer).
pub const MAX_ATTEMPTS: i64 = 6;

const STORED_SUBSCRIPTIONS_SQLITE: &str = "SELECT id, src_rank, src_created, src_tie FROM subscriptions \
     WHERE id IN (SELECT value FROM json_each($1))";
const STORED_SUBSCRIPTIONS_POSTGRES: &str = "SELECT id, src_rank, src_created, src_tie FROM subscriptions \
     WHERE id IN (SELECT jsonb_array_elements_text($1::text::jsonb))";
const STORED_INVOICES_SQLITE: &str =
    "SELECT id, src_rank, src_created, src_tie FROM invoices WHERE id IN (SELECT value FROM json_each($1))";
const STORED_INVOICES_POSTGRES: &str = "SELECT id, src_rank, src_created, src_tie FROM invoices \
     WHERE id IN (SELECT jsonb_array_elements_text($1::text::jsonb))";
/// A later tie of the same object moves the request on (debounce) and starts its attempts anew.
const REQUEST: &str = "INSERT INTO refetch_requests (object_id, object_type, tied_created, due_at, attempts) \
     VALUES ($1, $2, $3, $4, 0) ON CONFLICT (object_id) DO UPDATE SET object_type = excluded.object_type, \
     tied_created = excluded.tied_created, due_at = excluded.due_at, attempts = 0";
const DUE: &str = "SELECT object_id, object_type, tied_created, due_at, attempts FROM refetch_requests \
     WHERE due_at <= $1 ORDER BY due_at, object_id LIMIT $2";
/// Only the request as it was read: a tie recorded meanwhile stays for its own fetch.
const SETTLE: &str = "DELETE FROM refetch_requests WHERE object_id = $1 AND due_at = $2";
const RETRY: &str = "UPDATE refetch_requests SET due_at = $3, attempts = attempts + 1 WHERE object_id = $1 AND due_at = $2";
const PENDING: &str = "SELECT COUNT(*) FROM refetch_requests";

/// An object waiting to be fetched.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefetchRequest {
    pub object_id: String,
    /// `subscription` or `invoice`.
    pub object_type: String,
    /// The second the differing snapshots shared.
    pub tied_created: i64,
    pub due_at: i64,
    pub attempts: i64,
}

type StoredMark = (String, i64, i64, String);
/// An object type, the batch's newest snapshot of each object of it, and the statement
/// reading the stored ones.
type Table<'a> = (&'static str, Vec<(&'a String, &'a Watermark)>, &'static str);

/// The ties of a batch about to be applied: those inside the batch, and those between the
/// batch's newest snapshot of an object and the one already stored. Read before the batch is
/// written (the stored row is then still the previous winner).
async fn ties_with_stored(conn: &mut Conn<'_>, writes: &Writes) -> Result<Vec<Tie>, StoreError> {
    let postgres = matches!(conn, Conn::Postgres(_));
    let mut ties = writes.ties.clone();
    let tables: [Table<'_>; 2] = [
        (
            "subscription",
            writes.subscriptions.iter().map(|(s, w)| (&s.id, w)).collect(),
            if postgres { STORED_SUBSCRIPTIONS_POSTGRES } else { STORED_SUBSCRIPTIONS_SQLITE },
        ),
        (
            "invoice",
            writes.invoices.iter().map(|(i, w)| (&i.id, w)).collect(),
            if postgres { STORED_INVOICES_POSTGRES } else { STORED_INVOICES_SQLITE },
        ),
    ];
    for (object_type, batch, sql) in tables {
        if batch.is_empty() {
            continue;
        }
        let ids = serde_json::to_string(&batch.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
            .map_err(|e| StoreError::Projection(crate::store::ProjectionError::Encode(e)))?;
        let stored: Vec<StoredMark> = fetch!(conn, fetch_all, StoredMark, sql, ids.as_str())?;
        let stored: HashMap<String, Watermark> = stored
            .into_iter()
            .map(|(id, rank, created, tie)| (id, Watermark { rank, created, tie, event_id: String::new() }))
            .collect();
        for (id, mark) in batch {
            let Some(old) = stored.get(id.as_str()) else { continue };
            // The stored snapshot is newer than the batch's by its second: no tie to settle,
            // and an in-batch tie of an older second is moot.
            if old.created > mark.created {
                ties.retain(|t| !(t.object_type == object_type && t.id == *id));
            } else if is_tie(old, mark) && !ties.iter().any(|t| t.object_type == object_type && t.id == *id) {
                ties.push(Tie { object_type, id: id.clone(), created: mark.created });
            }
        }
    }
    Ok(ties)
}

/// Record the batch's ties for fetching, due `DEBOUNCE_SECS` after `now` (the time the batch's
/// last event was received). Runs inside the projector's transaction.
pub(crate) async fn record_ties(conn: &mut Conn<'_>, writes: &Writes, now: i64) -> Result<usize, StoreError> {
    let ties = ties_with_stored(conn, writes).await?;
    for tie in &ties {
        execute!(conn, REQUEST, tie.id.as_str(), tie.object_type, tie.created, now + DEBOUNCE_SECS)?;
    }
    if !ties.is_empty() {
        tracing::debug!(objects = ties.len(), "same-second ties recorded for a fetch from Stripe");
    }
    Ok(ties.len())
}

impl Store {
    /// The requests due at `now`, oldest first, at most `limit`.
    pub async fn due_refetches(&self, now: i64, limit: i64) -> Result<Vec<RefetchRequest>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, RefetchRequest, DUE, now, limit)).await
    }

    /// The request is answered (or given up): forget it, unless a newer tie moved it on.
    pub async fn settle_refetch(&self, request: &RefetchRequest) -> Result<(), StoreError> {
        self.with_conn(async |c| execute!(c, SETTLE, request.object_id.as_str(), request.due_at)).await?;
        Ok(())
    }

    /// Try the request again at `next`.
    pub async fn retry_refetch(&self, request: &RefetchRequest, next: i64) -> Result<(), StoreError> {
        self.with_conn(async |c| execute!(c, RETRY, request.object_id.as_str(), request.due_at, next)).await?;
        Ok(())
    }

    /// Objects waiting to be fetched.
    pub async fn pending_refetches(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = self.with_conn(async |c| fetch!(c, fetch_one, (i64,), PENDING)).await?;
        Ok(n)
    }

    /// Record same-second ties for fetching from Stripe (set at startup when a Stripe key is
    /// configured; off, the projector does no extra work for them).
    pub fn enable_tie_refetch(&self) {
        self.log_signals().refetch_ties.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn refetches_ties(&self) -> bool {
        self.log_signals().refetch_ties.load(std::sync::atomic::Ordering::Relaxed)
    }
}
