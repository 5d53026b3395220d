//! Group commit of the event log: one writer owns the append path. Handlers hand it their
//! event and wait; it takes everything waiting, appends it in one transaction, then answers
//! each handler. Appending is all it does: the projector applies the log behind it. A batch
//! costs one fsync (SQLite) or one commit round trip (Postgres) however many webhooks it
//! carries, and no handler hears "stored" before its event is durable.
//!
//! SQLite (a file): the writer is an OS thread with a connection of its own
//! (`sqlite::append`). Postgres: `POSTGRES_LANES` tasks, each appending with one statement on
//! a connection of its own (`postgres::append`). An in-memory SQLite database (tools, tests)
//! goes through the store's pool from one task.
//!
//! Pipelined: once a batch is committed, its durability (the SQLite WAL sync) is waited for
//! apart, while the next batch is built and committed. At most `IN_FLIGHT` batches are
//! between start and durable: more would only make them smaller (each commit writes every
//! page it touched, so small batches cost more per event) without making the disk faster.

use std::time::Instant;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::domain::event::Event;
use crate::store::{IngestOptions, Ingested, Store, StoreError};

/// Most events committed together; bounds a transaction's size and latency.
const MAX_BATCH: usize = 512;
/// Webhooks that may wait for the writer before handlers feel back-pressure.
const QUEUE_DEPTH: usize = 8192;
/// Batches being written or synced at once: one syncing while the next is built.
const IN_FLIGHT: usize = 2;

/// Why an event could not be stored (the cause is logged once, by the writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("database unavailable")]
    Unavailable,
    #[error("database error")]
    Failed,
    /// The database refuses this event's data (a value a column can't hold): retrying the
    /// same event can't succeed. Its neighbours in the batch were stored.
    #[error("the database refuses this event's data")]
    Refused,
    #[error("storage writer stopped")]
    Stopped,
}

impl From<&StoreError> for WriteError {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable,
            // Not stored durably: 503, so Stripe retries (the README's promise for a failed fsync).
            StoreError::NotDurable(_) => Self::Unavailable,
            StoreError::WriterGone => Self::Stopped,
            StoreError::Rejected(_) => Self::Refused,
            _ => Self::Failed,
        }
    }
}

/// The part named in `/readyz` while appends fail.
pub(crate) const PART: &str = "event_log_append";
/// While appends fail and no webhook comes, the writer tries a write of its own this often, so
/// `/readyz` turns ready again by itself once the cause (disk full, no descriptors) is gone.
pub(crate) const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// One webhook waiting to be stored, and where its answer goes.
pub(crate) struct Request {
    pub(crate) event: Event,
    pub(crate) reply: oneshot::Sender<Result<Ingested, WriteError>>,
}

/// Postgres: independent writers ("lanes"). Appends take one lock to their commit (the log's
/// order is its commit order), so lanes don't write together; a second lane gathers and
/// sends its batch while the first commits.
const POSTGRES_LANES: usize = 2;

/// Handle to the group-commit writer; cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    lanes: Arc<[mpsc::Sender<Request>]>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("event_id", &self.event.id).finish()
    }
}

impl Writer {
    /// Start the writer. It ends when every `Writer` handle is dropped, after committing
    /// what was already queued. SQLite (a file): one OS thread with its own connection (see
    /// `sqlite::append`); Postgres: `POSTGRES_LANES` tasks, each with its own connection.
    pub fn start(store: Store, clock: Clock) -> (Self, tokio::task::JoinHandle<()>) {
        if let Store::Sqlite(s) = &store
            && let Some(parts) = s.append_parts()
        {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            match crate::store::sqlite::append::start(parts, clock.clone(), rx) {
                Ok(task) => return (Self { lanes: Arc::from([tx]) }, task),
                Err(e) => tracing::warn!(error = %e, "no thread for SQLite appends; appending from a task"),
            }
        }
        let count = match store {
            Store::Sqlite(_) => 1,
            Store::Postgres(_) => POSTGRES_LANES,
        };
        let mut lanes = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH / count);
            lanes.push(tx);
            let lane = match &store {
                Store::Postgres(p) => Lane::Postgres(Box::new(crate::store::postgres::append::Lane::new(p.clone()))),
                Store::Sqlite(_) => Lane::Shared,
            };
            tasks.push(tokio::spawn(run(store.clone(), clock.clone(), lane, rx)));
        }
        let task = tokio::spawn(async move {
            for t in tasks {
                let _ = t.await;
            }
        });
        (Self { lanes: lanes.into() }, task)
    }

    /// Store one event; returns once it is committed (or known not to be).
    pub async fn submit(&self, event: Event) -> Result<Ingested, WriteError> {
        let (reply, answer) = oneshot::channel();
        let lane = &self.lanes[lane_of(&event, self.lanes.len())];
        lane.send(Request { event, reply }).await.map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }
}

/// The lane of an event: by its customer, so one customer's deliveries queue together.
fn lane_of(event: &Event, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    if lanes == 1 {
        return 0;
    }
    // Fixed keys (not RandomState): every replica and restart maps a customer the same way.
    let mut h = std::hash::DefaultHasher::new();
    crate::store::log::customer_key(event).hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

/// How a writer task reaches the database.
enum Lane {
    /// A connection of its own (Postgres).
    Postgres(Box<crate::store::postgres::append::Lane>),
    /// The store's append path (an in-memory SQLite database).
    Shared,
}

impl Lane {
    async fn append(&mut self, store: &Store, events: &[&Event], now: i64) -> AppendResult {
        match self {
            Self::Postgres(lane) => lane.append(events, now).await,
            Self::Shared => store.append_committed(events, now, IngestOptions::WEBHOOK).await,
        }
    }
}

type AppendResult = Result<(Vec<Ingested>, Option<i64>, crate::store::Durability), StoreError>;

async fn run(store: Store, clock: Clock, mut lane: Lane, mut rx: mpsc::Receiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut answering = JoinSet::new();
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // Wait for a slot first: webhooks arriving meanwhile join this batch.
        let Ok(slot) = in_flight.clone().acquire_owned().await else { break };
        let received = if store.health().is_faulty(PART) {
            tokio::select! {
                n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                () = tokio::time::sleep(PROBE_EVERY) => {
                    drop(slot);
                    match store.probe_append().await {
                        Ok(()) => store.health().healed(PART),
                        Err(e) => tracing::debug!(error = ?e, "append probe failed"),
                    }
                    continue;
                }
            }
        } else {
            rx.recv_many(&mut batch, MAX_BATCH).await
        };
        if received == 0 {
            break;
        }
        commit(&store, &clock, &mut lane, std::mem::take(&mut batch), slot, &mut answering).await;
        batch.reserve(MAX_BATCH);
        while answering.try_join_next().is_some() {}
    }
    // Answer the last batches before the task ends (shutdown waits for it).
    while answering.join_next().await.is_some() {}
}

async fn commit(
    store: &Store,
    clock: &Clock,
    lane: &mut Lane,
    batch: Vec<Request>,
    slot: OwnedSemaphorePermit,
    answering: &mut JoinSet<()>,
) {
    let started = Instant::now();
    let events: Vec<&Event> = batch.iter().map(|r| &r.event).collect();
    match lane.append(store, &events, clock.now()).await {
        Ok((outcomes, _, durability)) => {
            store.health().healed(PART);
            tracing::debug!(batch_size = batch.len(), duration_ms = started.elapsed().as_millis() as u64, "batch committed");
            answering.spawn(async move {
                let durable = durability.wait().await.map_err(|e| {
                    tracing::error!(error = ?e, batch_size = batch.len(), "batch committed but not durable");
                    WriteError::from(&e)
                });
                drop(slot);
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    // A handler that gave up (client went away) is not an error.
                    let _ = request.reply.send(durable.map(|()| outcome));
                }
            });
        }
        Err(e) if !matches!(e, StoreError::Unavailable(_)) => {
            // One bad event must not fail its neighbours, and a broken connection (closed by
            // the store after the error) must not fail a webhook that a fresh one can store:
            // retry each event alone.
            tracing::warn!(error = ?e, batch_size = batch.len(), "batch failed; retrying events one by one");
            // Once the database is unavailable, the rest of the batch is answered with that at
            // once: each event would otherwise wait out the append's own retries in turn.
            let mut unavailable = None;
            for request in batch {
                if let Some(kind) = unavailable {
                    let _ = request.reply.send(Err(kind));
                    continue;
                }
                let result = match lane.append(store, &[&request.event], clock.now()).await {
                    Ok((outcome, _, durability)) => durability.wait().await.map(|()| outcome),
                    Err(e) => Err(e),
                };
                let answer = result.map(|o| o[0]).map_err(|e| {
                    note_failure(store, &e);
                    tracing::error!(error = ?e, stripe.event_id = %request.event.id.escape_debug(), "event not stored");
                    if matches!(e, StoreError::Unavailable(_)) {
                        unavailable = Some(WriteError::from(&e));
                    }
                    WriteError::from(&e)
                });
                if answer.is_ok() {
                    store.health().healed(PART);
                }
                let _ = request.reply.send(answer);
            }
        }
        Err(e) => {
            note_failure(store, &e);
            tracing::error!(error = ?e, batch_size = batch.len(), "batch not stored");
            let kind = WriteError::from(&e);
            for request in batch {
                let _ = request.reply.send(Err(kind));
            }
        }
    }
}

/// A failure of the append path itself (not of one event's data) makes the process unready
/// until an append or a probe succeeds.
fn note_failure(store: &Store, e: &StoreError) {
    note_failure_in(store.health(), e);
}

/// [`note_failure`], given the store's health.
pub(crate) fn note_failure_in(health: &crate::store::health::Health, e: &StoreError) {
    if !matches!(e, StoreError::Rejected(_)) {
        health.fault(PART, format!("appending to the event log failed: {}", error_chain(e)));
    }
}

/// The error with its causes, for `/readyz` and logs (never carries event data: database
/// messages name tables and constraints, not values).
fn error_chain(e: &StoreError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod durability_tests {
    use super::*;
    use crate::store::sqlite::wal_sync::SyncFailed;

    #[test]
    fn a_failed_fsync_is_unavailable_not_a_database_error() {
        let e = StoreError::NotDurable(SyncFailed::Fsync);
        assert!(matches!(WriteError::from(&e), WriteError::Unavailable));
    }
}
