//! The event log and the projector's transaction. A webhook's event is appended to
//! `stripe_events` and acknowledged; the projector then reads the log after its cursor, in
//! log order, and in one transaction per batch writes the projection, the subscription
//! history, the metrics generation, the reactions (dunning, lifecycle, outbox rows) and the
//! new cursor. The cursor moves by compare-and-set, so a batch is projected at most once
//! even when two projectors (replicas, an import command) race; a crash anywhere leaves the
//! cursor and the projected state together, so the next projector resumes exactly there.
//!
//! Failure isolation: an event whose projection fails is parked with its error (in
//! `parked_events`) instead of stopping the log; later events of the same customer are
//! parked behind it, in order, and every other customer goes on. Parked events are retried
//! with back-off ([`Store::retry_parked`]).
//!
//! Quarantine: an event whose body no real Stripe object has (see `domain::poison`) is never
//! projected, parked or retried: its log row is marked with the reason (`quarantine`), it is
//! counted in `/metrics` and listed for the owner, and the log moves on.

use std::collections::HashSet;

use crate::domain::event::Event;
use crate::domain::fields::{id_at, str_at};
use crate::domain::poison::{self, Poison};
use crate::store::batch::Writes;
use crate::store::conn::{Conn, execute, fetch};
use crate::store::reactions::{ReactionHook, react};
use crate::store::{Store, StoreError};

/// Most events a projector transaction takes: large enough that a backlog is applied a few
/// statements per thousand events, small enough that a batch holds SQLite's write lock for
/// a few milliseconds only (appends wait for it).
pub const PROJECT_BATCH: i64 = 1000;

/// First retry of a parked customer after this long; doubles per failed attempt.
const PARK_RETRY_SECS: i64 = 10;
/// Longest pause between two retries of a parked customer.
const PARK_RETRY_MAX_SECS: i64 = 3600;

const SELECT_CURSOR: &str = "SELECT position FROM projector_cursor WHERE id = 1";
/// Postgres: the row lock queues concurrent projectors behind each other's commits.
const SELECT_CURSOR_FOR_UPDATE: &str = "SELECT position FROM projector_cursor WHERE id = 1 FOR UPDATE";
const ADVANCE_CURSOR: &str = "UPDATE projector_cursor SET position = $1 WHERE id = 1 AND position = $2";
const READ_LOG_SQLITE: &str =
    "SELECT rowid, payload, received_at, notify FROM stripe_events WHERE rowid > $1 ORDER BY rowid LIMIT $2";
const READ_LOG_POSTGRES: &str =
    "SELECT seq, payload, received_at, notify FROM stripe_events WHERE seq > $1 ORDER BY seq LIMIT $2";
const READ_ONE_SQLITE: &str = "SELECT rowid, payload, received_at, notify FROM stripe_events WHERE rowid = $1";
const READ_ONE_POSTGRES: &str = "SELECT seq, payload, received_at, notify FROM stripe_events WHERE seq = $1";
const PARKED_KEYS: &str = "SELECT DISTINCT customer_key FROM parked_events";
const PARK: &str = "INSERT INTO parked_events (seq, event_id, customer_key, error, attempts, next_attempt_at, parked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// Parked customers whose retry time came, each with the position of its first event.
const DUE_PARKED: &str = "SELECT customer_key, MIN(seq) FROM parked_events GROUP BY customer_key \
     HAVING COALESCE(MIN(CASE WHEN error IS NOT NULL THEN next_attempt_at END), 0) <= $1 ORDER BY MIN(seq) LIMIT 100";
const PARKED_OF: &str = "SELECT seq, attempts FROM parked_events WHERE customer_key = $1 ORDER BY seq";
const UNPARK: &str = "DELETE FROM parked_events WHERE seq = $1";
const PARK_FAILED_AGAIN: &str = "UPDATE parked_events SET error = $2, attempts = $3, next_attempt_at = $4 WHERE seq = $1";
const LOG_HEAD_SQLITE: &str = "SELECT COALESCE(MAX(rowid), 0) FROM stripe_events";
const LOG_HEAD_POSTGRES: &str = "SELECT COALESCE(MAX(seq), 0) FROM stripe_events";
const BACKLOG_SQLITE: &str = "SELECT COUNT(*), COALESCE(MIN(received_at), 0) FROM stripe_events WHERE rowid > $1";
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

/// The tables the projection writes, children first (`holdfast reproject` empties them).
const CLEAR_PROJECTED: [&str; 11] = [
    "DELETE FROM invoice_failures",
    "DELETE FROM subscription_item_lines",
    "DELETE FROM coupons",
    "DELETE FROM prices",
    "DELETE FROM products",
    "DELETE FROM subscription_items",
    "DELETE FROM subscription_history",
    "DELETE FROM subscriptions",
    "DELETE FROM invoices",
    "DELETE FROM discounts",
    "DELETE FROM customers",
];
const PARKED_SEQS: &str = "SELECT seq FROM parked_events";

/// What one projector transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Projected {
    /// Events read from the log (projected or parked).
    pub events: usize,
    /// Of those, parked (failed, or behind a parked event of the same customer).
    pub parked: usize,
    /// The cursor after the batch.
    pub position: i64,
    /// Emails the reactions enqueued.
    pub enqueued: usize,
    /// Of the events read, quarantined (never projected).
    pub quarantined: usize,
}

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
    /// Events in the log after the cursor.
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
}

/// One row of the log.
struct Logged {
    seq: i64,
    event: Event,
    received_at: i64,
    notify: bool,
}

type LogRow = (i64, String, i64, bool);

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

fn is_postgres(conn: &Conn<'_>) -> bool {
    matches!(conn, Conn::Postgres(_))
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
async fn screen(conn: &mut Conn<'_>, rows: Vec<LogRow>) -> Result<(Vec<LogRow>, usize), StoreError> {
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

fn parse(row: LogRow) -> Result<Logged, (i64, crate::store::ProjectionError)> {
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

/// Back-off after `attempts` failed attempts.
fn retry_after(attempts: i64) -> i64 {
    let shift = attempts.clamp(0, 20) as u32;
    PARK_RETRY_SECS.saturating_mul(1_i64 << shift).min(PARK_RETRY_MAX_SECS)
}

/// Apply `events` (in log order) and run their reactions, inside the caller's transaction.
/// Events of the other Stripe mode than `acts_on` are passed over: they stay in the log only.
/// `recompute_figures`: move the maintained figures of the customers the events touch (a
/// reprojection rebuilds them all once at its end instead). `record_ties`: note same-second
/// ties for a fetch from Stripe (live projection with a Stripe key only, never a reprojection).
async fn project_events(
    conn: &mut Conn<'_>,
    events: &[Logged],
    reactor: Option<&dyn ReactionHook>,
    acts_on: Option<bool>,
    recompute_figures: bool,
    record_ties: bool,
) -> Result<usize, StoreError> {
    let events: Vec<&Logged> = events.iter().filter(|l| acts_on.is_none_or(|live| l.event.livemode == live)).collect();
    if events.is_empty() {
        return Ok(0);
    }
    let writes = Writes::from_events(events.iter().map(|l| &l.event));
    if record_ties {
        let received = events.iter().map(|l| l.received_at).max().unwrap_or_default();
        crate::store::refetch::record_ties(conn, &writes, received).await?;
    }
    match conn {
        Conn::Sqlite(c) => crate::store::sqlite::ingest::apply(c, &writes).await?,
        Conn::Postgres(c) => crate::store::postgres::ingest::apply(c, &writes).await?,
    }
    let all: Vec<&Event> = events.iter().map(|l| &l.event).collect();
    crate::store::catalog::apply(conn, &all).await?;
    crate::store::pricing::apply(conn, &all).await?;
    crate::store::refunds::apply(conn, &all).await?;
    crate::store::metrics::record_invoice_failures(conn, &all).await?;
    crate::store::coupons::apply(conn, &all).await?;
    // Reactions see the batch in runs of one kind (webhook or import: imports never email),
    // each run at the time its last event was received, as the ingest transaction did.
    let mut enqueued = 0;
    for run in events.chunk_by(|a, b| a.notify == b.notify) {
        let refs: Vec<&Event> = run.iter().map(|l| &l.event).collect();
        let now = run.iter().map(|l| l.received_at).max().unwrap_or_default();
        enqueued += react(conn, &refs, now, run[0].notify, reactor).await?;
    }
    // Seen as of the batch's latest receipt: a later instant only makes the figures exact
    // further ahead; the scheduler recomputes them once the clock passes their due time.
    let seen_at = events.iter().map(|l| l.received_at).max().unwrap_or_default();
    crate::figures::storage::apply(conn, &all, recompute_figures, seen_at).await?;
    // Cached metrics are stale from this commit on.
    execute!(conn, crate::store::metrics::BUMP_GENERATION)?;
    Ok(enqueued)
}

/// One projector transaction's work on `conn` (inside a transaction): up to `limit` events
/// after the cursor.
async fn project_next(
    conn: &mut Conn<'_>,
    limit: i64,
    reactor: Option<&dyn ReactionHook>,
    acts_on: Option<bool>,
    now: i64,
    record_ties: bool,
) -> Result<Projected, StoreError> {
    let select_cursor = if is_postgres(conn) { SELECT_CURSOR_FOR_UPDATE } else { SELECT_CURSOR };
    let (position,): (i64,) = fetch!(conn, fetch_one, (i64,), select_cursor)?;
    let read = if is_postgres(conn) { READ_LOG_POSTGRES } else { READ_LOG_SQLITE };
    let rows: Vec<LogRow> = fetch!(conn, fetch_all, LogRow, read, position, limit)?;
    let Some(last) = rows.last().map(|r| r.0) else {
        return Ok(Projected { position, ..Projected::default() });
    };
    let parked: Vec<(String,)> = fetch!(conn, fetch_all, (String,), PARKED_KEYS)?;
    let parked: HashSet<String> = parked.into_iter().map(|(k,)| k).collect();
    let events = rows.len();
    let (rows, quarantined) = screen(conn, rows).await?;
    let mut project = Vec::with_capacity(rows.len());
    let mut wait = Vec::new();
    for row in rows {
        let logged = parse(row).map_err(|(_, e)| StoreError::Projection(e))?;
        let key = customer_key(&logged.event);
        if parked.contains(&key) {
            wait.push((logged.seq, logged.event.id, key));
        } else {
            project.push(logged);
        }
    }
    let enqueued = project_events(conn, &project, reactor, acts_on, true, record_ties).await?;
    for (seq, event_id, key) in &wait {
        execute!(conn, PARK, *seq, event_id.as_str(), key.as_str(), None::<String>, 0_i64, now, now)?;
    }
    advance(conn, position, last).await?;
    Ok(Projected { events, parked: wait.len(), position: last, enqueued, quarantined })
}

async fn advance(conn: &mut Conn<'_>, from: i64, to: i64) -> Result<(), StoreError> {
    if execute!(conn, ADVANCE_CURSOR, to, from)? != 1 {
        return Err(StoreError::CursorMoved);
    }
    Ok(())
}

/// Park the event right after the cursor with `error`, and move the cursor past it.
async fn park_next(conn: &mut Conn<'_>, error: &str, now: i64) -> Result<Projected, StoreError> {
    let select_cursor = if is_postgres(conn) { SELECT_CURSOR_FOR_UPDATE } else { SELECT_CURSOR };
    let (position,): (i64,) = fetch!(conn, fetch_one, (i64,), select_cursor)?;
    let read = if is_postgres(conn) { READ_LOG_POSTGRES } else { READ_LOG_SQLITE };
    let Some(row): Option<LogRow> = fetch!(conn, fetch_optional, LogRow, read, position, 1_i64)? else {
        return Ok(Projected { position, ..Projected::default() });
    };
    let seq = row.0;
    let (event_id, key) = match parse(row) {
        Ok(l) => (l.event.id.clone(), customer_key(&l.event)),
        Err(_) => (format!("seq:{seq}"), format!("seq:{seq}")),
    };
    execute!(conn, PARK, seq, event_id.as_str(), key.as_str(), Some(error), 1_i64, now + retry_after(0), now)?;
    advance(conn, position, seq).await?;
    Ok(Projected { events: 1, parked: 1, position: seq, ..Projected::default() })
}

/// Retry one parked customer: its events in log order, as far as they go.
async fn retry_customer(
    conn: &mut Conn<'_>,
    key: &str,
    reactor: Option<&dyn ReactionHook>,
    acts_on: Option<bool>,
    record_ties: bool,
) -> Result<usize, StoreError> {
    // Postgres: queue behind the projector, which may be parking this customer's next event.
    let select_cursor = if is_postgres(conn) { SELECT_CURSOR_FOR_UPDATE } else { SELECT_CURSOR };
    let _: (i64,) = fetch!(conn, fetch_one, (i64,), select_cursor)?;
    let parked: Vec<(i64, i64)> = fetch!(conn, fetch_all, (i64, i64), PARKED_OF, key)?;
    let read = if is_postgres(conn) { READ_ONE_POSTGRES } else { READ_ONE_SQLITE };
    let mut events = Vec::with_capacity(parked.len());
    for (seq, _) in &parked {
        let row: LogRow = fetch!(conn, fetch_one, LogRow, read, *seq)?;
        // Parked before the quarantine existed: quarantined now, and unparked below.
        let (mut row, _) = screen(conn, vec![row]).await?;
        if let Some(row) = row.pop() {
            events.push(parse(row).map_err(|(_, e)| StoreError::Projection(e))?);
        }
    }
    let enqueued = project_events(conn, &events, reactor, acts_on, true, record_ties).await?;
    for (seq, _) in &parked {
        execute!(conn, UNPARK, *seq)?;
    }
    Ok(enqueued)
}

/// Empty the projected tables and apply the log again up to the cursor, without reactions
/// (no dunning, no email), holding the cursor so the live projector waits. Parked events
/// stay parked. Returns the events applied.
async fn reproject_in(conn: &mut Conn<'_>, acts_on: Option<bool>, now: i64) -> Result<u64, StoreError> {
    let select_cursor = if is_postgres(conn) { SELECT_CURSOR_FOR_UPDATE } else { SELECT_CURSOR };
    let (position,): (i64,) = fetch!(conn, fetch_one, (i64,), select_cursor)?;
    for sql in CLEAR_PROJECTED.iter().chain(&crate::store::refunds::CLEAR) {
        execute!(conn, *sql)?;
    }
    let parked: Vec<(i64,)> = fetch!(conn, fetch_all, (i64,), PARKED_SEQS)?;
    let parked: HashSet<i64> = parked.into_iter().map(|(s,)| s).collect();
    let read = if is_postgres(conn) { READ_LOG_POSTGRES } else { READ_LOG_SQLITE };
    let (mut after, mut applied) = (0_i64, 0_u64);
    while after < position {
        let rows: Vec<LogRow> = fetch!(conn, fetch_all, LogRow, read, after, PROJECT_BATCH)?;
        let Some(last) = rows.last().map(|r| r.0) else { break };
        after = last;
        let rows: Vec<LogRow> = rows.into_iter().filter(|r| r.0 <= position && !parked.contains(&r.0)).collect();
        let (rows, _) = screen(conn, rows).await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            events.push(parse(row).map_err(|(_, e)| StoreError::Projection(e))?);
        }
        applied += events.iter().filter(|l| acts_on.is_none_or(|live| l.event.livemode == live)).count() as u64;
        project_events(conn, &events, None, acts_on, false, false).await?;
    }
    crate::figures::storage::rebuild(conn, now).await?;
    Ok(applied)
}

/// Run `f` in a write transaction of the projector's connection.
macro_rules! in_transaction {
    ($store:expr, |$conn:ident| $body:expr) => {{
        match $store {
            Store::Sqlite(s) => {
                let mut tx = s.project_pool().begin_with("BEGIN IMMEDIATE").await?;
                let result = {
                    let $conn = &mut Conn::Sqlite(&mut *tx);
                    $body
                };
                match result {
                    Ok(v) => {
                        tx.commit().await?;
                        s.durable().await?;
                        Ok(v)
                    }
                    Err(e) => Err(e),
                }
            }
            Store::Postgres(s) => {
                let mut tx = s.pool().begin().await?;
                let result = {
                    let $conn = &mut Conn::Postgres(&mut *tx);
                    $body
                };
                match result {
                    Ok(v) => {
                        tx.commit().await?;
                        Ok(v)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }};
}

impl Store {
    /// Project the next batch of the log (up to `limit` events). One transaction; on a
    /// projection failure, the batch's events are retried one per transaction and the one
    /// that fails is parked, so the log moves on. Returns once the batch is durable.
    pub async fn project_batch(&self, limit: i64, now: i64) -> Result<Projected, StoreError> {
        let reactor = self.reactor();
        let first: Result<Projected, StoreError> = in_transaction!(self, |conn| project_next(
            conn,
            limit,
            reactor.as_deref(),
            self.acts_on(),
            now,
            self.refetches_ties()
        )
        .await);
        let done = match first {
            Err(e) if e.is_projection_failure() && !is_outage(&e) => self.project_one_by_one(limit, now).await?,
            other => other?,
        };
        self.after_projection(&done);
        Ok(done)
    }

    /// After a failed batch: each event in its own transaction, parking the ones that fail.
    async fn project_one_by_one(&self, limit: i64, now: i64) -> Result<Projected, StoreError> {
        let reactor = self.reactor();
        let mut total = Projected::default();
        for _ in 0..limit {
            let one: Result<Projected, StoreError> = in_transaction!(self, |conn| project_next(
                conn,
                1,
                reactor.as_deref(),
                self.acts_on(),
                now,
                self.refetches_ties()
            )
            .await);
            let one = match one {
                Err(e) if e.is_projection_failure() && !is_outage(&e) => {
                    let error = e.to_string();
                    tracing::error!(error = ?e, "event projection failed; its customer is parked");
                    in_transaction!(self, |conn| park_next(conn, &error, now).await)?
                }
                other => other?,
            };
            total.position = one.position;
            if one.events == 0 {
                break;
            }
            total.events += one.events;
            total.parked += one.parked;
            total.enqueued += one.enqueued;
            total.quarantined += one.quarantined;
        }
        Ok(total)
    }

    /// Retry the parked customers whose time came. A customer whose events all project now
    /// is unparked; one that fails again waits longer. Returns the customers unparked.
    pub async fn retry_parked(&self, now: i64) -> Result<usize, StoreError> {
        let due: Vec<(String, i64)> = self.with_conn(async |c| fetch!(c, fetch_all, (String, i64), DUE_PARKED, now)).await?;
        let reactor = self.reactor();
        let mut projected = 0;
        for (key, _) in due {
            let retried: Result<usize, StoreError> = in_transaction!(self, |conn| retry_customer(
                conn,
                &key,
                reactor.as_deref(),
                self.acts_on(),
                self.refetches_ties()
            )
            .await);
            match retried {
                Ok(enqueued) => {
                    projected += 1;
                    tracing::info!(customer = %key, "parked customer projected");
                    self.after_projection(&Projected { enqueued, ..Projected::default() });
                }
                Err(e) if e.is_projection_failure() && !is_outage(&e) => {
                    let error = e.to_string();
                    tracing::warn!(error = ?e, customer = %key, "parked customer failed again");
                    let first: Vec<(i64, i64)> =
                        self.with_conn(async |c| fetch!(c, fetch_all, (i64, i64), PARKED_OF, key.as_str())).await?;
                    if let Some((seq, attempts)) = first.first().copied() {
                        let next = now + retry_after(attempts);
                        self.with_conn(async |c| execute!(c, PARK_FAILED_AGAIN, seq, error.as_str(), attempts + 1, next)).await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(projected)
    }

    /// Publish a committed projection: wake the outbox if mail was enqueued, and waiters.
    fn after_projection(&self, done: &Projected) {
        if done.enqueued > 0
            && let Some(r) = self.reactor()
        {
            r.notify_outbox();
        }
        if done.position > 0 {
            self.log_signals().projected.send_if_modified(|p| {
                let moved = done.position > *p;
                *p = (*p).max(done.position);
                moved
            });
        }
    }

    /// Rebuild the maintained figures from the projected history, in one transaction that
    /// holds the cursor (the projector waits). Returns the customers recomputed.
    pub async fn rebuild_figures(&self) -> Result<u64, StoreError> {
        let now = crate::clock::Clock::system().now();
        in_transaction!(self, |conn| {
            let select_cursor = if is_postgres(conn) { SELECT_CURSOR_FOR_UPDATE } else { SELECT_CURSOR };
            let _: (i64,) = fetch!(conn, fetch_one, (i64,), select_cursor)?;
            crate::figures::storage::rebuild(conn, now).await
        })
    }

    /// Recompute, in one transaction that holds the cursor (the projector waits), up to
    /// `batch` of the customers whose maintained figures stopped being exact by `now` (a pause
    /// resumed, a discount ended). Returns how many were recomputed: fewer than `batch` when
    /// none is left.
    pub async fn refresh_due_figures(&self, now: i64, batch: i64) -> Result<usize, StoreError> {
        in_transaction!(self, |conn| {
            let select_cursor = if is_postgres(conn) { SELECT_CURSOR_FOR_UPDATE } else { SELECT_CURSOR };
            let _: (i64,) = fetch!(conn, fetch_one, (i64,), select_cursor)?;
            crate::figures::storage::refresh_due(conn, now, batch).await
        })
    }

    /// `holdfast reproject`: rebuild every projected table from the log, then the maintained
    /// figures from it, in one transaction (readers see the old state until it commits). No
    /// reactions run: no email, no case.
    pub async fn reproject(&self) -> Result<u64, StoreError> {
        // Figures as seen now by the system clock: a later instant than a test's only makes
        // them exact further ahead.
        let now = crate::clock::Clock::system().now();
        in_transaction!(self, |conn| reproject_in(conn, self.acts_on(), now).await)
    }

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
        let (events, oldest): (i64, i64) = self.with_conn(async |c| fetch!(c, fetch_one, (i64, i64), sql, position)).await?;
        let (parked_customers, parked_events): (i64, i64) =
            self.with_conn(async |c| fetch!(c, fetch_one, (i64, i64), PARKED_COUNTS)).await?;
        let other_mode_events = match self.acts_on() {
            Some(live) => self.with_conn(async |c| fetch!(c, fetch_one, (i64,), OTHER_MODE_EVENTS, live)).await?.0,
            None => 0,
        };
        let (quarantined_events,): (i64,) = self.with_conn(async |c| fetch!(c, fetch_one, (i64,), QUARANTINED_COUNT)).await?;
        Ok(ProjectorLag {
            other_mode_events,
            events,
            seconds: if events > 0 { (now - oldest).max(0) } else { 0 },
            parked_customers,
            parked_events,
            position,
            quarantined_events,
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
        // What this process appended is known without a query (tests post to it).
        let local = self.log_signals().appended_head.load(std::sync::atomic::Ordering::Relaxed);
        if local > 0 {
            return self.wait_projected_through(local, timeout).await;
        }
        // The head is read once; under load the pool may be busy for a moment: retry.
        let head = loop {
            match self.log_head().await {
                Ok(head) => break head,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        self.wait_projected_through(head, deadline.saturating_duration_since(tokio::time::Instant::now())).await
    }

    /// Project until the cursor reaches `target` (imports and tests without a running
    /// projector). Concurrent projectors are fine: the cursor only moves by compare-and-set.
    pub async fn project_through(&self, target: i64, now: i64) -> Result<(), StoreError> {
        loop {
            match self.project_batch(PROJECT_BATCH, now).await {
                // Nothing left after the cursor: `target` is passed (by us or another projector).
                Ok(done) if done.position >= target || done.events == 0 => return Ok(()),
                Ok(_) | Err(StoreError::CursorMoved) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
