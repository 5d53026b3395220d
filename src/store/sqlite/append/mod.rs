//! The SQLite append thread: webhooks reach the inbox (`sqlite::inbox`, drained into the event
//! log by the projector) through one OS thread that owns synchronous connections of its own
//! (rusqlite, the same libsqlite3 sqlx links).
//!
//! Why a thread and not the group-commit task on sqlx's pool: sqlx runs every SQLite
//! statement on a per-connection worker thread and hands it back, two thread wake-ups per
//! statement, and a profile of the old path showed those hand-offs and the scheduler's
//! wake-ups taking most of the CPU of an acknowledged event. Here the thread takes everything
//! waiting on its channel, inserts it with one prepared statement reused for every row,
//! commits, and answers each handler through its oneshot channel: per batch, one wake-up of
//! this thread and one of the WAL syncer, whatever the batch size.
//!
//! The promises are those of the group-commit writer it replaces: the commit runs with
//! `synchronous=NORMAL` and nobody hears "stored" before [`WalSync`] has synced the WAL over
//! it; while batch N syncs, batch N+1 is built and committed (at most two in flight); a
//! duplicate id is answered `Duplicate`; a row SQLite refuses (a value its column can't hold)
//! fails alone; a failure of the path itself marks `/readyz` and a probe write heals it.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::TransactionBehavior;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::store::health::Health;
use crate::store::sqlite::inbox::Inbox;
use crate::store::sqlite::wal_sync::{SyncFailed, WalSync};
use crate::store::writer::{PART, PROBE_EVERY, Request, WriteError, note_failure_in};
use crate::store::{Ingested, LogSignals, StoreError};

mod connection;

use connection::{Connections, insert_all, open, store_error};

/// A real page write of the inbox that changes nothing anyone reads.
const PROBE_WRITE: &str = "INSERT INTO inbox_probe (id, at) VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET at = at + 1";

/// Most events committed together; bounds a transaction's size and latency.
const MAX_BATCH: usize = 512;
/// What the thread needs of the store.
pub(crate) struct Parts {
    /// The database file (its log is read for duplicates).
    pub log: PathBuf,
    /// Where events are appended, and its WAL syncer.
    pub inbox: Arc<Inbox>,
    pub signals: Arc<LogSignals>,
    pub health: Arc<Health>,
    /// The store's append pool: once the store is closed, so is this path.
    pub store_pool: sqlx::SqlitePool,
}

/// Start the append thread on the inbox of `parts.log`, serving `rx` until every
/// sender is dropped (then it commits what was queued, answers it and ends; the task returned
/// ends with it).
pub(crate) fn start(parts: Parts, clock: Clock, rx: mpsc::Receiver<Request>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let (done, ended) = oneshot::channel::<()>();
    let thread = AppendThread { parts, clock, handle: Handle::current(), conn: None };
    std::thread::Builder::new().name("sqlite-append".into()).spawn(move || {
        thread.run(rx);
        let _ = done.send(());
    })?;
    Ok(tokio::spawn(async move {
        let _ = ended.await;
    }))
}

struct AppendThread {
    parts: Parts,
    clock: Clock,
    /// The runtime the handlers live on: the thread waits on its channels and timers.
    handle: Handle,
    /// Opened on first use and after any failure of the path (a failed commit can leave a
    /// connection inside its transaction: never reuse it).
    conn: Option<Connections>,
}

/// A committed batch waiting for the WAL sync that makes it durable.
struct Committed {
    requests: Vec<Request>,
    /// Per request: its log position when new, `None` for a duplicate, or why it was refused.
    outcomes: Vec<Result<Option<i64>, StoreError>>,
    ticket: u64,
}

enum Next {
    Received(usize),
    Durable(Result<(), SyncFailed>),
    Probe,
}

impl AppendThread {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
        let mut pending: Option<Committed> = None;
        loop {
            let probing = pending.is_none() && self.parts.health.is_faulty(PART);
            let wal = self.parts.inbox.wal().clone();
            let next = self.handle.block_on(async {
                tokio::select! {
                    biased;
                    n = rx.recv_many(&mut batch, MAX_BATCH) => Next::Received(n),
                    r = durable(&wal, pending.as_ref()) => Next::Durable(r),
                    () = probe_timer(probing) => Next::Probe,
                }
            });
            match next {
                Next::Received(0) => break,
                Next::Received(_) => {
                    let committed = self.commit(std::mem::take(&mut batch));
                    batch.reserve(MAX_BATCH);
                    // Two batches in flight at most: the older one must be durable before
                    // the thread takes more (its sync has mostly run during this commit).
                    if let Some(older) = pending.take() {
                        let synced = self.handle.block_on(wal.wait(older.ticket));
                        self.answer(older, synced);
                    }
                    pending = committed;
                }
                Next::Durable(synced) => {
                    if let Some(p) = pending.take() {
                        self.answer(p, synced);
                    }
                }
                Next::Probe => self.probe(),
            }
        }
        if let Some(p) = pending.take() {
            let synced = self.handle.block_on(self.parts.inbox.wal().wait(p.ticket));
            self.answer(p, synced);
        }
    }

    /// Append and commit `requests`. `None` when they were answered already (the batch
    /// failed); else the batch waiting for its sync.
    fn commit(&mut self, requests: Vec<Request>) -> Option<Committed> {
        let received_at = self.clock.now();
        match self.append(&requests, received_at) {
            Ok(outcomes) => {
                self.parts.health.healed(PART);
                if let Some(last) = outcomes.iter().filter_map(|o| o.as_ref().ok().copied().flatten()).max() {
                    self.parts.inbox.appended(last);
                }
                let ticket = self.parts.inbox.wal().request();
                Some(Committed { requests, outcomes, ticket })
            }
            Err(e) if !matches!(e, StoreError::Unavailable(_)) => {
                // One bad event must not fail its neighbours, and a broken connection must not
                // fail a webhook a fresh one can store: retry each event alone.
                tracing::warn!(error = ?e, batch_size = requests.len(), "batch failed; retrying events one by one");
                for request in requests {
                    let one = std::slice::from_ref(&request);
                    let result = match self.append(one, received_at) {
                        Ok(mut outcomes) => {
                            let wal = self.parts.inbox.wal();
                            match self.handle.block_on(wal.wait(wal.request())) {
                                Ok(()) => outcomes.pop().unwrap_or(Ok(None)),
                                Err(e) => Err(StoreError::NotDurable(e)),
                            }
                        }
                        Err(e) => Err(e),
                    };
                    if let Ok(Some(position)) = result {
                        self.parts.inbox.appended(position);
                        self.parts.signals.appended.notify_one();
                    }
                    let answer = self.outcome(&request, result);
                    if answer.is_ok() {
                        self.parts.health.healed(PART);
                    }
                    let _ = request.reply.send(answer);
                }
                None
            }
            Err(e) => {
                note_failure_in(&self.parts.health, &e);
                tracing::error!(error = ?e, batch_size = requests.len(), "batch not stored");
                let kind = WriteError::from(&e);
                for request in requests {
                    let _ = request.reply.send(Err(kind));
                }
                None
            }
        }
    }

    /// Insert `requests` in one transaction. A row SQLite refuses for its data fails alone (the
    /// statement is undone, the transaction goes on); any other failure fails the batch and
    /// drops the connection.
    fn append(&mut self, requests: &[Request], received_at: i64) -> Result<Vec<Result<Option<i64>, StoreError>>, StoreError> {
        self.check_open()?;
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self.conn.insert(open(self.parts.inbox.path(), &self.parts.log).map_err(store_error)?),
        };
        let appended = insert_all(conn, requests, received_at);
        if appended.is_err() {
            self.conn = None;
        }
        appended
    }

    /// A closed store appends nothing (its connection here is closed with it).
    fn check_open(&mut self) -> Result<(), StoreError> {
        if self.parts.store_pool.is_closed() {
            self.conn = None;
            return Err(StoreError::Unavailable(sqlx::Error::PoolClosed));
        }
        Ok(())
    }

    /// Answer a committed batch once its sync returned, and wake the projector.
    fn answer(&self, committed: Committed, synced: Result<(), SyncFailed>) {
        let Committed { requests, outcomes, .. } = committed;
        match synced {
            Ok(()) => {
                tracing::debug!(batch_size = requests.len(), "batch committed");
                if outcomes.iter().any(|o| matches!(o, Ok(Some(_)))) {
                    self.parts.signals.appended.notify_one();
                }
                for (request, outcome) in requests.into_iter().zip(outcomes) {
                    let answer = self.outcome(&request, outcome);
                    // A handler that gave up (client went away) is not an error.
                    let _ = request.reply.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = ?e, batch_size = requests.len(), "batch committed but not durable");
                let kind = WriteError::from(&StoreError::NotDurable(e));
                for request in requests {
                    let _ = request.reply.send(Err(kind));
                }
            }
        }
    }

    fn outcome(&self, request: &Request, outcome: Result<Option<i64>, StoreError>) -> Result<Ingested, WriteError> {
        match outcome {
            Ok(Some(_)) => Ok(Ingested::Stored),
            Ok(None) => Ok(Ingested::Duplicate),
            Err(e) => {
                note_failure_in(&self.parts.health, &e);
                tracing::error!(error = ?e, stripe.event_id = %request.event.id.escape_debug(), "event not stored");
                Err(WriteError::from(&e))
            }
        }
    }

    /// While appends fail and no webhook comes: a write of our own, so `/readyz` turns ready
    /// again by itself once the cause is gone.
    fn probe(&mut self) {
        if self.check_open().is_err() {
            return;
        }
        let probed = (|| {
            let conn = match self.conn.as_mut() {
                Some(c) => c,
                None => self.conn.insert(open(self.parts.inbox.path(), &self.parts.log)?),
            };
            let tx = conn.inbox.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(PROBE_WRITE, [])?;
            tx.commit()
        })();
        match probed {
            Ok(()) => self.parts.health.healed(PART),
            Err(e) => {
                self.conn = None;
                tracing::debug!(error = ?e, "append probe failed");
            }
        }
    }
}

/// Resolves when `pending`'s sync returned; never without a pending batch.
async fn durable(wal: &WalSync, pending: Option<&Committed>) -> Result<(), SyncFailed> {
    match pending {
        Some(p) => wal.wait(p.ticket).await,
        None => std::future::pending().await,
    }
}

/// Resolves after [`PROBE_EVERY`] when probing; never otherwise.
async fn probe_timer(probing: bool) {
    if probing {
        tokio::time::sleep(PROBE_EVERY).await;
    } else {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::Store;
    use crate::store::sqlite::test_support::{event, store_with_writer};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_wait_out_a_lock_held_elsewhere_and_answer_duplicates() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, url, writer, task) = store_with_writer(dir.path(), "a.db").await;
        let mut other = sqlx::SqliteConnection::connect(&url).await.expect("second connection");

        // Another connection holds the inbox's write lock while the webhooks arrive: they
        // queue and are stored once it is released, not refused.
        let mut holder = sqlx::SqliteConnection::connect(&format!("{url}-inbox")).await.expect("inbox connection");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.expect("write lock");
        let answers: Vec<_> = ["evt_1", "evt_2", "evt_1", "evt_3"]
            .into_iter()
            .map(|id| {
                let w = writer.clone();
                tokio::spawn(async move { w.submit(event(id)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(answers.iter().all(|a| !a.is_finished()), "nothing is answered while the inbox is locked");
        sqlx::query("COMMIT").execute(&mut holder).await.expect("release");
        let mut results = Vec::new();
        for a in answers {
            results.push(a.await.expect("task").expect("stored"));
        }
        assert_eq!(results.iter().filter(|r| **r == Ingested::Stored).count(), 3, "{results:?}");
        assert_eq!(results.iter().filter(|r| **r == Ingested::Duplicate).count(), 1, "{results:?}");

        // The events wait in the inbox, each once; the head is known to the projector's waiters.
        let inbox_url = format!("sqlite://{}-inbox", dir.path().join("a.db").display());
        let mut inbox = sqlx::SqliteConnection::connect(&inbox_url).await.expect("inbox");
        let (rows, head): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), MAX(seq) FROM webhook_inbox").fetch_one(&mut inbox).await.expect("count");
        assert_eq!(rows, 3);
        let Store::Sqlite(s) = &store else { unreachable!("a SQLite store") };
        assert_eq!(s.inbox().expect("inbox").head(), head, "the projector's waiters know the head");

        // A pass copies them into the log; the pass after it deletes them from the inbox.
        store.project_batch(10, 0).await.expect("pass");
        store.project_batch(10, 0).await.expect("pass");
        let (logged,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM stripe_events").fetch_one(&mut other).await.expect("count");
        assert_eq!(logged, 3);
        let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM webhook_inbox").fetch_one(&mut inbox).await.expect("count");
        assert_eq!(left, 0, "copied rows leave the inbox");

        // A redelivery later is a duplicate, found in the log; nothing was stored twice.
        assert_eq!(writer.submit(event("evt_2")).await, Ok(Ingested::Duplicate));
        let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM webhook_inbox").fetch_one(&mut inbox).await.expect("count");
        assert_eq!(left, 0);
        assert!(store.health().faults().is_empty(), "{:?}", store.health().faults());
        drop(writer);
        task.await.expect("the append thread ends once every handle is gone");
    }
}
