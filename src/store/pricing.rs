//! What the metrics need for pricing beyond `unit_amount × quantity` (`domain::pricing`): the
//! finalized invoice lines of subscription items (written in the projector's transaction from
//! any invoice event) and the tiers of tiered prices (kept by `store::catalog`), read into a
//! [`Timeline`] by both the maintained figures and the whole-history computation.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::domain::event::Event;
use crate::domain::fields::str_at;
use crate::domain::pricing::{self, ItemPricing, LineAmount, PriceTiers, Tier};
use crate::domain::timeline::Timeline;
use crate::store::conn::{Conn, execute, fetch};
use crate::store::{Store, StoreError};

/// A line's `finalized_at` is the earliest reported (events may arrive in any order).
const UPSERT_LINE: &str = "INSERT INTO subscription_item_lines (invoice_id, line_id, subscription_id, subscription_item, \
     price_id, finalized_at, amount, inclusive_tax) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (invoice_id, line_id) DO UPDATE SET subscription_id = excluded.subscription_id, \
     subscription_item = excluded.subscription_item, price_id = excluded.price_id, amount = excluded.amount, \
     inclusive_tax = excluded.inclusive_tax, finalized_at = CASE WHEN excluded.finalized_at < subscription_item_lines.finalized_at \
     THEN excluded.finalized_at ELSE subscription_item_lines.finalized_at END";

pub(crate) const SELECT_PRICE_TIERS: &str = "SELECT id, tiers_mode, tiers FROM prices WHERE tiers IS NOT NULL";
pub(crate) const SELECT_LINES: &str =
    "SELECT subscription_item, invoice_id, finalized_at, amount, inclusive_tax FROM subscription_item_lines";
/// The customers (figures keys) whose recorded items name a price. Items are stored as
/// serde_json text, so the price id appears exactly as `"price":"<id>"`.
const KEYS_OF_PRICE: &str = "SELECT DISTINCT COALESCE(customer, subscription_id) FROM subscription_history WHERE items LIKE $1";

/// The items of every subscription's current history row that name a tiered price (the
/// price ids whose tiers the metrics need now).
const CURRENT_TIERED: &str = "SELECT h.items FROM subscriptions s \
     JOIN subscription_history h ON h.subscription_id = s.id AND h.event_id = s.src_event_id \
     WHERE h.items LIKE '%\"billing_scheme\":\"tiered\"%'";
const KNOWN_TIERS: &str = "SELECT id FROM prices WHERE tiers IS NOT NULL";

/// A `prices` row with tiers.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PriceTiersPoint {
    pub id: String,
    pub tiers_mode: Option<String>,
    pub tiers: String,
}

/// A `subscription_item_lines` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinePoint {
    pub subscription_item: String,
    pub invoice_id: String,
    pub finalized_at: i64,
    pub amount: i64,
    pub inclusive_tax: i64,
}

/// Record the subscription-item lines of the finalized invoices among `events`.
pub async fn apply(conn: &mut Conn<'_>, events: &[&Event]) -> Result<(), sqlx::Error> {
    for event in events.iter().filter(|e| e.kind.starts_with("invoice.") && e.kind != "invoice.upcoming") {
        for l in pricing::item_lines(&event.object, event.created) {
            execute!(
                conn,
                UPSERT_LINE,
                &l.invoice,
                &l.line,
                &l.subscription,
                &l.item,
                &l.price,
                l.finalized_at,
                l.amount,
                l.inclusive_tax
            )?;
        }
    }
    Ok(())
}

/// The customers whose figures a price event may change: those whose items name a price
/// that arrived with its tiers.
pub(crate) async fn touched(conn: &mut Conn<'_>, event: &Event, keys: &mut BTreeSet<String>) -> Result<(), StoreError> {
    if !event.kind.starts_with("price.") || event.object.get("tiers").is_none_or(Value::is_null) {
        return Ok(());
    }
    let Some(id) = str_at(&event.object, "id") else { return Ok(()) };
    let pattern = format!("%\"price\":{}%", serde_json::json!(id));
    let rows: Vec<(Option<String>,)> = fetch!(conn, fetch_all, (Option<String>,), KEYS_OF_PRICE, pattern.as_str())?;
    keys.extend(rows.into_iter().filter_map(|(k,)| k));
    Ok(())
}

/// Whether a history row's items JSON names pricing beyond per-unit or an item's own
/// discounts (`store::shared::items_json` writes these keys only then).
pub fn has_pricing(items: &str) -> bool {
    items.contains("\"billing_scheme\"")
        || items.contains("\"usage_type\"")
        || items.contains("\"tax_behavior\"")
        || items.contains("\"discounts\"")
}

/// An item's pricing beyond per-unit and its own discounts, from its stored JSON (`None` for a
/// plain per-unit item without discounts).
pub fn item_pricing(i: &Value) -> Option<Box<ItemPricing>> {
    let tiered = i["billing_scheme"].as_str() == Some("tiered");
    let metered = i["usage_type"].as_str() == Some("metered");
    let tax_inclusive = i["tax_behavior"].as_str() == Some("inclusive");
    let discounts: Vec<String> =
        i["discounts"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
    if !(tiered || metered || tax_inclusive || !discounts.is_empty()) {
        return None;
    }
    Some(Box::new(ItemPricing {
        item: i["item"].as_str().map(str::to_owned),
        price: i["price"].as_str().map(str::to_owned),
        quantity: i["quantity"].as_i64().unwrap_or(1),
        interval_months: pricing::interval_months(i["interval"].as_str(), i["interval_count"].as_i64()).unwrap_or(1.0),
        tiered,
        tiers_mode: i["tiers_mode"].as_str().map(str::to_owned),
        tiers: serde_json::from_value::<Vec<Tier>>(i["tiers"].clone()).ok(),
        metered,
        tax_inclusive,
        tax_percent: i["tax_percent"].as_f64(),
        discounts,
    }))
}

/// Put stored tiers and lines into `t`.
pub fn attach_rows(t: &mut Timeline, prices: Vec<PriceTiersPoint>, lines: Vec<LinePoint>) {
    for p in prices {
        match serde_json::from_str::<Vec<Tier>>(&p.tiers) {
            Ok(tiers) => {
                t.prices.insert(p.id, PriceTiers { mode: p.tiers_mode, tiers });
            }
            Err(e) => crate::store::metrics::skip_row("prices.tiers", &e),
        }
    }
    let mut by_item: HashMap<String, Vec<LineAmount>> = HashMap::new();
    for l in lines {
        let line = LineAmount { at: l.finalized_at, invoice: l.invoice_id, amount: l.amount, net: l.amount - l.inclusive_tax };
        by_item.entry(l.subscription_item).or_default().push(line);
    }
    for lines in by_item.values_mut() {
        lines.sort_by(|a, b| (a.at, &a.invoice).cmp(&(b.at, &b.invoice)));
    }
    t.item_lines.extend(by_item);
}

/// What a customer's timeline needs read beyond its history: the prices its items name
/// without tiers, and (when any item is priced beyond per-unit) its subscriptions' finalized
/// lines. Empty for the many customers with per-unit prices only.
pub(crate) fn pricing_wants(own: &Timeline) -> (BTreeSet<&str>, BTreeSet<&str>) {
    let priced = own.subscriptions.iter().flat_map(|s| &s.snapshots).flat_map(|s| &s.items).filter_map(|i| i.pricing.as_ref());
    if priced.clone().next().is_none() {
        return (BTreeSet::new(), BTreeSet::new());
    }
    let prices = priced.filter(|p| p.tiered && p.tiers.is_none()).filter_map(|p| p.price.as_deref()).collect();
    let subscriptions = own.subscriptions.iter().map(|s| s.id.as_str()).collect();
    (prices, subscriptions)
}

/// Put into `own`, from the tiers and lines read for a whole batch of timelines (lines by
/// subscription), those its [`pricing_wants`] named.
pub(crate) fn attach_from(
    own: &mut Timeline,
    prices: &HashMap<String, PriceTiersPoint>,
    lines: &HashMap<String, Vec<LinePoint>>,
) {
    let (price_ids, subscriptions) = pricing_wants(own);
    if subscriptions.is_empty() {
        return;
    }
    let prices: Vec<PriceTiersPoint> = price_ids.iter().filter_map(|id| prices.get(*id).cloned()).collect();
    let lines: Vec<LinePoint> = subscriptions.iter().flat_map(|s| lines.get(*s).into_iter().flatten().cloned()).collect();
    attach_rows(own, prices, lines);
}

impl Store {
    /// Tiered prices that subscriptions' items name (as they stand now) whose tiers Holdfast
    /// has neither from the item nor stored with the price, in id order.
    pub async fn unknown_tiers(&self) -> Result<Vec<String>, StoreError> {
        let (rows, known) = self
            .with_conn(async |c| {
                let rows = fetch!(c, fetch_all, (String,), CURRENT_TIERED)?;
                let known = fetch!(c, fetch_all, (String,), KNOWN_TIERS)?;
                Ok((rows, known))
            })
            .await?;
        let known: std::collections::HashSet<String> = known.into_iter().map(|(id,)| id).collect();
        let mut out = BTreeSet::new();
        for (items,) in rows {
            let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&items) else { continue };
            for i in items.iter().filter(|i| i["billing_scheme"].as_str() == Some("tiered") && i["tiers"].is_null()) {
                out.extend(i["price"].as_str().filter(|p| !known.contains(*p)).map(str::to_owned));
            }
        }
        Ok(out.into_iter().collect())
    }
}
