//! Postgres appends of the webhook writer: one statement per batch, on a connection each lane
//! keeps for itself.
//!
//! The statement is its own transaction (autocommit): the log's order lock, the rows and the
//! commit travel in one round trip, where a pooled transaction took five (the pool's liveness
//! ping, `BEGIN`, the lock, the insert, `COMMIT`). The commit waits for the WAL flush
//! (`synchronous_commit` as configured), so the batch is durable when the answer comes.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use sqlx::PgConnection;

use crate::domain::event::Event;
use crate::store::batch::first_occurrences;
use crate::store::postgres::PgStore;
use crate::store::{Durability, Ingested, StoreError};

/// The uncorrelated sub-select is evaluated once, before the first row is produced (an
/// InitPlan), so the order lock is held before any `seq` is drawn and until the statement's
/// own commit: log positions become visible in increasing order, as with the transaction the
/// importers use (same lock key).
const APPEND_EVENTS: &str = "INSERT INTO stripe_events (id, type, created, livemode, api_version, account, payload, received_at, notify) \
     SELECT u.id, u.type, u.created, u.livemode, u.api_version, u.account, u.payload, $8, true \
     FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::bool[], $5::text[], $6::text[], $7::text[]) \
     WITH ORDINALITY AS u(id, type, created, livemode, api_version, account, payload, n) \
     WHERE (SELECT true FROM pg_advisory_xact_lock(7242101140)) ORDER BY u.n \
     ON CONFLICT (id) DO NOTHING RETURNING id, seq";

/// The most a batch waits for the log before its webhooks get 503, every try included. A
/// database slowed down for a few seconds (a checkpoint writing at full speed, a failover,
/// a busy disk) answers within it, and its webhooks are stored at the first delivery; one
/// that is away or cut off (a dead socket can hang for minutes) is given up on, and Stripe
/// redelivers later: a copy stored meanwhile is then a duplicate.
const APPEND_DEADLINE: Duration = Duration::from_secs(10);

/// The pause before a failed batch is tried again on a fresh connection (none before the
/// first retry of a kept connection: it most likely died while idle), doubled each time.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// One writer lane's connection (opened on first use and again after any failure).
#[derive(Debug)]
pub(crate) struct Lane {
    store: PgStore,
    conn: Option<PgConnection>,
}

impl Lane {
    pub(crate) fn new(store: PgStore) -> Self {
        Self { store, conn: None }
    }

    /// Append the webhooks `events` received at `received_at`; returns once committed and
    /// durable, with each event's outcome and the log position of the last new one.
    ///
    /// A failure that another try may cure is tried again, on a fresh connection, until
    /// `APPEND_DEADLINE`: a kept connection that died meanwhile (a restarted database, an
    /// idle timeout) and a database that is briefly refusing or slow. The insert skips ids
    /// already stored, so if a lost try did commit, the next one answers its events as
    /// duplicates: stored either way.
    pub(crate) async fn append(
        &mut self,
        events: &[&Event],
        received_at: i64,
    ) -> Result<(Vec<Ingested>, Option<i64>, Durability), StoreError> {
        let deadline = Instant::now() + APPEND_DEADLINE;
        let mut pause = Duration::ZERO;
        let (outcome, last) = loop {
            let kept = self.conn.is_some();
            let error = match timeout_at(deadline, self.try_append(events, received_at)).await {
                Ok(Ok(done)) => break done,
                Ok(Err(e)) => e,
                Err(_) => {
                    self.conn = None;
                    return Err(no_answer_in_time());
                }
            };
            // One row's data leaves the connection as it was (the statement was its own
            // transaction); any other failure drops it.
            if !matches!(error, StoreError::Rejected(_)) {
                self.conn = None;
            }
            let retry = worth_another_try(&error, kept) && Instant::now() + pause < deadline;
            if !retry {
                return Err(error);
            }
            tracing::debug!(error = ?error, pause_ms = pause.as_millis() as u64, "append failed; trying again");
            tokio::time::sleep(pause).await;
            pause = if pause.is_zero() { FIRST_RETRY_PAUSE } else { (pause * 2).min(MAX_RETRY_PAUSE) };
        };
        let signals = &self.store.signals;
        if let Some(last) = last {
            signals.appended_head.fetch_max(last, std::sync::atomic::Ordering::Relaxed);
        }
        Ok((outcome, last, Durability::at_commit(last.map(|_| signals.appended.clone()))))
    }

    async fn try_append(&mut self, events: &[&Event], received_at: i64) -> Result<(Vec<Ingested>, Option<i64>), StoreError> {
        // A closed store appends nothing, though this connection is not the pool's.
        if self.store.pool.is_closed() {
            self.conn = None;
            return Err(StoreError::Unavailable(sqlx::Error::PoolClosed));
        }
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self.conn.insert(self.store.dedicated_connection().await?),
        };
        let (firsts, _repeats) = first_occurrences(events);
        let n = firsts.len();
        let (mut ids, mut kinds, mut created, mut livemode) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut versions, mut accounts, mut payloads) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for &i in &firsts {
            let e = events[i];
            ids.push(e.id.as_str());
            kinds.push(e.kind.as_str());
            created.push(e.created);
            livemode.push(e.livemode);
            versions.push(e.api_version.as_deref());
            accounts.push(e.account.as_deref());
            payloads.push(e.raw.as_str());
        }
        let inserted: Vec<(String, i64)> = sqlx::query_as(APPEND_EVENTS)
            .bind(ids)
            .bind(kinds)
            .bind(created)
            .bind(livemode)
            .bind(versions)
            .bind(accounts)
            .bind(payloads)
            .bind(received_at)
            .fetch_all(&mut *conn)
            .await?;
        let last = inserted.iter().map(|(_, seq)| *seq).max();
        let inserted: HashSet<String> = inserted.into_iter().map(|(id, _)| id).collect();
        let mut outcome = vec![Ingested::Duplicate; events.len()];
        for &i in &firsts {
            if inserted.contains(&events[i].id) {
                outcome[i] = Ingested::Stored;
            }
        }
        Ok((outcome, last))
    }
}

/// Whether a failed try may succeed if made again: the database was unavailable (refused,
/// busy, out of a resource), or a kept connection failed in any way but the data's own (a
/// connection that died while idle fails with whatever error its socket gives).
fn worth_another_try(error: &StoreError, on_kept_connection: bool) -> bool {
    match error {
        // The store was closed (shutting down): no try will succeed.
        StoreError::Unavailable(sqlx::Error::PoolClosed) => false,
        StoreError::Unavailable(_) => true,
        StoreError::Rejected(_) => false,
        _ => on_kept_connection,
    }
}

/// The deadline passed with the batch neither stored nor refused.
fn no_answer_in_time() -> StoreError {
    StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the database did not store the batch in time",
    )))
}
