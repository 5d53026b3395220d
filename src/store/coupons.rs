//! The `coupons` table: written in the projector's transaction from the events that carry a
//! coupon (webhooks, `holdfast sync`, a fetched coupon), read by the metrics to resolve the
//! discounts that name a coupon by id. A snapshot replaces the stored one unless the stored
//! one came from a later event.

use crate::domain::coupons;
use crate::domain::event::Event;
use crate::store::conn::{Conn, execute, fetch};
use crate::store::{Store, StoreError};

const UPSERT_COUPON: &str = "INSERT INTO coupons (id, percent_off, amount_off, currency, duration, duration_in_months, \
     applies_to_products, deleted, src_created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (id) DO UPDATE SET percent_off = excluded.percent_off, amount_off = excluded.amount_off, \
     currency = excluded.currency, duration = excluded.duration, duration_in_months = excluded.duration_in_months, \
     applies_to_products = excluded.applies_to_products, deleted = excluded.deleted, src_created = excluded.src_created \
     WHERE excluded.src_created >= coupons.src_created";

/// Coupons named by discounts whose terms are unknown: neither embedded in the discount nor
/// stored as a coupon.
const UNKNOWN_COUPONS: &str = "SELECT DISTINCT d.coupon_id FROM discounts d WHERE d.coupon_id IS NOT NULL \
     AND d.percent_off IS NULL AND d.amount_off IS NULL \
     AND NOT EXISTS (SELECT 1 FROM coupons c WHERE c.id = d.coupon_id) ORDER BY d.coupon_id LIMIT $1";

/// Apply the coupons among `events` (those new to the event log).
pub async fn apply(conn: &mut Conn<'_>, events: &[&Event]) -> Result<(), sqlx::Error> {
    for event in events {
        let Some(c) = coupons::read(event) else { continue };
        // A coupon deleted without its terms in the event keeps the stored terms.
        if c.deleted && !c.has_terms() {
            execute!(conn, "UPDATE coupons SET deleted = $2 WHERE id = $1", &c.id, true)?;
            continue;
        }
        let products = c.applies_to_products.as_ref().map(|p| serde_json::json!(p).to_string());
        execute!(
            conn,
            UPSERT_COUPON,
            &c.id,
            c.percent_off,
            c.amount_off,
            &c.currency,
            &c.duration,
            c.duration_in_months,
            products,
            c.deleted,
            event.created
        )?;
    }
    Ok(())
}

impl Store {
    /// Up to `limit` coupon ids that discounts name but whose terms Holdfast never saw.
    pub async fn unknown_coupons(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows = self.with_conn(async |c| fetch!(c, fetch_all, (String,), UNKNOWN_COUPONS, limit)).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
