//! Postgres appends of the webhook writer: one statement per batch, on a connection each lane
//! keeps for itself.
//!
//! The statement is its own transaction (autocommit): the log's order lock, the rows and the
//! commit travel in one round trip, where a pooled transaction took five (the pool's liveness
//! ping, `BEGIN`, the lock, the insert, `COMMIT`). The commit waits for the WAL flush
//! (`synchronous_commit` as configured), so the batch is durable when the answer comes.

use std::collections::HashSet;
use std::time::Duration;

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

/// A batch that gets no answer in this time is answered 503 and its connection dropped (a
/// cut network can hang a socket for minutes); Stripe redelivers, a stored copy is then a
/// duplicate.
const APPEND_TIMEOUT: Duration = Duration::from_secs(3);

/// How one try failed.
enum Attempt {
    Failed(StoreError),
    /// No answer in time: not retried (the database is likely away; Stripe redelivers).
    TimedOut,
}

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
    pub(crate) async fn append(
        &mut self,
        events: &[&Event],
        received_at: i64,
    ) -> Result<(Vec<Ingested>, Option<i64>, Durability), StoreError> {
        // A connection kept between batches may have died meanwhile (a restarted or failed-over
        // database, an idle timeout): one quick failure on it is retried at once on a new one.
        // The insert skips ids already stored, so if the lost attempt did commit, the retry
        // answers its events as duplicates: stored either way.
        let reused = self.conn.is_some();
        let mut appended = self.attempt(events, received_at).await;
        if reused && matches!(&appended, Err(Attempt::Failed(e)) if !matches!(e, StoreError::Rejected(_))) {
            appended = self.attempt(events, received_at).await;
        }
        let (outcome, last) = appended.map_err(|a| match a {
            Attempt::Failed(e) => e,
            Attempt::TimedOut => StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the database did not answer the append in time",
            ))),
        })?;
        let signals = &self.store.signals;
        if let Some(last) = last {
            signals.appended_head.fetch_max(last, std::sync::atomic::Ordering::Relaxed);
        }
        Ok((outcome, last, Durability::at_commit(last.map(|_| signals.appended.clone()))))
    }

    /// One try, bounded by `APPEND_TIMEOUT`. One row's data leaves the connection as it was
    /// (the statement was its own transaction); any other failure drops it.
    async fn attempt(&mut self, events: &[&Event], received_at: i64) -> Result<(Vec<Ingested>, Option<i64>), Attempt> {
        let result = match tokio::time::timeout(APPEND_TIMEOUT, self.try_append(events, received_at)).await {
            Ok(Ok(done)) => return Ok(done),
            Ok(Err(e)) => Attempt::Failed(e),
            Err(_) => Attempt::TimedOut,
        };
        if !matches!(result, Attempt::Failed(StoreError::Rejected(_))) {
            self.conn = None;
        }
        Err(result)
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
