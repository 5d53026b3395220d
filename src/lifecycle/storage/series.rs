//! The lifecycle series: started by the reactions' plans, stopped by what ends them.

use serde::Serialize;

use crate::store::conn::{Conn, execute, fetch};
use crate::store::plan::NewSeries;
use crate::store::{Store, StoreError, outbox};

const START_SERIES: &str = "INSERT INTO lifecycle_series (case_key, campaign, customer, subscription, started_at, status, arm) \
     VALUES ($1, $2, $3, $4, $5, 'active', $6) ON CONFLICT (case_key) DO NOTHING";
const STOP_SERIES: &str = "UPDATE lifecycle_series SET status = 'stopped', stopped_at = $4, stop_reason = $5 \
     WHERE customer = $1 AND campaign = $2 AND status = 'active' AND (subscription IS NULL OR subscription <> $3) RETURNING case_key";
const STOP_ONE: &str =
    "UPDATE lifecycle_series SET status = 'stopped', stopped_at = $2, stop_reason = $3 WHERE case_key = $1 AND status = 'active'";

/// Record a series; `false` when it already exists (a redelivery).
pub async fn start_series(conn: &mut Conn<'_>, s: &NewSeries<'_>) -> Result<bool, sqlx::Error> {
    let n = execute!(conn, START_SERIES, s.case_key, s.campaign, s.customer, s.subscription, s.started_at, s.arm)?;
    Ok(n == 1)
}

/// Postgres: many series in one statement, in order (of two with one key the first stays).
const START_MANY_POSTGRES: &str = "INSERT INTO lifecycle_series (case_key, campaign, customer, subscription, started_at, status, arm) \
     SELECT k, c, cu, su, st, 'active', a FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[]) \
     WITH ORDINALITY AS m(k, c, cu, su, st, a, ord) ORDER BY ord \
     ON CONFLICT (case_key) DO NOTHING";

/// SQLite: rows of `VALUES` (`store::sqlite::many_rows`), inserted in order.
const START_MANY_SQLITE_HEAD: &str =
    "INSERT INTO lifecycle_series (case_key, campaign, customer, subscription, started_at, status, arm) VALUES ";
const START_MANY_SQLITE_ROW: &str = "(?, ?, ?, ?, ?, 'active', ?)";
const START_MANY_SQLITE_TAIL: &str = " ON CONFLICT (case_key) DO NOTHING";

/// Record these series (each a no-op if its key exists), as `start_series` each in turn
/// would: a projector pass that welcomes a thousand new customers starts a thousand series,
/// and a statement each was a round trip each.
pub async fn start_many(conn: &mut Conn<'_>, series: &[NewSeries<'_>]) -> Result<(), sqlx::Error> {
    if series.is_empty() {
        return Ok(());
    }
    match conn {
        Conn::Sqlite(c) => {
            use crate::store::sqlite::many_rows::statements;
            for (sql, chunk) in statements(series, START_MANY_SQLITE_HEAD, START_MANY_SQLITE_ROW, START_MANY_SQLITE_TAIL) {
                let mut query = sqlx::query(sql);
                for s in chunk {
                    query = query
                        .bind(s.case_key)
                        .bind(s.campaign)
                        .bind(s.customer)
                        .bind(s.subscription)
                        .bind(s.started_at)
                        .bind(s.arm);
                }
                query.execute(&mut **c).await?;
            }
        }
        Conn::Postgres(pg) => {
            sqlx::query(START_MANY_POSTGRES)
                .bind(series.iter().map(|s| s.case_key).collect::<Vec<&str>>())
                .bind(series.iter().map(|s| s.campaign).collect::<Vec<&str>>())
                .bind(series.iter().map(|s| s.customer).collect::<Vec<&str>>())
                .bind(series.iter().map(|s| s.subscription).collect::<Vec<Option<&str>>>())
                .bind(series.iter().map(|s| s.started_at).collect::<Vec<i64>>())
                .bind(series.iter().map(|s| s.arm).collect::<Vec<Option<&str>>>())
                .execute(&mut **pg)
                .await?;
        }
    }
    Ok(())
}

/// Stop the customer's live series of `campaign` (except one tied to subscription `except`)
/// and cancel their pending emails. Returns how many series stopped.
pub async fn stop_series(
    conn: &mut Conn<'_>,
    customer: &str,
    campaign: &str,
    except: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<usize, sqlx::Error> {
    let keys = fetch!(conn, fetch_all, (String,), STOP_SERIES, customer, campaign, except.unwrap_or(""), now, reason)?;
    for (key,) in &keys {
        outbox::cancel_case(conn, key, now).await?;
    }
    Ok(keys.len())
}

/// Stop one series by its key and cancel its pending emails.
pub async fn stop_one(conn: &mut Conn<'_>, case_key: &str, reason: &str, now: i64) -> Result<(), sqlx::Error> {
    execute!(conn, STOP_ONE, case_key, now, reason)?;
    outbox::cancel_case(conn, case_key, now).await?;
    Ok(())
}

impl Store {
    /// Every lifecycle series, oldest first (tests, support).
    pub async fn lifecycle_series(&self) -> Result<Vec<SeriesRow>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, SeriesRow, SERIES)).await
    }
}

const SERIES: &str = "SELECT case_key, campaign, customer, subscription, started_at, status, stopped_at, stop_reason \
     FROM lifecycle_series ORDER BY started_at, case_key";

/// One lifecycle series as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SeriesRow {
    pub case_key: String,
    pub campaign: String,
    pub customer: String,
    pub subscription: Option<String>,
    pub started_at: i64,
    pub status: String,
    pub stopped_at: Option<i64>,
    pub stop_reason: Option<String>,
}
