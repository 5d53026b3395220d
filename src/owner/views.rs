//! What the owner reads about customers: one customer whole, search, and the "who" lists
//! (cancellations, saves, dunning now, recovered payments, new customers, at risk, what
//! customers told us). Reads the projected tables; every statement is the same text on both
//! backends (flags read through `CASE`, since SQLite stores them as integers and Postgres as
//! booleans). Also the record of changes Holdfast made in Stripe (`stripe_changes`).

use serde::Serialize;

// The outcome as the cancel flow records it (a save starts `pending`).
use crate::cancel::rules::Outcome;
use crate::cancel::storage::RECORD_OUTCOME;
use crate::cancel::stripe_actions::Sent;
use crate::store::conn::{execute, fetch};
use crate::store::{Store, StoreError};

/// A change Holdfast made in Stripe, to record with what caused it.
#[derive(Debug, Clone)]
pub struct NewStripeChange<'a> {
    pub customer: &'a str,
    pub subscription: Option<&'a str>,
    pub sent: &'a Sent,
    /// What the change was for (`cancel_flow`).
    pub purpose: &'static str,
    /// Who caused it, in words.
    pub triggered_by: &'static str,
    pub idempotency_key: Option<&'a str>,
    pub at: i64,
}

/// Who caused a cancel-flow change, by how the session began.
pub fn cancel_flow_trigger(source: &str) -> &'static str {
    match source {
        "minted" => "the customer, in the cancel flow (link made by the owner)",
        "pause_link" => "the customer, from the pause link of a re-engagement email",
        _ => "the customer, in the cancel flow (signed link from the app)",
    }
}

pub(crate) const INSERT_CHANGE: &str = "INSERT INTO stripe_changes (customer, subscription, method, path, params, purpose, triggered_by, \
     idempotency_key, made_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Rows of a list page at most (the API's `per_page` is capped here).
pub const MAX_PER_PAGE: i64 = 500;

/// One page of a list: `offset` rows skipped, at most `limit` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub limit: i64,
    pub offset: i64,
}

/// The customer as Stripe last described them.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CustomerRow {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created: Option<i64>,
    pub deleted: i64,
}

/// A subscription of the customer, with its MRR now (in the currency's minor unit).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SubscriptionView {
    pub id: String,
    pub status: String,
    pub currency: Option<String>,
    pub created: Option<i64>,
    pub trial_end: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: i64,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub cancel_feedback: Option<String>,
    pub cancel_comment: Option<String>,
    pub pause_resumes_at: Option<i64>,
    pub base_mrr: f64,
}

/// A priced item of a subscription, with the plan's name where Stripe told us.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PlanItem {
    pub subscription_id: String,
    pub price_id: Option<String>,
    pub product: Option<String>,
    pub name: Option<String>,
    pub unit_amount: Option<i64>,
    pub currency: Option<String>,
    pub recurring_interval: Option<String>,
    pub interval_count: Option<i64>,
    pub quantity: i64,
}

/// The customer's MRR on one subscription from `at` on (one row per snapshot).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct MrrPoint {
    pub subscription_id: String,
    pub effective_at: i64,
    pub status: String,
    pub currency: Option<String>,
    pub base_mrr: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct InvoiceView {
    pub id: String,
    pub subscription: Option<String>,
    pub status: Option<String>,
    pub billing_reason: Option<String>,
    pub currency: Option<String>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub attempt_count: i64,
    pub created: Option<i64>,
    pub paid_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DunningView {
    pub invoice_id: String,
    pub status: String,
    pub currency: Option<String>,
    pub amount_due: i64,
    pub opened_at: i64,
    pub last_failure_at: i64,
    pub next_payment_attempt: Option<i64>,
    pub closed_at: Option<i64>,
    pub close_reason: Option<String>,
    pub recovered_amount: Option<i64>,
    pub attempt_count: i64,
}

/// An email to the customer (never its body) and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct EmailView {
    pub id: i64,
    pub case_key: Option<String>,
    pub template: String,
    pub subject: String,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub sent_at: Option<i64>,
}

/// A cancel-flow session (never its capability id or CSRF token).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CancelView {
    pub subscription: Option<String>,
    pub source: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub reason: Option<String>,
    pub comment: Option<String>,
    pub offers_shown: String,
    pub outcome: Option<String>,
    pub outcome_detail: Option<String>,
    pub paused_until: Option<i64>,
    pub completed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SeriesView {
    pub campaign: String,
    pub subscription: Option<String>,
    pub started_at: i64,
    pub status: String,
    pub stopped_at: Option<i64>,
    pub stop_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ActivityView {
    pub first_at: i64,
    pub last_at: i64,
    pub total: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AtRiskView {
    pub status: String,
    pub reason: String,
    pub since: i64,
    pub last_activity_at: Option<i64>,
    pub recent_week: i64,
    pub baseline_week: i64,
    pub resolved_at: Option<i64>,
}

/// A change Holdfast made in Stripe.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ChangeView {
    pub subscription: Option<String>,
    pub method: String,
    pub path: String,
    /// The form parameters as sent, as a JSON object.
    pub params: String,
    pub purpose: String,
    pub triggered_by: String,
    pub made_at: i64,
}

/// An NPS answer of the customer.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct NpsView {
    pub score: i64,
    pub comment: Option<String>,
    pub answered_at: i64,
    pub commented_at: Option<i64>,
}

/// Everything stored about one customer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerRecord {
    pub customer: CustomerRow,
    pub subscriptions: Vec<SubscriptionView>,
    pub items: Vec<PlanItem>,
    pub mrr_history: Vec<MrrPoint>,
    pub invoices: Vec<InvoiceView>,
    pub dunning_cases: Vec<DunningView>,
    pub emails: Vec<EmailView>,
    pub cancel_sessions: Vec<CancelView>,
    pub lifecycle_series: Vec<SeriesView>,
    pub activity: Option<ActivityView>,
    pub at_risk: Option<AtRiskView>,
    pub stripe_changes: Vec<ChangeView>,
    pub nps_answers: Vec<NpsView>,
}

const CUSTOMER: &str = "SELECT id, email, name, created, CAST(CASE WHEN deleted THEN 1 ELSE 0 END AS BIGINT) AS deleted \
     FROM customers WHERE id = $1";
const SUBSCRIPTIONS: &str = "SELECT id, status, currency, created, trial_end, current_period_end, \
     CAST(CASE WHEN cancel_at_period_end THEN 1 ELSE 0 END AS BIGINT) AS cancel_at_period_end, cancel_at, canceled_at, \
     ended_at, cancel_feedback, cancel_comment, pause_resumes_at, base_mrr FROM subscriptions WHERE customer = $1 \
     ORDER BY created DESC, id";
const ITEMS: &str = "SELECT i.subscription_id, i.price_id, i.product, COALESCE(pr.name, p.nickname) AS name, i.unit_amount, \
     i.currency, i.recurring_interval, i.interval_count, i.quantity FROM subscription_items i \
     JOIN subscriptions s ON s.id = i.subscription_id LEFT JOIN prices p ON p.id = i.price_id \
     LEFT JOIN products pr ON pr.id = COALESCE(i.product, p.product) WHERE s.customer = $1 ORDER BY i.subscription_id, i.item_id";
const MRR_HISTORY: &str = "SELECT subscription_id, effective_at, status, currency, base_mrr FROM subscription_history \
     WHERE customer = $1 ORDER BY effective_at, event_id";
const INVOICES: &str = "SELECT id, subscription, status, billing_reason, currency, amount_due, amount_paid, attempt_count, created, \
     paid_at FROM invoices WHERE customer = $1 ORDER BY created DESC, id DESC";
const DUNNING: &str = "SELECT invoice_id, status, currency, amount_due, opened_at, last_failure_at, next_payment_attempt, closed_at, \
     close_reason, recovered_amount, attempt_count FROM dunning_cases WHERE customer = $1 ORDER BY opened_at DESC";
const EMAILS: &str = "SELECT id, case_key, template, subject, recipient, status, attempts, created_at, next_attempt_at, sent_at \
     FROM outbox WHERE customer = $1 ORDER BY created_at DESC, id DESC";
const CANCELS: &str = "SELECT subscription, source, created_at, started_at, reason, comment, offers_shown, outcome, outcome_detail, \
     paused_until, completed_at FROM cancel_sessions WHERE customer = $1 AND started_at IS NOT NULL ORDER BY started_at DESC";
const SERIES: &str = "SELECT campaign, subscription, started_at, status, stopped_at, stop_reason FROM lifecycle_series \
     WHERE customer = $1 ORDER BY started_at DESC";
const ACTIVITY: &str = "SELECT first_at, last_at, total FROM customer_activity WHERE customer = $1";
const AT_RISK: &str = "SELECT status, reason, since, last_activity_at, recent_week, baseline_week, resolved_at FROM at_risk \
     WHERE customer = $1";
const CHANGES: &str = "SELECT subscription, method, path, params, purpose, triggered_by, made_at FROM stripe_changes \
     WHERE customer = $1 ORDER BY made_at DESC, id DESC";

const NPS: &str =
    "SELECT score, comment, answered_at, commented_at FROM nps_answers WHERE customer = $1 ORDER BY answered_at DESC";

/// A customer found by a search.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Found {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created: Option<i64>,
}

/// By Stripe id (customer, subscription or invoice), or a part of the email or name.
const SEARCH: &str = "SELECT id, email, name, created FROM customers WHERE id = $1 \
     OR id IN (SELECT customer FROM subscriptions WHERE id = $1) OR id IN (SELECT customer FROM invoices WHERE id = $1) \
     OR lower(COALESCE(email, '')) LIKE $2 ESCAPE '\\' OR lower(COALESCE(name, '')) LIKE $2 ESCAPE '\\' \
     ORDER BY created DESC, id LIMIT $3";

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

fn list_sql(kind: ListKind) -> String {
    let nulls = |cols: &[&str]| cols.iter().map(|c| format!("NULL AS {c}")).collect::<Vec<_>>().join(", ");
    match kind {
        // Cancellations Stripe reports (whether through the cancel flow or elsewhere), plus
        // cancel-flow cancellations whose Stripe event has not arrived yet.
        ListKind::Cancellations => format!(
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
        ),
        ListKind::Saves => format!(
            "SELECT cs.customer AS customer, {CUSTOMER_COLS}, cs.completed_at AS happened_at, cs.subscription AS subscription, \
             NULL AS invoice, cs.reason AS reason, cs.comment AS comment, cs.outcome AS outcome, cs.outcome_detail AS detail, \
             NULL AS currency, NULL AS amount, {} FROM cancel_sessions cs LEFT JOIN customers c ON c.id = cs.customer \
             WHERE cs.outcome IN ('paused', 'downgraded', 'discounted') ORDER BY cs.completed_at DESC, cs.customer LIMIT $1 OFFSET $2",
            nulls(&["next_email_at", "next_email", "day"]),
        ),
        ListKind::Dunning => format!(
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
        ),
        ListKind::Recovered => format!(
            "SELECT d.customer AS customer, {CUSTOMER_COLS}, d.closed_at AS happened_at, d.subscription AS subscription, \
             d.invoice_id AS invoice, NULL AS reason, NULL AS comment, d.close_reason AS outcome, NULL AS detail, \
             d.currency AS currency, CAST(COALESCE(d.recovered_amount, d.amount_due) AS DOUBLE PRECISION) AS amount, \
             NULL AS next_email_at, NULL AS next_email, d.recovered_after_secs / 86400 AS day \
             FROM dunning_cases d LEFT JOIN customers c ON c.id = d.customer WHERE d.status = 'recovered' \
             ORDER BY d.closed_at DESC, d.invoice_id LIMIT $1 OFFSET $2"
        ),
        ListKind::NewCustomers => format!(
            "SELECT c.id AS customer, {CUSTOMER_COLS}, c.created AS happened_at, NULL AS subscription, NULL AS invoice, NULL AS reason, \
             NULL AS comment, NULL AS outcome, NULL AS detail, \
             (SELECT MIN(s.currency) FROM subscriptions s WHERE s.customer = c.id) AS currency, \
             (SELECT SUM(s.base_mrr) FROM subscriptions s WHERE s.customer = c.id \
               AND s.status IN ('active', 'trialing', 'past_due', 'unpaid')) AS amount, {} \
             FROM customers c WHERE NOT c.deleted AND c.created IS NOT NULL ORDER BY c.created DESC, c.id LIMIT $1 OFFSET $2",
            nulls(&["next_email_at", "next_email", "day"]),
        ),
        ListKind::AtRisk => format!(
            "SELECT r.customer AS customer, {CUSTOMER_COLS}, r.since AS happened_at, NULL AS subscription, NULL AS invoice, NULL AS reason, \
             NULL AS comment, r.reason AS outcome, NULL AS detail, NULL AS currency, NULL AS amount, \
             NULL AS next_email_at, NULL AS next_email, r.recent_week AS day \
             FROM at_risk r LEFT JOIN customers c ON c.id = r.customer WHERE r.status = 'at_risk' \
             ORDER BY r.since DESC, r.customer LIMIT $1 OFFSET $2"
        ),
        ListKind::Comments => format!(
            "SELECT cs.customer AS customer, {CUSTOMER_COLS}, COALESCE(cs.reason_at, cs.completed_at, cs.created_at) AS happened_at, \
             cs.subscription AS subscription, NULL AS invoice, cs.reason AS reason, cs.comment AS comment, \
             cs.outcome AS outcome, NULL AS detail, NULL AS currency, NULL AS amount, {} \
             FROM cancel_sessions cs LEFT JOIN customers c ON c.id = cs.customer \
             WHERE cs.comment IS NOT NULL AND cs.comment <> '' AND ($3 = '' OR cs.reason = $3) \
             ORDER BY happened_at DESC, cs.customer LIMIT $1 OFFSET $2",
            nulls(&["next_email_at", "next_email", "day"]),
        ),
    }
}

/// `%part%` for LIKE, with the pattern characters of `part` escaped.
fn contains_pattern(part: &str) -> String {
    let escaped: String = part
        .to_lowercase()
        .chars()
        .flat_map(|ch| match ch {
            '%' | '_' | '\\' => vec!['\\', ch],
            other => vec![other],
        })
        .collect();
    format!("%{escaped}%")
}

impl Store {
    /// Record a cancel session's outcome and the Stripe change that made it, together.
    pub async fn record_cancel_outcome_and_change(
        &self,
        session: &str,
        outcome: Outcome,
        detail_json: &str,
        paused_until: Option<i64>,
        change: &NewStripeChange<'_>,
    ) -> Result<bool, StoreError> {
        let params = change.sent.params.to_string();
        self.in_transaction(async |c| {
            let done = execute!(c, RECORD_OUTCOME, session, outcome.as_str(), detail_json, paused_until, change.at)? == 1;
            if done {
                execute!(
                    c,
                    INSERT_CHANGE,
                    change.customer,
                    change.subscription,
                    change.sent.method,
                    &change.sent.path,
                    &params,
                    change.purpose,
                    change.triggered_by,
                    change.idempotency_key,
                    change.at
                )?;
            }
            Ok(done)
        })
        .await
    }

    /// Everything stored about `customer`; `None` when Holdfast has never heard of them.
    pub async fn customer_record(&self, customer: &str) -> Result<Option<CustomerRecord>, StoreError> {
        self.with_conn(async |c| {
            let Some(row) = fetch!(c, fetch_optional, CustomerRow, CUSTOMER, customer)? else { return Ok(None) };
            Ok(Some(CustomerRecord {
                customer: row,
                subscriptions: fetch!(c, fetch_all, SubscriptionView, SUBSCRIPTIONS, customer)?,
                items: fetch!(c, fetch_all, PlanItem, ITEMS, customer)?,
                mrr_history: fetch!(c, fetch_all, MrrPoint, MRR_HISTORY, customer)?,
                invoices: fetch!(c, fetch_all, InvoiceView, INVOICES, customer)?,
                dunning_cases: fetch!(c, fetch_all, DunningView, DUNNING, customer)?,
                emails: fetch!(c, fetch_all, EmailView, EMAILS, customer)?,
                cancel_sessions: fetch!(c, fetch_all, CancelView, CANCELS, customer)?,
                lifecycle_series: fetch!(c, fetch_all, SeriesView, SERIES, customer)?,
                activity: fetch!(c, fetch_optional, ActivityView, ACTIVITY, customer)?,
                at_risk: fetch!(c, fetch_optional, AtRiskView, AT_RISK, customer)?,
                stripe_changes: fetch!(c, fetch_all, ChangeView, CHANGES, customer)?,
                nps_answers: fetch!(c, fetch_all, NpsView, NPS, customer)?,
            }))
        })
        .await
    }

    /// Customers whose Stripe id (or a subscription's or invoice's id) is `query`, or whose
    /// email or name contains it (any case); newest first.
    pub async fn search_customers(&self, query: &str, limit: i64) -> Result<Vec<Found>, StoreError> {
        let query = query.trim();
        let pattern = contains_pattern(query);
        self.with_conn(async |c| fetch!(c, fetch_all, Found, SEARCH, query, &pattern, limit)).await
    }

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
    fn search_patterns_match_the_text_literally() {
        assert_eq!(contains_pattern("Ada"), "%ada%");
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn every_list_has_a_url_name_that_parses_back() {
        for kind in ListKind::ALL {
            assert_eq!(ListKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ListKind::parse("everything"), None);
    }
}

/// Raw counts behind the owner's figures, for one month `[from, to)` and currency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FigureCounts {
    /// Money recovered from failed payments closed in the month, and how many payments.
    pub recovered_amount: i64,
    pub recovered_payments: i64,
    /// Trials that ended in the month (up to now), and how many of them went on paying.
    pub trials_ended: i64,
    pub trials_converted: i64,
    /// Long-interval (yearly, or 3+ months) renewals paid in the month, and such subscriptions
    /// that ended in the month instead.
    pub renewed: i64,
    pub lapsed: i64,
    /// Live MRR by price (for MRR by plan).
    pub plans: Vec<PlanGroup>,
    /// Customers who ever subscribed, by the value of the acquisition channel's metadata.
    pub channels: Vec<ChannelGroup>,
    /// Cancel-flow sessions started in the month: saves by state now, and cancellations.
    pub saves_confirmed: i64,
    pub saves_reversed: i64,
    pub saves_pending: i64,
    pub sessions_canceled: i64,
    /// The time the counts were read at (cohort ages are measured to it).
    pub now: i64,
}

pub use crate::figures::breakdowns::COHORT_MONTHS;
pub use crate::figures::breakdowns::ChannelGroup;
pub use crate::figures::breakdowns::MONTH_SECS;
pub use crate::figures::breakdowns::PlanGroup;

const RECOVERED_IN: &str = "SELECT CAST(COALESCE(SUM(COALESCE(recovered_amount, amount_due)), 0) AS BIGINT), COUNT(*) \
     FROM dunning_cases WHERE status = 'recovered' AND closed_at >= $1 AND closed_at < $2 AND lower(COALESCE(currency, '')) = $3";
const TRIALS_IN: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status IN ('active', 'past_due', 'unpaid', 'paused') \
     OR (ended_at IS NOT NULL AND ended_at > trial_end + 86400) THEN 1 ELSE 0 END), 0) AS BIGINT) FROM subscriptions \
     WHERE trial_end IS NOT NULL AND trial_end >= $1 AND trial_end < $2 AND trial_end <= $3 \
     AND lower(COALESCE(currency, '')) = $4";
/// Renewals of long-interval (yearly, or every 3+ months) subscriptions paid in `[$1, $2)`.
/// Driven by the month's invoices (`invoices_paid_or_created`), each checked by its items.
const RENEWED_IN: &str = "SELECT COUNT(*) FROM invoices v WHERE billing_reason = 'subscription_cycle' AND status = 'paid' \
     AND COALESCE(paid_at, created) >= $1 AND COALESCE(paid_at, created) < $2 AND EXISTS \
     (SELECT 1 FROM subscription_items i WHERE i.subscription_id = v.subscription AND (i.recurring_interval = 'year' \
     OR (i.recurring_interval = 'month' AND i.interval_count >= 3)))";
/// Long-interval subscriptions that ended in `[$1, $2)` instead of renewing.
const LAPSED_IN: &str = "SELECT COUNT(*) FROM subscriptions s WHERE ended_at >= $1 AND ended_at < $2 AND EXISTS \
     (SELECT 1 FROM subscription_items i WHERE i.subscription_id = s.id AND (i.recurring_interval = 'year' \
     OR (i.recurring_interval = 'month' AND i.interval_count >= 3)))";
/// Sessions started in `[$1, $2)`: confirmed, reversed and pending saves, and cancellations.
const SAVES_IN: &str = "SELECT CAST(COALESCE(SUM(CASE WHEN save_state = 'confirmed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN save_state = 'reversed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN save_state = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN outcome = 'canceled' THEN 1 ELSE 0 END), 0) AS BIGINT) \
     FROM cancel_sessions WHERE started_at IS NOT NULL AND started_at >= $1 AND started_at < $2";

impl Store {
    /// The counts behind the owner's figures for `[from, to)` in `currency` (lower case).
    /// `channel_key` is the customers' metadata key naming their acquisition channel.
    pub async fn figure_counts(
        &self,
        from: i64,
        to: i64,
        now: i64,
        currency: &str,
        channel_key: &str,
    ) -> Result<FigureCounts, StoreError> {
        self.with_conn(async |c| {
            let mut parts = crate::figures::reports::Parts::start();
            let (recovered_amount, recovered_payments) = fetch!(c, fetch_one, (i64, i64), RECOVERED_IN, from, to, currency)?;
            parts.mark("recovered");
            let (trials_ended, trials_converted) = fetch!(c, fetch_one, (i64, i64), TRIALS_IN, from, to, now, currency)?;
            parts.mark("trials");
            let (renewed,) = fetch!(c, fetch_one, (i64,), RENEWED_IN, from, to)?;
            parts.mark("renewed");
            let (lapsed,) = fetch!(c, fetch_one, (i64,), LAPSED_IN, from, to)?;
            parts.mark("lapsed");
            let (saves_confirmed, saves_reversed, saves_pending, sessions_canceled) =
                fetch!(c, fetch_one, (i64, i64, i64, i64), SAVES_IN, from, to)?;
            parts.mark("saves");
            let plans = crate::figures::breakdowns::plan_groups(c, currency).await?;
            parts.mark("plans");
            let channels = crate::figures::breakdowns::channel_groups(c, channel_key, now).await?;
            parts.mark("channels");
            parts.log("figure_counts");
            Ok(FigureCounts {
                recovered_amount,
                recovered_payments,
                trials_ended,
                trials_converted,
                renewed,
                lapsed,
                plans,
                channels,
                saves_confirmed,
                saves_reversed,
                saves_pending,
                sessions_canceled,
                now,
            })
        })
        .await
    }
}
