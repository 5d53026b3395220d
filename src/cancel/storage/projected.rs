//! The reads the cancel flow needs from the projected tables: the customer's live or ended
//! subscription, a price's name and amount, earlier discounts and pauses. Same SQL text on
//! both backends, as the sessions' statements.

use crate::store::rows::{ItemRow, SubscriptionRow};
use crate::store::{Store, StoreError};

const SELECT_LIVE_SUBSCRIPTION: &str = "SELECT id, customer, status, currency, created, start_date, trial_start, trial_end, \
     current_period_start, current_period_end, cancel_at_period_end, cancel_at, canceled_at, ended_at, cancel_reason, \
     cancel_feedback, cancel_comment, pause_behavior, pause_resumes_at, discounts, base_mrr, src_event_id FROM subscriptions \
     WHERE customer = $1 AND ($2 = '' OR id = $2) AND status IN ('active', 'trialing', 'past_due', 'unpaid', 'paused') \
     ORDER BY created DESC, id LIMIT 1";

const SELECT_ITEMS_OF: &str = "SELECT subscription_id, item_id, price_id, product, unit_amount, currency, recurring_interval, \
     interval_count, quantity FROM subscription_items WHERE subscription_id = $1 ORDER BY item_id";

const SELECT_EVENT_PAYLOAD: &str = "SELECT payload FROM stripe_events WHERE id = $1";

const SELECT_CUSTOMER_EMAIL: &str = "SELECT email FROM customers WHERE id = $1";

const COUNT_RECENT_DISCOUNTS: &str =
    "SELECT count(*) FROM discounts WHERE (customer = $1 OR subscription = $2) AND starts_at IS NOT NULL AND starts_at >= $3";

const COUNT_RECENT_DISCOUNT_SAVES: &str =
    "SELECT count(*) FROM cancel_sessions WHERE customer = $1 AND outcome = 'discounted' AND completed_at >= $2";

const COUNT_RUNNING_PAUSES: &str =
    "SELECT count(*) FROM cancel_sessions WHERE subscription = $1 AND outcome = 'paused' AND paused_until > $2";

const SELECT_ENDED_SUBSCRIPTION: &str = "SELECT id FROM subscriptions WHERE customer = $1 \
     AND status IN ('canceled', 'incomplete_expired') ORDER BY ended_at DESC, created DESC, id LIMIT 1";

const SELECT_LAST_INVOICE_OF: &str =
    "SELECT id FROM invoices WHERE subscription = $1 AND customer = $2 ORDER BY created DESC, id DESC LIMIT 1";

const SELECT_PLAN: &str = "SELECT p.id AS price, pr.name AS name, p.nickname AS nickname, p.currency AS currency, \
     p.unit_amount AS unit_amount, p.recurring_interval AS recurring_interval, p.interval_count AS interval_count \
     FROM prices p LEFT JOIN products pr ON pr.id = p.product WHERE p.id = $1";

const SELECT_PLAN_FROM_ITEMS: &str = "SELECT i.price_id AS price, pr.name AS name, pr.name AS nickname, \
     i.currency AS currency, i.unit_amount AS unit_amount, i.recurring_interval AS recurring_interval, i.interval_count AS interval_count FROM subscription_items i LEFT JOIN products pr ON pr.id = i.product WHERE i.price_id = $1 LIMIT 1";

/// A price as the customer reads it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Plan {
    pub price: String,
    /// The product's name, when known.
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub currency: Option<String>,
    pub unit_amount: Option<i64>,
    pub recurring_interval: Option<String>,
    pub interval_count: Option<i64>,
}

impl Plan {
    /// `Basic — $9.00 / month` (what is known of it: `$9.00 / month` without a name).
    pub fn describe(&self) -> String {
        let name = self.name.clone().or_else(|| self.nickname.clone());
        let Some((amount, currency)) = self.unit_amount.zip(self.currency.as_deref()) else {
            return name.unwrap_or_else(|| "another plan".into());
        };
        let money = crate::domain::money::format_minor(amount, currency);
        let every = match (self.recurring_interval.as_deref(), self.interval_count.unwrap_or(1)) {
            (Some(i), 1) => format!(" / {i}"),
            (Some(i), n) => format!(" every {n} {i}s"),
            (None, _) => String::new(),
        };
        match name {
            Some(name) => format!("{name} — {money}{every}"),
            None => format!("{money}{every}"),
        }
    }
}

impl Store {
    /// The customer's live subscription (newest first), or the given one if it is the
    /// customer's and live; with its items. Never another customer's.
    pub async fn live_subscription_of(
        &self,
        customer: &str,
        subscription: Option<&str>,
    ) -> Result<Option<(SubscriptionRow, Vec<ItemRow>)>, StoreError> {
        let wanted = subscription.unwrap_or("");
        let sub: Option<SubscriptionRow> = on_pool!(self, pool => sqlx::query_as(SELECT_LIVE_SUBSCRIPTION).bind(customer).bind(wanted).fetch_optional(pool).await?);
        let Some(sub) = sub else { return Ok(None) };
        let items: Vec<ItemRow> = on_pool!(self, pool => sqlx::query_as(SELECT_ITEMS_OF).bind(&sub.id).fetch_all(pool).await?);
        Ok(Some((sub, items)))
    }

    /// The customer's most recently ended subscription and its last invoice (what the
    /// come-back checkout copies), if any.
    pub async fn ended_subscription_of(&self, customer: &str) -> Result<Option<(String, Option<String>)>, StoreError> {
        let sub: Option<(String,)> =
            on_pool!(self, pool => sqlx::query_as(SELECT_ENDED_SUBSCRIPTION).bind(customer).fetch_optional(pool).await?);
        let Some((sub,)) = sub else { return Ok(None) };
        let invoice: Option<(String,)> = on_pool!(self, pool => sqlx::query_as(SELECT_LAST_INVOICE_OF)
            .bind(&sub).bind(customer).fetch_optional(pool).await?);
        Ok(Some((sub, invoice.map(|(i,)| i))))
    }

    /// A price's name and amount: from Stripe's prices and products, else from a subscription
    /// item on that price.
    pub async fn plan(&self, price: &str) -> Result<Option<Plan>, StoreError> {
        let plan: Option<Plan> = on_pool!(self, pool => sqlx::query_as(SELECT_PLAN).bind(price).fetch_optional(pool).await?);
        if plan.is_some() {
            return Ok(plan);
        }
        Ok(on_pool!(self, pool => sqlx::query_as(SELECT_PLAN_FROM_ITEMS).bind(price).fetch_optional(pool).await?))
    }

    /// The object an event carries (`data.object`), e.g. the subscription snapshot a row
    /// came from, for the fields the row does not keep.
    pub async fn event_object(&self, event_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let row: Option<(String,)> =
            on_pool!(self, pool => sqlx::query_as(SELECT_EVENT_PAYLOAD).bind(event_id).fetch_optional(pool).await?);
        Ok(row.and_then(|(p,)| serde_json::from_str::<serde_json::Value>(&p).ok()).map(|mut e| e["data"]["object"].take()))
    }

    /// The customer's email address, if known.
    pub async fn customer_email(&self, customer: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> =
            on_pool!(self, pool => sqlx::query_as(SELECT_CUSTOMER_EMAIL).bind(customer).fetch_optional(pool).await?);
        Ok(row.and_then(|(e,)| e))
    }

    /// Did a discount start for this customer or subscription at or after `since` — seen in
    /// Stripe's discounts, or given by an earlier cancel session?
    pub async fn discounted_since(&self, customer: &str, subscription: &str, since: i64) -> Result<bool, StoreError> {
        let (stripe,): (i64,) = on_pool!(self, pool => sqlx::query_as(COUNT_RECENT_DISCOUNTS)
            .bind(customer).bind(subscription).bind(since).fetch_one(pool).await?);
        let (ours,): (i64,) =
            on_pool!(self, pool => sqlx::query_as(COUNT_RECENT_DISCOUNT_SAVES).bind(customer).bind(since).fetch_one(pool).await?);
        Ok(stripe + ours > 0)
    }

    /// Is a pause given by an earlier cancel session still running (before Stripe's webhook
    /// about it has arrived)?
    pub async fn pause_running(&self, subscription: &str, now: i64) -> Result<bool, StoreError> {
        let (n,): (i64,) =
            on_pool!(self, pool => sqlx::query_as(COUNT_RUNNING_PAUSES).bind(subscription).bind(now).fetch_one(pool).await?);
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: Option<&str>, amount: i64, currency: &str, interval: &str, count: i64) -> Plan {
        Plan {
            price: "price_1".into(),
            name: name.map(str::to_owned),
            nickname: None,
            currency: Some(currency.into()),
            unit_amount: Some(amount),
            recurring_interval: Some(interval.into()),
            interval_count: Some(count),
        }
    }

    #[test]
    fn plans_read_as_customers_expect() {
        assert_eq!(plan(Some("Basic"), 900, "usd", "month", 1).describe(), "Basic — $9.00 / month");
        assert_eq!(plan(Some("Pro"), 12_050, "eur", "month", 3).describe(), "Pro — €120.50 every 3 months");
        assert_eq!(plan(Some("Team"), 5000, "jpy", "year", 1).describe(), "Team — ¥5,000 / year");
        assert_eq!(plan(Some("Gold"), 12_500, "kwd", "month", 1).describe(), "Gold — 12.500 KWD / month");
        assert_eq!(plan(None, 900, "usd", "month", 1).describe(), "$9.00 / month");
    }
}
