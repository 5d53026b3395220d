//! The owner's "who" lists: cancellations, saves, dunning now, recovered payments, new
//! customers, at risk, what customers told us.

use serde::Serialize;

use crate::store::conn::fetch;
use crate::store::{Store, StoreError};

/// Rows of a list page at most (the API's `per_page` is capped here).
pub const MAX_PER_PAGE: i64 = 500;

/// One page of a list: `offset` rows skipped, at most `limit` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub limit: i64,
    pub offset: i64,
}

/// The lists of the owner's "who" pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Cancellations,
    Saves,
    Dunning,
    Recovered,
    NewCustomers,
    AtRisk,
    Comments,
}

impl ListKind {
    pub const ALL: [Self; 7] =
        [Self::Cancellations, Self::Saves, Self::Dunning, Self::Recovered, Self::NewCustomers, Self::AtRisk, Self::Comments];

    /// The name in URLs (`/api/lists/<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancellations => "cancellations",
            Self::Saves => "saves",
            Self::Dunning => "dunning",
            Self::Recovered => "recovered",
            Self::NewCustomers => "new-customers",
            Self::AtRisk => "at-risk",
            Self::Comments => "comments",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The list's heading.
    pub fn title(self) -> &'static str {
        match self {
            Self::Cancellations => "Recent cancellations",
            Self::Saves => "Saves (offer taken)",
            Self::Dunning => "In dunning now",
            Self::Recovered => "Recovered payments",
            Self::NewCustomers => "New customers",
            Self::AtRisk => "At risk",
            Self::Comments => "What customers told us",
        }
    }
}

/// One row of any list: the customer, then the list's own columns (absent ones are null).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ListRow {
    pub customer: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// When it happened (cancelled, saved, failed first, recovered, signed up, at risk since, said).
    pub happened_at: Option<i64>,
    pub subscription: Option<String>,
    pub invoice: Option<String>,
    /// The survey reason (ours, or Stripe's feedback when the customer cancelled elsewhere).
    pub reason: Option<String>,
    pub comment: Option<String>,
    /// Cancel-flow outcome (`paused`, …) or the at-risk reason.
    pub outcome: Option<String>,
    /// What the outcome was, as recorded (JSON).
    pub detail: Option<String>,
    pub currency: Option<String>,
    /// Minor units: the amount failed, recovered, or the customer's MRR.
    pub amount: Option<f64>,
    /// When the next dunning email goes, and which.
    pub next_email_at: Option<i64>,
    pub next_email: Option<String>,
    /// Dunning: the day of the case (0 = the day it failed); at risk: last-7-day activity.
    pub day: Option<i64>,
}

const CUSTOMER_COLS: &str = "c.name AS name, c.email AS email";

/// The statement of a list: every list reads the same columns (see [`ListRow`]), paged by
/// `$1` (limit) and `$2` (offset).
fn list_sql(kind: ListKind) -> String {
    match kind {
        ListKind::Cancellations => cancellations_sql(),
        ListKind::Saves => saves_sql(),
        ListKind::Dunning => dunning_sql(),
        ListKind::Recovered => recovered_sql(),
        ListKind::NewCustomers => new_customers_sql(),
        ListKind::AtRisk => at_risk_sql(),
        ListKind::Comments => comments_sql(),
    }
}

/// The columns only some lists fill, as nulls.
fn nulls(cols: &[&str]) -> String {
    cols.iter().map(|c| format!("NULL AS {c}")).collect::<Vec<_>>().join(", ")
}

/// Cancellations Stripe reports (whether through the cancel flow or elsewhere), plus
/// cancel-flow cancellations whose Stripe event has not arrived yet.
fn cancellations_sql() -> String {
    format!(
        "SELECT * FROM (\
         SELECT s.customer AS customer, {CUSTOMER_COLS}, s.canceled_at AS happened_at, s.id AS subscription, NULL AS invoice, \
         COALESCE((SELECT cs.reason FROM cancel_sessions cs WHERE cs.subscription = s.id AND cs.outcome = 'canceled' \
           ORDER BY cs.completed_at DESC LIMIT 1), s.cancel_feedback) AS reason, \
         COALESCE((SELECT cs.comment FROM cancel_sessions cs WHERE cs.subscription = s.id AND cs.outcome = 'canceled' \
           ORDER BY cs.completed_at DESC LIMIT 1), s.cancel_comment) AS comment, \
         CASE WHEN s.ended_at IS NULL THEN 'ends_at_period_end' ELSE 'ended' END AS outcome, NULL AS detail, \
         s.currency AS currency, s.base_mrr AS amount, {} \
         FROM subscriptions s LEFT JOIN customers c ON c.id = s.customer WHERE s.canceled_at IS NOT NULL \
         UNION ALL \
         SELECT cs.customer AS customer, {CUSTOMER_COLS}, cs.completed_at AS happened_at, cs.subscription AS subscription, \
         NULL AS invoice, cs.reason AS reason, cs.comment AS comment, 'ends_at_period_end' AS outcome, \
         cs.outcome_detail AS detail, NULL AS currency, NULL AS amount, {} \
         FROM cancel_sessions cs LEFT JOIN customers c ON c.id = cs.customer WHERE cs.outcome = 'canceled' \
         AND NOT EXISTS (SELECT 1 FROM subscriptions s2 WHERE s2.id = cs.subscription AND s2.canceled_at IS NOT NULL)\
         ) x ORDER BY happened_at DESC, customer LIMIT $1 OFFSET $2",
        nulls(&["next_email_at", "next_email", "day"]),
        nulls(&["next_email_at", "next_email", "day"]),
    )
}

/// Cancel-flow sessions that ended in a save (paused, downgraded, discounted).
fn saves_sql() -> String {
    format!(
        "SELECT cs.customer AS customer, {CUSTOMER_COLS}, cs.completed_at AS happened_at, cs.subscription AS subscription, \
         NULL AS invoice, cs.reason AS reason, cs.comment AS comment, cs.outcome AS outcome, cs.outcome_detail AS detail, \
         NULL AS currency, NULL AS amount, {} FROM cancel_sessions cs LEFT JOIN customers c ON c.id = cs.customer \
         WHERE cs.outcome IN ('paused', 'downgraded', 'discounted') ORDER BY cs.completed_at DESC, cs.customer LIMIT $1 OFFSET $2",
        nulls(&["next_email_at", "next_email", "day"]),
    )
}

/// Open dunning cases, with the next email and the day of the case (`$3`: now).
fn dunning_sql() -> String {
    format!(
        "SELECT d.customer AS customer, {CUSTOMER_COLS}, d.opened_at AS happened_at, d.subscription AS subscription, \
         d.invoice_id AS invoice, NULL AS reason, NULL AS comment, NULL AS outcome, NULL AS detail, d.currency AS currency, \
         CAST(d.amount_due AS DOUBLE PRECISION) AS amount, \
         (SELECT MIN(o.next_attempt_at) FROM outbox o WHERE o.case_key = 'dunning:' || d.invoice_id AND o.status = 'pending') \
           AS next_email_at, \
         (SELECT o.template FROM outbox o WHERE o.case_key = 'dunning:' || d.invoice_id AND o.status = 'pending' \
           ORDER BY o.next_attempt_at, o.id LIMIT 1) AS next_email, \
         ($3 - d.opened_at) / 86400 AS day \
         FROM dunning_cases d LEFT JOIN customers c ON c.id = d.customer WHERE d.status = 'open' \
         ORDER BY d.opened_at DESC, d.invoice_id LIMIT $1 OFFSET $2"
    )
}

/// Dunning cases closed by a recovered payment.
fn recovered_sql() -> String {
    format!(
        "SELECT d.customer AS customer, {CUSTOMER_COLS}, d.closed_at AS happened_at, d.subscription AS subscription, \
         d.invoice_id AS invoice, NULL AS reason, NULL AS comment, d.close_reason AS outcome, NULL AS detail, \
         d.currency AS currency, CAST(COALESCE(d.recovered_amount, d.amount_due) AS DOUBLE PRECISION) AS amount, \
         NULL AS next_email_at, NULL AS next_email, d.recovered_after_secs / 86400 AS day \
         FROM dunning_cases d LEFT JOIN customers c ON c.id = d.customer WHERE d.status = 'recovered' \
         ORDER BY d.closed_at DESC, d.invoice_id LIMIT $1 OFFSET $2"
    )
}

/// Customers by when they signed up, with their live MRR.
fn new_customers_sql() -> String {
    format!(
        "SELECT c.id AS customer, {CUSTOMER_COLS}, c.created AS happened_at, NULL AS subscription, NULL AS invoice, NULL AS reason, \
         NULL AS comment, NULL AS outcome, NULL AS detail, \
         (SELECT MIN(s.currency) FROM subscriptions s WHERE s.customer = c.id) AS currency, \
         (SELECT SUM(s.base_mrr) FROM subscriptions s WHERE s.customer = c.id \
           AND s.status IN ('active', 'trialing', 'past_due', 'unpaid')) AS amount, {} \
         FROM customers c WHERE NOT c.deleted AND c.created IS NOT NULL ORDER BY c.created DESC, c.id LIMIT $1 OFFSET $2",
        nulls(&["next_email_at", "next_email", "day"]),
    )
}

/// Customers at risk now.
fn at_risk_sql() -> String {
    format!(
        "SELECT r.customer AS customer, {CUSTOMER_COLS}, r.since AS happened_at, NULL AS subscription, NULL AS invoice, NULL AS reason, \
         NULL AS comment, r.reason AS outcome, NULL AS detail, NULL AS currency, NULL AS amount, \
         NULL AS next_email_at, NULL AS next_email, r.recent_week AS day \
         FROM at_risk r LEFT JOIN customers c ON c.id = r.customer WHERE r.status = 'at_risk' \
         ORDER BY r.since DESC, r.customer LIMIT $1 OFFSET $2"
    )
}

/// What customers wrote in the cancel flow (`$3`: a reason, or empty for every reason).
fn comments_sql() -> String {
    format!(
        "SELECT cs.customer AS customer, {CUSTOMER_COLS}, COALESCE(cs.reason_at, cs.completed_at, cs.created_at) AS happened_at, \
         cs.subscription AS subscription, NULL AS invoice, cs.reason AS reason, cs.comment AS comment, \
         cs.outcome AS outcome, NULL AS detail, NULL AS currency, NULL AS amount, {} \
         FROM cancel_sessions cs LEFT JOIN customers c ON c.id = cs.customer \
         WHERE cs.comment IS NOT NULL AND cs.comment <> '' AND ($3 = '' OR cs.reason = $3) \
         ORDER BY happened_at DESC, cs.customer LIMIT $1 OFFSET $2",
        nulls(&["next_email_at", "next_email", "day"]),
    )
}

impl Store {
    /// One page of a list. `reason` filters "what customers told us" (empty: every reason).
    pub async fn owner_list(&self, kind: ListKind, page: Paging, now: i64, reason: &str) -> Result<Vec<ListRow>, StoreError> {
        // Built only from this file's constant fragments; every value is a bound parameter.
        let sql = list_sql(kind);
        let sql = || sqlx::AssertSqlSafe(sql.clone());
        self.with_conn(async |c| match kind {
            ListKind::Dunning => fetch!(c, fetch_all, ListRow, sql(), page.limit, page.offset, now),
            ListKind::Comments => fetch!(c, fetch_all, ListRow, sql(), page.limit, page.offset, reason),
            _ => fetch!(c, fetch_all, ListRow, sql(), page.limit, page.offset),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_has_a_url_name_that_parses_back() {
        for kind in ListKind::ALL {
            assert_eq!(ListKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ListKind::parse("everything"), None);
    }
}
