//! The dashboard's breakdowns, maintained with the other figures: MRR by plan and retention
//! by acquisition channel. Whenever the projector (or the scheduler, or a rebuild) recomputes
//! a customer's figures it also rewrites the customer's rows here from the projected tables,
//! so a read sums two narrow tables instead of joining every live subscription's items and
//! parsing every customer's event JSON.
//!
//! - `metric_plan_shares`: each live subscription's MRR (`base_mrr`), shared among its items
//!   by their list prices (a subscription without items is one share without a price).
//! - `metric_acquisition`: per customer who ever subscribed, its metadata (the channel is read
//!   from it with the configured key), when its first subscription began, when its last one
//!   ended, and whether one is live.

use crate::store::StoreError;
use crate::store::conn::{Conn, execute, fetch};

/// The ages (months after a customer's first subscription began) a channel cohort is read at.
pub const COHORT_MONTHS: [u32; 4] = [1, 3, 6, 12];
/// A month in seconds, for those ages (365.25 days a year).
pub const MONTH_SECS: i64 = 2_629_800;

/// The statuses whose subscriptions count in MRR by plan (a trial pays nothing yet).
const PAYING: &str = "('active', 'past_due', 'unpaid')";
/// The statuses a channel counts as still subscribed.
const SUBSCRIBED: &str = "('active', 'past_due', 'unpaid', 'trialing')";

/// An item's list price per month (`i` a `subscription_items` row).
fn monthly_list_price() -> String {
    let months = "(CASE WHEN COALESCE(i.interval_count, 1) < 1 THEN 1.0 \
                  ELSE CAST(COALESCE(i.interval_count, 1) AS DOUBLE PRECISION) END)";
    format!(
        "CAST(COALESCE(i.unit_amount, 0) AS DOUBLE PRECISION) * i.quantity / (CASE i.recurring_interval \
         WHEN 'year' THEN 12.0 * {months} WHEN 'week' THEN {months} * 7.0 / (365.25 / 12.0) \
         WHEN 'day' THEN {months} / (365.25 / 12.0) ELSE {months} END)"
    )
}

/// The per-customer statements for one backend; `$1` is a JSON array of keys.
struct RefreshSql {
    delete_shares: String,
    insert_shares: String,
    delete_acquisition: String,
    insert_acquisition: String,
}

impl RefreshSql {
    fn new(postgres: bool) -> Self {
        let keys = if postgres { "(SELECT jsonb_array_elements_text($1::jsonb))" } else { "(SELECT value FROM json_each($1))" };
        let list = monthly_list_price();
        Self {
            delete_shares: format!("DELETE FROM metric_plan_shares WHERE customer IN {keys}"),
            // A subscription without a customer is kept under its own id, as its figures are.
            // Two indexed lookups joined by UNION: an OR across the columns scanned every row.
            insert_shares: format!(
                "INSERT INTO metric_plan_shares (customer, subscription_id, currency, price_id, product, mrr) \
                 SELECT k, id, cur, price_id, product, \
                 CASE WHEN n = 0 THEN base_mrr WHEN total > 0 THEN base_mrr * list / total ELSE base_mrr / n END \
                 FROM (SELECT k, id, cur, base_mrr, price_id, product, list, SUM(list) OVER (PARTITION BY id) AS total, \
                 COUNT(item_of) OVER (PARTITION BY id) AS n \
                 FROM (SELECT COALESCE(s.customer, s.id) AS k, s.id, lower(COALESCE(s.currency, '')) AS cur, s.base_mrr, \
                 i.subscription_id AS item_of, i.price_id, i.product, {list} AS list \
                 FROM subscriptions s LEFT JOIN subscription_items i ON i.subscription_id = s.id \
                 WHERE s.status IN {PAYING} AND s.id IN (SELECT id FROM subscriptions WHERE customer IN {keys} \
                 UNION SELECT id FROM subscriptions WHERE customer IS NULL AND id IN {keys})) a) b"
            ),
            delete_acquisition: format!("DELETE FROM metric_acquisition WHERE customer IN {keys}"),
            insert_acquisition: format!(
                "INSERT INTO metric_acquisition (customer, metadata, started, ended, live) \
                 SELECT c.id, MAX(c.metadata), MIN(COALESCE(s.start_date, s.created)), \
                 MAX(COALESCE(s.ended_at, s.canceled_at)), MAX(CASE WHEN s.status IN {SUBSCRIBED} THEN 1 ELSE 0 END) \
                 FROM customers c JOIN subscriptions s ON s.customer = c.id WHERE c.id IN {keys} GROUP BY c.id"
            ),
        }
    }

    fn of(conn: &Conn<'_>) -> &'static Self {
        static SQLITE: std::sync::LazyLock<RefreshSql> = std::sync::LazyLock::new(|| RefreshSql::new(false));
        static POSTGRES: std::sync::LazyLock<RefreshSql> = std::sync::LazyLock::new(|| RefreshSql::new(true));
        if matches!(conn, Conn::Postgres(_)) { &POSTGRES } else { &SQLITE }
    }
}

/// Rewrite the rows of the customers in `key_list` (a JSON array of keys) from the projected
/// tables, inside the caller's transaction.
pub(crate) async fn refresh(conn: &mut Conn<'_>, key_list: &str) -> Result<(), StoreError> {
    let sql = RefreshSql::of(conn);
    execute!(conn, sql.delete_shares.as_str(), key_list)?;
    execute!(conn, sql.insert_shares.as_str(), key_list)?;
    execute!(conn, sql.delete_acquisition.as_str(), key_list)?;
    execute!(conn, sql.insert_acquisition.as_str(), key_list)?;
    Ok(())
}

/// The maintained tables, emptied before a rebuild.
pub(crate) const CLEAR: [&str; 2] = ["DELETE FROM metric_plan_shares", "DELETE FROM metric_acquisition"];

/// One price's share of the live MRR in a currency, with the plan's name where Stripe told us.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PlanGroup {
    pub price_id: Option<String>,
    pub name: Option<String>,
    pub mrr: f64,
    /// Live subscriptions with an item on the price.
    pub subscriptions: i64,
}

/// Summed per price and product first (a few rows), then named.
const PLAN_GROUPS: &str = "SELECT g.price_id, COALESCE(pr.name, p.nickname) AS name, g.mrr, g.subscriptions \
     FROM (SELECT price_id, product, CAST(SUM(mrr) AS DOUBLE PRECISION) AS mrr, CAST(COUNT(*) AS BIGINT) AS subscriptions \
     FROM metric_plan_shares WHERE currency = $1 GROUP BY price_id, product) g \
     LEFT JOIN prices p ON p.id = g.price_id LEFT JOIN products pr ON pr.id = COALESCE(g.product, p.product)";

/// The live MRR in `currency` (lower case) by price.
pub(crate) async fn plan_groups(conn: &mut Conn<'_>, currency: &str) -> Result<Vec<PlanGroup>, sqlx::Error> {
    fetch!(conn, fetch_all, PlanGroup, PLAN_GROUPS, currency)
}

/// The customers who ever subscribed whose acquisition-channel metadata holds one value
/// (`None`: absent or not a string): how many, how many pay now, and for each age in
/// [`COHORT_MONTHS`] how many reached it and how many of those were still subscribed then.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelGroup {
    pub value: Option<String>,
    pub customers: i64,
    pub live: i64,
    pub ages: [(i64, i64); COHORT_MONTHS.len()],
}

type ChannelRow = (Option<String>, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64);

/// One row per channel value (`$1` the metadata key, `$2` now), whatever the customers' number.
fn channel_groups_sql(postgres: bool) -> String {
    let value = if postgres {
        "CASE WHEN json_typeof(metadata::json -> $1) = 'string' THEN metadata::json ->> $1 END"
    } else {
        "CASE WHEN json_valid(metadata) AND json_type(metadata, '$.\"' || $1 || '\"') = 'text' \
         THEN json_extract(metadata, '$.\"' || $1 || '\"') END"
    };
    let ages: Vec<String> = COHORT_MONTHS
        .iter()
        .map(|m| {
            let reached = format!("started IS NOT NULL AND started + {} <= $2", i64::from(*m) * MONTH_SECS);
            let stayed = format!("live = 1 OR ended IS NULL OR ended >= started + {}", i64::from(*m) * MONTH_SECS);
            format!(
                "CAST(COALESCE(SUM(CASE WHEN {reached} THEN 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN {reached} AND ({stayed}) THEN 1 ELSE 0 END), 0) AS BIGINT)"
            )
        })
        .collect();
    format!(
        "SELECT value, CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(live), 0) AS BIGINT), {} \
         FROM (SELECT {value} AS value, live, started, ended FROM metric_acquisition) x GROUP BY value",
        ages.join(", ")
    )
}

/// The customers who ever subscribed, grouped by the value of their `channel_key` metadata.
pub(crate) async fn channel_groups(conn: &mut Conn<'_>, channel_key: &str, now: i64) -> Result<Vec<ChannelGroup>, sqlx::Error> {
    static SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| channel_groups_sql(false));
    static POSTGRES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| channel_groups_sql(true));
    let sql = if matches!(conn, Conn::Postgres(_)) { POSTGRES.as_str() } else { SQLITE.as_str() };
    let rows: Vec<ChannelRow> = fetch!(conn, fetch_all, ChannelRow, sql, channel_key, now)?;
    Ok(rows
        .into_iter()
        .map(|(value, customers, live, r1, s1, r3, s3, r6, s6, r12, s12)| ChannelGroup {
            value,
            customers,
            live,
            ages: [(r1, s1), (r3, s3), (r6, s6), (r12, s12)],
        })
        .collect())
}
