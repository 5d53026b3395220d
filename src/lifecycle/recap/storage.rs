//! The monthly value recap's storage: activity per customer, day and event name (at most
//! `MAX_EVENT_NAMES` names, the rest under `other`), and what the scheduler reads to write
//! each recap. Same SQL on both backends.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::lifecycle::storage::ActivitySum;
use crate::store::conn::{Conn, execute, fetch};
use crate::store::{Store, StoreError};

/// Event names counted by name; later names are counted as `OTHER`.
pub const MAX_EVENT_NAMES: i64 = 50;
/// Where activity of names beyond the first `MAX_EVENT_NAMES` is counted.
pub const OTHER: &str = "other";

const NAMES: &str = "SELECT name FROM activity_event_names";
const CLAIM_NAME: &str = "INSERT INTO activity_event_names (name, created_at) SELECT $1, $2 \
     WHERE (SELECT COUNT(*) FROM activity_event_names) < $3 ON CONFLICT (name) DO NOTHING";
// Postgres: two batches naming new events at once must not both see room for the 50th.
const LOCK_NAMES_PG: &str = "LOCK TABLE activity_event_names IN SHARE ROW EXCLUSIVE MODE";
const ADD_SQLITE: &str = "INSERT INTO activity_daily_events (customer, day, name, count) \
     SELECT value ->> 'c', value ->> 'd', value ->> 'e', value ->> 'n' FROM jsonb_each($1) WHERE true \
     ON CONFLICT (customer, day, name) DO UPDATE SET count = activity_daily_events.count + excluded.count";
const ADD_PG: &str = "INSERT INTO activity_daily_events (customer, day, name, count) \
     SELECT r.c, r.d, r.e, r.n FROM json_to_recordset(($1::text)::json) AS r(c text, d bigint, e text, n bigint) \
     ON CONFLICT (customer, day, name) DO UPDATE SET count = activity_daily_events.count + excluded.count";

/// Add a batch's named activity (inside the batch's transaction): names not seen before are
/// claimed while fewer than `MAX_EVENT_NAMES` exist; the rest count as `other`. One statement
/// for the counts however many customers, plus one per new name.
pub async fn add_named_activity(conn: &mut Conn<'_>, sums: &[ActivitySum], now: i64) -> Result<(), sqlx::Error> {
    let reported: BTreeSet<&str> = sums.iter().flat_map(|a| a.names.iter().map(|(_, n, _)| n.as_str())).collect();
    if reported.is_empty() {
        return Ok(());
    }
    let mut known: BTreeSet<String> = fetch!(conn, fetch_all, (String,), NAMES)?.into_iter().map(|(n,)| n).collect();
    let new: Vec<&str> = reported.iter().copied().filter(|n| !known.contains(*n)).collect();
    if !new.is_empty() && (known.len() as i64) < MAX_EVENT_NAMES {
        if let Conn::Postgres(c) = conn {
            sqlx::query(LOCK_NAMES_PG).execute(&mut **c).await?;
        }
        for name in new {
            execute!(conn, CLAIM_NAME, name, now, MAX_EVENT_NAMES)?;
        }
        known = fetch!(conn, fetch_all, (String,), NAMES)?.into_iter().map(|(n,)| n).collect();
    }
    let mut counts: BTreeMap<(&str, i64, &str), i64> = BTreeMap::new();
    for a in sums {
        for (day, name, n) in &a.names {
            let name = if known.contains(name) { name.as_str() } else { OTHER };
            *counts.entry((a.customer.as_str(), *day, name)).or_default() += n;
        }
    }
    let rows: Vec<Value> = counts.into_iter().map(|((c, d, e), n)| json!({"c": c, "d": d, "e": e, "n": n})).collect();
    let rows = Value::from(rows).to_string();
    match conn {
        Conn::Sqlite(c) => sqlx::query(ADD_SQLITE).bind(&rows).execute(&mut **c).await.map(|_| ()),
        Conn::Postgres(c) => sqlx::query(ADD_PG).bind(&rows).execute(&mut **c).await.map(|_| ()),
    }
}

/// A paying subscription whose customer may get a recap, with what the email shows.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecapSubscription {
    pub customer: String,
    pub subscription: String,
    /// When billing began: the trial's end, else the start (the first recap needs a whole
    /// month after it).
    pub anchor: i64,
    /// The current billing period, whose days say which day of the month it renews on.
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// One priced item of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecapItem {
    pub plan: Option<String>,
    pub unit_amount: Option<i64>,
    pub currency: Option<String>,
    pub recurring_interval: Option<String>,
    pub interval_count: Option<i64>,
    pub quantity: i64,
}

// One row per paying customer: their oldest paying subscription decides the anniversary.
const SUBSCRIPTIONS: &str = "SELECT s.customer, s.id AS subscription, \
     CAST(COALESCE(s.trial_end, s.start_date, s.created, 0) AS BIGINT) AS anchor, \
     CAST(s.current_period_start AS BIGINT) AS period_start, CAST(s.current_period_end AS BIGINT) AS period_end, c.email, c.name \
     FROM subscriptions s JOIN customers c ON c.id = s.customer \
     WHERE s.status IN ('active', 'past_due') AND CASE WHEN c.deleted THEN 0 ELSE 1 END = 1 \
     ORDER BY s.customer, s.created, s.id";
const ITEMS: &str = "SELECT COALESCE(pr.name, p.nickname) AS plan, i.unit_amount, i.currency, i.recurring_interval, \
     i.interval_count, i.quantity FROM subscription_items i LEFT JOIN prices p ON p.id = i.price_id \
     LEFT JOIN products pr ON pr.id = COALESCE(i.product, p.product) WHERE i.subscription_id = $1 ORDER BY i.item_id";
const USAGE: &str = "SELECT name, CAST(SUM(count) AS BIGINT) FROM activity_daily_events \
     WHERE customer = $1 AND day >= $2 AND day < $3 GROUP BY name";

impl Store {
    /// Each paying customer once (their oldest paying subscription), by customer id.
    pub async fn recap_subscriptions(&self) -> Result<Vec<RecapSubscription>, StoreError> {
        let mut rows = self.with_conn(async |c| fetch!(c, fetch_all, RecapSubscription, SUBSCRIPTIONS)).await?;
        rows.dedup_by(|a, b| a.customer == b.customer);
        Ok(rows)
    }

    /// The priced items of `subscription`.
    pub async fn recap_items(&self, subscription: &str) -> Result<Vec<RecapItem>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, RecapItem, ITEMS, subscription)).await
    }

    /// `customer`'s activity per event name on UTC days `[from_day, to_day)`.
    pub async fn usage_by_name(&self, customer: &str, from_day: i64, to_day: i64) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows = self.with_conn(async |c| fetch!(c, fetch_all, (String, i64), USAGE, customer, from_day, to_day)).await?;
        Ok(rows.into_iter().collect())
    }
}
