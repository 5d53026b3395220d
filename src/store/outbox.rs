//! The email outbox: enqueue inside a caller's transaction (idempotent by `dedupe_key`),
//! cancel pending rows by case or key prefix, claim due rows with a lease, record outcomes.
//! Claiming is per backend (`FOR UPDATE SKIP LOCKED` on Postgres, `BEGIN IMMEDIATE` on
//! SQLite); everything else is the same SQL on both.

use serde::Serialize;

use crate::mail::NewEmail;
use crate::store::conn::{Conn, execute, fetch};
use crate::store::sqlite::many_rows::statements;
use crate::store::{Store, StoreError};

const INSERT: &str = "INSERT INTO outbox (dedupe_key, case_key, category, customer, recipient, template, subject, body_text, \
     body_html, status, attempts, next_attempt_at, created_at, unsubscribe_url) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $11, $12) \
     ON CONFLICT (dedupe_key) DO NOTHING";

/// Enqueue `email` in the caller's transaction. Returns `false` when a row with the same
/// dedupe key already exists (whatever its status): the email is never queued twice.
pub async fn enqueue(conn: &mut Conn<'_>, email: &NewEmail, now: i64) -> Result<bool, sqlx::Error> {
    let inserted = execute!(
        conn,
        INSERT,
        &email.dedupe_key,
        &email.case_key,
        email.category.as_str(),
        &email.customer,
        &email.recipient,
        &email.template,
        &email.content.subject,
        &email.content.text,
        &email.content.html,
        email.send_at,
        now,
        &email.unsubscribe_url
    )?;
    Ok(inserted == 1)
}

/// Postgres: many rows in one statement (one round trip, not one per email), answering the
/// keys it inserted. The caller's keys are distinct (`enqueue_many`).
const INSERT_MANY_POSTGRES: &str = "INSERT INTO outbox (dedupe_key, case_key, category, customer, recipient, template, subject, \
     body_text, body_html, status, attempts, next_attempt_at, created_at, unsubscribe_url) \
     SELECT d, k, c, u, r, t, s, bt, bh, 'pending', 0, n, $11, uu \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::text[], $10::bigint[], $12::text[]) WITH ORDINALITY AS e(d, k, c, u, r, t, s, bt, bh, n, uu, i) \
     ORDER BY i ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key";
/// Postgres: `RESCHEDULE` for many rows in one statement.
const RESCHEDULE_MANY_POSTGRES: &str = "UPDATE outbox AS o SET next_attempt_at = m.n, subject = m.s, body_text = m.bt, body_html = m.bh \
     FROM UNNEST($1::text[], $3::bigint[], $4::text[], $5::text[], $6::text[]) AS m(k, n, s, bt, bh) \
     WHERE o.dedupe_key = m.k AND o.attempts = 0 AND o.status = 'pending' AND (o.claimed_until IS NULL OR o.claimed_until < $2)";

/// What to do with an email whose key is already queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfQueued {
    /// Leave the queued one as it is (`enqueue`).
    Leave,
    /// Move it to this email's time and content if not tried yet (`reschedule`).
    Reschedule,
}

/// Enqueue `emails` in the caller's transaction, as `enqueue` (and, for `Reschedule`, then
/// `reschedule` when it was already queued) each in turn would, given distinct keys.
/// Returns how many were new. On Postgres two statements for all of them; on SQLite a few
/// (`sqlite::many_rows`) and one per move.
pub async fn enqueue_many(conn: &mut Conn<'_>, emails: &[(&NewEmail, IfQueued)], now: i64) -> Result<usize, sqlx::Error> {
    let c = match conn {
        Conn::Sqlite(c) => return enqueue_many_sqlite(c, emails, now).await,
        Conn::Postgres(c) => c,
    };
    if emails.is_empty() {
        return Ok(0);
    }
    let column = |f: fn(&NewEmail) -> Option<&str>| -> Vec<Option<&str>> { emails.iter().map(|(e, _)| f(e)).collect() };
    let inserted: Vec<(String,)> = sqlx::query_as(INSERT_MANY_POSTGRES)
        .bind(column(|e| Some(e.dedupe_key.as_str())))
        .bind(column(|e| e.case_key.as_deref()))
        .bind(column(|e| Some(e.category.as_str())))
        .bind(column(|e| e.customer.as_deref()))
        .bind(column(|e| Some(e.recipient.as_str())))
        .bind(column(|e| Some(e.template.as_str())))
        .bind(column(|e| Some(e.content.subject.as_str())))
        .bind(column(|e| Some(e.content.text.as_str())))
        .bind(column(|e| Some(e.content.html.as_str())))
        .bind(emails.iter().map(|(e, _)| e.send_at).collect::<Vec<i64>>())
        .bind(now)
        .bind(column(|e| e.unsubscribe_url.as_deref()))
        .fetch_all(&mut **c)
        .await?;
    let inserted: std::collections::HashSet<String> = inserted.into_iter().map(|(k,)| k).collect();
    let moved: Vec<&NewEmail> = emails
        .iter()
        .filter(|(e, if_queued)| *if_queued == IfQueued::Reschedule && !inserted.contains(&e.dedupe_key))
        .map(|(e, _)| *e)
        .collect();
    if !moved.is_empty() {
        sqlx::query(RESCHEDULE_MANY_POSTGRES)
            .bind(moved.iter().map(|e| e.dedupe_key.as_str()).collect::<Vec<_>>())
            .bind(now)
            .bind(moved.iter().map(|e| e.send_at).collect::<Vec<i64>>())
            .bind(moved.iter().map(|e| e.content.subject.as_str()).collect::<Vec<_>>())
            .bind(moved.iter().map(|e| e.content.text.as_str()).collect::<Vec<_>>())
            .bind(moved.iter().map(|e| e.content.html.as_str()).collect::<Vec<_>>())
            .execute(&mut **c)
            .await?;
    }
    Ok(inserted.len())
}

/// SQLite: `INSERT_MANY_POSTGRES` as rows of `VALUES` (`sqlite::many_rows`).
const INSERT_MANY_SQLITE_HEAD: &str = "INSERT INTO outbox (dedupe_key, case_key, category, customer, recipient, template, \
     subject, body_text, body_html, status, attempts, next_attempt_at, created_at, unsubscribe_url) VALUES ";
const INSERT_MANY_SQLITE_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)";
const INSERT_MANY_SQLITE_TAIL: &str = " ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key";

/// `enqueue_many` on SQLite: the new rows in a few statements, then the moves one each (a
/// move is rare: a retry rescheduled before its email went out).
async fn enqueue_many_sqlite(
    c: &mut sqlx::SqliteConnection,
    emails: &[(&NewEmail, IfQueued)],
    now: i64,
) -> Result<usize, sqlx::Error> {
    use crate::store::sqlite::many_rows::statements;
    let mut inserted = std::collections::HashSet::new();
    for (sql, chunk) in statements(emails, INSERT_MANY_SQLITE_HEAD, INSERT_MANY_SQLITE_ROW, INSERT_MANY_SQLITE_TAIL) {
        let mut query = sqlx::query_as::<_, (String,)>(sql);
        for (e, _) in chunk {
            query = query
                .bind(&e.dedupe_key)
                .bind(&e.case_key)
                .bind(e.category.as_str())
                .bind(&e.customer)
                .bind(&e.recipient)
                .bind(&e.template)
                .bind(&e.content.subject)
                .bind(&e.content.text)
                .bind(&e.content.html)
                .bind(e.send_at)
                .bind(now)
                .bind(&e.unsubscribe_url);
        }
        inserted.extend(query.fetch_all(&mut *c).await?.into_iter().map(|(k,)| k));
    }
    for (email, if_queued) in emails {
        if *if_queued == IfQueued::Reschedule && !inserted.contains(&email.dedupe_key) {
            reschedule(&mut Conn::Sqlite(&mut *c), email, now).await?;
        }
    }
    Ok(inserted.len())
}

/// Not yet handed to a transport: pending and without a live claim.
macro_rules! unclaimed {
    () => {
        "status = 'pending' AND (claimed_until IS NULL OR claimed_until < $2)"
    };
}

const CANCEL_CASE: &str = concat!("UPDATE outbox SET status = 'cancelled' WHERE case_key = $1 AND ", unclaimed!());
const CANCEL_PREFIX: &str =
    concat!("UPDATE outbox SET status = 'cancelled' WHERE substr(dedupe_key, 1, length($1)) = $1 AND ", unclaimed!());

/// Cancel a case's pending emails (e.g. the customer paid). Returns how many.
pub async fn cancel_case(conn: &mut Conn<'_>, case_key: &str, now: i64) -> Result<u64, sqlx::Error> {
    execute!(conn, CANCEL_CASE, case_key, now)
}

const CANCEL_KEY: &str = concat!("UPDATE outbox SET status = 'cancelled' WHERE dedupe_key = $1 AND ", unclaimed!());
const CANCEL_CASE_EXCEPT: &str =
    concat!("UPDATE outbox SET status = 'cancelled' WHERE case_key = $1 AND dedupe_key <> $3 AND ", unclaimed!());

/// Cancel one pending email (a step a later event withdrew). Returns how many (0 or 1).
pub async fn cancel_key(conn: &mut Conn<'_>, dedupe_key: &str, now: i64) -> Result<u64, sqlx::Error> {
    execute!(conn, CANCEL_KEY, dedupe_key, now)
}

const CANCEL_KEYS_POSTGRES: &str =
    concat!("UPDATE outbox SET status = 'cancelled' WHERE dedupe_key = ANY($1) AND ", unclaimed!());

/// SQLite: `+status` keeps the planner on the key's index; on `outbox_due (status, …)` it
/// scanned every pending email (19 ms a statement with 20,000 queued).
const CANCEL_KEYS_SQLITE: &str = "UPDATE outbox SET status = 'cancelled' WHERE dedupe_key IN (SELECT value FROM json_each($1)) \
     AND +status = 'pending' AND (claimed_until IS NULL OR claimed_until < $2)";

/// Cancel these pending emails, as `cancel_key` each in turn would (one statement). Returns
/// how many.
pub async fn cancel_keys(conn: &mut Conn<'_>, dedupe_keys: &[&str], now: i64) -> Result<u64, sqlx::Error> {
    match conn {
        Conn::Postgres(c) if dedupe_keys.len() > 1 => {
            Ok(sqlx::query(CANCEL_KEYS_POSTGRES).bind(dedupe_keys).bind(now).execute(&mut **c).await?.rows_affected())
        }
        Conn::Sqlite(c) if dedupe_keys.len() > 1 => {
            let keys = serde_json::to_string(dedupe_keys).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            Ok(sqlx::query(CANCEL_KEYS_SQLITE).bind(keys).bind(now).execute(&mut **c).await?.rows_affected())
        }
        _ => {
            let mut cancelled = 0;
            for key in dedupe_keys {
                cancelled += cancel_key(conn, key, now).await?;
            }
            Ok(cancelled)
        }
    }
}

/// Cancel a case's pending emails but the one keyed `keep`. Returns how many.
pub async fn cancel_case_except(conn: &mut Conn<'_>, case_key: &str, keep: &str, now: i64) -> Result<u64, sqlx::Error> {
    execute!(conn, CANCEL_CASE_EXCEPT, case_key, now, keep)
}

/// Cancel pending emails whose dedupe key starts with `prefix` (e.g. `onboarding:cus_1:`).
pub async fn cancel_by_prefix(conn: &mut Conn<'_>, prefix: &str, now: i64) -> Result<u64, sqlx::Error> {
    execute!(conn, CANCEL_PREFIX, prefix, now)
}

const RESCHEDULE: &str = concat!(
    "UPDATE outbox SET next_attempt_at = $3, subject = $4, body_text = $5, body_html = $6 \
     WHERE dedupe_key = $1 AND attempts = 0 AND ",
    unclaimed!()
);

/// Move a not-yet-tried email to a new time with new content (a later event changed it).
pub async fn reschedule(conn: &mut Conn<'_>, email: &NewEmail, now: i64) -> Result<u64, sqlx::Error> {
    let c = &email.content;
    execute!(conn, RESCHEDULE, &email.dedupe_key, now, email.send_at, &c.subject, &c.text, &c.html)
}

const COUNT_SENT_FOR_CASE: &str = "SELECT COUNT(*) FROM outbox WHERE case_key = $1 AND status = 'sent'";

/// Emails of a case already delivered.
pub async fn sent_for_case(conn: &mut Conn<'_>, case_key: &str) -> Result<i64, sqlx::Error> {
    Ok(fetch!(conn, fetch_one, (i64,), COUNT_SENT_FOR_CASE, case_key)?.0)
}

/// A row claimed for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedEmail {
    pub id: i64,
    pub dedupe_key: String,
    pub category: String,
    pub customer: Option<String>,
    pub recipient: String,
    pub template: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub attempts: i64,
    /// Marketing rows: the signed one-click unsubscribe URL for the List-Unsubscribe header.
    pub unsubscribe_url: Option<String>,
}

/// One outbox row as tests and the owner see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub dedupe_key: String,
    pub case_key: Option<String>,
    pub category: String,
    pub recipient: String,
    pub template: String,
    pub subject: String,
    pub body_text: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
    pub sent_at: Option<i64>,
}

/// Rows per status, for the owner summary ("emails failed") and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub sent: i64,
    /// Gave up after `OUTBOX_MAX_ATTEMPTS` transient failures, or the message was invalid.
    pub failed: i64,
    /// Refused permanently by the receiving server; the address is now suppressed.
    pub bounced: i64,
    /// Not sent: the address is suppressed or the customer deleted.
    pub suppressed: i64,
    /// Withdrawn before sending (the customer paid, the case closed).
    pub cancelled: i64,
}

/// What became of a claimed row.
#[derive(Debug, Clone)]
pub enum SendOutcome {
    Sent {
        message_id: String,
    },
    /// Try again at `retry_at`, or mark failed when `give_up`.
    Retry {
        error: String,
        retry_at: i64,
        give_up: bool,
    },
    Bounced {
        error: String,
    },
    Suppressed {
        reason: &'static str,
    },
    Invalid {
        error: String,
    },
    /// Observe-only mode: kept for the owner to read, never sent.
    Observed,
}

const SUPPRESS: &str = "INSERT INTO suppressions (email, scope, reason, created_at) VALUES (lower($1), $2, $3, $4) \
     ON CONFLICT (email, scope) DO NOTHING";
const COUNTS: &str = "SELECT status, COUNT(*) FROM outbox GROUP BY status";
const LIST: &str = "SELECT id, dedupe_key, case_key, category, recipient, template, subject, body_text, status, attempts, next_attempt_at, \
     last_error, message_id, sent_at FROM outbox ORDER BY id";

/// Postgres: for each of a batch of claimed rows, whether its address is suppressed for its
/// category and whether its customer was deleted, in one round trip.
const SUPPRESSED_OR_DELETED_POSTGRES: &str = "SELECT \
     EXISTS (SELECT 1 FROM suppressions s WHERE s.email = lower(r.email) AND (s.scope = 'all' OR r.category = 'marketing')), \
     EXISTS (SELECT 1 FROM customers c WHERE c.id = r.customer AND c.deleted) \
     FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r(email, category, customer, i) ORDER BY r.i";

/// SQLite: the same for a batch, the rows as `VALUES` (`store::sqlite::many_rows`).
const SUPPRESSED_OR_DELETED_SQLITE_HEAD: &str = "WITH r(i, email, category, customer) AS (VALUES ";
const SUPPRESSED_OR_DELETED_SQLITE_ROW: &str = "(?, ?, ?, ?)";
const SUPPRESSED_OR_DELETED_SQLITE_TAIL: &str = ") SELECT \
     EXISTS (SELECT 1 FROM suppressions s WHERE s.email = lower(r.email) AND (s.scope = 'all' OR r.category = 'marketing')), \
     EXISTS (SELECT 1 FROM customers c WHERE c.id = r.customer AND c.deleted) \
     FROM r ORDER BY r.i";

fn suppression_reason(suppressed: bool, deleted: bool) -> Option<&'static str> {
    if suppressed {
        Some("address suppressed")
    } else if deleted {
        Some("customer deleted")
    } else {
        None
    }
}

async fn suppressions(c: &mut Conn<'_>, rows: &[ClaimedEmail]) -> Result<Vec<Option<&'static str>>, sqlx::Error> {
    let mut found: Vec<(bool, bool)> = Vec::with_capacity(rows.len());
    match c {
        Conn::Postgres(pg) => {
            found = sqlx::query_as(SUPPRESSED_OR_DELETED_POSTGRES)
                .bind(rows.iter().map(|r| r.recipient.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.category.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.customer.as_deref()).collect::<Vec<_>>())
                .fetch_all(&mut **pg)
                .await?;
        }
        Conn::Sqlite(lite) => {
            let (head, row, tail) =
                (SUPPRESSED_OR_DELETED_SQLITE_HEAD, SUPPRESSED_OR_DELETED_SQLITE_ROW, SUPPRESSED_OR_DELETED_SQLITE_TAIL);
            for (sql, chunk) in statements(rows, head, row, tail) {
                let mut query = sqlx::query_as::<_, (bool, bool)>(sql);
                for (i, r) in chunk.iter().enumerate() {
                    query = query.bind(i as i64).bind(&r.recipient).bind(&r.category).bind(&r.customer);
                }
                found.extend(query.fetch_all(&mut **lite).await?);
            }
        }
    }
    Ok(found.into_iter().map(|(suppressed, deleted)| suppression_reason(suppressed, deleted)).collect())
}

/// The columns recording `outcome` sets: status, attempts to add, next attempt, error,
/// message id, sent at.
type Recorded<'o> = (&'static str, i64, i64, Option<String>, Option<&'o str>, Option<i64>);

fn recorded(outcome: &SendOutcome, now: i64) -> Recorded<'_> {
    match outcome {
        SendOutcome::Sent { message_id } => ("sent", 1_i64, now, None, Some(message_id.as_str()), Some(now)),
        SendOutcome::Retry { error, retry_at, give_up } => {
            (if *give_up { "failed" } else { "pending" }, 1, *retry_at, Some(error.clone()), None, None)
        }
        SendOutcome::Bounced { error } => ("bounced", 1, now, Some(error.clone()), None, None),
        SendOutcome::Suppressed { reason } => ("suppressed", 0, now, Some((*reason).to_owned()), None, None),
        SendOutcome::Invalid { error } => ("failed", 1, now, Some(error.clone()), None, None),
        SendOutcome::Observed => ("observed", 0, now, None, None, None),
    }
}

/// Postgres: record a batch of claimed rows' outcomes (distinct ids) in one statement, answering
/// the rows whose claim still held.
const RECORD_MANY_POSTGRES: &str = "UPDATE outbox AS o SET status = m.status, attempts = o.attempts + m.attempts, \
     next_attempt_at = m.next, last_error = m.error, message_id = COALESCE(m.message_id, o.message_id), sent_at = m.sent_at, \
     claimed_until = NULL, claim_token = NULL \
     FROM UNNEST($1::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bigint[]) \
     AS m(id, status, attempts, next, error, message_id, sent_at) \
     WHERE o.id = m.id AND o.claim_token = $2 RETURNING o.id";

/// SQLite: the same, the rows as `VALUES` (`store::sqlite::many_rows`), the claim token last.
const RECORD_MANY_SQLITE_HEAD: &str = "WITH m(id, status, attempts, next, error, message_id, sent_at) AS (VALUES ";
const RECORD_MANY_SQLITE_ROW: &str = "(?, ?, ?, ?, ?, ?, ?)";
const RECORD_MANY_SQLITE_TAIL: &str = ") UPDATE outbox SET status = m.status, attempts = outbox.attempts + m.attempts, \
     next_attempt_at = m.next, last_error = m.error, message_id = COALESCE(m.message_id, outbox.message_id), \
     sent_at = m.sent_at, claimed_until = NULL, claim_token = NULL \
     FROM m WHERE outbox.id = m.id AND outbox.claim_token = ? RETURNING outbox.id";

/// Record each of `results` (claimed rows, distinct ids) in a statement or a few, then
/// suppress the addresses that bounced.
async fn record_many(
    c: &mut Conn<'_>,
    results: &[(ClaimedEmail, SendOutcome)],
    token: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    if results.is_empty() {
        return Ok(());
    }
    let columns: Vec<Recorded<'_>> = results.iter().map(|(_, outcome)| recorded(outcome, now)).collect();
    let mut applied: Vec<(i64,)> = Vec::with_capacity(results.len());
    match c {
        Conn::Postgres(pg) => {
            applied = sqlx::query_as(RECORD_MANY_POSTGRES)
                .bind(results.iter().map(|(row, _)| row.id).collect::<Vec<i64>>())
                .bind(token)
                .bind(columns.iter().map(|c| c.0).collect::<Vec<_>>())
                .bind(columns.iter().map(|c| c.1).collect::<Vec<_>>())
                .bind(columns.iter().map(|c| c.2).collect::<Vec<_>>())
                .bind(columns.iter().map(|c| c.3.as_deref()).collect::<Vec<_>>())
                .bind(columns.iter().map(|c| c.4).collect::<Vec<_>>())
                .bind(columns.iter().map(|c| c.5).collect::<Vec<_>>())
                .fetch_all(&mut **pg)
                .await?;
        }
        Conn::Sqlite(lite) => {
            let rows: Vec<(i64, &Recorded<'_>)> = results.iter().map(|(row, _)| row.id).zip(&columns).collect();
            for (sql, chunk) in statements(&rows, RECORD_MANY_SQLITE_HEAD, RECORD_MANY_SQLITE_ROW, RECORD_MANY_SQLITE_TAIL) {
                let mut query = sqlx::query_as::<_, (i64,)>(sql);
                for (id, (status, attempts, next, error, message_id, sent_at)) in chunk {
                    query = query
                        .bind(*id)
                        .bind(*status)
                        .bind(*attempts)
                        .bind(*next)
                        .bind(error.as_deref())
                        .bind(*message_id)
                        .bind(*sent_at);
                }
                applied.extend(query.bind(token).fetch_all(&mut **lite).await?);
            }
        }
    }
    let applied: std::collections::HashSet<i64> = applied.into_iter().map(|(id,)| id).collect();
    // Only the worker still holding the claim may suppress on a bounce.
    for (row, _) in
        results.iter().filter(|(row, outcome)| applied.contains(&row.id) && matches!(outcome, SendOutcome::Bounced { .. }))
    {
        execute!(c, SUPPRESS, &row.recipient, "all", "bounced", now)?;
    }
    Ok(())
}

impl Store {
    /// A connection of this store's backend, for the shared-SQL helpers.
    pub(crate) async fn with_conn<T>(
        &self,
        f: impl for<'c> AsyncFnOnce(&mut Conn<'c>) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let mut c = s.pool().acquire().await?;
                Ok(f(&mut Conn::Sqlite(&mut c)).await?)
            }
            Store::Postgres(s) => {
                let mut c = s.pool().acquire().await?;
                Ok(f(&mut Conn::Postgres(&mut c)).await?)
            }
        }
    }

    /// Run `f` in one write transaction (`BEGIN IMMEDIATE` on SQLite) and commit.
    pub async fn in_transaction<T>(
        &self,
        f: impl for<'c> AsyncFnOnce(&mut Conn<'c>) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let mut tx = s.pool().begin_with("BEGIN IMMEDIATE").await?;
                let out = f(&mut Conn::Sqlite(&mut tx)).await?;
                tx.commit().await?;
                Ok(out)
            }
            Store::Postgres(s) => {
                let mut tx = s.pool().begin().await?;
                let out = f(&mut Conn::Postgres(&mut tx)).await?;
                tx.commit().await?;
                Ok(out)
            }
        }
    }

    /// Enqueue emails in a transaction of their own; returns how many were new.
    pub async fn enqueue_emails(&self, emails: &[crate::mail::NewEmail], now: i64) -> Result<usize, StoreError> {
        self.in_transaction(async |c| {
            let mut n = 0;
            for e in emails {
                n += usize::from(enqueue(c, e, now).await?);
            }
            Ok(n)
        })
        .await
    }

    /// Claim up to `limit` due rows for `lease_secs`, marking them with `token`. A row whose
    /// lease ran out (its worker died) is due again.
    pub async fn claim_due_outbox(
        &self,
        now: i64,
        lease_secs: i64,
        limit: i64,
        token: &str,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
        match self {
            Store::Sqlite(s) => s.claim_due_outbox(now, lease_secs, limit, token).await,
            Store::Postgres(s) => s.claim_due_outbox(now, lease_secs, limit, token).await,
        }
    }

    /// Record what happened to a claimed row (ignored if the claim was lost meanwhile).
    pub async fn record_send_outcome(
        &self,
        row: &ClaimedEmail,
        token: &str,
        outcome: &SendOutcome,
        now: i64,
    ) -> Result<(), StoreError> {
        self.record_send_outcomes(&[(row.clone(), outcome.clone())], token, now).await
    }

    /// Record a batch's outcomes in one transaction (one fsync on SQLite, not one per email).
    pub async fn record_send_outcomes(
        &self,
        results: &[(ClaimedEmail, SendOutcome)],
        token: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.in_transaction(async |c| record_many(c, results, token, now).await).await
    }

    /// For each claimed row, why it must not be sent, if it mustn't: its address is
    /// suppressed for its category, or its customer was deleted. One connection per batch.
    pub async fn suppression_reasons(&self, rows: &[ClaimedEmail]) -> Result<Vec<Option<&'static str>>, StoreError> {
        // A plain match (not `with_conn`): the future must be `Send` for the worker's task.
        match self {
            Store::Sqlite(s) => Ok(suppressions(&mut Conn::Sqlite(&mut *s.pool().acquire().await?), rows).await?),
            Store::Postgres(s) => Ok(suppressions(&mut Conn::Postgres(&mut *s.pool().acquire().await?), rows).await?),
        }
    }

    /// Add an address to the suppression list (`scope`: `all` or `marketing`).
    pub async fn suppress(&self, email: &str, scope: &str, reason: &str, now: i64) -> Result<(), StoreError> {
        self.in_transaction(async |c| execute!(c, SUPPRESS, email, scope, reason, now).map(|_| ())).await
    }

    /// Outbox rows per status.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let rows = self.with_conn(async |c| fetch!(c, fetch_all, (String, i64), COUNTS)).await?;
        let mut counts = OutboxCounts::default();
        for (status, n) in rows {
            match status.as_str() {
                "pending" => counts.pending = n,
                "sent" => counts.sent = n,
                "failed" => counts.failed = n,
                "bounced" => counts.bounced = n,
                "suppressed" => counts.suppressed = n,
                "cancelled" => counts.cancelled = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// Every outbox row, oldest first.
    pub async fn outbox_rows(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, OutboxRow, LIST)).await
    }
}
