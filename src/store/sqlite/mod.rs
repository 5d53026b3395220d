//! SQLite backend: the embedded default. WAL, `synchronous=FULL` (an acknowledged event
//! survives power loss; group commit pays the fsync once per batch), and write transactions
//! opened with `BEGIN IMMEDIATE` so they queue on `busy_timeout` instead of failing.

mod ingest;
mod outbox;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::{Ingested, StoreError};
use crate::domain::event::Event;
use crate::reactions::Reactor;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for SQLite's lock before giving up (then the webhook gets 503).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 8;

/// A SQLite database file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    reactor: Option<Arc<Reactor>>,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let pool =
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS).acquire_timeout(BUSY_TIMEOUT).connect_with(options).await?;
        Ok(Self { pool, reactor: None })
    }

    /// Install the event-reaction hook (dunning, lifecycle emails).
    pub fn set_reactor(&mut self, reactor: Arc<Reactor>) {
        self.reactor = Some(reactor);
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

    pub async fn ingest(&self, events: &[&Event], received_at: i64) -> Result<Vec<Ingested>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (outcome, enqueued) = ingest::ingest(&mut tx, events, received_at, self.reactor.as_deref()).await?;
        tx.commit().await?;
        if enqueued > 0
            && let Some(r) = &self.reactor
        {
            r.notify_outbox();
        }
        Ok(outcome)
    }
}
