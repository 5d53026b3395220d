//! Reading ahead (SQLite): while a projector pass writes its batch, the next batch is read,
//! screened and parsed, and its writes planned, on another connection and another core. A
//! pass is two halves that used to take turns on one core: this Rust work, and SQLite's work
//! on the projector's connection. Drawn from a backlog, the next batch's Rust half now runs
//! during this batch's SQLite half.
//!
//! A read-ahead batch is used only when it is exactly what the pass would read itself:
//! - it starts at the cursor the pass locked (a failed pass, another projector or a
//!   reprojection moved nothing, or it is discarded);
//! - it is a full batch (at the log's end the pass reads for itself, so what arrived meanwhile
//!   joins it);
//! - no payload of the log was rewritten since it was read (`holdfast forget` and payload
//!   pruning count their rewrites in `log_rewrites`, in the transaction that rewrites);
//! - every row in it is clean and parses (a batch with a quarantined or unreadable event is
//!   left to the pass, which quarantines or parks it).
//!
//! Rows of the log are otherwise never changed, and SQLite's single writer appends them in
//! position order, so rows read after a position stay exactly the rows after it. Postgres does
//! not read ahead: its appends commit in any order.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::domain::poison;
use crate::store::batch::Writes;
use crate::store::conn::Conn;
use crate::store::log::{self, Logged};
use crate::store::{Store, StoreError};

/// How long a pass waits for the batch being read before it reads for itself. The read has had
/// the whole of the pass before to finish, which it does unless it waits for a connection (the
/// pool busy with the owner's reads); the pass holds the write lock meanwhile.
const WAIT_AT_MOST: Duration = Duration::from_millis(50);

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

/// The projector's next batch, being read by another task (SQLite; empty elsewhere).
#[derive(Default)]
pub(crate) struct ReadAhead {
    next: Option<Next>,
    /// Batches passes took from it (tests).
    taken: u64,
}

enum Next {
    Reading(JoinHandle<Option<Batch>>),
    Read(Option<Batch>),
}

impl ReadAhead {
    /// Start reading the `limit` events after `after` (SQLite only), replacing any batch read
    /// before.
    pub(crate) fn start(&mut self, store: &Store, after: i64, limit: i64) {
        self.discard();
        if let Store::Sqlite(_) = store {
            let store = store.clone();
            self.next = Some(Next::Reading(tokio::spawn(async move { read(&store, after, limit).await })));
        }
    }

    /// The batch read ahead, if it is what a pass that locked the cursor at `position` on
    /// `conn` would read itself (the module's rules).
    pub(crate) async fn take(&mut self, conn: &mut Conn<'_>, position: i64, limit: i64) -> Result<Option<Batch>, StoreError> {
        self.settle().await;
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

    /// Wait for the batch being read (at most `WAIT_AT_MOST`), and keep what it read.
    async fn settle(&mut self) {
        if let Some(Next::Reading(handle)) = &mut self.next {
            let read = match tokio::time::timeout(WAIT_AT_MOST, &mut *handle).await {
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
async fn read(store: &Store, after: i64, limit: i64) -> Option<Batch> {
    let Store::Sqlite(sqlite) = store else { return None };
    let (rewrites, rows) = {
        let mut c = sqlite.pool().acquire().await.ok()?;
        let conn = &mut Conn::Sqlite(&mut c);
        // The count first: a rewrite committed between the two reads then shows as a changed
        // count at the pass.
        let rewrites = log::rewrites(conn).await.ok()?;
        (rewrites, log::read_after(conn, after, limit).await.ok()?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Event;
    use crate::store::sqlite::test_support::store_with_writer;

    /// `customer.created` for `cus_<n>` with an email address.
    fn customer_created(n: u32) -> Event {
        let body = format!(
            r#"{{"id":"evt_{n}","object":"event","type":"customer.created","created":10,"livemode":false,"data":{{"object":{{"id":"cus_{n}","object":"customer","email":"person{n}@example.com","created":10}}}}}}"#
        );
        Event::parse(body.as_bytes()).expect("valid event")
    }

    async fn email_of(store: &Store, customer: &str) -> Option<Option<String>> {
        let Store::Sqlite(s) = store else { unreachable!("a SQLite store") };
        sqlx::query_as::<_, (Option<String>,)>("SELECT email FROM customers WHERE id = $1")
            .bind(customer)
            .fetch_optional(s.pool())
            .await
            .expect("customers")
            .map(|(email,)| email)
    }

    /// Four events in the log and a first pass of two projected with a read-ahead, which has
    /// then read the other two.
    async fn first_pass_read_ahead(dir: &std::path::Path) -> (Store, ReadAhead, crate::store::writer::Writer) {
        let (store, _url, writer, _task) = store_with_writer(dir, "r.db").await;
        for n in 1..=4 {
            writer.submit(customer_created(n)).await.expect("stored");
        }
        let mut ahead = ReadAhead::default();
        let pass = store.project_pass(2, 0, Some(&mut ahead)).await.expect("first pass");
        assert_eq!(pass.finish(&store).await.expect("durable").events, 2);
        ahead.settle().await;
        let Some(Next::Read(Some(batch))) = &ahead.next else { panic!("the next batch was read ahead") };
        let ids: Vec<&str> = batch.events.iter().map(|l| l.event.id.as_str()).collect();
        assert_eq!(ids, ["evt_3", "evt_4"], "the two events after the first pass");
        (store, ahead, writer)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_next_pass_projects_the_batch_read_ahead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, mut ahead, _writer) = first_pass_read_ahead(dir.path()).await;
        let done = store.project_pass(2, 0, Some(&mut ahead)).await.expect("second pass").finish(&store).await.expect("durable");
        assert_eq!((done.events, ahead.taken), (2, 1), "the pass took the batch read ahead");
        assert_eq!(email_of(&store, "cus_4").await, Some(Some("person4@example.com".to_owned())));
        let done = store.project_pass(2, 0, Some(&mut ahead)).await.expect("third pass").finish(&store).await.expect("durable");
        assert_eq!((done.events, ahead.taken), (0, 1), "nothing left, nothing projected twice");
    }

    /// `holdfast forget` between the read and the pass: the pass reads the redacted payload
    /// itself, so the forgotten address never reaches the tables.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_payload_rewritten_after_the_read_ahead_is_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, mut ahead, _writer) = first_pass_read_ahead(dir.path()).await;
        store.forget_customer("cus_3").await.expect("forget");
        let done = store.project_pass(2, 0, Some(&mut ahead)).await.expect("second pass").finish(&store).await.expect("durable");
        assert_eq!((done.events, ahead.taken), (2, 0), "the batch read ahead was not used");
        assert_eq!(email_of(&store, "cus_3").await, Some(None), "projected without the forgotten address");
        assert_eq!(email_of(&store, "cus_4").await, Some(Some("person4@example.com".to_owned())));
    }

    /// Another projector (an import, `holdfast replay`) moved the cursor past the batch read
    /// ahead: the pass reads for itself and projects nothing twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_read_ahead_of_a_cursor_that_moved_is_not_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, mut ahead, writer) = first_pass_read_ahead(dir.path()).await;
        assert_eq!(store.project_batch(2, 0).await.expect("the other projector").events, 2);
        writer.submit(customer_created(5)).await.expect("stored");
        let done = store.project_pass(2, 0, Some(&mut ahead)).await.expect("second pass").finish(&store).await.expect("durable");
        assert_eq!((done.events, ahead.taken), (1, 0), "only the new event, read by the pass");
        assert_eq!(email_of(&store, "cus_5").await, Some(Some("person5@example.com".to_owned())));
    }
}
