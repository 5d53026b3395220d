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

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::watch;

/// How often an idle sync thread checks whether its store still exists.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

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
}

#[derive(Debug, Clone, Copy, Default)]
struct Synced {
    /// Every commit up to this one is durable.
    upto: u64,
    /// A sync failed: what was written may be lost whatever later syncs say (Linux may drop
    /// the dirty pages), so every commit from then on is refused until a restart.
    poisoned: bool,
}

/// The WAL's sync failed once: refuse to acknowledge anything more.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the SQLite WAL could not be synced to disk")]
pub struct SyncFailed;

impl WalSync {
    /// Start the sync thread for the database file `db` (its WAL is `<db>-wal`).
    pub fn start(db: PathBuf) -> std::io::Result<Self> {
        let mut wal = db.into_os_string();
        wal.push("-wal");
        let (synced, _) = watch::channel(Synced::default());
        let inner = Arc::new(Inner { path: wal.into(), requested: Mutex::new(0), wake: Condvar::new(), synced });
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
        let state = rx.wait_for(|s| s.poisoned || s.upto >= ticket).await.map_err(|_| SyncFailed)?;
        if state.poisoned { Err(SyncFailed) } else { Ok(()) }
    }
}

impl Inner {
    fn run(self: Arc<Self>) {
        let mut done = 0;
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
            match std::fs::File::open(&self.path).and_then(|f| f.sync_data()) {
                Ok(()) => self.synced.send_modify(|s| s.upto = target),
                // No WAL file: the last connection closed and SQLite checkpointed the WAL into
                // the database, syncing it (what `NORMAL` does at a checkpoint).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.synced.send_modify(|s| s.upto = target),
                Err(e) => {
                    tracing::error!(error = %e, path = %self.path.display(), "fsync of the SQLite WAL failed; refusing to acknowledge more webhooks until restarted");
                    self.synced.send_modify(|s| s.poisoned = true);
                }
            }
            done = target;
        }
    }
}
