//! Postgres backend, for production with several replicas. A batch is written with one
//! `UNNEST` statement per table, so a commit of 64 webhooks costs a handful of round trips.

pub(crate) mod append;
pub(crate) mod ingest;
mod outbox;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::domain::event::Event;
use crate::store::health::Health;
use crate::store::reactions::Hook;
use crate::store::{Durability, IngestOptions, Ingested, LogSignals, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long a request waits for a pooled connection before the webhook gets 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_CONNECTIONS: u32 = 16;

/// A Postgres database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    reactor: Option<Hook>,
    signals: Arc<LogSignals>,
    health: Arc<Health>,
    url: String,
    /// The `livemode` of the events projected; `None`: every event (tools without settings).
    acts_on: Option<bool>,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        // After an outage the pooled connections are dead sockets: `test_before_acquire`
        // (sqlx's default, made explicit) pings each one before use and replaces the dead ones,
        // so the service recovers by itself. While the database is away, requests fail after
        // ACQUIRE_TIMEOUT with 503 instead of queueing forever.
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .connect_with(options)
            .await?;
        Ok(Self { pool, reactor: None, signals: Arc::default(), health: Arc::default(), url: url.to_owned(), acts_on: None })
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

    /// A connection of its own, outside the pool (the projector's lease lives on it: it is
    /// released exactly when this connection, or its process, goes away).
    pub async fn dedicated_connection(&self) -> Result<sqlx::PgConnection, StoreError> {
        use sqlx::Connection;
        let options = PgConnectOptions::from_str(&self.url)?;
        Ok(sqlx::PgConnection::connect_with(&options).await?)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// sqlx takes an advisory lock around migrations, so replicas starting together are safe.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Append a batch to the log. The commit waits for the WAL flush, so the batch is
    /// durable on return.
    pub async fn append_committed(
        &self,
        events: &[&Event],
        received_at: i64,
        options: IngestOptions,
    ) -> Result<(Vec<Ingested>, Option<i64>, Durability), StoreError> {
        let mut tx = self.pool.begin().await?;
        let (outcome, last) = ingest::append(&mut tx, events, received_at, options).await?;
        tx.commit().await?;
        if let Some(last) = last {
            self.signals.appended_head.fetch_max(last, std::sync::atomic::Ordering::Relaxed);
        }
        Ok((outcome, last, Durability::at_commit(last.map(|_| self.signals.appended.clone()))))
    }
}
