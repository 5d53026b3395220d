//! The owner's numbers, maintained: in the projector's transaction, every customer a batch
//! touches is recomputed from its own history (`domain::metrics::maintained`), its stored
//! contribution replaced, and the per-month, tail and cohort totals moved by the difference.
//! Reads assemble a [`Report`] from those totals: a few dozen rows, whatever the history's
//! size.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use crate::domain::event::Event;
use crate::domain::fields::{id_at, str_at};
use crate::domain::month::Month;
use crate::domain::snapshots::InvoiceSnapshot;
use crate::domain::timeline::Timeline;
use crate::figures::maintained;
use crate::figures::maintained::COUNTS;
use crate::figures::maintained::Cohort;
use crate::figures::maintained::CustomerFigures;
use crate::figures::maintained::MONEY;
use crate::figures::maintained::Row;
use crate::figures::maintained::month_at;
use crate::figures::maintained::month_index;
use crate::figures::report::CohortFigures;
use crate::figures::report::Report;

use crate::store::conn::{Conn, execute, fetch};
use crate::store::metrics::{CouponPoint, DiscountPoint, FailedPoint, HistoryPoint, timeline};
use crate::store::pricing::{LinePoint, PriceTiersPoint};
use crate::store::{Store, StoreError};

/// Keys recomputed per statement group while rebuilding (bounds the deltas held).
const REBUILD_CHUNK: usize = 500;

const SELECT_COHORTS: &str = "SELECT cohort, customers, mrr_end_of_cohort_month, active_1, active_3, active_6, active_12, \
     mrr_1, mrr_3, mrr_6, mrr_12 FROM metric_cohort_totals WHERE currency = $1 AND cohort >= $2 AND cohort <= $3 ORDER BY cohort";
/// The customers whose figures stopped being exact by `now`, oldest first.
/// The customers whose discounts use a coupon (its terms changed or were just learned).
const KEYS_OF_COUPON: &str = "SELECT DISTINCT COALESCE(d.customer, h.customer, d.subscription) FROM discounts d \
     LEFT JOIN subscription_history h ON h.subscription_id = d.subscription WHERE d.coupon_id = $1";
const DUE: &str = "SELECT customer FROM metric_due WHERE due_at <= $1 ORDER BY due_at, customer LIMIT $2";
const FIRST_MONTH: &str = "SELECT MIN(first_month) FROM metric_customers";
const CURRENCIES: &str = "SELECT DISTINCT currency FROM metric_tail_totals ORDER BY currency";
const STATE: &str = "SELECT built FROM metric_state WHERE id = 1";
const SET_BUILT: &str = "UPDATE metric_state SET built = 1 WHERE id = 1";
/// Every key a customer's figures may be stored under.
const ALL_KEYS: &str = "SELECT COALESCE(customer, subscription_id) FROM subscription_history \
     UNION SELECT i.subscription FROM invoice_failures f JOIN invoices i ON i.id = f.invoice_id WHERE i.subscription IS NOT NULL \
     UNION SELECT customer FROM metric_customers";
/// The maintained tables, emptied before a rebuild.
pub(crate) const CLEAR_FIGURES: [&str; 5] = [
    "DELETE FROM metric_customers",
    "DELETE FROM metric_due",
    "DELETE FROM metric_month_totals",
    "DELETE FROM metric_tail_totals",
    "DELETE FROM metric_cohort_totals",
];

fn columns() -> impl Iterator<Item = &'static str> {
    MONEY.iter().chain(COUNTS.iter()).copied()
}

/// The statements that load and write a batch of customers, for one backend. Every id list
/// is one parameter, a JSON array (`IN` over it), and every batch of rows one parameter, a
/// JSON array of arrays: one statement per table whatever the batch's size.
struct BatchSql {
    subs_of_keys: String,
    history_of_subs: String,
    known_subs: String,
    failed_of_subs: String,
    discounts: String,
    coupons: String,
    price_tiers: String,
    lines_of_subs: String,
    stored: String,
    delete_figures: String,
    insert_figures: String,
    delete_due: String,
    insert_due: String,
    upsert_months: String,
    upsert_tails: String,
    upsert_cohorts: String,
}

impl BatchSql {
    fn new(postgres: bool) -> Self {
        // `IN` over the JSON array of strings bound as `$n`.
        let list = |n: usize| {
            if postgres {
                format!("(SELECT jsonb_array_elements_text(${n}::jsonb))")
            } else {
                format!("(SELECT value FROM json_each(${n}))")
            }
        };
        // The rows of the JSON array of arrays bound as `$1`, column `i` typed `ty`.
        let rows = if postgres { "jsonb_array_elements($1::jsonb) AS r(v)" } else { "json_each($1) AS r" };
        let col = |i: usize, ty: &str| {
            if postgres { format!("(r.v->>{i})::{ty}") } else { format!("json_extract(r.value, '$[{i}]')") }
        };
        let insert_rows = |table: &str, cols: &[(&str, &str)], conflict: &str| {
            let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
            let values: Vec<String> = cols.iter().enumerate().map(|(i, (_, ty))| col(i, ty)).collect();
            // `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
            format!("INSERT INTO {table} ({}) SELECT {} FROM {rows} WHERE true {conflict}", names.join(", "), values.join(", "))
        };
        let additive = |table: &str, key: &str, cols: &[(&str, &str)]| {
            let sets: Vec<String> = cols.iter().skip(2).map(|(c, _)| format!("{c} = {table}.{c} + excluded.{c}")).collect();
            insert_rows(table, cols, &format!("ON CONFLICT (currency, {key}) DO UPDATE SET {}", sets.join(", ")))
        };
        let mut totals: Vec<(&str, &str)> = vec![("currency", "text"), ("month", "bigint")];
        totals.extend(MONEY.iter().map(|c| (*c, "double precision")));
        totals.extend(COUNTS.iter().map(|c| (*c, "bigint")));
        let mut cohorts: Vec<(&str, &str)> = vec![("currency", "text"), ("cohort", "bigint"), ("customers", "bigint")];
        cohorts.push(("mrr_end_of_cohort_month", "double precision"));
        cohorts.extend(["active_1", "active_3", "active_6", "active_12"].map(|c| (c, "bigint")));
        cohorts.extend(["mrr_1", "mrr_3", "mrr_6", "mrr_12"].map(|c| (c, "double precision")));
        let history = "subscription_id, event_id, effective_at, src_rank, customer, status, currency, base_mrr, \
            collection_paused, pause_resumes_at, discounts, cancel_reason, items";
        let discount = "id, customer, subscription, coupon_id, percent_off, amount_off, currency, duration, starts_at, \
            ends_at, deleted, src_created";
        Self {
            subs_of_keys: format!(
                "SELECT DISTINCT COALESCE(customer, subscription_id), subscription_id FROM subscription_history \
                 WHERE COALESCE(customer, subscription_id) IN {}",
                list(1)
            ),
            history_of_subs: format!(
                "SELECT {history} FROM subscription_history WHERE subscription_id IN {} \
                 ORDER BY subscription_id, effective_at, event_id",
                list(1)
            ),
            known_subs: format!("SELECT DISTINCT subscription_id FROM subscription_history WHERE subscription_id IN {}", list(1)),
            failed_of_subs: format!(
                "SELECT i.id, i.subscription, i.currency, i.amount_due, f.first_failed_at, i.status \
                 FROM invoice_failures f JOIN invoices i ON i.id = f.invoice_id WHERE i.subscription IN {}",
                list(1)
            ),
            discounts: format!(
                "SELECT {discount} FROM discounts WHERE id IN {} UNION SELECT {discount} FROM discounts WHERE customer IN {} \
                 UNION SELECT {discount} FROM discounts WHERE subscription IN {}",
                list(1),
                list(2),
                list(3)
            ),
            coupons: format!(
                "SELECT id, percent_off, amount_off, currency, duration, duration_in_months, applies_to_products FROM coupons \
                 WHERE id IN {}",
                list(1)
            ),
            price_tiers: format!("SELECT id, tiers_mode, tiers FROM prices WHERE tiers IS NOT NULL AND id IN {}", list(1)),
            lines_of_subs: format!(
                "SELECT subscription_id, subscription_item, invoice_id, finalized_at, amount, inclusive_tax \
                 FROM subscription_item_lines WHERE subscription_id IN {}",
                list(1)
            ),
            stored: format!("SELECT customer, currency, figures FROM metric_customers WHERE customer IN {}", list(1)),
            delete_figures: format!("DELETE FROM metric_customers WHERE customer IN {}", list(1)),
            insert_figures: insert_rows(
                "metric_customers",
                &[("customer", "text"), ("currency", "text"), ("first_month", "bigint"), ("figures", "text")],
                "",
            ),
            delete_due: format!("DELETE FROM metric_due WHERE customer IN {}", list(1)),
            insert_due: insert_rows("metric_due", &[("customer", "text"), ("due_at", "bigint")], ""),
            upsert_months: additive("metric_month_totals", "month", &totals),
            upsert_tails: additive("metric_tail_totals", "month", &totals),
            upsert_cohorts: additive("metric_cohort_totals", "cohort", &cohorts),
        }
    }

    fn of(conn: &Conn<'_>) -> &'static Self {
        static SQLITE: LazyLock<BatchSql> = LazyLock::new(|| BatchSql::new(false));
        static POSTGRES: LazyLock<BatchSql> = LazyLock::new(|| BatchSql::new(true));
        match conn {
            Conn::Sqlite(_) => &SQLITE,
            Conn::Postgres(_) => &POSTGRES,
        }
    }
}

/// Ids as a JSON array, bound as one parameter.
fn json_list<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    serde_json::Value::from(ids.into_iter().collect::<Vec<_>>()).to_string()
}

static SELECT_MONTHS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT month, {} FROM metric_month_totals WHERE currency = $1 AND month >= $2 AND month <= $3",
        columns().collect::<Vec<_>>().join(", ")
    )
});
static SELECT_TAILS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT month, {} FROM metric_tail_totals WHERE currency = $1 AND month <= $2",
        columns().collect::<Vec<_>>().join(", ")
    )
});

/// A totals row as read: its month and figures.
struct TotalsRow(i32, Row);

macro_rules! totals_from_row {
    ($row_ty:ty) => {
        impl<'r> sqlx::FromRow<'r, $row_ty> for TotalsRow {
            fn from_row(r: &'r $row_ty) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                let month: i64 = r.try_get(0)?;
                let mut row = Row::default();
                for (i, m) in row.money.iter_mut().enumerate() {
                    *m = r.try_get(1 + i)?;
                }
                for (i, c) in row.counts.iter_mut().enumerate() {
                    *c = r.try_get(1 + MONEY.len() + i)?;
                }
                Ok(Self(i32::try_from(month).unwrap_or_default(), row))
            }
        }
    };
}
totals_from_row!(sqlx::sqlite::SqliteRow);
totals_from_row!(sqlx::postgres::PgRow);

type CohortRow = (i64, i64, f64, i64, i64, i64, i64, f64, f64, f64, f64);

/// The customers an event may change the figures of: its object's customer, and the
/// subscription (figures of a subscription without a known customer are kept under its id).
pub(crate) fn touched(event: &Event, keys: &mut BTreeSet<String>) {
    let obj = &event.object;
    keys.extend(id_at(obj, "customer"));
    if event.kind.starts_with("customer.subscription.") {
        keys.extend(str_at(obj, "id"));
    } else if event.kind.starts_with("invoice.") {
        keys.extend(InvoiceSnapshot::read(obj).and_then(|i| i.subscription));
    } else if event.kind.starts_with("customer.discount.") {
        keys.extend(id_at(obj, "subscription"));
    } else if event.kind.starts_with("customer.") {
        // The customer object carries its own (customer-level) discount.
        keys.extend(str_at(obj, "id"));
    }
}

/// Recompute the customers `events` touched when `recompute`, as seen at `now`.
pub(crate) async fn apply(conn: &mut Conn<'_>, events: &[&Event], recompute: bool, now: i64) -> Result<(), StoreError> {
    let mut keys = BTreeSet::new();
    for e in events {
        // Their first failures are already in `invoice_failures` (`metrics::record_invoice_failures`).
        touched(e, &mut keys);
        crate::store::pricing::touched(conn, e, &mut keys).await?;
        if e.kind.starts_with("coupon.")
            && let Some(coupon) = str_at(&e.object, "id")
        {
            let users: Vec<(Option<String>,)> = fetch!(conn, fetch_all, (Option<String>,), KEYS_OF_COUPON, coupon.as_str())?;
            keys.extend(users.into_iter().filter_map(|(k,)| k));
        }
    }
    if !recompute {
        return Ok(());
    }
    refresh(conn, keys.iter().map(String::as_str), now).await
}

/// The own histories of a batch of customers (by key), read with one statement per table.
pub(crate) async fn own_timelines(conn: &mut Conn<'_>, keys: &[&str]) -> Result<Vec<Timeline>, StoreError> {
    let sql = BatchSql::of(conn);
    let key_list = json_list(keys.iter().copied());
    let pairs: Vec<(String, String)> = fetch!(conn, fetch_all, (String, String), sql.subs_of_keys.as_str(), key_list.as_str())?;
    let mut subs_of: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (key, sub) in &pairs {
        subs_of.entry(key.as_str()).or_default().insert(sub.as_str());
    }
    let all_subs: BTreeSet<&str> = pairs.iter().map(|(_, s)| s.as_str()).collect();
    let sub_list = json_list(all_subs.iter().copied());
    let rows: Vec<HistoryPoint> = fetch!(conn, fetch_all, HistoryPoint, sql.history_of_subs.as_str(), sub_list.as_str())?;
    let mut history_of: HashMap<String, Vec<HistoryPoint>> = HashMap::new();
    for row in rows {
        history_of.entry(row.subscription_id.clone()).or_default().push(row);
    }
    // Failed invoices of a subscription never seen count under the subscription's id.
    let known: Vec<(String,)> = fetch!(conn, fetch_all, (String,), sql.known_subs.as_str(), key_list.as_str())?;
    let known: BTreeSet<String> = known.into_iter().map(|(s,)| s).collect();
    let failed_list = json_list(all_subs.iter().copied().chain(keys.iter().copied()));
    let failed: Vec<FailedPoint> = fetch!(conn, fetch_all, FailedPoint, sql.failed_of_subs.as_str(), failed_list.as_str())?;
    let mut failed_of: HashMap<String, Vec<FailedPoint>> = HashMap::new();
    for f in failed {
        if let Some(sub) = f.subscription.clone() {
            failed_of.entry(sub).or_default().push(f);
        }
    }
    // Discounts: those the snapshots list, the customers' own, and those naming their
    // subscriptions; then the coupons they name.
    let mut listed_of: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for key in keys {
        let listed = listed_of.entry(key).or_default();
        for sub in subs_of.get(key).into_iter().flatten() {
            for h in history_of.get(*sub).into_iter().flatten() {
                listed.extend(serde_json::from_str::<Vec<String>>(&h.discounts).unwrap_or_default());
            }
        }
    }
    let listed_list = json_list(listed_of.values().flatten().map(String::as_str));
    let discounts: Vec<DiscountPoint> = fetch!(
        conn,
        fetch_all,
        DiscountPoint,
        sql.discounts.as_str(),
        listed_list.as_str(),
        key_list.as_str(),
        sub_list.as_str()
    )?;
    let mut by_id: BTreeMap<&str, &DiscountPoint> = BTreeMap::new();
    let mut by_customer: HashMap<&str, Vec<&DiscountPoint>> = HashMap::new();
    let mut by_sub: HashMap<&str, Vec<&DiscountPoint>> = HashMap::new();
    for d in &discounts {
        by_id.insert(d.id.as_str(), d);
        if let Some(c) = &d.customer {
            by_customer.entry(c.as_str()).or_default().push(d);
        }
        if let Some(s) = &d.subscription {
            by_sub.entry(s.as_str()).or_default().push(d);
        }
    }
    let coupon_ids: BTreeSet<&str> = discounts.iter().filter_map(|d| d.coupon_id.as_deref()).collect();
    let coupon_list = json_list(coupon_ids.iter().copied());
    let coupons: Vec<CouponPoint> = fetch!(conn, fetch_all, CouponPoint, sql.coupons.as_str(), coupon_list.as_str())?;
    let coupons: HashMap<&str, &CouponPoint> = coupons.iter().map(|c| (c.id.as_str(), c)).collect();

    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let subs = subs_of.get(key).cloned().unwrap_or_default();
        let history: Vec<HistoryPoint> = subs.iter().flat_map(|s| history_of.get(*s).into_iter().flatten().cloned()).collect();
        let mut failed: Vec<FailedPoint> = subs.iter().flat_map(|s| failed_of.get(*s).into_iter().flatten().cloned()).collect();
        if !known.contains(*key) {
            failed.extend(failed_of.get(*key).into_iter().flatten().cloned());
        }
        let mut found: BTreeMap<&str, &DiscountPoint> = BTreeMap::new();
        for id in listed_of.get(key).into_iter().flatten() {
            if let Some(d) = by_id.get(id.as_str()) {
                found.insert(id.as_str(), d);
            }
        }
        let own_discounts = by_customer.get(key).into_iter().flatten();
        let sub_discounts = subs.iter().flat_map(|s| by_sub.get(s).into_iter().flatten());
        for d in own_discounts.chain(sub_discounts) {
            found.insert(d.id.as_str(), d);
        }
        let used: BTreeSet<&str> = found.values().filter_map(|d| d.coupon_id.as_deref()).collect();
        let own_coupons: Vec<CouponPoint> = used.iter().filter_map(|c| coupons.get(c).map(|c| (*c).clone())).collect();
        let discounts: Vec<DiscountPoint> = found.into_values().cloned().collect();
        let mut own = timeline(history, discounts, own_coupons, failed);
        // A subscription counts under the customer its first snapshot names.
        own.subscriptions.retain(|s| s.customer == *key);
        let kept: BTreeSet<&str> = own.subscriptions.iter().map(|s| s.id.as_str()).collect();
        own.failed_invoices.retain(|i| i.subscription.as_deref().is_some_and(|s| kept.contains(s) || s == *key));
        out.push(own);
    }
    attach_pricing(conn, sql, &mut out).await?;
    Ok(out)
}

/// Tiers and finalized lines for the timelines with items priced beyond per-unit (few), read
/// for the whole batch in one statement each.
async fn attach_pricing(conn: &mut Conn<'_>, sql: &'static BatchSql, owns: &mut [Timeline]) -> Result<(), StoreError> {
    let (mut price_ids, mut sub_ids) = (BTreeSet::new(), BTreeSet::new());
    for own in owns.iter() {
        let (prices, subs) = crate::store::pricing::pricing_wants(own);
        price_ids.extend(prices.into_iter().map(str::to_owned));
        sub_ids.extend(subs.into_iter().map(str::to_owned));
    }
    if sub_ids.is_empty() {
        return Ok(());
    }
    let prices: Vec<PriceTiersPoint> = fetch!(
        conn,
        fetch_all,
        PriceTiersPoint,
        sql.price_tiers.as_str(),
        json_list(price_ids.iter().map(String::as_str)).as_str()
    )?;
    let prices: HashMap<String, PriceTiersPoint> = prices.into_iter().map(|p| (p.id.clone(), p)).collect();
    let rows: Vec<(String, String, String, i64, i64, i64)> = fetch!(
        conn,
        fetch_all,
        (String, String, String, i64, i64, i64),
        sql.lines_of_subs.as_str(),
        json_list(sub_ids.iter().map(String::as_str)).as_str()
    )?;
    let mut lines: HashMap<String, Vec<LinePoint>> = HashMap::new();
    for (subscription, subscription_item, invoice_id, finalized_at, amount, inclusive_tax) in rows {
        lines.entry(subscription).or_default().push(LinePoint {
            subscription_item,
            invoice_id,
            finalized_at,
            amount,
            inclusive_tax,
        });
    }
    for own in owns.iter_mut() {
        crate::store::pricing::attach_from(own, &prices, &lines);
    }
    Ok(())
}

/// What the figures of a month could not resolve (see [`Store::unresolved`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unresolved {
    pub discounts: u64,
    pub prices: u64,
}

/// Changes to the totals, summed over the customers recomputed in one transaction.
#[derive(Default)]
struct Deltas {
    months: HashMap<(String, i32), Row>,
    tails: HashMap<(String, i32), Row>,
    cohorts: HashMap<(String, i32), Cohort>,
}

impl Deltas {
    fn add(&mut self, f: &CustomerFigures, sign: i64) {
        for (m, row) in f.months() {
            self.months.entry((f.currency.clone(), m)).or_default().add(row, sign);
        }
        // Always present, even when zero: the tail totals also list the currencies.
        self.tails.entry((f.currency.clone(), f.tail_from)).or_default().add(&f.tail, sign);
        if let Some(c) = &f.cohort {
            self.cohorts.entry((f.currency.clone(), c.month)).or_default().add(c, sign);
        }
    }

    /// Move the totals by these changes: one statement per table.
    async fn write(self, conn: &mut Conn<'_>) -> Result<(), StoreError> {
        let sql = BatchSql::of(conn);
        let totals = |rows: HashMap<(String, i32), Row>, keep_zero: bool| {
            let rows: Vec<serde_json::Value> = rows
                .into_iter()
                .filter(|(_, row)| keep_zero || !row.is_zero())
                .map(|((currency, month), row)| {
                    let mut v = vec![serde_json::Value::from(currency), serde_json::Value::from(month)];
                    v.extend(row.money.iter().map(|m| serde_json::Value::from(*m)));
                    v.extend(row.counts.iter().map(|c| serde_json::Value::from(*c)));
                    serde_json::Value::Array(v)
                })
                .collect();
            (!rows.is_empty()).then(|| serde_json::Value::Array(rows).to_string())
        };
        if let Some(rows) = totals(self.months, false) {
            execute!(conn, sql.upsert_months.as_str(), rows.as_str())?;
        }
        // Always written, even when zero: the tail totals also list the currencies.
        if let Some(rows) = totals(self.tails, true) {
            execute!(conn, sql.upsert_tails.as_str(), rows.as_str())?;
        }
        let cohorts: Vec<serde_json::Value> = self
            .cohorts
            .into_iter()
            .map(|((currency, cohort), c)| {
                let mut v = vec![currency.into(), cohort.into(), c.customers.into(), c.mrr_end_of_cohort_month.into()];
                v.extend(c.active_at.iter().map(|a| serde_json::Value::from(*a)));
                v.extend(c.mrr_at.iter().map(|m| serde_json::Value::from(*m)));
                serde_json::Value::Array(v)
            })
            .collect();
        if !cohorts.is_empty() {
            execute!(conn, sql.upsert_cohorts.as_str(), serde_json::Value::Array(cohorts).to_string().as_str())?;
        }
        Ok(())
    }
}

/// Recompute `keys` from their own histories as seen at `now`; replace their stored figures
/// and due times and move the totals by the difference (inside the caller's transaction).
/// The whole batch is read and written with a few statements per table.
pub(crate) async fn refresh<'k>(conn: &mut Conn<'_>, keys: impl Iterator<Item = &'k str>, now: i64) -> Result<(), StoreError> {
    let keys: Vec<&str> = keys.collect::<BTreeSet<_>>().into_iter().collect();
    if keys.is_empty() {
        return Ok(());
    }
    let sql = BatchSql::of(conn);
    let key_list = json_list(keys.iter().copied());
    let stored: Vec<(String, String, String)> =
        fetch!(conn, fetch_all, (String, String, String), sql.stored.as_str(), key_list.as_str())?;
    let mut old_of: HashMap<String, Vec<CustomerFigures>> = HashMap::new();
    for (key, currency, json) in stored {
        let mut f: CustomerFigures =
            serde_json::from_str(&json).map_err(|e| StoreError::Projection(crate::store::ProjectionError::StoredFigures(e)))?;
        f.currency = currency;
        old_of.entry(key).or_default().push(f);
    }
    let owns = own_timelines(conn, &keys).await?;
    let mut deltas = Deltas::default();
    let (mut changed, mut figures, mut due) = (Vec::new(), Vec::new(), Vec::new());
    for (key, own) in keys.iter().zip(&owns) {
        if let Some(at) = maintained::due_at(own, now) {
            due.push(serde_json::json!([key, at]));
        }
        let mut old = old_of.remove(*key).unwrap_or_default();
        // Computed in currency order; stored rows may come back in any.
        old.sort_by(|a, b| a.currency.cmp(&b.currency));
        let new = maintained::customer_figures(own, now);
        if old == new {
            continue;
        }
        old.iter().for_each(|f| deltas.add(f, -1));
        new.iter().for_each(|f| deltas.add(f, 1));
        changed.push(*key);
        for f in &new {
            let json = serde_json::to_string(f).map_err(|e| StoreError::Projection(crate::store::ProjectionError::Encode(e)))?;
            figures.push(serde_json::json!([key, f.currency, f.first, json]));
        }
    }
    execute!(conn, sql.delete_due.as_str(), key_list.as_str())?;
    if !due.is_empty() {
        execute!(conn, sql.insert_due.as_str(), serde_json::Value::Array(due).to_string().as_str())?;
    }
    if !changed.is_empty() {
        execute!(conn, sql.delete_figures.as_str(), json_list(changed.iter().copied()).as_str())?;
    }
    if !figures.is_empty() {
        execute!(conn, sql.insert_figures.as_str(), serde_json::Value::Array(figures).to_string().as_str())?;
    }
    crate::figures::breakdowns::refresh(conn, key_list.as_str()).await?;
    deltas.write(conn).await
}

/// Empty the maintained tables and recompute every customer as seen at `now` (inside the
/// caller's transaction).
pub(crate) async fn rebuild(conn: &mut Conn<'_>, now: i64) -> Result<u64, StoreError> {
    let keys: Vec<(Option<String>,)> = fetch!(conn, fetch_all, (Option<String>,), ALL_KEYS)?;
    for sql in CLEAR_FIGURES.into_iter().chain(crate::figures::breakdowns::CLEAR) {
        execute!(conn, sql)?;
    }
    let keys: BTreeSet<String> = keys.into_iter().filter_map(|(k,)| k).collect();
    let list: Vec<&str> = keys.iter().map(String::as_str).collect();
    for chunk in list.chunks(REBUILD_CHUNK) {
        refresh(conn, chunk.iter().copied(), now).await?;
    }
    execute!(conn, SET_BUILT)?;
    Ok(keys.len() as u64)
}

/// Recompute up to `limit` customers whose figures stopped being exact by `now` (inside the
/// caller's transaction, which holds the projector's cursor). Returns how many.
pub(crate) async fn refresh_due(conn: &mut Conn<'_>, now: i64, limit: i64) -> Result<usize, StoreError> {
    let due: Vec<(String,)> = fetch!(conn, fetch_all, (String,), DUE, now, limit)?;
    // Each recompute moves the customer's due time past `now` (or drops it).
    refresh(conn, due.iter().map(|(k,)| k.as_str()), now).await?;
    if !due.is_empty() {
        execute!(conn, crate::store::metrics::BUMP_GENERATION)?;
    }
    Ok(due.len())
}

/// The report for `currency` spanning the whole history and `from..=to`, read from the
/// maintained totals.
pub(crate) async fn report(conn: &mut Conn<'_>, currency: &str, from: Month, to: Month) -> Result<Report, StoreError> {
    let (first,): (Option<i64>,) = fetch!(conn, fetch_one, (Option<i64>,), FIRST_MONTH)?;
    let first = first.and_then(|f| i32::try_from(f).ok()).map(month_at);
    let start = first.map_or(from, |f| f.min(from));
    let (s, e) = (month_index(start), month_index(to));
    let rows: Vec<TotalsRow> = fetch!(conn, fetch_all, TotalsRow, SELECT_MONTHS.as_str(), currency, i64::from(s), i64::from(e))?;
    let tails: Vec<TotalsRow> = fetch!(conn, fetch_all, TotalsRow, SELECT_TAILS.as_str(), currency, i64::from(e))?;
    let n = (e - s + 1).max(1) as usize;
    let mut sums = vec![Row::default(); n];
    for TotalsRow(m, row) in rows {
        if let Some(r) = usize::try_from(m - s).ok().and_then(|i| sums.get_mut(i)) {
            r.add(&row, 1);
        }
    }
    // A tail counts in every month from its own on.
    let mut starting = vec![Row::default(); n];
    let mut running = Row::default();
    for TotalsRow(m, row) in tails {
        match usize::try_from(m - s) {
            Ok(i) => starting[i.min(n - 1)].add(&row, 1),
            Err(_) => running.add(&row, 1),
        }
    }
    let mut months = Vec::with_capacity(n);
    let mut failed = Vec::with_capacity(n);
    for (i, mut row) in sums.into_iter().enumerate() {
        running.add(&starting[i], 1);
        row.add(&running, 1);
        let m = start.plus(i as i32);
        let (f, x) = row.snapped().figures(first.is_some_and(|f| m.plus(-12) >= f));
        months.push(f);
        failed.push(x);
    }
    let mut cohorts = vec![CohortFigures::default(); n];
    let cohort_rows: Vec<CohortRow> = fetch!(conn, fetch_all, CohortRow, SELECT_COHORTS, currency, i64::from(s), i64::from(e))?;
    for (cohort, customers, mrr0, a1, a3, a6, a12, m1, m3, m6, m12) in cohort_rows {
        let Some(c) = usize::try_from(cohort - i64::from(s)).ok().and_then(|i| cohorts.get_mut(i)) else { continue };
        let snap = |x: f64| {
            let mut row = Row::default();
            row.money[0] = x;
            row.snapped().money[0]
        };
        let within = |k: i64| cohort + k <= i64::from(e);
        c.customers = u64::try_from(customers).unwrap_or(0);
        c.mrr_end_of_cohort_month = snap(mrr0);
        for (i, (k, a, m)) in [(1, a1, m1), (3, a3, m3), (6, a6, m6), (12, a12, m12)].into_iter().enumerate() {
            c.active_at[i] = within(k).then(|| u64::try_from(a).unwrap_or(0));
            c.mrr_at[i] = within(k).then(|| snap(m));
        }
    }
    Ok(Report { currency: currency.to_owned(), from: start, months, cohorts, failed })
}

/// The currency with the most MRR at the end of `month`, then the one named first; `usd`
/// when nothing was recorded.
pub(crate) async fn default_currency(conn: &mut Conn<'_>, month: Month) -> Result<String, StoreError> {
    let currencies: Vec<(String,)> = fetch!(conn, fetch_all, (String,), CURRENCIES)?;
    if currencies.len() <= 1 {
        return Ok(currencies.into_iter().next().map_or_else(|| "usd".to_owned(), |(c,)| c));
    }
    let m = i64::from(month_index(month));
    let mut best: Option<(f64, String)> = None;
    for (currency,) in currencies {
        let rows: Vec<TotalsRow> = fetch!(conn, fetch_all, TotalsRow, SELECT_MONTHS.as_str(), currency.as_str(), m, m)?;
        let tails: Vec<TotalsRow> = fetch!(conn, fetch_all, TotalsRow, SELECT_TAILS.as_str(), currency.as_str(), m)?;
        let mut sum = Row::default();
        rows.iter().chain(&tails).for_each(|TotalsRow(_, r)| sum.add(r, 1));
        let mrr = sum.snapped().money[1];
        if best.as_ref().is_none_or(|(b, _)| mrr > *b) {
            best = Some((mrr, currency));
        }
    }
    Ok(best.map_or_else(|| "usd".to_owned(), |(_, c)| c))
}

impl Store {
    /// From the maintained totals, at the end of `month` on active `currency` subscriptions:
    /// the discounts in force whose terms are unknown (those subscriptions count at list
    /// price), and the items whose amount is unknown (a tiered price whose tiers were never
    /// seen, a metered one without a finalized invoice line: they count 0).
    pub async fn unresolved(&self, currency: &str, month: Month) -> Result<Unresolved, StoreError> {
        let m = i64::from(month_index(month));
        let currency = currency.to_lowercase();
        self.with_read_transaction(async |conn| {
            let rows: Vec<TotalsRow> = fetch!(conn, fetch_all, TotalsRow, SELECT_MONTHS.as_str(), currency.as_str(), m, m)?;
            let tails: Vec<TotalsRow> = fetch!(conn, fetch_all, TotalsRow, SELECT_TAILS.as_str(), currency.as_str(), m)?;
            let mut sum = Row::default();
            rows.iter().chain(&tails).for_each(|TotalsRow(_, r)| sum.add(r, 1));
            let count = |i: usize| u64::try_from(sum.counts[i]).unwrap_or(0);
            Ok(Unresolved { discounts: count(maintained::UNRESOLVED), prices: count(maintained::UNRESOLVED_PRICES) })
        })
        .await
    }

    /// The maintained report for `currency` (default: the one with the most MRR at the end
    /// of `to`) covering the whole history and `from..=to`.
    pub async fn maintained_report(&self, currency: Option<&str>, from: Month, to: Month) -> Result<Report, StoreError> {
        let currency = currency.map(str::to_lowercase);
        self.with_read_transaction(async |c| {
            let currency = match &currency {
                Some(c) => c.clone(),
                None => default_currency(c, to).await?,
            };
            report(c, &currency, from, to).await
        })
        .await
    }

    /// Rebuild the maintained figures from the history when they were never built (a
    /// database migrated from before they existed). Returns the customers recomputed, if
    /// it rebuilt.
    pub async fn ensure_figures(&self) -> Result<Option<u64>, StoreError> {
        let (built,): (i64,) = self.with_conn(async |c| fetch!(c, fetch_one, (i64,), STATE)).await?;
        if built == 1 { Ok(None) } else { self.rebuild_figures().await.map(Some) }
    }
}

impl Store {
    async fn with_read_transaction<T>(
        &self,
        f: impl for<'c> AsyncFnOnce(&mut Conn<'c>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            // One read transaction: every total from the same commit.
            Store::Sqlite(s) => {
                let mut tx = s.pool().begin().await?;
                let out = f(&mut Conn::Sqlite(&mut tx)).await;
                tx.rollback().await?;
                out
            }
            Store::Postgres(s) => {
                let mut tx = s.pool().begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
                let out = f(&mut Conn::Postgres(&mut tx)).await;
                tx.rollback().await?;
                out
            }
        }
    }
}

/// The paid invoices that had failed, in `currency`, among the ids of a JSON array: one
/// statement whatever the number of ids (the array is ours, built from stored ids).
const RECOVERED_INVOICES_SQLITE: &str = "SELECT i.id, f.first_failed_at, i.amount_due FROM invoice_failures f \
     JOIN invoices i ON i.id = f.invoice_id WHERE i.id IN (SELECT value FROM json_each($1)) AND i.currency = $2 AND i.status = 'paid'";
const RECOVERED_INVOICES_POSTGRES: &str = "SELECT i.id, f.first_failed_at, i.amount_due FROM invoice_failures f \
     JOIN invoices i ON i.id = f.invoice_id WHERE i.id IN (SELECT jsonb_array_elements_text($1::jsonb)) AND i.currency = $2 \
     AND i.status = 'paid'";

impl Store {
    /// The currencies the maintained figures hold, in order.
    pub async fn maintained_currencies(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = self.with_conn(async |c| fetch!(c, fetch_all, (String,), CURRENCIES)).await?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    /// Of `invoices` (those something was given back on), the ones that failed and were
    /// then paid, in `currency`.
    pub async fn recovered_invoices(
        &self,
        invoices: &[&str],
        currency: &str,
    ) -> Result<HashMap<String, crate::figures::report::RecoveredInvoice>, StoreError> {
        if invoices.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = serde_json::Value::from(invoices.to_vec()).to_string();
        let rows: Vec<(String, i64, i64)> = self
            .with_conn(async |c| {
                let sql = if matches!(c, Conn::Postgres(_)) { RECOVERED_INVOICES_POSTGRES } else { RECOVERED_INVOICES_SQLITE };
                fetch!(c, fetch_all, (String, i64, i64), sql, ids.as_str(), currency)
            })
            .await?;
        let out = rows
            .into_iter()
            .map(|(id, first_failed_at, amount_due)| {
                (id, crate::figures::report::RecoveredInvoice { first_failed_at, amount_due })
            })
            .collect();
        Ok(out)
    }
}
