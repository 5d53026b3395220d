//! Reading ahead: while a projector pass writes its batch, the next batch is read,
//! screened and parsed, and its writes planned, on another connection and another core. A
//! pass is two halves that used to take turns on one core: this Rust work, and SQLite's work
//! on the projector's connection. Drawn from a backlog, the next batch's Rust half now runs
//! during this batch's SQLite half.
//!
//! A read-ahead batch is used only when it is exactly what the pass would read itself:
//! - it starts at the cursor the pass locked (after a failed pass, or once another projector
//!   or a reprojection moved the cursor, it is discarded);
//! - it is a full batch (at the log's end the pass reads for itself, so what arrived meanwhile
//!   joins it);
//! - no payload of the log was rewritten since it was read (`holdfast forget` and payload
//!   pruning count their rewrites in `log_rewrites`, in the transaction that rewrites);
//! - every row in it is clean and parses (a batch with a quarantined or unreadable event is
//!   left to the pass, which quarantines or parks it).
//!
//! Rows of the log are otherwise never changed, and they become visible in position order
//! (SQLite has one writer; Postgres appends hold a transaction-level advisory lock to their
//! commit), so the rows read after a position stay exactly the rows after it.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::domain::poison;
use crate::store::batch::Writes;
use crate::store::conn::Conn;
use crate::store::log::{self, Logged};
use crate::store::{Store, StoreError};

/// How long a pass waits for the batch being read before it reads for itself. The read has had
/// the whole of the pass before to finish, which it does unless it waits for a connection (the
/// pool busy with the owner's reads) or the machine is slow. The pass waits before its
/// transaction ([`ReadAhead::ready`]), holding no lock, so a slow read delays this projector
/// only; reading for itself instead would take as long again.
const WAIT_AT_MOST: Duration = Duration::from_secs(1);

/// A batch read ahead of the cursor.
pub(crate) struct Batch {
    /// The position it was read after.
    after: i64,
    /// `log_rewrites` when it was read.
    rewrites: i64,
    /// Its events, in log order, all clean and parsed.
    pub(crate) events: Vec<Logged>,
    /// The writes of those of them in the instance's Stripe mode, as `project_events` plans them.
    pub(crate) writes: Writes,
}

/// The projector's next batch, being read by another task.
#[derive(Default)]
pub struct ReadAhead {
    next: Option<Next>,
    /// Batches passes took from it.
    taken: u64,
}

enum Next {
    Reading(JoinHandle<Option<Batch>>),
    Read(Option<Batch>),
}

impl ReadAhead {
    /// Start reading the `limit` events after `after`, replacing any batch read before.
    pub(crate) fn start(&mut self, store: &Store, after: i64, limit: i64) {
        self.discard();
        let store = store.clone();
        self.next = Some(Next::Reading(tokio::spawn(async move { read_batch(&store, after, limit).await })));
    }

    /// Wait for the batch being read (at most [`WAIT_AT_MOST`]); a pass calls it before its
    /// transaction, so that it never waits holding the cursor's lock.
    pub(crate) async fn ready(&mut self) {
        self.settle(WAIT_AT_MOST).await;
    }

    /// The batch read ahead, if it is what a pass that locked the cursor at `position` on
    /// `conn` would read itself (the module's rules). It does not wait: a read still under way
    /// (the pass did not wait in [`Self::ready`]) is dropped and the pass reads for itself.
    pub(crate) async fn take(&mut self, conn: &mut Conn<'_>, position: i64, limit: i64) -> Result<Option<Batch>, StoreError> {
        self.settle(Duration::ZERO).await;
        let Some(Next::Read(Some(batch))) = self.next.take() else { return Ok(None) };
        if batch.after != position || batch.events.len() as i64 != limit {
            return Ok(None);
        }
        if log::rewrites(conn).await? != batch.rewrites {
            return Ok(None);
        }
        self.taken += 1;
        Ok(Some(batch))
    }

    /// How many batches passes took from it.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Wait for the batch being read, however long it takes; the ids of the events it read, if
    /// it read a batch a pass may take.
    pub async fn read(&mut self) -> Option<Vec<&str>> {
        self.settle(Duration::MAX).await;
        match &self.next {
            Some(Next::Read(Some(batch))) => Some(batch.events.iter().map(|l| l.event.id.as_str()).collect()),
            _ => None,
        }
    }

    /// Wait for the batch being read (at most `wait`), and keep what it read.
    async fn settle(&mut self, wait: Duration) {
        if let Some(Next::Reading(handle)) = &mut self.next {
            let read = match tokio::time::timeout(wait, &mut *handle).await {
                Ok(read) => read.ok().flatten(),
                Err(_) => {
                    handle.abort();
                    None
                }
            };
            self.next = Some(Next::Read(read));
        }
    }

    /// Drop the batch being read (the pass failed, or the projector stops).
    pub(crate) fn discard(&mut self) {
        if let Some(Next::Reading(handle)) = self.next.take() {
            handle.abort();
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Read, screen and parse the `limit` events after `after`, and plan their writes; `None`
/// when they are not a full batch of clean events, or the read fails (the pass then reads
/// for itself, and reports what fails).
async fn read_batch(store: &Store, after: i64, limit: i64) -> Option<Batch> {
    // Two statements, each seeing what was committed when it ran. The count first: a rewrite
    // committed between them then shows as a changed count at the pass.
    let (rewrites, rows) = match store {
        Store::Sqlite(s) => {
            let mut c = s.pool().acquire().await.ok()?;
            let conn = &mut Conn::Sqlite(&mut c);
            (log::rewrites(conn).await.ok()?, log::read_after(conn, after, limit).await.ok()?)
        }
        Store::Postgres(s) => {
            let mut c = s.pool().acquire().await.ok()?;
            let conn = &mut Conn::Postgres(&mut c);
            (log::rewrites(conn).await.ok()?, log::read_after(conn, after, limit).await.ok()?)
        }
    };
    if (rows.len() as i64) < limit {
        return None;
    }
    let acts_on = store.acts_on();
    // Parsing a batch takes a few milliseconds of CPU: off the async workers.
    tokio::task::spawn_blocking(move || {
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            if poison::check(row.1.as_bytes()).is_some() {
                return None;
            }
            events.push(log::parse(row).ok()?);
        }
        let writes =
            Writes::from_events(events.iter().map(|l| &l.event).filter(|e| acts_on.is_none_or(|live| e.livemode == live)));
        Some(Batch { after, rewrites, events, writes })
    })
    .await
    .ok()
    .flatten()
}
