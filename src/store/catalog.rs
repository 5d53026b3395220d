//! The `products` and `prices` tables: written in the ingest transaction from the events that
//! carry a product or price (webhooks and `holdfast sync` alike), read by the pages that name
//! plans. A snapshot replaces the stored one unless the stored one came from a later event.

use crate::domain::catalog::{self, CatalogSnapshot};
use crate::domain::event::Event;
use crate::store::conn::{Conn, execute};

const UPSERT_PRODUCT: &str = "INSERT INTO products (id, name, active, deleted, src_created) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, active = excluded.active, deleted = excluded.deleted, \
     src_created = excluded.src_created WHERE excluded.src_created >= products.src_created";

/// A price's tiers are kept once seen: most price objects leave them out (they come only when
/// expanded), which says nothing about them. Tiers that arrive are kept whatever the order.
const UPSERT_PRICE: &str = "INSERT INTO prices (id, product, nickname, currency, unit_amount, recurring_interval, \
     interval_count, active, deleted, src_created, billing_scheme, tiers_mode, tiers, usage_type, tax_behavior) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
     ON CONFLICT (id) DO UPDATE SET product = excluded.product, nickname = excluded.nickname, currency = excluded.currency, \
     unit_amount = excluded.unit_amount, recurring_interval = excluded.recurring_interval, \
     interval_count = excluded.interval_count, active = excluded.active, deleted = excluded.deleted, \
     src_created = excluded.src_created, billing_scheme = COALESCE(excluded.billing_scheme, prices.billing_scheme), \
     tiers_mode = COALESCE(excluded.tiers_mode, prices.tiers_mode), tiers = COALESCE(excluded.tiers, prices.tiers), \
     usage_type = COALESCE(excluded.usage_type, prices.usage_type), tax_behavior = COALESCE(excluded.tax_behavior, prices.tax_behavior) \
     WHERE excluded.src_created >= prices.src_created";
/// Tiers that arrive on an older price object than the stored one still fill unknown tiers.
const FILL_TIERS: &str = "UPDATE prices SET tiers = $2, tiers_mode = COALESCE(tiers_mode, $3) WHERE id = $1 AND tiers IS NULL";

/// Apply the products and prices among `events` (those new to the event log).
pub async fn apply(conn: &mut Conn<'_>, events: &[&Event]) -> Result<(), sqlx::Error> {
    for event in events {
        match catalog::read(event) {
            Some(CatalogSnapshot::Product(p)) => {
                execute!(conn, UPSERT_PRODUCT, &p.id, &p.name, p.active, p.deleted, event.created)?;
            }
            Some(CatalogSnapshot::Price(p)) => {
                let tiers = p.tiers.as_ref().map(|t| serde_json::json!(t).to_string());
                execute!(
                    conn,
                    UPSERT_PRICE,
                    &p.id,
                    &p.product,
                    &p.nickname,
                    &p.currency,
                    p.unit_amount,
                    &p.recurring_interval,
                    p.interval_count,
                    p.active,
                    p.deleted,
                    event.created,
                    &p.billing_scheme,
                    &p.tiers_mode,
                    &tiers,
                    &p.usage_type,
                    &p.tax_behavior
                )?;
                if tiers.is_some() {
                    execute!(conn, FILL_TIERS, &p.id, &tiers, &p.tiers_mode)?;
                }
            }
            None => {}
        }
    }
    Ok(())
}
