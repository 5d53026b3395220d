//! The annual-plan offer: its candidates, the active days that qualify them, and the offer
//! row's claim and acceptance.

use crate::lifecycle::storage::series::start_series;
use crate::store::conn::{execute, fetch};
use crate::store::plan::NewSeries;
use crate::store::{Store, StoreError, outbox};

/// Active, unpaused, not ending, started before `$1`, exactly one item, billed every month,
/// never offered before, a customer Holdfast can write to.
const ANNUAL_CANDIDATES: &str = "SELECT s.id, s.customer, i.item_id, i.price_id, i.quantity, i.unit_amount, i.currency, \
     c.email, c.name FROM subscriptions s JOIN subscription_items i ON i.subscription_id = s.id \
     JOIN customers c ON c.id = s.customer \
     WHERE s.status = 'active' AND NOT s.cancel_at_period_end AND s.cancel_at IS NULL AND s.pause_resumes_at IS NULL \
     AND COALESCE(s.start_date, s.created) <= $1 AND i.recurring_interval = 'month' AND COALESCE(i.interval_count, 1) = 1 \
     AND i.price_id IS NOT NULL AND c.email IS NOT NULL AND NOT c.deleted \
     AND (SELECT COUNT(*) FROM subscription_items j WHERE j.subscription_id = s.id) = 1 \
     AND NOT EXISTS (SELECT 1 FROM annual_offers a WHERE a.subscription = s.id) ORDER BY s.id";
const ACTIVE_DAYS: &str = "SELECT day FROM activity_daily WHERE customer = $1 AND day >= $2 AND count > 0 ORDER BY day";

const INSERT_ANNUAL: &str = "INSERT INTO annual_offers (subscription, customer, item_id, from_price, to_price, offered_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subscription) DO NOTHING";
const ANNUAL_OFFER: &str = "SELECT subscription, customer, item_id, from_price, to_price, offered_at, acting_until, accepted_at \
     FROM annual_offers WHERE subscription = $1";
const CLAIM_ANNUAL: &str = "UPDATE annual_offers SET acting_until = $2 + $3, attempts = attempts + 1 \
     WHERE subscription = $1 AND accepted_at IS NULL AND (acting_until IS NULL OR acting_until < $2) RETURNING attempts";
const RELEASE_ANNUAL: &str = "UPDATE annual_offers SET acting_until = NULL WHERE subscription = $1 AND accepted_at IS NULL";

const ACCEPT_ANNUAL: &str =
    "UPDATE annual_offers SET accepted_at = $2, acting_until = NULL WHERE subscription = $1 AND accepted_at IS NULL";

/// A monthly subscription that may be offered the yearly price.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AnnualCandidate {
    pub subscription: String,
    pub customer: String,
    pub item_id: String,
    pub price_id: String,
    pub quantity: i64,
    pub unit_amount: Option<i64>,
    pub currency: Option<String>,
    pub email: String,
    pub name: Option<String>,
}

/// An offer as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AnnualOfferRow {
    pub subscription: String,
    pub customer: String,
    pub item_id: String,
    pub from_price: String,
    pub to_price: String,
    pub offered_at: i64,
    pub acting_until: Option<i64>,
    pub accepted_at: Option<i64>,
}

impl Store {
    /// Subscriptions that may get the annual offer: see `ANNUAL_CANDIDATES`.
    pub async fn annual_candidates(&self, started_before: i64) -> Result<Vec<AnnualCandidate>, StoreError> {
        const SQL: &str = ANNUAL_CANDIDATES;
        self.with_conn(async |c| {
            let rows = fetch!(
                c,
                fetch_all,
                (String, String, String, String, i64, Option<i64>, Option<String>, String, Option<String>),
                SQL,
                started_before
            )?;
            Ok(rows
                .into_iter()
                .map(|r| AnnualCandidate {
                    subscription: r.0,
                    customer: r.1,
                    item_id: r.2,
                    price_id: r.3,
                    quantity: r.4,
                    unit_amount: r.5,
                    currency: r.6,
                    email: r.7,
                    name: r.8,
                })
                .collect())
        })
        .await
    }

    /// The days (UTC day numbers) from `from_day` on with reported activity for `customer`.
    pub async fn active_days(&self, customer: &str, from_day: i64) -> Result<Vec<i64>, StoreError> {
        let rows = self.with_conn(async |c| fetch!(c, fetch_all, (i64,), ACTIVE_DAYS, customer, from_day)).await?;
        Ok(rows.into_iter().map(|(d,)| d).collect())
    }

    /// Record the offer, its series and its email together; `false` (nothing written) when
    /// the subscription was offered before.
    pub async fn start_annual_offer(
        &self,
        offer: &AnnualOfferRow,
        series: &NewSeries<'_>,
        email: &crate::mail::NewEmail,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.in_transaction(async |conn| {
            let o = offer;
            let inserted = execute!(
                conn,
                INSERT_ANNUAL,
                &o.subscription,
                &o.customer,
                &o.item_id,
                &o.from_price,
                &o.to_price,
                o.offered_at
            )?;
            if inserted != 1 {
                return Ok(false);
            }
            start_series(conn, series).await?;
            outbox::enqueue(conn, email, now).await?;
            Ok(true)
        })
        .await
    }

    /// The offer made for `subscription`, if any.
    pub async fn annual_offer(&self, subscription: &str) -> Result<Option<AnnualOfferRow>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_optional, AnnualOfferRow, ANNUAL_OFFER, subscription)).await
    }

    /// Take the offer's lease for `lease_secs` before calling Stripe: `Some(attempt)` when
    /// taken; `None` when accepted already or another request holds it.
    pub async fn claim_annual_offer(&self, subscription: &str, now: i64, lease_secs: i64) -> Result<Option<i64>, StoreError> {
        let row =
            self.with_conn(async |c| fetch!(c, fetch_optional, (i64,), CLAIM_ANNUAL, subscription, now, lease_secs)).await?;
        Ok(row.map(|(n,)| n))
    }

    /// Give the lease back after a failed Stripe call.
    pub async fn release_annual_offer(&self, subscription: &str) -> Result<(), StoreError> {
        self.with_conn(async |c| execute!(c, RELEASE_ANNUAL, subscription).map(|_| ())).await
    }

    /// Record the acceptance and the Stripe change that made it, together (only after Stripe
    /// accepted the change).
    pub async fn accept_annual_offer(
        &self,
        subscription: &str,
        change: &crate::cancel::NewStripeChange<'_>,
    ) -> Result<bool, StoreError> {
        self.in_transaction(async |c| {
            let done = execute!(c, ACCEPT_ANNUAL, subscription, change.at)? == 1;
            if done {
                crate::cancel::record_change(c, change).await?;
            }
            Ok(done)
        })
        .await
    }
}
