//! All SQL lives here. One `Store`, two backends chosen from `DATABASE_URL`'s scheme.
//!
//! # The store seam
//!
//! One way to reach the database, by what the SQL is:
//! - **The same text on both backends** (almost every statement): a [`conn::Conn`] (the
//!   caller's transaction, or `Store::with_conn` / [`Store::in_transaction`]) and the
//!   `execute!` / `fetch!` macros, which run the statement on whichever backend it holds.
//! - **The projected tables** (customers, subscriptions and their items and history,
//!   invoices, discounts): described once in [`tables`] (columns in order, how each value is
//!   read from a snapshot, conflict key, watermark guard). Each backend's batch statement and
//!   its rows come from that description: `jsonb_each` over one JSON array on SQLite, `UNNEST`
//!   of one array per column on Postgres (`sqlite::ingest`, `postgres::ingest`).
//! - **Text that differs by dialect** (the log append, claims with `FOR UPDATE SKIP LOCKED`,
//!   locks, maintenance): in the backend's own module, `sqlite/` or `postgres/`, or as a pair
//!   of constants chosen by backend next to their shared siblings.
//!
//! `match` on [`Store`]'s variants is for what is not a statement: connecting, migrating,
//! pools, health, and the features one backend lacks (`backup` is SQLite's `VACUUM INTO`).

pub mod backup;
pub mod batch;
pub mod catalog;
pub mod classify;
pub mod conn;
pub mod coupons;
mod error;
pub mod forget;
mod gauges;
pub mod health;
pub mod log;
pub mod metrics;
pub mod observed;
pub mod outbox;
pub mod plan;
pub mod postgres;
pub mod pricing;
pub mod reactions;
pub mod refetch;
pub mod refunds;
pub mod rows;
pub mod shared;
pub mod sqlite;
mod sync_cursors;
pub mod tables;
pub mod writer;

use crate::domain::event::Event;
pub use error::{ProjectionError, StoreError};
pub use gauges::OperationalCounts;
pub use rows::StateDump;

/// Outcome of storing one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// First time: stored and projected.
    Stored,
    /// Seen before: nothing changed.
    Duplicate,
}

/// How a batch enters the pipeline. Webhooks notify; backfills and replays never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOptions {
    /// May the new events cause customer email (dunning, lifecycle)? `false` for
    /// `holdfast sync` and `holdfast replay`: history imported today must not email anyone,
    /// whatever its age. The projector reads it before running the reactions.
    pub notify: bool,
}

impl IngestOptions {
    /// Live webhooks: the normal rules (including the notification horizon) apply.
    pub const WEBHOOK: Self = Self { notify: true };
    /// Imported history (sync, replay): stored and projected, never emailed.
    pub const IMPORT: Self = Self { notify: false };
}

/// What stands between a committed batch and its acknowledgement.
#[derive(Debug)]
#[must_use = "a batch may not be acknowledged before it is durable"]
pub struct Durability {
    /// SQLite: the WAL sync that covers the commit. `None`: durable at commit (Postgres).
    wal: Option<(sqlite::wal_sync::WalSync, u64)>,
    /// New events were appended: wake the projector once they are durable.
    wake: Option<std::sync::Arc<tokio::sync::Notify>>,
}

impl Durability {
    /// Already durable (the commit waited for the disk).
    pub(crate) fn at_commit(wake: Option<std::sync::Arc<tokio::sync::Notify>>) -> Self {
        Self { wal: None, wake }
    }

    /// Wait until the batch is durable; then it may be acknowledged.
    pub async fn wait(self) -> Result<(), StoreError> {
        if let Some((wal, ticket)) = &self.wal {
            wal.wait(*ticket).await?;
        }
        if let Some(w) = &self.wake {
            w.notify_one();
        }
        Ok(())
    }
}

/// What the projector and its waiters share within one process.
#[derive(Debug)]
pub struct LogSignals {
    /// Woken when events were appended (and are durable).
    pub appended: std::sync::Arc<tokio::sync::Notify>,
    /// The highest cursor this process saw committed.
    pub projected: tokio::sync::watch::Sender<i64>,
    /// The highest log position this process appended (0: none yet).
    pub appended_head: std::sync::atomic::AtomicI64,
    /// Whether the projector records same-second ties for a fetch from Stripe.
    pub refetch_ties: std::sync::atomic::AtomicBool,
}

impl Default for LogSignals {
    fn default() -> Self {
        Self {
            appended: std::sync::Arc::new(tokio::sync::Notify::new()),
            projected: tokio::sync::watch::Sender::new(0),
            appended_head: std::sync::atomic::AtomicI64::new(0),
            refetch_ties: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// The database, whichever backend.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// How long `migrate` waits out a database another process keeps busy.
const MIGRATE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

impl Store {
    /// Connect by URL scheme; a SQLite file is created if missing. Refuses unknown schemes so
    /// a typo never creates an empty database somewhere.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(sqlite::SqliteStore::connect(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(postgres::PgStore::connect(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// Install the reaction hook that runs inside every ingest transaction. Call before
    /// cloning the store: clones made earlier don't see it.
    pub fn with_reactor(mut self, reactor: reactions::Hook) -> Self {
        match &mut self {
            Self::Sqlite(s) => s.set_reactor(reactor),
            Self::Postgres(s) => s.set_reactor(reactor),
        }
        self
    }

    /// Act on the events of one Stripe mode only: the others stay in the log, stored and
    /// acknowledged, and are never projected (no metrics, no email, no offer). The live
    /// projector and `reproject` both go through here, so they agree. Call before cloning.
    pub fn with_stripe_mode(mut self, mode: crate::config::StripeMode) -> Self {
        match &mut self {
            Self::Sqlite(s) => s.set_acts_on(mode.livemode()),
            Self::Postgres(s) => s.set_acts_on(mode.livemode()),
        }
        self
    }

    /// The `livemode` of the events this store projects (`None`: all).
    pub fn acts_on(&self) -> Option<bool> {
        match self {
            Self::Sqlite(s) => s.acts_on(),
            Self::Postgres(s) => s.acts_on(),
        }
    }

    /// Which backend, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Apply the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // Another process (a running server next to `holdfast migrate`) may hold the write
        // lock for a moment: a busy database is waited out, for a bounded time.
        let mut wait = std::time::Duration::from_millis(100);
        let deadline = tokio::time::Instant::now() + MIGRATE_PATIENCE;
        loop {
            match self.migrate_once().await {
                Err(StoreError::Unavailable(e)) if tokio::time::Instant::now() + wait < deadline => {
                    tracing::warn!(error = %e, "database busy while migrating; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    async fn migrate_once(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.migrate().await?,
            Self::Postgres(s) => s.migrate().await?,
        }
        // A database from before the figures were maintained gets them built once, here,
        // before anything reads them.
        if let Some(customers) = self.ensure_figures().await? {
            tracing::info!(customers, "maintained figures built from the history");
        }
        Ok(())
    }

    /// Round-trip to the database (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.ping().await,
            Self::Postgres(s) => s.ping().await,
        }
    }

    /// The reaction hook, if installed.
    pub(crate) fn reactor(&self) -> Option<reactions::Hook> {
        match self {
            Self::Sqlite(s) => s.reactor(),
            Self::Postgres(s) => s.reactor(),
        }
    }

    /// The accept path's health (`/readyz`).
    pub fn health(&self) -> &health::Health {
        match self {
            Self::Sqlite(s) => s.health(),
            Self::Postgres(s) => s.health(),
        }
    }

    /// The in-process signals of the log (appends, projected position).
    pub fn log_signals(&self) -> &LogSignals {
        match self {
            Self::Sqlite(s) => s.log_signals(),
            Self::Postgres(s) => s.log_signals(),
        }
    }

    /// Append a batch to the log and project through it before returning (imports, benches,
    /// tests): the batch is durable and its effects are visible on return.
    pub async fn ingest(&self, events: &[&Event], received_at: i64) -> Result<Vec<Ingested>, StoreError> {
        self.ingest_with(events, received_at, IngestOptions::WEBHOOK).await
    }

    /// `ingest` with explicit options (imports pass `IngestOptions::IMPORT`).
    pub async fn ingest_with(
        &self,
        events: &[&Event],
        received_at: i64,
        options: IngestOptions,
    ) -> Result<Vec<Ingested>, StoreError> {
        let (outcome, last, durability) = self.append_committed(events, received_at, options).await?;
        durability.wait().await?;
        if let Some(last) = last {
            self.project_through(last, received_at).await?;
        }
        Ok(outcome)
    }

    /// Append a batch to the log, for the group-commit writer: returns once the batch is
    /// committed, with the log position of its last new event and the [`Durability`] to wait
    /// for before acknowledging it. Meanwhile the next batch can start.
    pub async fn append_committed(
        &self,
        events: &[&Event],
        received_at: i64,
        options: IngestOptions,
    ) -> Result<(Vec<Ingested>, Option<i64>, Durability), StoreError> {
        match self {
            Self::Sqlite(s) => s.append_committed(events, received_at, options).await,
            Self::Postgres(s) => s.append_committed(events, received_at, options).await,
        }
    }

    /// A write on the append path's own connection that stores nothing (SQLite: rewrites one
    /// row as it is, so a full disk or a missing descriptor fails it as an append would).
    /// The writer runs it while appends fail, to know when they work again.
    pub async fn probe_append(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.probe_append().await,
            Self::Postgres(s) => s.ping().await,
        }
    }

    /// Every projected row and event id, in key order: two stores that saw the same events in
    /// any order must dump equal states.
    pub async fn dump_state(&self) -> Result<StateDump, StoreError> {
        // SQLite: the inbox is read first. A row copied from it into the log meanwhile is in
        // the log when the log is read (rows leave the inbox only after their copy).
        let waiting = match self {
            Store::Sqlite(s) => match s.inbox() {
                Some(inbox) => inbox.ids().await?,
                None => Vec::new(),
            },
            Store::Postgres(_) => Vec::new(),
        };
        let mut dump = self.with_conn(async |c| rows::dump(c).await).await?;
        if !waiting.is_empty() {
            dump.event_ids.extend(waiting);
            dump.event_ids.sort_unstable();
            dump.event_ids.dedup();
        }
        Ok(dump)
    }

    /// The history generation: changes whenever an ingest stored a new event.
    pub async fn history_generation(&self) -> Result<i64, StoreError> {
        let row = self.with_conn(async |c| conn::fetch!(c, fetch_one, (i64,), metrics::SELECT_GENERATION)).await?;
        Ok(row.0)
    }

    /// The whole recorded history, as metrics read it.
    pub async fn load_timeline(&self) -> Result<crate::domain::timeline::Timeline, StoreError> {
        let mut timeline = match self {
            Self::Sqlite(s) => metrics::load_timeline_from!(s.pool()),
            Self::Postgres(s) => metrics::load_timeline_from!(s.pool()),
        };
        timeline.given_back = self.load_given_back().await?;
        Ok(timeline)
    }

    /// Close the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => close_pool(s.pool(), "postgres").await,
        }
    }
}

/// How long closing a pool may wait for its connections to come back.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Close `pool`, waiting at most [`CLOSE_TIMEOUT`]: sqlx's `Pool::close` waits until every
/// permit is back, and under load it was seen to wait forever (once in 104 runs of the
/// replicas tests, 5 at once on 2 cores: every connection closed, its worker thread gone, a
/// permit never returned). A shutdown must end: the connections still open close with the
/// process, and a process's exit loses no commit.
pub(crate) async fn close_pool<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, name: &'static str) {
    close_pool_within(pool, name, CLOSE_TIMEOUT).await;
}

async fn close_pool_within<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, name: &'static str, limit: std::time::Duration) {
    if tokio::time::timeout(limit, pool.close()).await.is_err() {
        tracing::warn!(pool = name, size = pool.size(), idle = pool.num_idle(), "closing the database pool timed out; going on");
    }
}

/// Strip NUL characters: Postgres text can't hold them, and no Stripe field needs them.
pub(crate) fn clean(s: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
    s.as_deref().map(|v| if v.contains('\0') { v.replace('\0', "").into() } else { v.into() })
}

#[cfg(test)]
mod close_tests {
    use std::time::Duration;

    #[tokio::test]
    async fn a_pool_whose_connection_never_comes_back_is_closed_within_the_limit() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(2).connect("sqlite::memory:").await.expect("pool");
        let held = pool.acquire().await.expect("a connection");
        // Without the limit this waits for `held` forever.
        let closing =
            tokio::time::timeout(Duration::from_secs(10), super::close_pool_within(&pool, "test", Duration::from_millis(50)));
        assert!(closing.await.is_ok(), "the close gave up at its limit");
        assert!(pool.is_closed(), "and the pool refuses new work");
        assert!(pool.acquire().await.is_err(), "no connection is handed out after the close");
        drop(held);
    }
}
