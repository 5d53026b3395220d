//! Reads for the retention metrics: the whole recorded history as a `Timeline`, and the
//! generation counter that tells a cached computation it is stale.

use std::collections::HashMap;

use serde_json::Value;

use crate::domain::metrics::timeline::{
    CouponTerms, Discount, FailedInvoice, ItemAmount, Snapshot, SubscriptionHistory, Timeline,
};
use crate::domain::mrr;

/// Bumped in the ingest transaction whenever it stored a new event.
pub(crate) const BUMP_GENERATION: &str = "UPDATE history_generation SET generation = generation + 1 WHERE id = 1";
pub(crate) const SELECT_GENERATION: &str = "SELECT generation FROM history_generation WHERE id = 1";

pub(crate) const SELECT_HISTORY: &str = "SELECT subscription_id, event_id, effective_at, src_rank, customer, status, currency, \
     base_mrr, collection_paused, pause_resumes_at, discounts, cancel_reason, items FROM subscription_history \
     ORDER BY subscription_id, effective_at, event_id";
pub(crate) const SELECT_DISCOUNTS: &str = "SELECT id, customer, subscription, coupon_id, percent_off, amount_off, currency, \
     duration, starts_at, ends_at, deleted, src_created FROM discounts";
pub(crate) const SELECT_COUPONS: &str =
    "SELECT id, percent_off, amount_off, currency, duration, duration_in_months, applies_to_products FROM coupons";

/// First failure per subscription invoice, with the invoice as it stands. The invoice id is
/// read from the event's JSON (SQLite's `json_extract`, Postgres' `->>`).
pub(crate) const SELECT_FAILED_SQLITE: &str = "SELECT i.id, i.subscription, i.currency, i.amount_due, f.first_failed_at, i.status \
     FROM (SELECT json_extract(payload, '$.data.object.id') AS invoice_id, MIN(created) AS first_failed_at FROM stripe_events \
     WHERE type IN ('invoice.payment_failed', 'invoice.payment_action_required') GROUP BY 1) f \
     JOIN invoices i ON i.id = f.invoice_id WHERE i.subscription IS NOT NULL";
pub(crate) const SELECT_FAILED_POSTGRES: &str = "SELECT i.id, i.subscription, i.currency, i.amount_due, f.first_failed_at, i.status \
     FROM (SELECT (payload::json -> 'data' -> 'object' ->> 'id') AS invoice_id, MIN(created) AS first_failed_at FROM stripe_events \
     WHERE type IN ('invoice.payment_failed', 'invoice.payment_action_required') GROUP BY 1) f \
     JOIN invoices i ON i.id = f.invoice_id WHERE i.subscription IS NOT NULL";

/// One `subscription_history` row, as metrics read it.
#[derive(Debug, sqlx::FromRow)]
pub struct HistoryPoint {
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
    pub cancel_reason: Option<String>,
    pub items: String,
}

/// A `discounts` row.
#[derive(Debug, sqlx::FromRow)]
pub struct DiscountPoint {
    pub id: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub coupon_id: Option<String>,
    pub percent_off: Option<f64>,
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    pub duration: Option<String>,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub deleted: bool,
    pub src_created: i64,
}

/// A `coupons` row.
#[derive(Debug, sqlx::FromRow)]
pub struct CouponPoint {
    pub id: String,
    pub percent_off: Option<f64>,
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    pub duration: Option<String>,
    pub duration_in_months: Option<i64>,
    /// JSON array of product ids, or NULL for every product.
    pub applies_to_products: Option<String>,
}

/// A failed invoice row.
#[derive(Debug, sqlx::FromRow)]
pub struct FailedPoint {
    pub id: String,
    pub subscription: Option<String>,
    pub currency: Option<String>,
    pub amount_due: i64,
    pub first_failed_at: i64,
    pub status: Option<String>,
}

/// Assemble rows (history in subscription, time order) into a `Timeline`.
pub fn timeline(
    history: Vec<HistoryPoint>,
    discounts: Vec<DiscountPoint>,
    coupons: Vec<CouponPoint>,
    failed: Vec<FailedPoint>,
) -> Timeline {
    // Items matter only to discounts: without any, skip reading every row's items.
    let any_discount = !discounts.is_empty();
    let mut subscriptions: Vec<SubscriptionHistory> = Vec::new();
    for row in history {
        let items = if any_discount { item_amounts(&row.items) } else { Vec::new() };
        let snapshot = Snapshot {
            effective_at: row.effective_at,
            rank: row.src_rank,
            event_id: row.event_id,
            status: row.status,
            base_mrr: row.base_mrr,
            collection_paused: row.collection_paused,
            pause_resumes_at: row.pause_resumes_at,
            interval_months: if any_discount { interval_months(&row.items) } else { 1.0 },
            items,
            discounts: serde_json::from_str(&row.discounts).unwrap_or_default(),
            cancel_reason: row.cancel_reason,
        };
        match subscriptions.last_mut().filter(|s| s.id == row.subscription_id) {
            Some(s) => s.snapshots.push(snapshot),
            None => subscriptions.push(SubscriptionHistory {
                customer: row.customer.unwrap_or_else(|| row.subscription_id.clone()),
                currency: row.currency.map(|c| c.to_lowercase()).unwrap_or_else(|| "usd".into()),
                id: row.subscription_id,
                snapshots: vec![snapshot],
            }),
        }
    }
    let discounts: HashMap<String, Discount> = discounts
        .into_iter()
        .map(|d| {
            let embedded = CouponTerms {
                percent_off: d.percent_off,
                amount_off: d.amount_off,
                currency: d.currency,
                duration: d.duration,
                duration_in_months: None,
                products: None,
            };
            let discount = Discount {
                customer: d.customer,
                subscription: d.subscription,
                coupon_id: d.coupon_id,
                embedded,
                starts_at: d.starts_at,
                ends_at: d.ends_at,
                // A deletion is stored by the event that made it.
                deleted_at: d.deleted.then_some(d.src_created),
            };
            (d.id, discount)
        })
        .collect();
    let coupons: HashMap<String, CouponTerms> = coupons
        .into_iter()
        .map(|c| {
            let terms = CouponTerms {
                percent_off: c.percent_off,
                amount_off: c.amount_off,
                currency: c.currency,
                duration: c.duration,
                duration_in_months: c.duration_in_months,
                products: c.applies_to_products.and_then(|p| serde_json::from_str(&p).ok()),
            };
            (c.id, terms)
        })
        .collect();
    let failed_invoices = failed
        .into_iter()
        .map(|f| FailedInvoice {
            id: f.id,
            subscription: f.subscription,
            currency: f.currency.map(|c| c.to_lowercase()).unwrap_or_else(|| "usd".into()),
            amount_due: f.amount_due,
            first_failed_at: f.first_failed_at,
            status: f.status,
        })
        .collect();
    Timeline { subscriptions, discounts, coupons, failed_invoices }
}

/// Months in the first item's billing interval (an `amount_off` is per invoice).
fn interval_months(items: &str) -> f64 {
    let items: Value = serde_json::from_str(items).unwrap_or_default();
    let first = &items[0];
    let count = first["interval_count"].as_i64().filter(|c| *c > 0).unwrap_or(1) as f64;
    match first["interval"].as_str() {
        Some("year") => 12.0 * count,
        Some("week") => count * 12.0 / 52.0,
        Some("day") => count * 12.0 / 365.0,
        _ => count,
    }
}

/// Each stored item's product and monthly amount.
fn item_amounts(items: &str) -> Vec<ItemAmount> {
    let items: Value = serde_json::from_str(items).unwrap_or_default();
    let Some(items) = items.as_array() else { return Vec::new() };
    items
        .iter()
        .map(|i| ItemAmount {
            product: i["product"].as_str().map(str::to_owned),
            monthly: mrr::item_monthly(
                i["unit_amount"].as_i64(),
                i["quantity"].as_i64().unwrap_or(1),
                i["interval"].as_str(),
                i["interval_count"].as_i64(),
            ),
        })
        .collect()
}

/// Load everything; a macro for the same reason as `dump_from!`.
macro_rules! load_timeline_from {
    ($pool:expr, $failed_sql:expr) => {{
        use crate::store::metrics::*;
        let pool = $pool;
        let history: Vec<HistoryPoint> = sqlx::query_as(SELECT_HISTORY).fetch_all(pool).await?;
        let discounts: Vec<DiscountPoint> = sqlx::query_as(SELECT_DISCOUNTS).fetch_all(pool).await?;
        let coupons: Vec<CouponPoint> = sqlx::query_as(SELECT_COUPONS).fetch_all(pool).await?;
        let failed: Vec<FailedPoint> = sqlx::query_as($failed_sql).fetch_all(pool).await?;
        timeline(history, discounts, coupons, failed)
    }};
}
pub(crate) use load_timeline_from;
