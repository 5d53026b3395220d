//! Counts for `/metrics`, read from the outbox and dunning tables at scrape time.

use crate::store::conn::fetch;
use crate::store::{Store, StoreError};

/// Outbox and dunning figures at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationalCounts {
    /// Outbox rows waiting to be sent (pending or retrying).
    pub outbox_depth: i64,
    /// Age in seconds of the oldest waiting outbox row that is due (0 when none).
    pub outbox_oldest_age_secs: i64,
    /// Emails sent, ever (status `sent`).
    pub emails_sent: i64,
    /// Emails that failed for good (gave up after retries, or bounced).
    pub emails_failed: i64,
    /// Dunning cases opened and not yet closed.
    pub dunning_open: i64,
}

/// Only rows already due count towards the age: a dunning step scheduled for next week is
/// not a backlog.
const OLDEST_DUE: &str =
    "SELECT COALESCE(MIN(next_attempt_at), 0) FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1";
const OPEN_CASES: &str = "SELECT COUNT(*) FROM dunning_cases WHERE status = 'open'";

impl Store {
    /// The figures `/metrics` exports as `holdfast_outbox_depth`,
    /// `holdfast_outbox_oldest_age_seconds`, `holdfast_emails_sent`, `holdfast_emails_failed`
    /// and `holdfast_dunning_cases_open`.
    pub async fn operational_counts(&self, now: i64) -> Result<Option<OperationalCounts>, StoreError> {
        let outbox = self.outbox_counts().await?;
        let (oldest,): (i64,) = self.with_conn(async |c| fetch!(c, fetch_one, (i64,), OLDEST_DUE, now)).await?;
        let (open,): (i64,) = self.with_conn(async |c| fetch!(c, fetch_one, (i64,), OPEN_CASES)).await?;
        Ok(Some(OperationalCounts {
            outbox_depth: outbox.pending,
            outbox_oldest_age_secs: if oldest > 0 { (now - oldest).max(0) } else { 0 },
            emails_sent: outbox.sent,
            emails_failed: outbox.failed + outbox.bounced,
            dunning_open: open,
        }))
    }
}
