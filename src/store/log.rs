//! The event log's own reads and marks. A webhook's event is appended to `stripe_events` and
//! acknowledged; the projector (`ingest::project`) reads the log after its cursor, in log
//! order, and in one transaction per batch writes the projection and the new cursor. This
//! module holds what the projector and everyone else read of the log: its rows, head and
//! cursor, the cursor's compare-and-set, the backlog, the quarantine, the waits for a
//! position, the key events are ordered and parked by, and which failures are the database's
//! rather than one event's.
//!
//! Quarantine: an event whose body no real Stripe object has (see `domain::poison`) is never
//! projected, parked or retried: its log row is marked with the reason (`quarantine`), it is
//! counted in `/metrics` and listed for the owner, and the log moves on.

use crate::domain::event::Event;
use crate::domain::fields::{id_at, str_at};
use crate::domain::poison::{self, Poison};
use crate::store::conn::{Conn, execute, fetch};
use crate::store::{Store, StoreError};

const SELECT_CURSOR: &str = "SELECT position FROM projector_cursor WHERE id = 1";
/// Postgres: the row lock queues concurrent projectors behind each other's commits.
const SELECT_CURSOR_FOR_UPDATE: &str = "SELECT position FROM projector_cursor WHERE id = 1 FOR UPDATE";
const ADVANCE_CURSOR: &str = "UPDATE projector_cursor SET position = $1 WHERE id = 1 AND position = $2";
const READ_LOG_SQLITE: &str =
    "SELECT rowid, payload, received_at, notify FROM stripe_events WHERE rowid > $1 ORDER BY rowid LIMIT $2";
const READ_LOG_POSTGRES: &str =
    "SELECT seq, payload, received_at, notify FROM stripe_events WHERE seq > $1 ORDER BY seq LIMIT $2";
const REWRITES: &str = "SELECT count FROM log_rewrites WHERE id = 1";
/// Run in the transaction that rewrites a payload of the log (`store::forget`): a batch read
/// ahead of the projector before it is stale (`ingest::read_ahead`).
pub(crate) const COUNT_REWRITE: &str = "UPDATE log_rewrites SET count = count + 1 WHERE id = 1";
const STALE_FIGURES: &str = "SELECT COUNT(*), MIN(marked_at) FROM metric_stale";
/// By the head, not `EXISTS (… WHERE seq > $1)`: Postgres may plan that as a scan from the
/// table's start, through every projected row (7 ms a pass at 30,000 events); the head is
/// one index probe on both databases.
const MORE_SQLITE: &str = "SELECT COALESCE(MAX(rowid), 0) > $1 FROM stripe_events";
const MORE_POSTGRES: &str = "SELECT COALESCE(MAX(seq), 0) > $1 FROM stripe_events";
const READ_ONE_SQLITE: &str = "SELECT rowid, payload, received_at, notify FROM stripe_events WHERE rowid = $1";
const READ_ONE_POSTGRES: &str = "SELECT seq, payload, received_at, notify FROM stripe_events WHERE seq = $1";
const LOG_HEAD_SQLITE: &str = "SELECT COALESCE(MAX(rowid), 0) FROM stripe_events";
const LOG_POSITION_SQLITE: &str = "SELECT rowid FROM stripe_events WHERE id = $1";
const LOG_HEAD_POSTGRES: &str = "SELECT COALESCE(MAX(seq), 0) FROM stripe_events";
/// Counted on the `livemode` index, whose entries carry the rowid: counting the table itself
/// read every unprojected row (~1 page each, a 3 KB payload), 6x slower, on every `/metrics`
/// scrape during a backlog. The oldest is the first row after the cursor: rows are appended in
/// the order they are received (`received_at` is the append's clock).
const BACKLOG_SQLITE: &str = "SELECT \
     (SELECT COUNT(*) FROM stripe_events WHERE livemode IN (0, 1) AND rowid > $1), \
     COALESCE((SELECT received_at FROM stripe_events WHERE rowid > $1 ORDER BY rowid LIMIT 1), 0)";
const BACKLOG_POSTGRES: &str = "SELECT COUNT(*), COALESCE(MIN(received_at), 0) FROM stripe_events WHERE seq > $1";
const OTHER_MODE_EVENTS: &str = "SELECT COUNT(*) FROM stripe_events WHERE livemode <> $1";
const PARKED_COUNTS: &str = "SELECT COUNT(DISTINCT customer_key), COUNT(*) FROM parked_events";
const QUARANTINE_SQLITE: &str = "UPDATE stripe_events SET quarantine = $2 WHERE rowid = $1";
const QUARANTINE_POSTGRES: &str = "UPDATE stripe_events SET quarantine = $2 WHERE seq = $1";
const QUARANTINED_COUNT: &str = "SELECT COUNT(*) FROM stripe_events WHERE quarantine IS NOT NULL";
/// The quarantined events, newest first. Only the envelope's columns: never the payload.
const QUARANTINED_SQLITE: &str = "SELECT rowid, id, type, created, received_at, quarantine FROM stripe_events \
     WHERE quarantine IS NOT NULL ORDER BY rowid DESC LIMIT $1";
const QUARANTINED_POSTGRES: &str = "SELECT seq, id, type, created, received_at, quarantine FROM stripe_events \
     WHERE quarantine IS NOT NULL ORDER BY seq DESC LIMIT $1";

/// A quarantined event, as the owner sees it (`GET /api/quarantine`, `holdfast quarantine`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    /// Its position in the log.
    pub seq: i64,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub received_at: i64,
    pub reason: String,
}

/// The projector's backlog, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectorLag {
    /// Events in the log after the cursor (and, on SQLite, waiting in the inbox).
    pub events: i64,
    /// Age of the oldest of them (0 when none).
    pub seconds: i64,
    /// Customers with parked events.
    pub parked_customers: i64,
    /// Parked events.
    pub parked_events: i64,
    /// The cursor.
    pub position: i64,
    /// Events of the other Stripe mode than the instance's: stored, never acted on.
    pub other_mode_events: i64,
    /// Events quarantined (all time).
    pub quarantined_events: i64,
    /// Customers whose maintained figures are behind their projected history (the projector
    /// recomputes them once per customer while it works through a backlog).
    pub stale_figures: i64,
    /// How long the oldest of them has waited (0 when none).
    pub stale_figures_seconds: i64,
}

/// One row of the log.
pub(crate) struct Logged {
    pub(crate) seq: i64,
    pub(crate) event: Event,
    pub(crate) received_at: i64,
    pub(crate) notify: bool,
}

/// A log row as read: position, payload, receipt time, whether its reactions may email.
pub(crate) type LogRow = (i64, String, i64, bool);

/// The key events are ordered and parked by: the object's customer (a customer object's own
/// id); events naming no customer, their object's id.
pub fn customer_key(event: &Event) -> String {
    let object = &event.object;
    let key = match str_at(object, "object").as_deref() {
        Some("customer") => str_at(object, "id"),
        _ => id_at(object, "customer").or_else(|| str_at(object, "id")),
    };
    let key = key.unwrap_or_else(|| event.id.clone());
    storable_key(key)
}

/// Longest customer key kept as it is; longer ones are replaced by their digest.
const MAX_KEY_BYTES: usize = 255;

/// A key both databases can store and index (`parked_events.customer_key`): an id too long
/// for an index or holding a NUL (a poison event's) is replaced by its SHA-256, so the event
/// that carries it can still be parked, and its customer's later events match it.
pub fn storable_key(key: String) -> String {
    use sha2::Digest;
    if key.len() <= MAX_KEY_BYTES && !key.contains('\0') {
        return key;
    }
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(key.as_bytes())))
}

pub(crate) fn is_postgres(conn: &Conn<'_>) -> bool {
    matches!(conn, Conn::Postgres(_))
}

/// The cursor, read in the caller's transaction. Postgres: the row lock queues concurrent
/// projectors (and whoever else must not race them) behind each other's commits.
pub(crate) async fn lock_cursor(conn: &mut Conn<'_>) -> Result<i64, StoreError> {
    let select_cursor = if is_postgres(conn) { SELECT_CURSOR_FOR_UPDATE } else { SELECT_CURSOR };
    let (position,): (i64,) = fetch!(conn, fetch_one, (i64,), select_cursor)?;
    Ok(position)
}

/// Move the cursor from `from` to `to`; [`StoreError::CursorMoved`] if another projector
/// moved it first.
pub(crate) async fn advance_cursor(conn: &mut Conn<'_>, from: i64, to: i64) -> Result<(), StoreError> {
    if execute!(conn, ADVANCE_CURSOR, to, from)? != 1 {
        return Err(StoreError::CursorMoved);
    }
    Ok(())
}

/// Up to `limit` rows of the log after position `after`, in log order.
pub(crate) async fn read_after(conn: &mut Conn<'_>, after: i64, limit: i64) -> Result<Vec<LogRow>, StoreError> {
    let read = if is_postgres(conn) { READ_LOG_POSTGRES } else { READ_LOG_SQLITE };
    Ok(fetch!(conn, fetch_all, LogRow, read, after, limit)?)
}

/// How many times payloads of the log were rewritten (`COUNT_REWRITE`).
pub(crate) async fn rewrites(conn: &mut Conn<'_>) -> Result<i64, StoreError> {
    let (count,): (i64,) = fetch!(conn, fetch_one, (i64,), REWRITES)?;
    Ok(count)
}

/// Whether the log holds an event after position `seq`.
pub(crate) async fn has_after(conn: &mut Conn<'_>, seq: i64) -> Result<bool, StoreError> {
    let sql = if is_postgres(conn) { MORE_POSTGRES } else { MORE_SQLITE };
    let (more,): (bool,) = fetch!(conn, fetch_one, (bool,), sql, seq)?;
    Ok(more)
}

/// The log row at position `seq`.
pub(crate) async fn read_at(conn: &mut Conn<'_>, seq: i64) -> Result<LogRow, StoreError> {
    let read = if is_postgres(conn) { READ_ONE_POSTGRES } else { READ_ONE_SQLITE };
    Ok(fetch!(conn, fetch_one, LogRow, read, seq)?)
}

/// Mark the log row at `seq` quarantined (no payload, no id in the log line: the owner reads
/// them from the quarantine list).
async fn quarantine(conn: &mut Conn<'_>, seq: i64, poison: &Poison) -> Result<(), StoreError> {
    let sql = if is_postgres(conn) { QUARANTINE_POSTGRES } else { QUARANTINE_SQLITE };
    let reason = poison.to_string();
    execute!(conn, sql, seq, reason.as_str())?;
    tracing::warn!(seq, reason = %reason, "event quarantined: stored, never projected");
    Ok(())
}

/// The rows of `rows` that may be projected; the others are quarantined. Returns those and how
/// many were quarantined.
pub(crate) async fn screen(conn: &mut Conn<'_>, rows: Vec<LogRow>) -> Result<(Vec<LogRow>, usize), StoreError> {
    let mut clean = Vec::with_capacity(rows.len());
    let mut quarantined = 0;
    for row in rows {
        match poison::check(row.1.as_bytes()) {
            Some(poison) => {
                quarantine(conn, row.0, &poison).await?;
                quarantined += 1;
            }
            None => clean.push(row),
        }
    }
    Ok((clean, quarantined))
}

pub(crate) fn parse(row: LogRow) -> Result<Logged, (i64, crate::store::ProjectionError)> {
    let (seq, payload, received_at, notify) = row;
    match Event::parse(payload.as_bytes()) {
        Ok(event) => Ok(Logged { seq, event, received_at, notify }),
        Err(e) => Err((seq, crate::store::ProjectionError::Payload(e))),
    }
}

/// Whether `e` is the database's trouble (gone, locked, full, read-only, out of resources)
/// rather than one event's: such a failure is retried as a whole and never parks anyone, so
/// the projection heals by itself when the cause goes away.
pub fn is_outage(e: &StoreError) -> bool {
    match e {
        StoreError::Unavailable(_) | StoreError::NotDurable(_) | StoreError::WriterGone => true,
        StoreError::Database(sqlx::Error::Database(db)) => outage_code(db.as_ref()).is_some(),
        _ => false,
    }
}

/// The reason `/readyz` gives for a failed projector or outbox pass.
pub fn outage_reason(e: &StoreError) -> &'static str {
    match e {
        StoreError::NotDurable(_) => "database writes not durable (WAL sync failed)",
        StoreError::Database(sqlx::Error::Database(db)) => outage_code(db.as_ref()).unwrap_or("database error"),
        StoreError::Unavailable(sqlx::Error::Database(db)) => outage_code(db.as_ref()).unwrap_or("database unavailable"),
        StoreError::Database(_) => "database error",
        _ => "database unavailable",
    }
}

/// SQLite result codes (primary code in the low byte) and Postgres SQLSTATEs that mean the
/// database can't be used now, with what they mean. The backend is told by the error's type:
/// many SQLSTATEs are digits too.
fn outage_code(db: &dyn sqlx::error::DatabaseError) -> Option<&'static str> {
    let code = db.code()?;
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return match code.parse::<i32>().ok()? & 0xff {
            5 | 6 => Some("database locked"),
            7 => Some("database out of memory"),
            8 => Some("database is read-only"),
            10 => Some("database disk I/O error"),
            13 => Some("disk full"),
            14 => Some("database file cannot be opened"),
            _ => None,
        };
    }
    match code.as_ref() {
        "53100" => Some("disk full"),
        "3D000" | "55000" => Some("database unavailable"),
        c if c.starts_with("08") || c.starts_with("57") || c.starts_with("28") => Some("database unavailable"),
        c if c.starts_with("53") || c.starts_with("58") => Some("database out of resources"),
        _ => None,
    }
}

impl Store {
    /// The position of the last event in the log.
    pub async fn log_head(&self) -> Result<i64, StoreError> {
        let sql = if matches!(self, Store::Postgres(_)) { LOG_HEAD_POSTGRES } else { LOG_HEAD_SQLITE };
        let (head,): (i64,) = self.with_conn(async |c| fetch!(c, fetch_one, (i64,), sql)).await?;
        Ok(head)
    }

    /// The projector's cursor as stored.
    pub async fn projector_position(&self) -> Result<i64, StoreError> {
        let (position,): (i64,) = self.with_conn(async |c| fetch!(c, fetch_one, (i64,), SELECT_CURSOR)).await?;
        Ok(position)
    }

    /// The projector's backlog and the parked customers, at `now`.
    pub async fn projector_lag(&self, now: i64) -> Result<ProjectorLag, StoreError> {
        let position = self.projector_position().await?;
        let sql = if matches!(self, Store::Postgres(_)) { BACKLOG_POSTGRES } else { BACKLOG_SQLITE };
        let (mut events, mut oldest): (i64, i64) =
            self.with_conn(async |c| fetch!(c, fetch_one, (i64, i64), sql, position)).await?;
        // Webhooks not copied from the inbox into the log yet are behind too.
        if let Store::Sqlite(s) = self
            && let Some(inbox) = s.inbox()
        {
            let (waiting, since) = inbox.backlog().await?;
            if waiting > 0 {
                oldest = if events > 0 { oldest.min(since) } else { since };
                events += waiting;
            }
        }
        let (parked_customers, parked_events): (i64, i64) =
            self.with_conn(async |c| fetch!(c, fetch_one, (i64, i64), PARKED_COUNTS)).await?;
        let other_mode_events = match self.acts_on() {
            Some(live) => self.with_conn(async |c| fetch!(c, fetch_one, (i64,), OTHER_MODE_EVENTS, live)).await?.0,
            None => 0,
        };
        let (quarantined_events,): (i64,) = self.with_conn(async |c| fetch!(c, fetch_one, (i64,), QUARANTINED_COUNT)).await?;
        let (stale_figures, stale_since): (i64, Option<i64>) =
            self.with_conn(async |c| fetch!(c, fetch_one, (i64, Option<i64>), STALE_FIGURES)).await?;
        Ok(ProjectorLag {
            other_mode_events,
            events,
            seconds: if events > 0 { (now - oldest).max(0) } else { 0 },
            parked_customers,
            parked_events,
            position,
            quarantined_events,
            stale_figures,
            stale_figures_seconds: stale_since.map_or(0, |at| (now - at).max(0)),
        })
    }

    /// The quarantined events, newest first, at most `limit`.
    pub async fn quarantined(&self, limit: i64) -> Result<Vec<Quarantined>, StoreError> {
        let sql = if matches!(self, Store::Postgres(_)) { QUARANTINED_POSTGRES } else { QUARANTINED_SQLITE };
        let rows: Vec<(i64, String, String, i64, i64, String)> =
            self.with_conn(async |c| fetch!(c, fetch_all, (i64, String, String, i64, i64, String), sql, limit)).await?;
        Ok(rows
            .into_iter()
            .map(|(seq, event_id, kind, created, received_at, reason)| Quarantined {
                seq,
                event_id,
                kind,
                created,
                received_at,
                reason,
            })
            .collect())
    }

    /// Wait until the projector (of this process or another) has passed log position
    /// `target`, or `timeout` elapses (then `false`). In-process projections wake it at once;
    /// another process's are seen by re-reading the cursor every 500 ms (a failed read is
    /// retried until the deadline: the pool may be busy under load).
    pub async fn wait_projected_through(&self, target: i64, timeout: std::time::Duration) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut projected = self.log_signals().projected.subscribe();
        let mut last_error = None;
        // In-process projections wake the watch; the database is asked when the waited-for
        // position may be another process's (nothing projected here yet) and every 500 ms.
        let mut ask_database = *projected.borrow() == 0;
        loop {
            if *projected.borrow_and_update() >= target {
                return Ok(true);
            }
            if ask_database {
                match self.projector_position().await {
                    Ok(p) if p >= target => return Ok(true),
                    Ok(_) => {}
                    Err(e) => last_error = Some(e),
                }
            }
            tokio::select! {
                _ = projected.changed() => ask_database = false,
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => ask_database = true,
                _ = tokio::time::sleep_until(deadline) => return last_error.map_or(Ok(false), Err),
            }
        }
    }

    /// Wait until every event appended so far is projected (or parked).
    pub async fn wait_projected(&self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // What this process appended is known without a query (tests post to it): to the log
        // (imports), and to the inbox (SQLite's webhooks), whose rows reach the log first.
        let mut local = self.log_signals().appended_head.load(std::sync::atomic::Ordering::Relaxed);
        if let Store::Sqlite(s) = self
            && let Some(inbox) = s.inbox()
            && inbox.head() > 0
        {
            match inbox.wait_drained(inbox.head(), deadline).await {
                Some(log_head) => local = local.max(log_head),
                None => return Ok(false),
            }
        }
        if local > 0 {
            return self.wait_projected_through(local, deadline.saturating_duration_since(tokio::time::Instant::now())).await;
        }
        // Another process accepts the webhooks (SQLite): its inbox's latest row must reach the
        // log first; the rows before it are copied before it.
        if let Store::Sqlite(s) = self
            && let Some(inbox) = s.inbox()
            && let Some(last) = inbox.last_id().await?
        {
            local = loop {
                if let Some((position,)) =
                    self.with_conn(async |c| fetch!(c, fetch_optional, (i64,), LOG_POSITION_SQLITE, &last)).await?
                {
                    break position;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Ok(false);
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            };
        }
        // The head is read once; under load the pool may be busy for a moment: retry.
        let head = loop {
            match self.log_head().await {
                Ok(head) => break head,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        self.wait_projected_through(head.max(local), deadline.saturating_duration_since(tokio::time::Instant::now())).await
    }
}
