//! Rows as read back from either backend. The SELECTs are the same text on both.

use serde::Serialize;

use crate::store::conn::{Conn, fetch};

/// A customer row.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CustomerRow {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created: Option<i64>,
    pub deleted: bool,
    pub src_event_id: String,
}

/// A subscription row (latest snapshot).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub id: String,
    pub customer: Option<String>,
    pub status: String,
    pub currency: Option<String>,
    pub created: Option<i64>,
    pub start_date: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub cancel_reason: Option<String>,
    pub cancel_feedback: Option<String>,
    pub cancel_comment: Option<String>,
    pub pause_behavior: Option<String>,
    pub pause_resumes_at: Option<i64>,
    /// JSON array of discount ids.
    pub discounts: String,
    pub base_mrr: f64,
    pub src_event_id: String,
}

/// One item of a subscription's latest snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ItemRow {
    pub subscription_id: String,
    pub item_id: String,
    pub price_id: Option<String>,
    pub product: Option<String>,
    pub unit_amount: Option<i64>,
    pub currency: Option<String>,
    pub recurring_interval: Option<String>,
    pub interval_count: Option<i64>,
    pub quantity: i64,
}

/// An invoice row.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct InvoiceRow {
    pub id: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub status: Option<String>,
    pub billing_reason: Option<String>,
    pub currency: Option<String>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub attempt_count: i64,
    pub next_payment_attempt: Option<i64>,
    pub hosted_invoice_url: Option<String>,
    pub created: Option<i64>,
    pub paid_at: Option<i64>,
    pub src_event_id: String,
}

/// A discount row.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DiscountRow {
    pub id: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub coupon_id: Option<String>,
    pub percent_off: Option<f64>,
    pub amount_off: Option<i64>,
    pub duration: Option<String>,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub deleted: bool,
}

/// One recorded subscription snapshot at its effective time.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HistoryRow {
    pub subscription_id: String,
    pub event_id: String,
    pub effective_at: i64,
    pub src_rank: i64,
    pub customer: Option<String>,
    pub status: String,
    pub currency: Option<String>,
    pub base_mrr: f64,
    pub collection_paused: bool,
    pub pause_resumes_at: Option<i64>,
    pub discounts: String,
    pub cancel_at_period_end: bool,
    pub cancel_reason: Option<String>,
    pub cancel_feedback: Option<String>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub items: String,
}

/// Everything the projection wrote, in key order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateDump {
    pub event_ids: Vec<String>,
    pub customers: Vec<CustomerRow>,
    pub subscriptions: Vec<SubscriptionRow>,
    pub items: Vec<ItemRow>,
    pub invoices: Vec<InvoiceRow>,
    pub discounts: Vec<DiscountRow>,
    pub history: Vec<HistoryRow>,
}

const SELECT_CUSTOMERS: &str = "SELECT id, email, name, created, deleted, src_event_id FROM customers ORDER BY id";
const SELECT_SUBSCRIPTIONS: &str = "SELECT id, customer, status, currency, created, start_date, trial_start, trial_end, \
     current_period_start, current_period_end, cancel_at_period_end, cancel_at, canceled_at, ended_at, cancel_reason, \
     cancel_feedback, cancel_comment, pause_behavior, pause_resumes_at, discounts, base_mrr, src_event_id FROM subscriptions ORDER BY id";
const SELECT_ITEMS: &str = "SELECT subscription_id, item_id, price_id, product, unit_amount, currency, recurring_interval, \
     interval_count, quantity FROM subscription_items ORDER BY subscription_id, item_id";
const SELECT_INVOICES: &str = "SELECT id, customer, subscription, status, billing_reason, currency, amount_due, amount_paid, \
     amount_remaining, attempt_count, next_payment_attempt, hosted_invoice_url, created, paid_at, src_event_id FROM invoices ORDER BY id";
const SELECT_DISCOUNTS: &str = "SELECT id, customer, subscription, coupon_id, percent_off, amount_off, duration, starts_at, \
     ends_at, deleted FROM discounts ORDER BY id";
const SELECT_HISTORY: &str = "SELECT subscription_id, event_id, effective_at, src_rank, customer, status, currency, base_mrr, \
     collection_paused, pause_resumes_at, discounts, cancel_at_period_end, cancel_reason, cancel_feedback, canceled_at, ended_at, \
     items FROM subscription_history ORDER BY subscription_id, event_id";

/// Read every table in key order.
pub(crate) async fn dump(c: &mut Conn<'_>) -> Result<StateDump, sqlx::Error> {
    let event_ids = fetch!(c, fetch_all, (String,), "SELECT id FROM stripe_events ORDER BY id")?;
    Ok(StateDump {
        event_ids: event_ids.into_iter().map(|(id,)| id).collect(),
        customers: fetch!(c, fetch_all, CustomerRow, SELECT_CUSTOMERS)?,
        subscriptions: fetch!(c, fetch_all, SubscriptionRow, SELECT_SUBSCRIPTIONS)?,
        items: fetch!(c, fetch_all, ItemRow, SELECT_ITEMS)?,
        invoices: fetch!(c, fetch_all, InvoiceRow, SELECT_INVOICES)?,
        discounts: fetch!(c, fetch_all, DiscountRow, SELECT_DISCOUNTS)?,
        history: fetch!(c, fetch_all, HistoryRow, SELECT_HISTORY)?,
    })
}
