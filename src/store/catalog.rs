//! The `products` and `prices` tables: written in the ingest transaction from the events that
//! carry a product or price (webhooks and `holdfast sync` alike), read by the pages that name
//! plans. A snapshot replaces the stored one unless the stored one came from a later event.

use super::conn::{Conn, execute};
use crate::domain::catalog::{self, CatalogSnapshot};
use crate::domain::event::Event;

const UPSERT_PRODUCT: &str = "INSERT INTO products (id, name, active, deleted, src_created) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, active = excluded.active, deleted = excluded.deleted, \
     src_created = excluded.src_created WHERE excluded.src_created >= products.src_created";

const UPSERT_PRICE: &str = "INSERT INTO prices (id, product, nickname, currency, unit_amount, recurring_interval, \
     interval_count, active, deleted, src_created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (id) DO UPDATE SET product = excluded.product, nickname = excluded.nickname, currency = excluded.currency, \
     unit_amount = excluded.unit_amount, recurring_interval = excluded.recurring_interval, \
     interval_count = excluded.interval_count, active = excluded.active, deleted = excluded.deleted, \
     src_created = excluded.src_created WHERE excluded.src_created >= prices.src_created";

/// Apply the products and prices among `events` (those new to the event log).
pub async fn apply(conn: &mut Conn<'_>, events: &[&Event]) -> Result<(), sqlx::Error> {
    for event in events {
        match catalog::read(event) {
            Some(CatalogSnapshot::Product(p)) => {
                execute!(conn, UPSERT_PRODUCT, &p.id, &p.name, p.active, p.deleted, event.created)?;
            }
            Some(CatalogSnapshot::Price(p)) => {
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
                    event.created
                )?;
            }
            None => {}
        }
    }
    Ok(())
}
