//! The webhook inbox: a SQLite file of its own (`<database>-inbox`) that accepted webhooks are
//! appended to, and that the projector drains into the event log.
//!
//! Why a second file: SQLite has one write lock per database file, and a projector pass holds
//! the log's from its first statement to its commit. While webhooks were appended to the log
//! itself, each batch of appends waited out the pass in progress, and acceptance at 64
//! concurrent webhooks was bound by that lock (a third of the CPU stood idle). Appends to the
//! inbox never wait for a projection; the projector copies the inbox's next rows into the log
//! in a short transaction of its own before each pass (`drain`), and deletes them from the
//! inbox once the pass that followed the copy is durable (`mark_durable`, then the next
//! drain's prune).
//!
//! What stays true:
//! - **Durable before "200".** An event is acknowledged once its inbox commit is synced
//!   (the inbox has its own WAL syncer), exactly as an append to the log was.
//! - **Once.** An id already in the inbox or in the log is answered as a duplicate (the
//!   append thread looks the batch's ids up in the log, read-only). The copy into the log
//!   skips an id the log holds, so a copy repeated after a crash (rows copied, not yet
//!   deleted) adds nothing.
//! - **Nothing lost.** Rows leave the inbox only after their copy in the log is durable.
//! - **Order.** Rows are copied in inbox order, so the log keeps arrival order.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::watch;

use crate::store::StoreError;
use crate::store::health::Health;
use crate::store::sqlite::checkpoint::Checkpointer;
use crate::store::sqlite::wal_sync::WalSync;
use crate::store::sqlite::{lock, many_rows};

/// Appended to the database file's name.
const SUFFIX: &str = "-inbox";

/// The inbox's one table, and the probe row the append thread rewrites to test its path.
/// The columns and checks are the log's (`stripe_events`): a row the log would refuse is
/// refused here, at the append, never at the copy. `AUTOINCREMENT`: a position is never
/// given twice, even once every row was copied and deleted (the drain reads after the last
/// position it copied).
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS webhook_inbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    created      BIGINT NOT NULL,
    livemode     INTEGER NOT NULL CHECK (livemode IN (0, 1)),
    api_version  TEXT,
    account      TEXT,
    payload      TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox_probe (id INTEGER PRIMARY KEY, at BIGINT NOT NULL);";

/// The next rows to copy, in arrival order.
const WINDOW: &str = "SELECT seq, id, type, created, livemode, api_version, account, payload, received_at \
     FROM webhook_inbox WHERE seq > $1 ORDER BY seq LIMIT $2";
/// Rows whose copy in the log is durable.
const PRUNE: &str = "DELETE FROM webhook_inbox WHERE seq <= $1";
/// Rows not copied into the log yet (by this process: after a restart the first drain
/// copies again what was left, and skips it).
const BACKLOG: &str = "SELECT COUNT(*), COALESCE(MIN(received_at), 0) FROM webhook_inbox WHERE seq > $1";
const IDS: &str = "SELECT id FROM webhook_inbox";
const LAST_ID: &str = "SELECT id FROM webhook_inbox ORDER BY seq DESC LIMIT 1";
const CANDIDATES: &str = "SELECT seq, payload FROM webhook_inbox WHERE payload LIKE '%' || $1 || '%'";
const SAVE_PAYLOAD: &str = "UPDATE webhook_inbox SET payload = $2 WHERE seq = $1";

/// The copy into the log: `ON CONFLICT DO NOTHING` skips ids the log holds (a copy repeated
/// after a crash, or an import that stored the same event); any other refusal fails the
/// drain loudly rather than dropping an acknowledged event.
const COPY_HEAD: &str =
    "INSERT INTO stripe_events (id, type, created, livemode, api_version, account, payload, received_at, notify) VALUES ";
const COPY_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, 1)";
const COPY_TAIL: &str = " ON CONFLICT (id) DO NOTHING";
const LOG_HEAD: &str = "SELECT COALESCE(MAX(rowid), 0) FROM stripe_events";

/// How long the inbox's own connection waits for a connection of its pool.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The inbox file of one database, shared by the store's clones.
#[derive(Debug)]
pub(crate) struct Inbox {
    path: PathBuf,
    /// One connection: reads the next rows, deletes copied ones, rewrites payloads (`forget`).
    pool: SqlitePool,
    /// Makes the append thread's commits durable before they are acknowledged.
    wal: WalSync,
    checkpointer: Checkpointer,
    /// The highest inbox row this process copied into the log (committed there).
    moved: AtomicI64,
    /// The highest inbox row whose copy in the log is durable: it may be deleted.
    durable: AtomicI64,
    /// The highest inbox row deleted by this process.
    pruned: AtomicI64,
    /// The highest inbox row this process appended (webhooks accepted here).
    head: AtomicI64,
    /// After each copy: the last inbox row copied, and the log's head once it was.
    drained: watch::Sender<Drained>,
    /// One drain at a time (the projector, a backup and `forget` may each drain).
    draining: tokio::sync::Mutex<()>,
}

/// Where the inbox's copy into the log stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Drained {
    pub inbox: i64,
    pub log_head: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    created: i64,
    livemode: bool,
    api_version: Option<String>,
    account: Option<String>,
    payload: String,
    received_at: i64,
}

/// The inbox file of the database file `db`.
pub(crate) fn path_for(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(SUFFIX);
    path.into()
}

impl Inbox {
    /// Open (or create) the inbox of the database file `db`, with its WAL syncer and
    /// checkpoint thread.
    pub(crate) async fn open(db: &Path, health: Arc<Health>) -> Result<Arc<Self>, StoreError> {
        let path = path_for(db);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Its writes wait for the append thread's lock by trying again (`lock`).
            .busy_timeout(Duration::ZERO);
        let pool = SqlitePoolOptions::new().max_connections(1).acquire_timeout(BUSY_TIMEOUT).connect_with(options).await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        let io = |e| StoreError::Unavailable(sqlx::Error::Io(e));
        let wal = WalSync::start(path.clone(), crate::store::sqlite::wal_sync::PART, health).map_err(io)?;
        let checkpointer = Checkpointer::start(path.clone()).map_err(io)?;
        Ok(Arc::new(Self {
            path,
            pool,
            wal,
            checkpointer,
            moved: AtomicI64::new(0),
            durable: AtomicI64::new(0),
            pruned: AtomicI64::new(0),
            head: AtomicI64::new(0),
            drained: watch::Sender::new(Drained::default()),
            draining: tokio::sync::Mutex::new(()),
        }))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn wal(&self) -> &WalSync {
        &self.wal
    }

    /// The append thread stored rows up to `seq`.
    pub(crate) fn appended(&self, seq: i64) {
        self.head.fetch_max(seq, Ordering::Relaxed);
    }

    /// The highest row this process appended (0: none).
    pub(crate) fn head(&self) -> i64 {
        self.head.load(Ordering::Relaxed)
    }

    /// The highest row copied into the log so far.
    pub(crate) fn moved(&self) -> i64 {
        self.moved.load(Ordering::Relaxed)
    }

    /// Rows up to `seq` have a durable copy in the log: the next drain deletes them.
    pub(crate) fn mark_durable(&self, seq: i64) {
        self.durable.fetch_max(seq, Ordering::Relaxed);
    }

    pub(crate) async fn close(&self) {
        self.checkpointer.stop();
        crate::store::close_pool(&self.pool, "inbox").await;
    }

    /// Delete the rows whose copy is durable, then copy the next (at most `limit`) rows into
    /// the log through `log` (the projector's connection), in one transaction there. Returns
    /// how many rows were copied (skipped duplicates included).
    pub(crate) async fn drain(&self, log: &SqlitePool, limit: i64) -> Result<usize, StoreError> {
        let _one_at_a_time = self.draining.lock().await;
        self.prune().await?;
        let rows: Vec<Row> = sqlx::query_as(WINDOW).bind(self.moved()).bind(limit).fetch_all(&self.pool).await?;
        let Some(last) = rows.last().map(|r| r.seq) else { return Ok(0) };
        let mut tx = lock::begin_immediate(log).await?;
        for (sql, chunk) in many_rows::statements(&rows, COPY_HEAD, COPY_ROW, COPY_TAIL) {
            let mut query = sqlx::query(sql);
            for r in chunk {
                query = query
                    .bind(&r.id)
                    .bind(&r.kind)
                    .bind(r.created)
                    .bind(r.livemode)
                    .bind(&r.api_version)
                    .bind(&r.account)
                    .bind(&r.payload)
                    .bind(r.received_at);
            }
            query.execute(&mut *tx).await?;
        }
        let (log_head,): (i64,) = sqlx::query_as(LOG_HEAD).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        self.moved.fetch_max(last, Ordering::Relaxed);
        self.drained.send_modify(|d| *d = Drained { inbox: d.inbox.max(last), log_head: d.log_head.max(log_head) });
        Ok(rows.len())
    }

    /// Delete the rows whose copy in the log is durable (one short write: the append thread
    /// waits for it at most that long).
    async fn prune(&self) -> Result<(), StoreError> {
        let durable = self.durable.load(Ordering::Relaxed);
        if durable > self.pruned.load(Ordering::Relaxed) {
            lock::retry_while_locked(|| sqlx::query(PRUNE).bind(durable).execute(&self.pool)).await?;
            self.pruned.fetch_max(durable, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Rows not copied into the log yet: how many, and the oldest one's receipt (0: none).
    pub(crate) async fn backlog(&self) -> Result<(i64, i64), StoreError> {
        Ok(sqlx::query_as(BACKLOG).bind(self.moved()).fetch_one(&self.pool).await?)
    }

    /// The ids of every row (copied or not).
    pub(crate) async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(IDS).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The id of the latest row (`None`: the inbox is empty).
    pub(crate) async fn last_id(&self) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_as(LAST_ID).fetch_optional(&self.pool).await?.map(|(id,): (String,)| id))
    }

    /// Wait until the rows up to `seq` are copied into the log; then the log's head as it was
    /// (every such row is at or before it). `None` at `deadline`.
    pub(crate) async fn wait_drained(&self, seq: i64, deadline: tokio::time::Instant) -> Option<i64> {
        let mut drained = self.drained.subscribe();
        tokio::select! {
            d = drained.wait_for(|d| d.inbox >= seq) => d.ok().map(|d| d.log_head),
            _ = tokio::time::sleep_until(deadline) => None,
        }
    }

    /// Rewrite the payload of every row `rewrite` changes (it gets the parsed payload and
    /// returns whether it changed it), among rows whose text contains `needle`. Returns how
    /// many changed.
    pub(crate) async fn rewrite_payloads(
        &self,
        needle: &str,
        mut rewrite: impl FnMut(&mut serde_json::Value) -> bool,
    ) -> Result<u64, StoreError> {
        let mut tx = lock::begin_immediate(&self.pool).await?;
        let rows: Vec<(i64, String)> = sqlx::query_as(CANDIDATES).bind(needle).fetch_all(&mut *tx).await?;
        let mut changed = 0;
        for (seq, payload) in rows {
            let Ok(mut json) = serde_json::from_str::<serde_json::Value>(&payload) else { continue };
            if rewrite(&mut json) {
                sqlx::query(SAVE_PAYLOAD).bind(seq).bind(json.to_string()).execute(&mut *tx).await?;
                changed += 1;
            }
        }
        tx.commit().await?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::event::Event;
    use crate::store::Store;
    use crate::store::sqlite::test_support::{event, store_with_writer};

    async fn log_ids(store: &Store) -> Vec<String> {
        let Store::Sqlite(s) = store else { unreachable!("a SQLite store") };
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM stripe_events ORDER BY rowid").fetch_all(s.pool()).await.expect("log");
        rows.into_iter().map(|(id,)| id).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_reach_the_log_in_order_once_and_leave_the_inbox_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, url, writer, task) = store_with_writer(dir.path(), "i.db").await;
        let Store::Sqlite(s) = &store else { unreachable!("a SQLite store") };
        let inbox = s.inbox().expect("a file database has an inbox");

        for id in ["evt_a", "evt_b", "evt_c"] {
            writer.submit(event(id)).await.expect("stored");
        }
        assert_eq!(inbox.backlog().await.expect("backlog").0, 3, "waiting to be copied");
        let lag = store.projector_lag(i64::MAX / 2).await.expect("lag");
        assert_eq!(lag.events, 3, "the lag counts what waits in the inbox");
        assert!(lag.seconds > 0, "and its age");
        assert!(log_ids(&store).await.is_empty(), "nothing reaches the log before a drain");

        // A pass copies them in arrival order, then (durable) lets the next drain delete them.
        store.project_batch(10, 0).await.expect("pass");
        assert_eq!(log_ids(&store).await, ["evt_a", "evt_b", "evt_c"]);
        assert_eq!(inbox.backlog().await.expect("backlog").0, 0);
        store.project_batch(10, 0).await.expect("pass");
        assert!(inbox.ids().await.expect("ids").is_empty(), "copied rows leave the inbox");

        // The emptied inbox never gives a position twice: later rows are copied too.
        writer.submit(event("evt_d")).await.expect("stored");
        store.project_batch(10, 0).await.expect("pass");
        assert_eq!(log_ids(&store).await, ["evt_a", "evt_b", "evt_c", "evt_d"]);

        // A crash after the copy, before the delete: the next process copies the rows again
        // (it does not know how far the last one got) and the log keeps one of each.
        writer.submit(event("evt_e")).await.expect("stored");
        store.project_batch(10, 0).await.expect("pass");
        drop(writer);
        task.await.expect("the append thread ends");
        store.close().await;
        let again = Store::connect(&url).await.expect("reopen");
        let Store::Sqlite(s) = &again else { unreachable!("a SQLite store") };
        assert!(!s.inbox().expect("inbox").ids().await.expect("ids").is_empty(), "rows left to delete");
        again.project_batch(10, 0).await.expect("pass");
        assert_eq!(log_ids(&again).await, ["evt_a", "evt_b", "evt_c", "evt_d", "evt_e"]);
    }

    /// The lag counts the log's unprojected rows and dates them from the first of them, pass
    /// after pass (counted on an index, `BACKLOG_SQLITE`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lag_counts_the_logs_unprojected_rows_from_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _url, writer, _task) = store_with_writer(dir.path(), "l.db").await;
        let Store::Sqlite(s) = &store else { unreachable!("a SQLite store") };
        for id in ["evt_a", "evt_b", "evt_c"] {
            writer.submit(event(id)).await.expect("stored");
        }
        assert_eq!(s.drain_inbox(10).await.expect("copied"), 3);
        let received: Vec<(i64,)> =
            sqlx::query_as("SELECT received_at FROM stripe_events ORDER BY rowid").fetch_all(s.pool()).await.expect("log");
        let now = received[2].0 + 100;
        for (projected, (first,)) in received.iter().enumerate() {
            let lag = store.projector_lag(now).await.expect("lag");
            assert_eq!(lag.events, 3 - projected as i64, "after {projected} projected");
            assert_eq!(lag.seconds, now - first, "dated from the first unprojected row");
            store.project_batch(1, 0).await.expect("pass");
        }
        let lag = store.projector_lag(now).await.expect("lag");
        assert_eq!((lag.events, lag.seconds), (0, 0), "all projected");
    }

    /// The projector builds the next pass while the last one's WAL sync runs: until
    /// `Pass::finish` has seen the sync, no waiter hears of the pass and the inbox keeps the
    /// rows it copied, even when the next pass's copy runs meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pass_is_published_only_once_its_sync_is_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _url, writer, task) = store_with_writer(dir.path(), "p.db").await;
        let Store::Sqlite(s) = &store else { unreachable!("a SQLite store") };
        let inbox = s.inbox().expect("a file database has an inbox");
        for id in ["evt_a", "evt_b"] {
            writer.submit(event(id)).await.expect("stored");
        }
        let projected = store.log_signals().projected.subscribe();

        let first = store.project_pass(10, 0, None).await.expect("first pass");
        assert_eq!(first.projected().events, 2);
        assert_eq!(log_ids(&store).await, ["evt_a", "evt_b"], "committed");
        writer.submit(event("evt_c")).await.expect("stored");
        let second = store.project_pass(10, 0, None).await.expect("second pass");
        assert_eq!(second.projected().events, 1);
        assert_eq!(*projected.borrow(), 0, "no waiter hears of a pass before its sync");
        assert_eq!(inbox.ids().await.expect("ids").len(), 3, "copied rows stay until their copy is durable");

        let done = first.finish(&store).await.expect("durable");
        assert_eq!(*projected.borrow(), done.position, "published once durable");
        let done = second.finish(&store).await.expect("durable");
        assert_eq!(*projected.borrow(), done.position);
        store.project_batch(10, 0).await.expect("a pass with nothing to project");
        assert!(inbox.ids().await.expect("ids").is_empty(), "durable copies leave the inbox");
        drop(writer);
        task.await.expect("the append thread ends");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_holds_what_waits_in_the_inbox_and_forget_erases_it_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _url, writer, task) = store_with_writer(dir.path(), "b.db").await;
        let Store::Sqlite(s) = &store else { unreachable!("a SQLite store") };
        let inbox = s.inbox().expect("inbox");
        let with_email = |id: &str, customer: &str| {
            let body = format!(
                r#"{{"id":"{id}","object":"event","type":"customer.created","created":10,"data":{{"object":{{"id":"{customer}","object":"customer","email":"{customer}@example.com"}}}}}}"#
            );
            Event::parse(body.as_bytes()).expect("valid event")
        };
        writer.submit(with_email("evt_1", "cus_keep")).await.expect("stored");
        writer.submit(with_email("evt_2", "cus_gone")).await.expect("stored");

        // No projector runs: both wait in the inbox. `forget` erases the one of its customer.
        assert_eq!(store.forget_customer("cus_gone").await.expect("forget").events, 1);
        let waiting: Vec<(String, String)> =
            sqlx::query_as("SELECT id, payload FROM webhook_inbox ORDER BY seq").fetch_all(&inbox.pool).await.expect("inbox");
        assert!(waiting[0].1.contains("cus_keep@example.com"), "other customers are untouched");
        assert!(!waiting[1].1.contains("cus_gone@example.com"), "erased in the inbox: {}", waiting[1].1);

        // A backup copies the inbox into the log first: the file holds both events.
        let file = dir.path().join("copy.db");
        store.backup_to(&file).await.expect("backup");
        let copy = Store::connect(&format!("sqlite://{}", file.display())).await.expect("open the copy");
        let Store::Sqlite(c) = &copy else { unreachable!("a SQLite store") };
        let logged: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM stripe_events ORDER BY rowid").fetch_all(c.pool()).await.expect("log");
        assert_eq!(logged, [("evt_1".to_owned(),), ("evt_2".to_owned(),)]);
        drop(writer);
        task.await.expect("the append thread ends");
    }
}
