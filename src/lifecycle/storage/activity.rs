//! Product activity: each batch's per-customer sums, added with one statement per table, and
//! the batch's idempotency key.

use serde_json::{Value, json};

use crate::lifecycle::storage::series::stop_one;
use crate::store::conn::{Conn, execute, fetch};
use crate::store::{Store, StoreError};
// A batch's activity is written with one statement per table, from a JSON array of rows
// (SQLite `jsonb_each`, Postgres `json_to_recordset`): one round trip however many customers.
const ADD_DAYS_SQLITE: &str = "INSERT INTO activity_daily (customer, day, count) \
     SELECT value ->> 'c', value ->> 'd', value ->> 'n' FROM jsonb_each($1) WHERE true \
     ON CONFLICT (customer, day) DO UPDATE SET count = activity_daily.count + excluded.count";
const ADD_DAYS_PG: &str = "INSERT INTO activity_daily (customer, day, count) \
     SELECT r.c, r.d, r.n FROM json_to_recordset(($1::text)::json) AS r(c text, d bigint, n bigint) \
     ON CONFLICT (customer, day) DO UPDATE SET count = activity_daily.count + excluded.count";
macro_rules! touch_conflict {
    () => {
        " ON CONFLICT (customer) DO UPDATE SET \
     first_at = CASE WHEN excluded.first_at < customer_activity.first_at THEN excluded.first_at ELSE customer_activity.first_at END, \
     last_at = CASE WHEN excluded.last_at > customer_activity.last_at THEN excluded.last_at ELSE customer_activity.last_at END, \
     total = customer_activity.total + excluded.total"
    };
}

const TOUCH_SQLITE: &str = concat!(
    "INSERT INTO customer_activity (customer, first_at, last_at, total) \
     SELECT value ->> 'c', value ->> 'f', value ->> 'l', value ->> 't' FROM jsonb_each($1) WHERE true",
    touch_conflict!()
);

const TOUCH_PG: &str = concat!(
    "INSERT INTO customer_activity (customer, first_at, last_at, total) \
     SELECT r.c, r.f, r.l, r.t FROM json_to_recordset(($1::text)::json) AS r(c text, f bigint, l bigint, t bigint)",
    touch_conflict!()
);
// Re-engaged: the customer's open episode began before their newest activity in the batch.
// An episode a low NPS score opened is about how the customer feels, not whether they use the
// product: activity ends it only `LOW_NPS_HOLD_SECS` after it began (its series has run).
const REENGAGED_SQLITE: &str = "UPDATE at_risk SET status = 'reengaged', resolved_at = r.l \
     FROM (SELECT value ->> 'c' AS c, value ->> 'l' AS l FROM jsonb_each($1)) AS r \
     WHERE at_risk.customer = r.c AND at_risk.status = 'at_risk' AND at_risk.since < r.l \
     AND (at_risk.reason <> 'low_nps' OR r.l >= at_risk.since + $2) RETURNING at_risk.customer, at_risk.since";
const REENGAGED_PG: &str = "UPDATE at_risk SET status = 'reengaged', resolved_at = r.l \
     FROM json_to_recordset(($1::text)::json) AS r(c text, l bigint) \
     WHERE at_risk.customer = r.c AND at_risk.status = 'at_risk' AND at_risk.since < r.l \
     AND (at_risk.reason <> 'low_nps' OR r.l >= at_risk.since + $2) RETURNING at_risk.customer, at_risk.since";

/// How long product activity cannot end an at-risk episode a low NPS score opened.
pub const LOW_NPS_HOLD_SECS: i64 = 14 * 86_400;

/// One customer's activity of one batch, summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivitySum {
    pub customer: String,
    pub first_at: i64,
    pub last_at: i64,
    /// (UTC day number, count) pairs.
    pub days: Vec<(i64, i64)>,
    /// (UTC day number, event name, count) of the items that named their event.
    pub names: Vec<(i64, String, i64)>,
}

/// Add a batch's activity (one row per customer in `sums`) and close, as re-engaged, the
/// open at-risk episodes that began before the customer's newest activity here. Three
/// statements per batch. Returns the re-engaged customers with their episode's start.
pub async fn add_activity(conn: &mut Conn<'_>, sums: &[ActivitySum]) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let days: Vec<Value> =
        sums.iter().flat_map(|a| a.days.iter().map(|(d, n)| json!({"c": a.customer, "d": d, "n": n}))).collect();
    let customers: Vec<Value> = sums
        .iter()
        .map(|a| json!({"c": a.customer, "f": a.first_at, "l": a.last_at, "t": a.days.iter().map(|(_, n)| n).sum::<i64>()}))
        .collect();
    let (days, customers) = (Value::from(days).to_string(), Value::from(customers).to_string());
    match conn {
        Conn::Sqlite(c) => {
            sqlx::query(ADD_DAYS_SQLITE).bind(&days).execute(&mut **c).await?;
            sqlx::query(TOUCH_SQLITE).bind(&customers).execute(&mut **c).await?;
            sqlx::query_as(REENGAGED_SQLITE).bind(&customers).bind(LOW_NPS_HOLD_SECS).fetch_all(&mut **c).await
        }
        Conn::Postgres(c) => {
            sqlx::query(ADD_DAYS_PG).bind(&days).execute(&mut **c).await?;
            sqlx::query(TOUCH_PG).bind(&customers).execute(&mut **c).await?;
            sqlx::query_as(REENGAGED_PG).bind(&customers).bind(LOW_NPS_HOLD_SECS).fetch_all(&mut **c).await
        }
    }
}

/// A batch's idempotency key, and what identifies the batch sent under it.
#[derive(Debug, Clone, Copy)]
pub struct BatchKey<'a> {
    pub key: &'a str,
    /// SHA-256 of the batch's per-customer sums (see `fingerprint`).
    pub fingerprint: &'a str,
    pub items: i64,
}

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Added; these customers were re-engaged by it.
    Stored { reengaged: Vec<String> },
    /// The same batch came with this key before (within `BATCH_KEY_SECS`): counted then, not again.
    Replayed { items: i64, customers: i64 },
    /// The key came before with a different batch; nothing stored.
    KeyReused,
}

/// How long a batch's idempotency key is remembered (Stripe's own window is 24 hours).
pub const BATCH_KEY_SECS: i64 = 7 * 86_400;

const PRUNE_BATCH_KEYS: &str = "DELETE FROM activity_batches WHERE received_at < $1";

const CLAIM_BATCH_KEY: &str = "INSERT INTO activity_batches (idempotency_key, fingerprint, received_at, items, customers) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (idempotency_key) DO NOTHING";
const BATCH_KEY: &str = "SELECT fingerprint, items, customers FROM activity_batches WHERE idempotency_key = $1";

/// A batch's identity for its idempotency key: SHA-256 over its per-customer sums, which are
/// sorted by customer and day, so the same items in another order are the same batch.
pub fn fingerprint(sums: &[ActivitySum]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for a in sums {
        h.update(format!("{}\t{}\t{}", a.customer, a.first_at, a.last_at));
        for (day, n) in &a.days {
            h.update(format!("\t{day}:{n}"));
        }
        // Only batches with event names hash them, so earlier batches keep their fingerprint.
        for (day, name, n) in &a.names {
            h.update(format!("\t{day}:{}:{n}", hex::encode(name)));
        }
        h.update("\n");
    }
    hex::encode(h.finalize())
}

impl Store {
    /// Add a batch of activity in one transaction. A customer whose at-risk episode began
    /// before their newest activity here is re-engaged: the episode closes and its pending
    /// re-engagement emails are cancelled at once. With a key, the batch is counted once
    /// however often it is retried (the key is claimed in the same transaction).
    pub async fn record_activity(
        &self,
        sums: &[ActivitySum],
        now: i64,
        key: Option<BatchKey<'_>>,
    ) -> Result<Recorded, StoreError> {
        self.in_transaction(async |c| {
            if let Some(k) = key {
                execute!(c, PRUNE_BATCH_KEYS, now - BATCH_KEY_SECS)?;
                let customers = i64::try_from(sums.len()).unwrap_or(i64::MAX);
                if execute!(c, CLAIM_BATCH_KEY, k.key, k.fingerprint, now, k.items, customers)? == 0 {
                    let (seen, items, customers) = fetch!(c, fetch_one, (String, i64, i64), BATCH_KEY, k.key)?;
                    return Ok(if seen == k.fingerprint { Recorded::Replayed { items, customers } } else { Recorded::KeyReused });
                }
            }
            let mut reengaged = Vec::new();
            crate::lifecycle::recap::storage::add_named_activity(c, sums, now).await?;
            for (customer, since) in add_activity(c, sums).await? {
                stop_one(c, &crate::lifecycle::rules::reengage_case(&customer, since), "activity_returned", now).await?;
                reengaged.push(customer);
            }
            reengaged.sort();
            Ok(Recorded::Stored { reengaged })
        })
        .await
    }
}
