//! The projector: applies the event log to the projected tables, in log order, in batches
//! (see `ingest::project`). It runs in every `holdfast serve` process, whatever
//! `HOLDFAST_WORKERS` says: without it no webhook would ever reach the tables.
//!
//! On Postgres several replicas share one log, and one of them projects: the holder of a
//! session advisory lock, taken on a connection of its own (not a pooled one, which would
//! carry the lock to whoever borrows it next). When the leader dies its connection closes,
//! the lock is released, and another replica takes over at its next try (every
//! `LEASE_RETRY`). Correctness does not rest on the lock: the cursor moves by
//! compare-and-set inside each projection transaction, so even a stalled former leader
//! cannot project a batch twice.

use std::time::Duration;

use sqlx::Connection;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::health::Health;
use crate::ingest::project::{PROJECT_BATCH, Pass};
use crate::ingest::read_ahead::ReadAhead;
use crate::store::log::outage_reason;
use crate::store::{Store, StoreError};

/// The projector's advisory lock key (any constant no other lock uses).
const LEASE_KEY: i64 = 7_242_101_141;
/// How often a replica without the lease tries to take it (takeover within this, plus a
/// connection's close being noticed by the server).
const LEASE_RETRY: Duration = Duration::from_secs(2);
/// Idle poll: catches appends of other replicas (Postgres) without a wake-up; well under the
/// lag bound.
const POLL: Duration = Duration::from_millis(100);
/// After a pass that found some events but not a full batch: let more arrive before the next
/// one. Under a steady stream of webhooks each append would otherwise wake a pass for a
/// handful of events, and a pass's fixed cost (its transaction, the batch's reads of the
/// touched customers) would be paid per handful; well under the lag bound.
const GATHER: Duration = Duration::from_millis(20);
/// Parked customers are looked at this often (each has its own back-off).
const RETRY_PARKED_EVERY: Duration = Duration::from_secs(1);
/// After a failed pass (database away, disk full, file locked): retry soon, the lag counts;
/// the pause doubles per failure in a row up to `ON_ERROR_MAX`, and resets on success.
const ON_ERROR: Duration = Duration::from_millis(500);
const ON_ERROR_MAX: Duration = Duration::from_secs(10);
/// The part's name in `/readyz`.
const PART: &str = "projector";

/// The projector task's handle to the store and clock.
#[derive(Clone, Debug)]
pub struct Projector {
    store: Store,
    clock: Clock,
    health: Health,
}

impl Projector {
    pub fn new(store: Store, clock: Clock) -> Self {
        let health = Health::new(clock.clone());
        Self { store, clock, health }
    }

    /// Report failures and recoveries to `health` (`/readyz`).
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Project until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(worker = "projector", "worker started");
        while !*stop.borrow() {
            match &self.store {
                Store::Sqlite(_) => self.lead(&mut stop, None).await,
                Store::Postgres(pg) => match self.take_lease(pg).await {
                    Ok(Some(lease)) => {
                        tracing::info!("projector lease taken; this replica projects the log");
                        self.lead(&mut stop, Some(lease)).await;
                    }
                    Ok(None) => {
                        // Another replica projects: nothing of ours is failing.
                        self.health.recovered(PART);
                        wait(&mut stop, LEASE_RETRY).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "projector lease: database unavailable");
                        self.health.failed(PART, outage_reason(&e));
                        wait(&mut stop, LEASE_RETRY).await;
                    }
                },
            }
        }
        tracing::info!(worker = "projector", "worker stopped");
    }

    async fn take_lease(&self, pg: &crate::store::postgres::PgStore) -> Result<Option<sqlx::PgConnection>, StoreError> {
        let mut conn = pg.dedicated_connection().await?;
        let (taken,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)").bind(LEASE_KEY).fetch_one(&mut conn).await?;
        if taken {
            Ok(Some(conn))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Project while this process leads: until `stop`, or (Postgres) until the lease's
    /// connection is lost.
    async fn lead(&self, stop: &mut watch::Receiver<bool>, mut lease: Option<sqlx::PgConnection>) {
        let appended = self.store.log_signals().appended.clone();
        let mut last_retry = tokio::time::Instant::now();
        let mut on_error = ON_ERROR;
        // A committed pass not yet published (its WAL sync runs while the next pass is built).
        let mut pending: Option<Pass> = None;
        // The next batch, read while this one is written.
        let mut ahead = ReadAhead::default();
        while !*stop.borrow() {
            // Register interest before looking, so an append during the pass is not missed.
            let woken = appended.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let limit = PROJECT_BATCH;
            let committed = self.store.project_pass(limit, self.clock.now(), Some(&mut ahead)).await;
            // The previous pass's WAL sync ran while this one was built: publish it now.
            let previous = self.finish(pending.take()).await;
            let pass = match committed {
                Ok(next) => {
                    let done = *next.projected();
                    pending = Some(next);
                    previous.map(|()| done)
                }
                Err(e) => Err(e),
            };
            let pause = match pass {
                Ok(done) if done.events as i64 >= limit || done.figures_pending => Duration::ZERO,
                Ok(done) if done.events > 0 => GATHER,
                Ok(_) => POLL,
                Err(StoreError::CursorMoved) => Duration::ZERO,
                Err(ref e) => {
                    tracing::warn!(error = ?e, retry_in_ms = on_error.as_millis() as u64, "projection pass failed; retrying");
                    self.health.failed(PART, outage_reason(e));
                    on_error
                }
            };
            if pass.is_ok() || matches!(pass, Err(StoreError::CursorMoved)) {
                self.health.recovered(PART);
                on_error = ON_ERROR;
            } else {
                on_error = (on_error * 2).min(ON_ERROR_MAX);
            }
            if last_retry.elapsed() >= RETRY_PARKED_EVERY {
                last_retry = tokio::time::Instant::now();
                if let Err(e) = self.store.retry_parked(self.clock.now()).await {
                    tracing::warn!(error = ?e, "retrying parked customers failed");
                }
                if let Some(conn) = lease.as_mut()
                    && conn.ping().await.is_err()
                {
                    tracing::warn!("projector lease connection lost; giving up the lease");
                    break;
                }
            }
            if pause.is_zero() {
                continue;
            }
            // Nothing to overlap with: publish the last pass before waiting.
            if let Err(e) = self.finish(pending.take()).await {
                tracing::warn!(error = ?e, "projection pass not made durable; retrying");
                self.health.failed(PART, outage_reason(&e));
            }
            if pause == GATHER {
                wait(stop, pause).await;
                continue;
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        if let Err(e) = self.finish(pending.take()).await {
            tracing::warn!(error = ?e, "the last projection pass was not made durable");
        }
        if let Some(conn) = lease {
            let _ = conn.close().await;
        }
    }

    /// Wait until a committed pass is durable and publish it (`ingest::project::Pass`).
    async fn finish(&self, pass: Option<Pass>) -> Result<(), StoreError> {
        match pass {
            Some(pass) => pass.finish(&self.store).await.map(|_| ()),
            None => Ok(()),
        }
    }
}

async fn wait(stop: &mut watch::Receiver<bool>, pause: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = stop.changed() => {}
    }
}
