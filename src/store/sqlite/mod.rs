//! SQLite backend: the embedded default. WAL, `synchronous=FULL` (an acknowledged event
//! survives power loss; group commit pays the fsync once per batch), and write transactions
//! opened with `BEGIN IMMEDIATE` so they queue on `busy_timeout` instead of failing.
//!
//! Event batches are the exception: they commit on their own connection with
//! `synchronous=NORMAL` and are made durable by [`wal_sync::WalSync`] (an fsync of the WAL
//! after the commit, before any acknowledgement), so the next batch need not wait for the
//! disk. Same guarantee as `FULL` for every acknowledged event; see README "Durability".

pub(crate) mod append;
mod checkpoint;
pub(crate) mod inbox;
pub(crate) mod ingest;
pub(crate) mod lock;
pub(crate) mod many_rows;
mod outbox;
pub mod wal_sync;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::domain::event::Event;
use crate::store::health::Health;
use crate::store::reactions::Hook;
use crate::store::{Durability, IngestOptions, Ingested, LogSignals, StoreError};
use checkpoint::Checkpointer;
use inbox::Inbox;
use wal_sync::WalSync;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for SQLite's lock before giving up (then the webhook gets 503).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 8;

/// Page cache of the ingest connection (negative: KiB). The default 2 MB made it re-read
/// index pages from the OS on every batch.
const INGEST_CACHE_SIZE: &str = "-16384";

/// Rewrites the cursor row with its own value: a real page write, no change.
const PROBE_WRITE: &str = "UPDATE projector_cursor SET position = position WHERE id = 1";

/// A SQLite database file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection, for log appends only (`synchronous=NORMAL` + `wal`).
    ingest_pool: SqlitePool,
    /// One connection, for the projector's transactions (`synchronous=NORMAL` + `wal`).
    project_pool: SqlitePool,
    signals: Arc<LogSignals>,
    health: Arc<Health>,
    /// `None` for an in-memory database (nothing to make durable).
    wal: Option<WalSync>,
    /// Copies the WAL into the database file in the background (`None` in memory): the
    /// append and projector connections never checkpoint themselves.
    checkpointer: Option<Checkpointer>,
    reactor: Option<Hook>,
    /// The database file (`None` in memory): the append thread reads its log for duplicates.
    file: Option<std::path::PathBuf>,
    /// Where webhooks are appended (`None` in memory: they go straight to the log).
    inbox: Option<Arc<Inbox>>,
    /// The `livemode` of the events projected; `None`: every event (tools without settings).
    acts_on: Option<bool>,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let health = Arc::new(Health::default());
        let file = (!in_memory).then(|| options.get_filename().to_path_buf());
        let (wal, checkpointer) = if in_memory {
            (None, None)
        } else {
            let io = |e| StoreError::Unavailable(sqlx::Error::Io(e));
            let wal = WalSync::start(options.get_filename().to_path_buf(), wal_sync::LOG_PART, health.clone()).map_err(io)?;
            (Some(wal), Some(Checkpointer::start(options.get_filename().to_path_buf()).map_err(io)?))
        };
        let mut ingest_options = options
            .synchronous(if in_memory { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
            .pragma("cache_size", INGEST_CACHE_SIZE);
        if checkpointer.is_some() {
            ingest_options = ingest_options.pragma("wal_autocheckpoint", "0");
        }
        let ingest_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(ingest_options.clone())
            .await?;
        // The projector takes the write lock by trying again every half millisecond, not
        // through SQLite's sleeping busy handler (`lock`).
        // Statement journals in memory: a pass's many-row statements outgrew SQLite's 64 KiB
        // before it spills them to a temporary file, and writing that file was 4 % of the
        // projector connection's time. A statement's journal holds the pages it changes, so
        // it is bounded by the pass (`PROJECT_BATCH`).
        let project_options = ingest_options.busy_timeout(Duration::ZERO).pragma("temp_store", "MEMORY");
        let project_pool =
            SqlitePoolOptions::new().max_connections(1).acquire_timeout(BUSY_TIMEOUT).connect_with(project_options).await?;
        let inbox = match &file {
            Some(file) => Some(Inbox::open(file, health.clone()).await?),
            None => None,
        };
        Ok(Self {
            pool,
            ingest_pool,
            project_pool,
            signals: Arc::default(),
            health,
            wal,
            checkpointer,
            reactor: None,
            file,
            inbox,
            acts_on: None,
        })
    }

    /// Close both pools, waiting for connections to be returned.
    pub async fn close(&self) {
        if let Some(c) = &self.checkpointer {
            c.stop();
        }
        if let Some(inbox) = &self.inbox {
            inbox.close().await;
        }
        crate::store::close_pool(&self.ingest_pool, "ingest").await;
        crate::store::close_pool(&self.project_pool, "project").await;
        crate::store::close_pool(&self.pool, "main").await;
    }

    /// Install the event-reaction hook (dunning, lifecycle emails).
    pub fn set_reactor(&mut self, reactor: Hook) {
        self.reactor = Some(reactor);
    }

    pub(crate) fn reactor(&self) -> Option<Hook> {
        self.reactor.clone()
    }

    /// Project only events whose `livemode` is `livemode` (the instance's Stripe mode).
    pub fn set_acts_on(&mut self, livemode: bool) {
        self.acts_on = Some(livemode);
    }

    pub(crate) fn acts_on(&self) -> Option<bool> {
        self.acts_on
    }

    pub(crate) fn log_signals(&self) -> &LogSignals {
        &self.signals
    }

    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// What the webhook append thread needs (`None` in memory: a connection of its own would
    /// open another, empty database).
    pub(crate) fn append_parts(&self) -> Option<append::Parts> {
        Some(append::Parts {
            log: self.file.clone()?,
            inbox: self.inbox.clone()?,
            signals: self.signals.clone(),
            health: self.health.clone(),
            store_pool: self.ingest_pool.clone(),
        })
    }

    /// The webhook inbox (`None` in memory).
    pub(crate) fn inbox(&self) -> Option<&Inbox> {
        self.inbox.as_deref()
    }

    /// Copy the inbox's next rows (at most `limit`) into the log; how many were copied.
    pub(crate) async fn drain_inbox(&self, limit: i64) -> Result<usize, StoreError> {
        self.make_way_for_checkpoint().await;
        match &self.inbox {
            Some(inbox) => inbox.drain(&self.project_pool, limit).await,
            None => Ok(0),
        }
    }

    /// Copy the whole inbox into the log and make the copy durable (a backup, `forget`).
    pub(crate) async fn drain_inbox_fully(&self) -> Result<(), StoreError> {
        while self.drain_inbox(crate::ingest::project::PROJECT_BATCH).await? > 0 {}
        self.durable().await?;
        if let Some(inbox) = &self.inbox {
            inbox.mark_durable(inbox.moved());
        }
        Ok(())
    }

    /// Before the projector takes the log's write lock: let a pending `RESTART` checkpoint
    /// have it first (`checkpoint`), or the WAL grows for as long as the projector is busy.
    pub(crate) async fn make_way_for_checkpoint(&self) {
        if let Some(c) = &self.checkpointer {
            c.make_way().await;
        }
    }

    /// The projector's connection.
    pub(crate) fn project_pool(&self) -> &SqlitePool {
        &self.project_pool
    }

    /// Wait until everything committed so far is durable (the WAL is synced).
    pub(crate) async fn durable(&self) -> Result<(), StoreError> {
        self.wait_durable(self.request_durable()).await
    }

    /// Ask for everything committed so far to be made durable, without waiting: the ticket
    /// for [`Self::wait_durable`] (`None`: an in-memory database, nothing to sync).
    pub(crate) fn request_durable(&self) -> Option<u64> {
        self.wal.as_ref().map(WalSync::request)
    }

    /// Wait until the commits before `ticket` was asked for are durable.
    pub(crate) async fn wait_durable(&self, ticket: Option<u64>) -> Result<(), StoreError> {
        if let (Some(w), Some(ticket)) = (&self.wal, ticket) {
            w.wait(ticket).await?;
        }
        Ok(())
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// See [`crate::store::Store::probe_append`].
    pub async fn probe_append(&self) -> Result<(), StoreError> {
        let mut conn = self.ingest_pool.acquire().await?;
        let probed = async {
            let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
            sqlx::query(PROBE_WRITE).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        }
        .await;
        if probed.is_err() {
            conn.close_on_drop();
        }
        probed
    }

    /// Append a batch to the log; returns once it is committed, with the log position of its
    /// last new event and what makes it durable. Nothing may be acknowledged before
    /// [`Durability::wait`] returns.
    pub async fn append_committed(
        &self,
        events: &[&Event],
        received_at: i64,
        options: IngestOptions,
    ) -> Result<(Vec<Ingested>, Option<i64>, Durability), StoreError> {
        let mut conn = self.ingest_pool.acquire().await?;
        let appended = async {
            let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
            let appended = ingest::append(&mut tx, events, received_at, options).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(appended)
        }
        .await;
        // A failed statement or commit (disk full, I/O error) can leave the connection inside
        // its transaction, and then every later batch fails on it: never reuse it after an
        // error. The pool opens a fresh one for the next batch (retried until it can).
        if appended.is_err() {
            conn.close_on_drop();
        }
        let (outcome, last) = appended?;
        if let Some(last) = last {
            self.signals.appended_head.fetch_max(last, std::sync::atomic::Ordering::Relaxed);
        }
        let wal = self.wal.as_ref().map(|w| (w.clone(), w.request()));
        let wake = last.map(|_| self.signals.appended.clone());
        Ok((outcome, last, Durability { wal, wake }))
    }
}

/// What this backend's unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::clock::Clock;
    use crate::domain::event::Event;
    use crate::store::Store;
    use crate::store::writer::Writer;

    /// A small `customer.created` event with the id `id`.
    pub(crate) fn event(id: &str) -> Event {
        let body = format!(
            r#"{{"id":"{id}","object":"event","type":"customer.created","created":10,"data":{{"object":{{"id":"cus_{id}","object":"customer"}}}}}}"#
        );
        Event::parse(body.as_bytes()).expect("valid event")
    }

    /// A migrated database file `name` in `dir`, its URL, and a webhook writer on it (the
    /// append thread; no projector runs).
    pub(crate) async fn store_with_writer(
        dir: &std::path::Path,
        name: &str,
    ) -> (Store, String, Writer, tokio::task::JoinHandle<()>) {
        let url = format!("sqlite://{}", dir.join(name).display());
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let (writer, task) = Writer::start(store.clone(), Clock::system());
        (store, url, writer, task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::store::Store;
    use crate::store::writer::Writer;

    use test_support::event;

    /// Leave the append connection as a failed commit does: SQLite has ended the
    /// transaction, sqlx still counts one open, so its next `BEGIN` is refused.
    async fn break_ingest_connection(s: &SqliteStore) {
        let mut conn = s.ingest_pool.acquire().await.expect("ingest connection");
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await.expect("begin");
        sqlx::query("ROLLBACK").execute(&mut *tx).await.expect("rollback behind sqlx's back");
        drop(tx);
    }

    /// `.cargo/config.toml` builds the bundled SQLite without memory statistics (a mutex on
    /// every allocation); a build that lost the setting fails here, not only in a benchmark.
    #[tokio::test]
    async fn the_bundled_sqlite_keeps_no_memory_statistics() {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await.expect("in-memory database");
        let (used,): (i64,) = sqlx::query_as("SELECT sqlite_compileoption_used('DEFAULT_MEMSTATUS=0')")
            .fetch_one(&mut conn)
            .await
            .expect("compile options");
        assert_eq!(used, 1, "SQLite was built without LIBSQLITE3_FLAGS from .cargo/config.toml");
    }

    /// The projector's statement journals stay in memory (`SqliteStore::connect`).
    #[tokio::test]
    async fn the_projector_connection_keeps_temporary_files_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::connect(&format!("sqlite://{}", dir.path().join("t.db").display())).await.expect("connect");
        let (temp_store,): (i64,) = sqlx::query_as("PRAGMA temp_store").fetch_one(store.project_pool()).await.expect("pragma");
        assert_eq!(temp_store, 2, "MEMORY");
        store.close().await;
    }

    #[tokio::test]
    async fn an_append_connection_left_inside_a_transaction_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let Store::Sqlite(s) = &store else { unreachable!("a sqlite URL") };

        break_ingest_connection(s).await;
        let first = s.append_committed(&[&event("evt_a")], 1, IngestOptions::WEBHOOK).await;
        assert!(first.is_err(), "the broken connection fails once");
        // The failed connection was closed; the next append gets a fresh one.
        let (outcome, _, durability) =
            s.append_committed(&[&event("evt_a")], 1, IngestOptions::WEBHOOK).await.expect("appended on a fresh connection");
        durability.wait().await.expect("durable");
        assert_eq!(outcome, vec![Ingested::Stored]);

        // Through the writer, the webhook itself is stored: the batch is retried alone.
        break_ingest_connection(s).await;
        let (writer, task) = Writer::start(store.clone(), Clock::system());
        assert_eq!(writer.submit(event("evt_b")).await, Ok(Ingested::Stored));
        assert_eq!(writer.submit(event("evt_c")).await, Ok(Ingested::Stored));
        assert!(store.health().faults().is_empty(), "{:?}", store.health().faults());
        drop(writer);
        task.await.expect("writer ends");
    }

    /// `crates/sqlx-sqlite` hands a statement's rows from its worker thread in chunks: across
    /// chunk boundaries every row still arrives once and in order, `fetch_optional` stops at
    /// the first, and an error after some rows reaches the caller (after the rows before it).
    #[tokio::test]
    async fn rows_cross_the_worker_in_chunks_whole_and_in_order() {
        use futures::StreamExt;
        use sqlx::Connection;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("rows.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("connect");
        const NUMBERS: &str = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000) SELECT x FROM n";

        let all: Vec<(i64,)> = sqlx::query_as(NUMBERS).fetch_all(&mut conn).await.expect("rows");
        assert_eq!(all.into_iter().map(|(x,)| x).collect::<Vec<_>>(), (1..=1000).collect::<Vec<_>>());

        let mut streamed = Vec::new();
        let mut rows = sqlx::query_as::<_, (i64,)>(NUMBERS).fetch(&mut conn);
        while let Some(row) = rows.next().await {
            streamed.push(row.expect("row").0);
        }
        drop(rows);
        assert_eq!(streamed, (1..=1000).collect::<Vec<_>>());

        let first: Option<(i64,)> = sqlx::query_as(NUMBERS).fetch_optional(&mut conn).await.expect("first row");
        assert_eq!(first, Some((1,)));
        let none: Option<(i64,)> = sqlx::query_as("SELECT 1 WHERE 0").fetch_optional(&mut conn).await.expect("no row");
        assert_eq!(none, None);

        // abs() of the smallest integer overflows: the 200th row is an error.
        const FAILS_AT_200: &str = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000) \
             SELECT CASE WHEN x = 200 THEN abs(-9223372036854775807 - 1) ELSE x END FROM n";
        let failed = sqlx::query_as::<_, (i64,)>(FAILS_AT_200).fetch_all(&mut conn).await;
        assert!(failed.is_err(), "the error after 199 rows is lost: {failed:?}");
        let mut before_error = 0;
        let mut rows = sqlx::query_as::<_, (i64,)>(FAILS_AT_200).fetch(&mut conn);
        let error = loop {
            match rows.next().await {
                Some(Ok(_)) => before_error += 1,
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        };
        drop(rows);
        assert_eq!(before_error, 199);
        assert!(error.is_some_and(|e| e.to_string().contains("overflow")), "the overflow reaches the caller");

        // The connection is usable after an error and after a statement stopped early.
        let (after,): (i64,) = sqlx::query_as("SELECT 42").fetch_one(&mut conn).await.expect("usable");
        assert_eq!(after, 42);
    }
}
