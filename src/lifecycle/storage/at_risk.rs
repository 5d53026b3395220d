//! At-risk episodes: the scheduler's candidates, an episode opened with its re-engagement
//! series, and the owner's reads.

use serde::Serialize;

use crate::lifecycle::rules::{ActivityFacts, Windows};
use crate::lifecycle::storage::series::start_series;
use crate::store::conn::{Conn, execute, fetch};
use crate::store::plan::NewSeries;
use crate::store::{Store, StoreError, outbox};

/// A paying customer with reported activity, as the scheduler assesses them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Candidate {
    pub customer: String,
    pub first_at: i64,
    pub last_at: i64,
    pub recent_week: i64,
    pub baseline_total: i64,
    /// The customer's last at-risk episode, if any.
    pub risk_status: Option<String>,
    pub risk_resolved_at: Option<i64>,
}

impl Candidate {
    pub fn facts(&self) -> ActivityFacts {
        ActivityFacts {
            first_at: self.first_at,
            last_at: self.last_at,
            recent_week: self.recent_week,
            baseline_total: self.baseline_total,
        }
    }
}

const CANDIDATES: &str = concat!(
    "SELECT a.customer, a.first_at, a.last_at, \
     CAST(COALESCE((SELECT SUM(d.count) FROM activity_daily d WHERE d.customer = a.customer AND d.day >= $1 AND d.day < $2), 0) AS BIGINT) AS recent_week, \
     CAST(COALESCE((SELECT SUM(d.count) FROM activity_daily d WHERE d.customer = a.customer AND d.day >= $3 AND d.day < $4), 0) AS BIGINT) AS baseline_total, \
     r.status AS risk_status, r.resolved_at AS risk_resolved_at \
     FROM customer_activity a LEFT JOIN at_risk r ON r.customer = a.customer \
     WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.customer = a.customer AND s.status IN ",
    live!(),
    ") ORDER BY a.customer"
);

const OPEN_EPISODE: &str = "INSERT INTO at_risk (customer, status, reason, since, last_activity_at, recent_week, baseline_week) \
     VALUES ($1, 'at_risk', $2, $3, $4, $5, $6) \
     ON CONFLICT (customer) DO UPDATE SET status = 'at_risk', reason = excluded.reason, since = excluded.since, \
     last_activity_at = excluded.last_activity_at, recent_week = excluded.recent_week, baseline_week = excluded.baseline_week, \
     resolved_at = NULL WHERE at_risk.status <> 'at_risk'";

/// A new at-risk episode.
#[derive(Debug, Clone)]
pub struct NewEpisode<'a> {
    pub customer: &'a str,
    pub reason: &'static str,
    pub since: i64,
    pub last_activity_at: i64,
    pub recent_week: i64,
    pub baseline_week: i64,
}

/// Start an episode unless one is open; `true` when it started (then its series is enqueued).
pub async fn open_episode(conn: &mut Conn<'_>, e: &NewEpisode<'_>) -> Result<bool, sqlx::Error> {
    let n = execute!(conn, OPEN_EPISODE, e.customer, e.reason, e.since, e.last_activity_at, e.recent_week, e.baseline_week)?;
    Ok(n == 1)
}

/// One at-risk customer, for the summary and dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AtRiskCustomer {
    pub customer: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// `inactive` or `activity_drop`.
    pub reason: String,
    pub since: i64,
    pub last_activity_at: Option<i64>,
    pub recent_week: i64,
    pub baseline_week: i64,
}

const AT_RISK: &str = "SELECT r.customer, c.email, c.name, r.reason, r.since, r.last_activity_at, r.recent_week, r.baseline_week \
     FROM at_risk r LEFT JOIN customers c ON c.id = r.customer WHERE r.status = 'at_risk' ORDER BY r.since, r.customer LIMIT $1";
const AT_RISK_COUNTS: &str = "SELECT status, COUNT(*) FROM at_risk GROUP BY status";

/// At-risk episodes by status, over all time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AtRiskCounts {
    pub at_risk: i64,
    pub reengaged: i64,
    pub ended: i64,
}

impl Store {
    /// Paying customers with reported activity, with their sums for the windows at `now`.
    pub async fn activity_candidates(&self, windows: Windows) -> Result<Vec<Candidate>, StoreError> {
        let (r, b) = (windows.recent, windows.baseline);
        self.with_conn(async |c| fetch!(c, fetch_all, Candidate, CANDIDATES, r.0, r.1, b.0, b.1)).await
    }

    /// Customers at risk now, longest first, at most `limit`.
    pub async fn at_risk_customers(&self, limit: i64) -> Result<Vec<AtRiskCustomer>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, AtRiskCustomer, AT_RISK, limit)).await
    }

    /// Episodes by status.
    pub async fn at_risk_counts(&self) -> Result<AtRiskCounts, StoreError> {
        let rows = self.with_conn(async |c| fetch!(c, fetch_all, (String, i64), AT_RISK_COUNTS)).await?;
        let mut counts = AtRiskCounts::default();
        for (status, n) in rows {
            match status.as_str() {
                "at_risk" => counts.at_risk = n,
                "reengaged" => counts.reengaged = n,
                "ended" => counts.ended = n,
                _ => {}
            }
        }
        Ok(counts)
    }
}

impl Store {
    /// Open an at-risk episode and, when it is new and `emails` are given, start its
    /// re-engagement series and queue them, in one transaction. Returns the emails queued.
    pub async fn start_reengagement(
        &self,
        episode: &NewEpisode<'_>,
        series: &NewSeries<'_>,
        emails: &[crate::mail::NewEmail],
        now: i64,
    ) -> Result<usize, StoreError> {
        self.in_transaction(async |conn| {
            // A held-out customer's series is recorded without emails (its outcome is measured).
            let held_out = series.arm == Some(crate::domain::lift::HOLDOUT);
            if !open_episode(conn, episode).await? || (emails.is_empty() && !held_out) || !start_series(conn, series).await? {
                return Ok(0);
            }
            let mut n = 0;
            for email in emails {
                n += usize::from(outbox::enqueue(conn, email, now).await?);
            }
            Ok(n)
        })
        .await
    }
}
