//! Durability of webhook batches, apart from their commit. The ingest connection commits with
//! `synchronous=NORMAL` (SQLite writes the WAL but does not fsync it), then asks this syncer
//! for an `fdatasync` of the WAL file; nobody hears "stored" before that returns. One thread
//! does the syncs and each covers every commit before it, so while the disk syncs batch N the
//! writer already builds and commits batch N+1: the fsync (3–5 ms here) no longer adds to
//! the time of every batch.
//!
//! Safe for acknowledged events: an `fdatasync` of the WAL after the commit's frames were
//! written makes them durable exactly as `synchronous=FULL` would (which does the same call
//! inside the commit). A crash before the sync can lose only unacknowledged commits (Stripe
//! redelivers them), and `NORMAL` keeps the database consistent whatever happens.
//!
//! Two failures are told apart. The WAL file can't be *opened* (no descriptor left, EMFILE):
//! nothing was handed to the disk, the commits are still in the page cache, so the waiting
//! batches are answered 503 (Stripe redelivers; a redelivery waits for a later, successful
//! sync), `/readyz` reports the fault and the open is retried until it works. An `fdatasync`
//! that *fails* is never retried: Linux may have dropped the dirty pages and a later sync
//! could falsely succeed, so the syncer refuses everything from then on and declares the
//! fault fatal (the process exits; at its restart SQLite recovers from the WAL).

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::health::Health;

/// How often an idle sync thread checks whether its store still exists.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// First retry of a WAL that could not be opened; doubles up to `OPEN_RETRY_MAX`.
const OPEN_RETRY: Duration = Duration::from_millis(50);
const OPEN_RETRY_MAX: Duration = Duration::from_secs(1);
/// The part named in `/readyz` by the syncer of webhook appends (the inbox's WAL).
pub const PART: &str = "sqlite_wal_sync";
/// ... and by the syncer of the log's WAL (projector passes, imports).
pub const LOG_PART: &str = "sqlite_log_wal_sync";

/// The WAL syncer of one database file; cheap to clone.
#[derive(Clone, Debug)]
pub struct WalSync {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The `-wal` file. Opened for each sync: SQLite may delete and recreate it (after the
    /// last connection closes), and an old descriptor would sync a deleted file.
    path: PathBuf,
    /// The last commit that asked for a sync.
    requested: Mutex<u64>,
    wake: Condvar,
    synced: watch::Sender<Synced>,
    health: Arc<Health>,
    /// Its name in `/readyz`.
    part: &'static str,
}

#[derive(Debug, Clone, Copy, Default)]
struct Synced {
    /// Every commit up to this one is durable.
    upto: u64,
    /// The commits up to this one are not known durable yet (the WAL could not be opened):
    /// their waiters are answered "unavailable"; a later successful sync still covers them.
    unconfirmed_upto: u64,
    /// A sync failed: what was written may be lost whatever later syncs say (Linux may drop
    /// the dirty pages), so every commit from then on is refused until a restart.
    poisoned: bool,
}

/// Why a batch can't be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncFailed {
    /// An fsync failed: nothing more is acknowledged until the process restarts.
    #[error("the SQLite WAL could not be synced to disk")]
    Fsync,
    /// The WAL could not be opened to sync it (e.g. no file descriptor left): retried.
    #[error("the SQLite WAL could not be opened to sync it")]
    Open,
}

impl WalSync {
    /// Start the sync thread for the database file `db` (its WAL is `<db>-wal`), reporting
    /// its faults to `health` as `part`.
    pub fn start(db: PathBuf, part: &'static str, health: Arc<Health>) -> std::io::Result<Self> {
        let mut wal = db.into_os_string();
        wal.push("-wal");
        let (synced, _) = watch::channel(Synced::default());
        let inner = Arc::new(Inner { path: wal.into(), part, requested: Mutex::new(0), wake: Condvar::new(), synced, health });
        let worker = inner.clone();
        std::thread::Builder::new().name("sqlite-wal-sync".into()).spawn(move || worker.run())?;
        Ok(Self { inner })
    }

    /// Call after a commit; returns the ticket to wait for.
    pub fn request(&self) -> u64 {
        let mut requested = self.inner.requested.lock().unwrap_or_else(|e| e.into_inner());
        *requested += 1;
        self.inner.wake.notify_one();
        *requested
    }

    /// Wait until the commit that got `ticket` is on disk.
    pub async fn wait(&self, ticket: u64) -> Result<(), SyncFailed> {
        let mut rx = self.inner.synced.subscribe();
        let state = rx
            .wait_for(|s| s.poisoned || s.upto >= ticket || s.unconfirmed_upto >= ticket)
            .await
            .map_err(|_| SyncFailed::Fsync)?;
        if state.poisoned {
            Err(SyncFailed::Fsync)
        } else if state.upto >= ticket {
            Ok(())
        } else {
            Err(SyncFailed::Open)
        }
    }
}

impl Inner {
    fn run(self: Arc<Self>) {
        let mut done = 0;
        let mut retry = OPEN_RETRY;
        loop {
            let target = {
                let mut requested = self.requested.lock().unwrap_or_else(|e| e.into_inner());
                while *requested == done {
                    if self.synced.receiver_count() == 0 && Arc::strong_count(&self) == 1 {
                        return; // the store is gone
                    }
                    requested = self.wake.wait_timeout(requested, IDLE_CHECK).unwrap_or_else(|e| e.into_inner()).0;
                }
                *requested
            };
            let file = match std::fs::File::open(&self.path) {
                Ok(f) => Some(f),
                // No WAL file: the last connection closed and SQLite checkpointed the WAL into
                // the database, syncing it (what `NORMAL` does at a checkpoint).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    self.health.fault(self.part, format!("cannot open the SQLite WAL to sync it: {e}"));
                    self.synced.send_modify(|s| s.unconfirmed_upto = target);
                    // `done` stays: the same commits are synced at the next try.
                    std::thread::sleep(retry);
                    retry = (retry * 2).min(OPEN_RETRY_MAX);
                    continue;
                }
            };
            match file.map_or(Ok(()), |f| f.sync_data()) {
                Ok(()) => {
                    // Healed before the waiters hear it: one answered "stored" never sees
                    // `/readyz` still naming this part.
                    self.health.healed(self.part);
                    self.synced.send_modify(|s| s.upto = target);
                    retry = OPEN_RETRY;
                }
                Err(e) => {
                    tracing::error!(error = %e, path = %self.path.display(), "fsync of the SQLite WAL failed; refusing to acknowledge more webhooks and stopping so the process restarts");
                    self.synced.send_modify(|s| s.poisoned = true);
                    self.health.fault(self.part, format!("fsync of the SQLite WAL failed: {e}"));
                    self.health.fail_for_good(format!("fsync of the SQLite WAL failed: {e}"));
                }
            }
            done = target;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_in(dir: &std::path::Path) -> (PathBuf, PathBuf) {
        let db = dir.join("h.db");
        (db.clone(), dir.join("h.db-wal"))
    }

    #[tokio::test]
    async fn a_wal_that_cannot_be_opened_is_unavailable_then_heals_when_it_can() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, wal) = db_in(dir.path());
        // A symlink to itself: every open fails (ELOOP), as with no descriptor left.
        std::os::unix::fs::symlink(&wal, &wal).expect("symlink");
        let health = Arc::new(Health::default());
        let sync = WalSync::start(db, PART, health.clone()).expect("start");
        assert_eq!(sync.wait(sync.request()).await, Err(SyncFailed::Open));
        assert!(health.is_faulty(PART), "the fault is reported: {:?}", health.faults());
        std::fs::remove_file(&wal).expect("remove");
        std::fs::write(&wal, b"frames").expect("write");
        // The same thread retries by itself; a new commit is covered by a successful sync.
        let ticket = sync.request();
        let healed = tokio::time::timeout(Duration::from_secs(10), sync.wait(ticket)).await.expect("answered");
        assert_eq!(healed, Ok(()), "the sync heals");
        assert!(!health.is_faulty(PART));
        assert!(health.faults().is_empty());
    }

    #[tokio::test]
    async fn a_failed_fsync_is_never_retried_and_is_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, wal) = db_in(dir.path());
        // fdatasync on a character device fails (EINVAL): a failed sync, as on a bad disk.
        std::os::unix::fs::symlink("/dev/null", &wal).expect("symlink");
        let health = Arc::new(Health::default());
        let sync = WalSync::start(db, PART, health.clone()).expect("start");
        assert_eq!(sync.wait(sync.request()).await, Err(SyncFailed::Fsync));
        let reason = tokio::time::timeout(Duration::from_secs(5), health.fatal()).await.expect("declared fatal");
        assert!(reason.contains("fsync"), "{reason}");
        // Even once the file is a good one again, nothing more is acknowledged.
        std::fs::remove_file(&wal).expect("remove");
        std::fs::write(&wal, b"frames").expect("write");
        assert_eq!(sync.wait(sync.request()).await, Err(SyncFailed::Fsync));
    }
}
