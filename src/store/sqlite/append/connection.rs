//! The append thread's own connections (the inbox, written; the log, read for duplicates): how
//! they are opened, how they wait for SQLite's lock, the batch's insert, and their errors
//! classified as the pool's are.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::store::StoreError;
use crate::store::classify::{ErrorClass, sqlite_class};
use crate::store::writer::Request;

/// One row per event; `RETURNING` gives the inbox position of a new one and nothing for a
/// duplicate id (also within the batch: the later copy conflicts with the earlier).
const INSERT_EVENT: &str = "INSERT INTO webhook_inbox (id, type, created, livemode, api_version, account, payload, received_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING RETURNING seq";
/// The batch's ids (a JSON array) that the log holds already: copied there from the inbox,
/// maybe deleted from it since, or stored by an import.
const IN_THE_LOG: &str = "SELECT id FROM stripe_events WHERE id IN (SELECT value FROM json_each(?1))";

/// How long the thread waits for SQLite's lock before the batch fails (503).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Between two tries for the lock. SQLite's own busy handler sleeps 1, 2, 5, 10, … up to
/// 100 ms between tries, so a batch queued behind a projector transaction waited up to tens
/// of milliseconds after the lock was free; a try costs a few microseconds.
const BUSY_RETRY: Duration = Duration::from_micros(250);
/// Page cache of the append connection (negative: KiB); the default 2 MB made it re-read
/// index pages from the OS on every batch.
const CACHE_SIZE_KIB: i64 = -16384;

/// The append thread's two connections.
pub(super) struct Connections {
    /// The inbox, written.
    pub inbox: Connection,
    /// The log, read only: a read never waits for the projector's write lock.
    pub log: Connection,
}

/// The inbox connection: `synchronous=NORMAL` (the WAL syncer makes each commit durable
/// before it is acknowledged) and no checkpoints of its own (the inbox's checkpoint thread
/// copies the WAL; a checkpoint inside a commit held up a batch). The log connection reads
/// only.
pub(super) fn open(inbox: &Path, log: &Path) -> rusqlite::Result<Connections> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(inbox, flags)?;
    conn.busy_handler(Some(wait_for_lock))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", CACHE_SIZE_KIB)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    let log = Connection::open_with_flags(log, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    log.busy_handler(Some(wait_for_lock))?;
    log.pragma_update(None, "cache_size", CACHE_SIZE_KIB)?;
    Ok(Connections { inbox: conn, log })
}

/// SQLite's busy handler: `tries` earlier tries failed; `true`: try again.
fn wait_for_lock(tries: i32) -> bool {
    let waited = BUSY_RETRY.saturating_mul(u32::try_from(tries).unwrap_or(u32::MAX));
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(BUSY_RETRY);
    true
}

pub(super) fn insert_all(
    conns: &mut Connections,
    requests: &[Request],
    received_at: i64,
) -> Result<Vec<Result<Option<i64>, StoreError>>, StoreError> {
    // The inbox's lock is taken before the log is read: a row the projector copies and
    // deletes meanwhile is in the log by the time the delete lets this batch in.
    let tx = conns.inbox.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    let logged = in_the_log(&conns.log, requests)?;
    let mut outcomes = Vec::with_capacity(requests.len());
    {
        let mut insert = tx.prepare_cached(INSERT_EVENT).map_err(store_error)?;
        for request in requests {
            let e = &request.event;
            if logged.contains(e.id.as_str()) {
                outcomes.push(Ok(None));
                continue;
            }
            let row = insert
                .query_row(params![e.id, e.kind, e.created, e.livemode, e.api_version, e.account, e.raw, received_at], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
                .map_err(store_error);
            match row {
                Ok(position) => outcomes.push(Ok(position)),
                Err(e @ StoreError::Rejected(_)) => outcomes.push(Err(e)),
                Err(e) => return Err(e),
            }
        }
    }
    tx.commit().map_err(store_error)?;
    Ok(outcomes)
}

/// The ids of `requests` the log holds already.
fn in_the_log(log: &Connection, requests: &[Request]) -> Result<HashSet<String>, StoreError> {
    let ids: Vec<&str> = requests.iter().map(|r| r.event.id.as_str()).collect();
    let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Database(sqlx::Error::Protocol(e.to_string())))?;
    let mut select = log.prepare_cached(IN_THE_LOG).map_err(store_error)?;
    let found = select.query_map([ids], |r| r.get::<_, String>(0)).map_err(store_error)?;
    found.collect::<rusqlite::Result<HashSet<String>>>().map_err(store_error)
}

/// A SQLite error of the append connection, classified as the pool's are.
pub(super) fn store_error(e: rusqlite::Error) -> StoreError {
    let (code, class) = match &e {
        rusqlite::Error::SqliteFailure(f, _) => (Some(f.extended_code), sqlite_class(f.extended_code)),
        _ => (None, ErrorClass::Other),
    };
    let inner = sqlx::Error::Database(Box::new(AppendError { code, message: e.to_string() }));
    match class {
        ErrorClass::Transient => StoreError::Unavailable(inner),
        ErrorClass::Data => StoreError::Rejected(inner),
        ErrorClass::Other => StoreError::Database(inner),
    }
}

/// A SQLite error of the append connection, as the database error the rest of the store
/// reports (message and result code; never a value of the row).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct AppendError {
    code: Option<i32>,
    message: String,
}

impl sqlx::error::DatabaseError for AppendError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.code.map(|c| c.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}
