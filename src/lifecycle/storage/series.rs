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
