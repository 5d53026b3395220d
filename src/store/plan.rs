//! The plain data a reaction plan carries: the rows the features' deciders ask the
//! projector to write (dunning cases and cards, lifecycle series, alert deliveries) and the
//! contact they read. They live in the store so the store's contract with the deciders
//! ([`crate::store::reactions`]) names no feature; each feature's storage writes them.

use serde::Serialize;

/// One failed-payment case (one per invoice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DunningCase {
    pub invoice_id: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    /// `payment_failed` or `action_required`.
    pub kind: String,
    /// `open`, `recovered` or `lost`.
    pub status: String,
    /// The failure was older than the horizon when it arrived: state only, no email.
    pub silent: bool,
    pub currency: Option<String>,
    pub amount_due: i64,
    /// The earliest failure's event time: the cadence runs from here.
    pub opened_at: i64,
    pub next_payment_attempt: Option<i64>,
    pub closed_at: Option<i64>,
    /// `paid`, `voided`, `uncollectible`, `subscription_ended`.
    pub close_reason: Option<String>,
    pub recovered_amount: Option<i64>,
    pub recovered_after_secs: Option<i64>,
    /// Emails delivered before the case closed.
    pub emails_before_close: Option<i64>,
    pub last_failure_at: i64,
    /// The email experiment in force when the case opened, and the customer's variant in it.
    pub experiment: Option<String>,
    pub variant: Option<String>,
    /// The newest failure's `attempt_count` (`0` for cases opened before it was kept).
    pub attempt_count: i64,
}

/// How a dunning case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    pub status: &'static str,
    pub closed_at: i64,
    pub reason: String,
    pub recovered_amount: Option<i64>,
    pub recovered_after_secs: Option<i64>,
}

/// Who to write to: a customer's stored email, name and whether they were deleted.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Contact {
    pub email: Option<String>,
    pub name: Option<String>,
    pub deleted: bool,
}

/// A card on file.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Card {
    pub id: String,
    pub customer: Option<String>,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

/// A series that begins (its emails are enqueued by the caller under the same `case_key`).
#[derive(Debug, Clone)]
pub struct NewSeries<'a> {
    pub case_key: &'a str,
    pub campaign: &'static str,
    pub customer: &'a str,
    pub subscription: Option<&'a str>,
    pub started_at: i64,
    /// `treated` or `holdout` when the campaign has a holdout.
    pub arm: Option<&'a str>,
}

/// A row for `alert_deliveries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub dedupe_key: String,
    pub alert_id: String,
    pub kind: &'static str,
    /// `slack` or `webhook`.
    pub destination: &'static str,
    /// The request body, exactly as it will be sent (and signed).
    pub body: String,
}
