//! One customer whole, as the owner reads it, and the customer search.

use serde::Serialize;

use crate::store::conn::fetch;
use crate::store::{Store, StoreError};

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
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn search_patterns_match_the_text_literally() {
        assert_eq!(contains_pattern("Ada"), "%ada%");
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
