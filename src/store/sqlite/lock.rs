//! Taking SQLite's write lock without SQLite's busy handler. That handler sleeps 1, 2, 5, 10,
//! … up to 100 ms between tries, so a connection that found the lock taken slept on long after
//! it was free: under load, `strace` showed the projector's connection in 100 ms sleeps for
//! half of a drain while the outbox worker's short transactions came and went, and the
//! projector drained a third as fast as it can. The connections that use this (the
//! projector's, the inbox's) run with no busy timeout and try again every [`RETRY`] instead,
//! as the append thread does. Once a transaction holds the write lock, nothing inside it waits
//! for a lock in WAL mode (reads never do, and these connections never checkpoint), so only
//! the lock's taking needs the loop.

use std::future::Future;
use std::time::Duration;

use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, Transaction};

/// Between two tries for the lock (a try costs a few microseconds).
const RETRY: Duration = Duration::from_micros(500);
/// How long a caller waits for the lock before it fails as "database unavailable", as the
/// pools' `busy_timeout` does.
const GIVE_UP_AFTER: Duration = Duration::from_secs(5);

/// Whether `e` is SQLite's "the lock is taken" (`SQLITE_BUSY` and its extended codes).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == 5)
}

/// Run `attempt` until it does not fail for the lock being taken, or [`GIVE_UP_AFTER`].
pub(crate) async fn retry_while_locked<T, F, Fut>(mut attempt: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let deadline = tokio::time::Instant::now() + GIVE_UP_AFTER;
    loop {
        match attempt().await {
            Err(e) if is_busy(&e) && tokio::time::Instant::now() < deadline => tokio::time::sleep(RETRY).await,
            other => return other,
        }
    }
}

/// `BEGIN IMMEDIATE` on `pool`, the lock taken as above.
pub(crate) async fn begin_immediate(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    retry_while_locked(|| pool.begin_with("BEGIN IMMEDIATE")).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    #[tokio::test]
    async fn a_taken_lock_is_waited_for_not_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("l.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::ZERO);
        let holder = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.expect("pool");
        let waiter = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.expect("pool");
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&holder).await.expect("table");

        let held = holder.begin_with("BEGIN IMMEDIATE").await.expect("lock");
        let refused = waiter.begin_with("BEGIN IMMEDIATE").await.map(|_| ()).expect_err("no busy timeout: refused at once");
        assert!(is_busy(&refused), "{refused:?}");
        let waiting = tokio::spawn(async move {
            let mut tx = begin_immediate(&waiter).await.expect("taken once free");
            sqlx::query("INSERT INTO t VALUES (2)").execute(&mut *tx).await.expect("insert");
            tx.commit().await.expect("commit");
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "it waits while the lock is held");
        held.commit().await.expect("release");
        waiting.await.expect("the waiter got the lock");
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t").fetch_one(&holder).await.expect("count");
        assert_eq!(n, 1);
    }
}
