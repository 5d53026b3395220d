//! Reads for the retention metrics: the whole recorded history as a `Timeline`, and the
//! generation counter that tells a cached computation it is stale.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::domain::event::Event;
use crate::domain::fields::str_at;
use crate::domain::mrr;
use crate::domain::timeline::{CouponTerms, Discount, FailedInvoice, ItemAmount, Snapshot, SubscriptionHistory, Timeline};
use crate::store::StoreError;
use crate::store::conn::Conn;

/// Rows the reports skipped because they could not be read (all time, this process): one bad
/// row never fails a whole report. Exposed in `/metrics`.
static ROWS_SKIPPED: AtomicU64 = AtomicU64::new(0);

/// Rows skipped by the reports so far (this process).
pub fn rows_skipped() -> u64 {
    ROWS_SKIPPED.load(Ordering::Relaxed)
}

/// Count and log a row a report skipped (what was wrong, never the row's content).
pub(crate) fn skip_row(table: &'static str, error: &dyn std::fmt::Display) {
    ROWS_SKIPPED.fetch_add(1, Ordering::Relaxed);
    tracing::error!(table, error = %error, "report skipped a row it could not read");
}

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

/// First failure per subscription invoice, with the invoice as it stands: projected columns
/// only (the projector keeps `invoice_failures`); no report parses an event's JSON in SQL.
pub(crate) const SELECT_FAILED: &str = "SELECT i.id, i.subscription, i.currency, i.amount_due, f.first_failed_at, i.status \
     FROM invoice_failures f JOIN invoices i ON i.id = f.invoice_id WHERE i.subscription IS NOT NULL";

/// The events that start (or continue) an invoice's failure.
const FAILURE_KINDS: [&str; 2] = ["invoice.payment_failed", "invoice.payment_action_required"];
/// SQLite: a pass's failures as rows of `VALUES` (`sqlite::many_rows`).
const RECORD_FAILURES_SQLITE_HEAD: &str = "INSERT INTO invoice_failures (invoice_id, first_failed_at) VALUES ";
const RECORD_FAILURES_SQLITE_TAIL: &str =
    " ON CONFLICT (invoice_id) DO UPDATE SET first_failed_at = MIN(invoice_failures.first_failed_at, excluded.first_failed_at)";

/// Postgres: a pass's failures in one statement (its invoices are distinct: see below).
const RECORD_FAILURES_POSTGRES: &str = "INSERT INTO invoice_failures (invoice_id, first_failed_at) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
     ON CONFLICT (invoice_id) DO UPDATE SET first_failed_at = LEAST(invoice_failures.first_failed_at, excluded.first_failed_at)";

/// The projector's part: the earliest failure event seen per invoice (in any order).
pub(crate) async fn record_invoice_failures(conn: &mut Conn<'_>, events: &[&Event]) -> Result<(), StoreError> {
    // The batch's earliest failure per invoice: an upsert may not touch a row twice.
    let mut first: BTreeMap<String, i64> = BTreeMap::new();
    for event in events.iter().filter(|e| FAILURE_KINDS.contains(&e.kind.as_str())) {
        let Some(id) = str_at(&event.object, "id") else { continue };
        let at = first.entry(id).or_insert(event.created);
        *at = (*at).min(event.created);
    }
    match conn {
        Conn::Postgres(c) if !first.is_empty() => {
            let (ids, at): (Vec<String>, Vec<i64>) = first.into_iter().unzip();
            sqlx::query(RECORD_FAILURES_POSTGRES).bind(ids).bind(at).execute(&mut **c).await?;
        }
        Conn::Postgres(_) => {}
        Conn::Sqlite(c) => {
            use crate::store::sqlite::many_rows::statements;
            let rows: Vec<(String, i64)> = first.into_iter().collect();
            for (sql, chunk) in statements(&rows, RECORD_FAILURES_SQLITE_HEAD, "(?, ?)", RECORD_FAILURES_SQLITE_TAIL) {
                let mut query = sqlx::query(sql);
                for (id, at) in chunk {
                    query = query.bind(id.as_str()).bind(*at);
                }
                query.execute(&mut **c).await?;
            }
        }
    }
    Ok(())
}

/// One `subscription_history` row, as metrics read it.
#[derive(Debug, Clone, sqlx::FromRow)]
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
#[derive(Debug, Clone, sqlx::FromRow)]
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
#[derive(Debug, Clone, sqlx::FromRow)]
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
#[derive(Debug, Clone, sqlx::FromRow)]
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
    // Items matter only to discounts and to pricing beyond per-unit: without either, skip
    // reading the row's items.
    let subscriptions = subscription_histories(history, !discounts.is_empty());
    let discounts = discounts.into_iter().map(|d| (d.id.clone(), discount(d))).collect();
    let coupons = coupons.into_iter().map(|c| (c.id.clone(), coupon_terms(c))).collect();
    let failed_invoices = failed.into_iter().map(failed_invoice).collect();
    Timeline { subscriptions, discounts, coupons, failed_invoices, ..Timeline::default() }
}

/// Each subscription's snapshots, from history rows in subscription, time order.
fn subscription_histories(history: Vec<HistoryPoint>, any_discount: bool) -> Vec<SubscriptionHistory> {
    let mut subscriptions: Vec<SubscriptionHistory> = Vec::new();
    for row in history {
        let items =
            if any_discount || crate::store::pricing::has_pricing(&row.items) { item_amounts(&row.items) } else { Vec::new() };
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
            discounts: serde_json::from_str(&row.discounts).unwrap_or_else(|e| {
                skip_row("subscription_history.discounts", &e);
                Vec::new()
            }),
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
    subscriptions
}

/// A stored discount, with the coupon terms that arrived embedded in it.
fn discount(d: DiscountPoint) -> Discount {
    let embedded = CouponTerms {
        percent_off: d.percent_off,
        amount_off: d.amount_off,
        currency: d.currency,
        duration: d.duration,
        duration_in_months: None,
        products: None,
    };
    Discount {
        customer: d.customer,
        subscription: d.subscription,
        coupon_id: d.coupon_id,
        embedded,
        starts_at: d.starts_at,
        ends_at: d.ends_at,
        // A deletion is stored by the event that made it.
        deleted_at: d.deleted.then_some(d.src_created),
    }
}

/// A stored coupon's terms.
fn coupon_terms(c: CouponPoint) -> CouponTerms {
    CouponTerms {
        percent_off: c.percent_off,
        amount_off: c.amount_off,
        currency: c.currency,
        duration: c.duration,
        duration_in_months: c.duration_in_months,
        products: c.applies_to_products.and_then(|p| serde_json::from_str(&p).ok()),
    }
}

/// A failed subscription invoice as it stands now.
fn failed_invoice(f: FailedPoint) -> FailedInvoice {
    FailedInvoice {
        id: f.id,
        subscription: f.subscription,
        currency: f.currency.map(|c| c.to_lowercase()).unwrap_or_else(|| "usd".into()),
        amount_due: f.amount_due,
        first_failed_at: f.first_failed_at,
        status: f.status,
    }
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
            pricing: crate::store::pricing::item_pricing(i),
        })
        .collect()
}

/// Load everything; a macro: sqlx's generic bounds over two databases cost more than the
/// repetition (measured). Each row is decoded on its
/// own: one that can't be read is skipped, counted and logged, and the report goes on.
macro_rules! load_timeline_from {
    ($pool:expr) => {{
        use crate::store::metrics::*;
        let pool = $pool;
        macro_rules! tolerant {
            ($sql:expr, $t:ty, $table:expr) => {{
                let rows = sqlx::query($sql).fetch_all(pool).await?;
                let mut out: Vec<$t> = Vec::with_capacity(rows.len());
                for row in &rows {
                    match <$t as sqlx::FromRow<_>>::from_row(row) {
                        Ok(v) => out.push(v),
                        Err(e) => skip_row($table, &e),
                    }
                }
                out
            }};
        }
        let history = tolerant!(SELECT_HISTORY, HistoryPoint, "subscription_history");
        let discounts = tolerant!(SELECT_DISCOUNTS, DiscountPoint, "discounts");
        let coupons = tolerant!(SELECT_COUPONS, CouponPoint, "coupons");
        let failed = tolerant!(SELECT_FAILED, FailedPoint, "invoice_failures");
        let prices = tolerant!(crate::store::pricing::SELECT_PRICE_TIERS, crate::store::pricing::PriceTiersPoint, "prices");
        let lines = tolerant!(crate::store::pricing::SELECT_LINES, crate::store::pricing::LinePoint, "subscription_item_lines");
        let mut t = timeline(history, discounts, coupons, failed);
        crate::store::pricing::attach_rows(&mut t, prices, lines);
        t
    }};
}
pub(crate) use load_timeline_from;
