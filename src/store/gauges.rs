//! Counts for `/metrics` read from issue 3's tables (outbox, dunning cases).

use super::{Store, StoreError};

/// Outbox and dunning figures at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationalCounts {
    /// Outbox rows waiting to be sent (pending or retrying).
    pub outbox_depth: i64,
    /// Age in seconds of the oldest waiting outbox row (0 when none).
    pub outbox_oldest_age_secs: i64,
    /// Emails sent, ever (status `sent`).
    pub emails_sent: i64,
    /// Emails that failed for good.
    pub emails_failed: i64,
    /// Dunning cases opened and not yet closed.
    pub dunning_open: i64,
}

impl Store {
    /// EXTENSION POINT for issue 3 (outbox, workers, dunning): returns `None` until the
    /// `outbox` and `dunning_cases` tables exist. After merging issue 3, fill this in with one
    /// `SELECT` per figure (per backend) and `/metrics` exports them as
    /// `holdfast_outbox_depth`, `holdfast_outbox_oldest_age_seconds`, `holdfast_emails_sent`,
    /// `holdfast_emails_failed` and `holdfast_dunning_cases_open` with no other change.
    pub async fn operational_counts(&self, _now: i64) -> Result<Option<OperationalCounts>, StoreError> {
        Ok(None)
    }
}
