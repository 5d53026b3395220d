//! Keeping the figures exact: the customers an event touches are recomputed from their own
//! histories and the totals moved by the difference; a rebuild recomputes everyone.

use std::collections::{BTreeSet, HashMap};

use crate::domain::event::Event;
use crate::domain::fields::{id_at, str_at};
use crate::domain::snapshots::InvoiceSnapshot;
use crate::figures::maintained;
use crate::figures::maintained::{Cohort, CustomerFigures, Row};
use crate::figures::storage::batch_sql::{BatchSql, json_list};
use crate::figures::storage::timelines::own_timelines;
use crate::store::StoreError;
use crate::store::conn::{Conn, execute, fetch};

/// Keys recomputed per statement group while rebuilding (bounds the deltas held).
const REBUILD_CHUNK: usize = 500;

/// The customers whose discounts use a coupon (its terms changed or were just learned).
const KEYS_OF_COUPON: &str = "SELECT DISTINCT COALESCE(d.customer, h.customer, d.subscription) FROM discounts d \
     LEFT JOIN subscription_history h ON h.subscription_id = d.subscription WHERE d.coupon_id = $1";
/// The customers whose figures stopped being exact by `now`, oldest first.
const DUE: &str = "SELECT customer FROM metric_due WHERE due_at <= $1 ORDER BY due_at, customer LIMIT $2";

const SET_BUILT: &str = "UPDATE metric_state SET built = 1 WHERE id = 1";

/// Every key a customer's figures may be stored under.
const ALL_KEYS: &str = "SELECT COALESCE(customer, subscription_id) FROM subscription_history \
     UNION SELECT i.subscription FROM invoice_failures f JOIN invoices i ON i.id = f.invoice_id WHERE i.subscription IS NOT NULL \
     UNION SELECT customer FROM metric_customers";
/// The oldest mark of a customer whose figures are behind their history (none: `NULL`).
const OLDEST_STALE: &str = "SELECT MIN(marked_at) FROM metric_stale";
/// The customers whose figures are behind their history, oldest mark first.
const STALE: &str = "SELECT customer FROM metric_stale ORDER BY marked_at, customer LIMIT $1";
/// How long a projector that is still behind the log may leave a customer's figures behind
/// their projected history (seconds). Once it reaches the end of the log it recomputes them
/// at once.
pub(crate) const STALE_AT_MOST_SECS: i64 = 5;

/// The maintained tables, emptied before a rebuild.
pub(crate) const CLEAR_FIGURES: [&str; 6] = [
    "DELETE FROM metric_customers",
    "DELETE FROM metric_due",
    "DELETE FROM metric_stale",
    "DELETE FROM metric_month_totals",
    "DELETE FROM metric_tail_totals",
    "DELETE FROM metric_cohort_totals",
];

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

/// When a projection recomputes the figures of the customers its events touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recompute {
    /// In the projection's transaction (a parked customer's retry: one customer, few events).
    Now,
    /// Later: the customers are marked stale at this instant, and `refresh_stale` recomputes
    /// them, once each however many passes touched them (the projector, see `ingest::project`).
    Mark(i64),
    /// Not at all: a reprojection rebuilds every customer once, at its end.
    Never,
}

/// Recompute (or mark stale, or leave) the customers `events` touched, as seen at `now`.
pub(crate) async fn apply(conn: &mut Conn<'_>, events: &[&Event], recompute: Recompute, now: i64) -> Result<(), StoreError> {
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
    match recompute {
        Recompute::Never => Ok(()),
        Recompute::Now => refresh(conn, keys.iter().map(String::as_str), now).await,
        Recompute::Mark(at) => mark_stale(conn, &keys, at).await,
    }
}

/// Note `keys` as behind their history since `at` (a customer already marked keeps its
/// older mark).
async fn mark_stale(conn: &mut Conn<'_>, keys: &BTreeSet<String>, at: i64) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let sql = BatchSql::of(conn);
    let rows: Vec<serde_json::Value> = keys.iter().map(|k| serde_json::json!([k, at])).collect();
    execute!(conn, sql.mark_stale.as_str(), serde_json::Value::Array(rows).to_string().as_str())?;
    Ok(())
}

/// Recompute, as seen at `now`, up to `limit` of the customers marked stale, oldest mark
/// first, and remove their marks (inside the projector's transaction). Unless `now_anyway`,
/// nothing is done until the oldest mark is `STALE_AT_MOST_SECS` old. Returns whether marks
/// may be left (too young to recompute yet, or more than `limit`).
pub(crate) async fn refresh_stale(conn: &mut Conn<'_>, now: i64, limit: i64, now_anyway: bool) -> Result<bool, StoreError> {
    let (oldest,): (Option<i64>,) = fetch!(conn, fetch_one, (Option<i64>,), OLDEST_STALE)?;
    match oldest {
        None => return Ok(false),
        Some(at) if !now_anyway && at > now - STALE_AT_MOST_SECS => return Ok(true),
        Some(_) => {}
    }
    let stale: Vec<(String,)> = fetch!(conn, fetch_all, (String,), STALE, limit)?;
    refresh(conn, stale.iter().map(|(k,)| k.as_str()), now).await?;
    let (sql, list) = (BatchSql::of(conn), json_list(stale.iter().map(|(k,)| k.as_str())));
    execute!(conn, sql.unmark_stale.as_str(), list.as_str())?;
    execute!(conn, crate::store::metrics::BUMP_GENERATION)?;
    Ok(stale.len() as i64 >= limit)
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
