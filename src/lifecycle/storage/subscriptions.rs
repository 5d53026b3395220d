//! The subscription reads the lifecycle needs: whether a customer is still one, and what a
//! win-back checkout offers again.

use crate::store::conn::{Conn, fetch};
use crate::store::{Store, StoreError};

const OTHER_LIVE: &str = concat!("SELECT COUNT(*) FROM subscriptions WHERE customer = $1 AND id <> $2 AND status IN ", live!());

/// Live subscriptions of `customer` other than `subscription`.
pub async fn other_live_subscriptions(conn: &mut Conn<'_>, customer: &str, subscription: &str) -> Result<i64, sqlx::Error> {
    Ok(fetch!(conn, fetch_one, (i64,), OTHER_LIVE, customer, subscription)?.0)
}

const PRICES_OF: &str = "SELECT i.price_id, i.quantity FROM subscription_items i JOIN subscriptions s ON s.id = i.subscription_id \
     WHERE s.id = $1 AND s.customer = $2 AND i.price_id IS NOT NULL ORDER BY i.item_id";

impl Store {
    /// The prices and quantities of `customer`'s subscription `subscription` (empty when it
    /// is not theirs): what a win-back checkout offers again.
    pub async fn prices_of(&self, customer: &str, subscription: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, (String, i64), PRICES_OF, subscription, customer)).await
    }

    /// Whether `customer` has a live subscription now.
    pub async fn has_live_subscription(&self, customer: &str) -> Result<bool, StoreError> {
        self.with_conn(async |c| other_live_subscriptions(c, customer, "").await.map(|n| n > 0)).await
    }
}
