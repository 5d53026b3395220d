//! Lifecycle state: product activity, at-risk episodes, and the series the lifecycle
//! reactions' plans start and stop. Same SQL on both backends (`$N`, BIGINT/TEXT, portable
//! upserts with CASE instead of MIN/LEAST).

use serde::Serialize;
use serde_json::{Value, json};

use crate::lifecycle::rules::ActivityFacts;
use crate::lifecycle::rules::Windows;
use crate::store::conn::{Conn, execute, fetch};
use crate::store::outbox;
use crate::store::plan::NewSeries;
use crate::store::{Store, StoreError};

/// Subscription statuses that mean "still a customer".
macro_rules! live {
    () => {
        "('active', 'trialing', 'past_due', 'unpaid')"
    };
}

const OTHER_LIVE: &str = concat!("SELECT COUNT(*) FROM subscriptions WHERE customer = $1 AND id <> $2 AND status IN ", live!());
/// Live subscriptions of `customer` other than `subscription`.
pub async fn other_live_subscriptions(conn: &mut Conn<'_>, customer: &str, subscription: &str) -> Result<i64, sqlx::Error> {
    Ok(fetch!(conn, fetch_one, (i64,), OTHER_LIVE, customer, subscription)?.0)
}

const START_SERIES: &str = "INSERT INTO lifecycle_series (case_key, campaign, customer, subscription, started_at, status, arm) \
     VALUES ($1, $2, $3, $4, $5, 'active', $6) ON CONFLICT (case_key) DO NOTHING";
const STOP_SERIES: &str = "UPDATE lifecycle_series SET status = 'stopped', stopped_at = $4, stop_reason = $5 \
     WHERE customer = $1 AND campaign = $2 AND status = 'active' AND (subscription IS NULL OR subscription <> $3) RETURNING case_key";
const STOP_ONE: &str =
    "UPDATE lifecycle_series SET status = 'stopped', stopped_at = $2, stop_reason = $3 WHERE case_key = $1 AND status = 'active'";

/// Record a series; `false` when it already exists (a redelivery).
pub async fn start_series(conn: &mut Conn<'_>, s: &NewSeries<'_>) -> Result<bool, sqlx::Error> {
    let n = execute!(conn, START_SERIES, s.case_key, s.campaign, s.customer, s.subscription, s.started_at, s.arm)?;
    Ok(n == 1)
}

/// Stop the customer's live series of `campaign` (except one tied to subscription `except`)
/// and cancel their pending emails. Returns how many series stopped.
pub async fn stop_series(
    conn: &mut Conn<'_>,
    customer: &str,
    campaign: &str,
    except: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<usize, sqlx::Error> {
    let keys = fetch!(conn, fetch_all, (String,), STOP_SERIES, customer, campaign, except.unwrap_or(""), now, reason)?;
    for (key,) in &keys {
        outbox::cancel_case(conn, key, now).await?;
    }
    Ok(keys.len())
}

/// Stop one series by its key and cancel its pending emails.
pub async fn stop_one(conn: &mut Conn<'_>, case_key: &str, reason: &str, now: i64) -> Result<(), sqlx::Error> {
    execute!(conn, STOP_ONE, case_key, now, reason)?;
    outbox::cancel_case(conn, case_key, now).await?;
    Ok(())
}

// A batch's activity is written with one statement per table, from a JSON array of rows
// (SQLite `json_each`, Postgres `json_to_recordset`): one round trip however many customers.
const ADD_DAYS_SQLITE: &str = "INSERT INTO activity_daily (customer, day, count) \
     SELECT value ->> 'c', value ->> 'd', value ->> 'n' FROM json_each($1) WHERE true \
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
     SELECT value ->> 'c', value ->> 'f', value ->> 'l', value ->> 't' FROM json_each($1) WHERE true",
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
     FROM (SELECT value ->> 'c' AS c, value ->> 'l' AS l FROM json_each($1)) AS r \
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

/// A paying customer with reported activity, as the scheduler assesses them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Candidate {
    pub customer: String,
    pub first_at: i64,
    pub last_at: i64,
    pub recent_week: i64,
    pub baseline_total: i64,
    /// The customer's last at-risk episode, if any.
    pub risk_status: Option<String>,
    pub risk_resolved_at: Option<i64>,
}

impl Candidate {
    pub fn facts(&self) -> ActivityFacts {
        ActivityFacts {
            first_at: self.first_at,
            last_at: self.last_at,
            recent_week: self.recent_week,
            baseline_total: self.baseline_total,
        }
    }
}

const CANDIDATES: &str = concat!(
    "SELECT a.customer, a.first_at, a.last_at, \
     CAST(COALESCE((SELECT SUM(d.count) FROM activity_daily d WHERE d.customer = a.customer AND d.day >= $1 AND d.day < $2), 0) AS BIGINT) AS recent_week, \
     CAST(COALESCE((SELECT SUM(d.count) FROM activity_daily d WHERE d.customer = a.customer AND d.day >= $3 AND d.day < $4), 0) AS BIGINT) AS baseline_total, \
     r.status AS risk_status, r.resolved_at AS risk_resolved_at \
     FROM customer_activity a LEFT JOIN at_risk r ON r.customer = a.customer \
     WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.customer = a.customer AND s.status IN ",
    live!(),
    ") ORDER BY a.customer"
);

const OPEN_EPISODE: &str = "INSERT INTO at_risk (customer, status, reason, since, last_activity_at, recent_week, baseline_week) \
     VALUES ($1, 'at_risk', $2, $3, $4, $5, $6) \
     ON CONFLICT (customer) DO UPDATE SET status = 'at_risk', reason = excluded.reason, since = excluded.since, \
     last_activity_at = excluded.last_activity_at, recent_week = excluded.recent_week, baseline_week = excluded.baseline_week, \
     resolved_at = NULL WHERE at_risk.status <> 'at_risk'";

/// A new at-risk episode.
#[derive(Debug, Clone)]
pub struct NewEpisode<'a> {
    pub customer: &'a str,
    pub reason: &'static str,
    pub since: i64,
    pub last_activity_at: i64,
    pub recent_week: i64,
    pub baseline_week: i64,
}

/// Start an episode unless one is open; `true` when it started (then its series is enqueued).
pub async fn open_episode(conn: &mut Conn<'_>, e: &NewEpisode<'_>) -> Result<bool, sqlx::Error> {
    let n = execute!(conn, OPEN_EPISODE, e.customer, e.reason, e.since, e.last_activity_at, e.recent_week, e.baseline_week)?;
    Ok(n == 1)
}

/// One at-risk customer, for the summary and dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AtRiskCustomer {
    pub customer: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// `inactive` or `activity_drop`.
    pub reason: String,
    pub since: i64,
    pub last_activity_at: Option<i64>,
    pub recent_week: i64,
    pub baseline_week: i64,
}

const AT_RISK: &str = "SELECT r.customer, c.email, c.name, r.reason, r.since, r.last_activity_at, r.recent_week, r.baseline_week \
     FROM at_risk r LEFT JOIN customers c ON c.id = r.customer WHERE r.status = 'at_risk' ORDER BY r.since, r.customer LIMIT $1";
const AT_RISK_COUNTS: &str = "SELECT status, COUNT(*) FROM at_risk GROUP BY status";

/// At-risk episodes by status, over all time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AtRiskCounts {
    pub at_risk: i64,
    pub reengaged: i64,
    pub ended: i64,
}

impl Store {
    /// Paying customers with reported activity, with their sums for the windows at `now`.
    pub async fn activity_candidates(&self, windows: Windows) -> Result<Vec<Candidate>, StoreError> {
        let (r, b) = (windows.recent, windows.baseline);
        self.with_conn(async |c| fetch!(c, fetch_all, Candidate, CANDIDATES, r.0, r.1, b.0, b.1)).await
    }

    /// Customers at risk now, longest first, at most `limit`.
    pub async fn at_risk_customers(&self, limit: i64) -> Result<Vec<AtRiskCustomer>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, AtRiskCustomer, AT_RISK, limit)).await
    }

    /// Episodes by status.
    pub async fn at_risk_counts(&self) -> Result<AtRiskCounts, StoreError> {
        let rows = self.with_conn(async |c| fetch!(c, fetch_all, (String, i64), AT_RISK_COUNTS)).await?;
        let mut counts = AtRiskCounts::default();
        for (status, n) in rows {
            match status.as_str() {
                "at_risk" => counts.at_risk = n,
                "reengaged" => counts.reengaged = n,
                "ended" => counts.ended = n,
                _ => {}
            }
        }
        Ok(counts)
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

    /// Open an at-risk episode and, when it is new and `emails` are given, start its
    /// re-engagement series and queue them, in one transaction. Returns the emails queued.
    pub async fn start_reengagement(
        &self,
        episode: &NewEpisode<'_>,
        series: &NewSeries<'_>,
        emails: &[crate::mail::NewEmail],
        now: i64,
    ) -> Result<usize, StoreError> {
        self.in_transaction(async |conn| {
            // A held-out customer's series is recorded without emails (its outcome is measured).
            let held_out = series.arm == Some(crate::figures::lift::HOLDOUT);
            if !open_episode(conn, episode).await? || (emails.is_empty() && !held_out) || !start_series(conn, series).await? {
                return Ok(0);
            }
            let mut n = 0;
            for email in emails {
                n += usize::from(outbox::enqueue(conn, email, now).await?);
            }
            Ok(n)
        })
        .await
    }

    /// Every lifecycle series, oldest first (tests, support).
    pub async fn lifecycle_series(&self) -> Result<Vec<SeriesRow>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, SeriesRow, SERIES)).await
    }
}

const SERIES: &str = "SELECT case_key, campaign, customer, subscription, started_at, status, stopped_at, stop_reason \
     FROM lifecycle_series ORDER BY started_at, case_key";

/// One lifecycle series as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SeriesRow {
    pub case_key: String,
    pub campaign: String,
    pub customer: String,
    pub subscription: Option<String>,
    pub started_at: i64,
    pub status: String,
    pub stopped_at: Option<i64>,
    pub stop_reason: Option<String>,
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

// ── The annual-plan offer ──────────────────────────────────────────────────────────────

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
        change: &crate::owner::views::NewStripeChange<'_>,
    ) -> Result<bool, StoreError> {
        let params = change.sent.params.to_string();
        self.in_transaction(async |c| {
            let done = execute!(c, ACCEPT_ANNUAL, subscription, change.at)? == 1;
            if done {
                execute!(
                    c,
                    crate::owner::views::INSERT_CHANGE,
                    change.customer,
                    change.subscription,
                    change.sent.method,
                    &change.sent.path,
                    &params,
                    change.purpose,
                    change.triggered_by,
                    change.idempotency_key,
                    change.at
                )?;
            }
            Ok(done)
        })
        .await
    }
}
