//! The owner's numbers, maintained: in the projector's transaction, every customer a batch
//! touches is recomputed from its own history (`domain::metrics::maintained`), its stored
//! contribution replaced, and the per-month, tail and cohort totals moved by the difference.
//! Reads assemble a [`Report`] from those totals: a few dozen rows, whatever the history's
//! size.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use crate::domain::event::Event;
use crate::domain::fields::{id_at, str_at};
use crate::domain::metrics::maintained::{self, COUNTS, Cohort, CustomerFigures, MONEY, Row, month_at, month_index};
use crate::domain::metrics::report::{CohortFigures, Report};
use crate::domain::metrics::{Month, Timeline};
use crate::domain::snapshots::InvoiceSnapshot;

use super::conn::{Conn, execute, fetch};
use super::metrics::{CouponPoint, DiscountPoint, FailedPoint, HistoryPoint, timeline};
use super::{Store, StoreError};

/// Keys recomputed per statement group while rebuilding (bounds the deltas held).
const REBUILD_CHUNK: usize = 500;

const SUBS_OF_KEY: &str =
    "SELECT DISTINCT subscription_id FROM subscription_history WHERE COALESCE(customer, subscription_id) = $1 ORDER BY 1";
const HISTORY_OF_SUB: &str = "SELECT subscription_id, event_id, effective_at, src_rank, customer, status, currency, \
     base_mrr, collection_paused, pause_resumes_at, discounts, cancel_reason, items FROM subscription_history \
     WHERE subscription_id = $1 ORDER BY effective_at, event_id";
const DISCOUNT: &str = "SELECT id, customer, subscription, coupon_id, percent_off, amount_off, currency, \
     duration, starts_at, ends_at, deleted, src_created FROM discounts WHERE id = $1";
/// A customer's own discounts (customer-level, and those naming one of its subscriptions).
const DISCOUNTS_OF_CUSTOMER: &str = "SELECT id, customer, subscription, coupon_id, percent_off, amount_off, currency, \
     duration, starts_at, ends_at, deleted, src_created FROM discounts WHERE customer = $1";
const DISCOUNTS_OF_SUB: &str = "SELECT id, customer, subscription, coupon_id, percent_off, amount_off, currency, \
     duration, starts_at, ends_at, deleted, src_created FROM discounts WHERE subscription = $1";
const COUPON: &str =
    "SELECT id, percent_off, amount_off, currency, duration, duration_in_months, applies_to_products FROM coupons WHERE id = $1";
/// The customers whose discounts use a coupon (its terms changed or were just learned).
const KEYS_OF_COUPON: &str = "SELECT DISTINCT COALESCE(d.customer, h.customer, d.subscription) FROM discounts d \
     LEFT JOIN subscription_history h ON h.subscription_id = d.subscription WHERE d.coupon_id = $1";
const FAILED_OF_SUB: &str = "SELECT i.id, i.subscription, i.currency, i.amount_due, f.first_failed_at, i.status \
     FROM invoice_failures f JOIN invoices i ON i.id = f.invoice_id WHERE i.subscription = $1";
/// Failed invoices of a subscription never seen: counted under the subscription's id.
const FAILED_OF_UNKNOWN_SUB: &str = "SELECT i.id, i.subscription, i.currency, i.amount_due, f.first_failed_at, i.status \
     FROM invoice_failures f JOIN invoices i ON i.id = f.invoice_id WHERE i.subscription = $1 \
     AND NOT EXISTS (SELECT 1 FROM subscription_history h WHERE h.subscription_id = $1)";
const STORED_OF_KEY: &str = "SELECT currency, figures FROM metric_customers WHERE customer = $1";
const DELETE_KEY: &str = "DELETE FROM metric_customers WHERE customer = $1";
const INSERT_KEY: &str = "INSERT INTO metric_customers (customer, currency, first_month, figures) VALUES ($1, $2, $3, $4)";
const UPSERT_COHORT: &str = "INSERT INTO metric_cohort_totals (currency, cohort, customers, mrr_end_of_cohort_month, \
     active_1, active_3, active_6, active_12, mrr_1, mrr_3, mrr_6, mrr_12) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (currency, cohort) DO UPDATE SET customers = metric_cohort_totals.customers + excluded.customers, \
     mrr_end_of_cohort_month = metric_cohort_totals.mrr_end_of_cohort_month + excluded.mrr_end_of_cohort_month, \
     active_1 = metric_cohort_totals.active_1 + excluded.active_1, active_3 = metric_cohort_totals.active_3 + excluded.active_3, \
     active_6 = metric_cohort_totals.active_6 + excluded.active_6, active_12 = metric_cohort_totals.active_12 + excluded.active_12, \
     mrr_1 = metric_cohort_totals.mrr_1 + excluded.mrr_1, mrr_3 = metric_cohort_totals.mrr_3 + excluded.mrr_3, \
     mrr_6 = metric_cohort_totals.mrr_6 + excluded.mrr_6, mrr_12 = metric_cohort_totals.mrr_12 + excluded.mrr_12";
const SELECT_COHORTS: &str = "SELECT cohort, customers, mrr_end_of_cohort_month, active_1, active_3, active_6, active_12, \
     mrr_1, mrr_3, mrr_6, mrr_12 FROM metric_cohort_totals WHERE currency = $1 AND cohort >= $2 AND cohort <= $3 ORDER BY cohort";
const FIRST_MONTH: &str = "SELECT MIN(first_month) FROM metric_customers";
const CURRENCIES: &str = "SELECT DISTINCT currency FROM metric_tail_totals ORDER BY currency";
const STATE: &str = "SELECT built FROM metric_state WHERE id = 1";
const SET_BUILT: &str = "UPDATE metric_state SET built = 1 WHERE id = 1";
/// Every key a customer's figures may be stored under.
const ALL_KEYS: &str = "SELECT COALESCE(customer, subscription_id) FROM subscription_history \
     UNION SELECT i.subscription FROM invoice_failures f JOIN invoices i ON i.id = f.invoice_id WHERE i.subscription IS NOT NULL \
     UNION SELECT customer FROM metric_customers";
/// The maintained tables, emptied before a rebuild.
pub(crate) const CLEAR_FIGURES: [&str; 4] = [
    "DELETE FROM metric_customers",
    "DELETE FROM metric_month_totals",
    "DELETE FROM metric_tail_totals",
    "DELETE FROM metric_cohort_totals",
];

fn columns() -> impl Iterator<Item = &'static str> {
    MONEY.iter().chain(COUNTS.iter()).copied()
}

/// `INSERT … ON CONFLICT DO UPDATE SET c = c + excluded.c` into a totals table.
fn upsert_totals(table: &str) -> String {
    let cols: Vec<&str> = columns().collect();
    let names = cols.join(", ");
    let params: Vec<String> = (0..cols.len()).map(|i| format!("${}", i + 3)).collect();
    let sets: Vec<String> = cols.iter().map(|c| format!("{c} = {table}.{c} + excluded.{c}")).collect();
    format!(
        "INSERT INTO {table} (currency, month, {names}) VALUES ($1, $2, {}) ON CONFLICT (currency, month) DO UPDATE SET {}",
        params.join(", "),
        sets.join(", ")
    )
}

static UPSERT_MONTH: LazyLock<String> = LazyLock::new(|| upsert_totals("metric_month_totals"));
static UPSERT_TAIL: LazyLock<String> = LazyLock::new(|| upsert_totals("metric_tail_totals"));
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

/// Record first payment failures; recompute the customers `events` touched when
/// `recompute`.
pub(crate) async fn apply(conn: &mut Conn<'_>, events: &[&Event], recompute: bool) -> Result<(), StoreError> {
    let mut keys = BTreeSet::new();
    for e in events {
        // Their first failures are already in `invoice_failures` (`metrics::record_invoice_failures`).
        touched(e, &mut keys);
        super::pricing::touched(conn, e, &mut keys).await?;
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
    refresh(conn, keys.iter().map(String::as_str)).await
}

/// One customer's own history, as the metrics read it.
async fn own_timeline(conn: &mut Conn<'_>, key: &str) -> Result<Timeline, StoreError> {
    let subs: Vec<(String,)> = fetch!(conn, fetch_all, (String,), SUBS_OF_KEY, key)?;
    let mut history: Vec<HistoryPoint> = Vec::new();
    let mut failed: Vec<FailedPoint> = Vec::new();
    for (sub,) in &subs {
        history.extend(fetch!(conn, fetch_all, HistoryPoint, HISTORY_OF_SUB, sub.as_str())?);
        failed.extend(fetch!(conn, fetch_all, FailedPoint, FAILED_OF_SUB, sub.as_str())?);
    }
    failed.extend(fetch!(conn, fetch_all, FailedPoint, FAILED_OF_UNKNOWN_SUB, key)?);
    // Discounts: those the snapshots list, the customer's own, and those naming its
    // subscriptions; then the coupons they name.
    let mut found: BTreeMap<String, DiscountPoint> = BTreeMap::new();
    let mut listed: BTreeSet<String> = BTreeSet::new();
    for h in &history {
        listed.extend(serde_json::from_str::<Vec<String>>(&h.discounts).unwrap_or_default());
    }
    for id in &listed {
        if let Some(d) = fetch!(conn, fetch_optional, DiscountPoint, DISCOUNT, id.as_str())? {
            found.insert(d.id.clone(), d);
        }
    }
    for d in fetch!(conn, fetch_all, DiscountPoint, DISCOUNTS_OF_CUSTOMER, key)? {
        found.insert(d.id.clone(), d);
    }
    for (sub,) in &subs {
        for d in fetch!(conn, fetch_all, DiscountPoint, DISCOUNTS_OF_SUB, sub.as_str())? {
            found.insert(d.id.clone(), d);
        }
    }
    let coupon_ids: BTreeSet<String> = found.values().filter_map(|d| d.coupon_id.clone()).collect();
    let mut coupons: Vec<CouponPoint> = Vec::new();
    for id in &coupon_ids {
        coupons.extend(fetch!(conn, fetch_optional, CouponPoint, COUPON, id.as_str())?);
    }
    let discounts: Vec<DiscountPoint> = found.into_values().collect();
    let mut own = timeline(history, discounts, coupons, failed);
    // A subscription counts under the customer its first snapshot names.
    own.subscriptions.retain(|s| s.customer == key);
    let kept: BTreeSet<&str> = own.subscriptions.iter().map(|s| s.id.as_str()).collect();
    own.failed_invoices.retain(|i| i.subscription.as_deref().is_some_and(|s| kept.contains(s) || s == key));
    super::pricing::attach(conn, &mut own).await?;
    Ok(own)
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

    async fn write(self, conn: &mut Conn<'_>) -> Result<(), StoreError> {
        for (upsert, rows, keep_zero) in [(&*UPSERT_MONTH, self.months, false), (&*UPSERT_TAIL, self.tails, true)] {
            for ((currency, month), row) in rows {
                if row.is_zero() && !keep_zero {
                    continue;
                }
                macro_rules! run {
                    ($c:expr) => {{
                        let mut q = sqlx::query(upsert.as_str()).bind(currency.as_str()).bind(i64::from(month));
                        for m in row.money {
                            q = q.bind(m);
                        }
                        for c in row.counts {
                            q = q.bind(c);
                        }
                        q.execute(&mut **$c).await?;
                    }};
                }
                match conn {
                    Conn::Sqlite(c) => run!(c),
                    Conn::Postgres(c) => run!(c),
                }
            }
        }
        for ((currency, cohort), c) in self.cohorts {
            let [a1, a3, a6, a12] = c.active_at;
            let [m1, m3, m6, m12] = c.mrr_at;
            execute!(
                conn,
                UPSERT_COHORT,
                currency.as_str(),
                i64::from(cohort),
                c.customers,
                c.mrr_end_of_cohort_month,
                a1,
                a3,
                a6,
                a12,
                m1,
                m3,
                m6,
                m12
            )?;
        }
        Ok(())
    }
}

/// Recompute `keys` from their own histories; replace their stored figures and move the
/// totals by the difference (inside the caller's transaction).
pub(crate) async fn refresh<'k>(conn: &mut Conn<'_>, keys: impl Iterator<Item = &'k str>) -> Result<(), StoreError> {
    let mut deltas = Deltas::default();
    for key in keys {
        let stored: Vec<(String, String)> = fetch!(conn, fetch_all, (String, String), STORED_OF_KEY, key)?;
        let mut old = Vec::with_capacity(stored.len());
        for (currency, json) in stored {
            let mut f: CustomerFigures = serde_json::from_str(&json)
                .map_err(|e| StoreError::Projection(format!("stored figures of a customer are unreadable: {e}")))?;
            f.currency = currency;
            old.push(f);
        }
        let new = maintained::customer_figures(&own_timeline(conn, key).await?);
        if old == new {
            continue;
        }
        old.iter().for_each(|f| deltas.add(f, -1));
        new.iter().for_each(|f| deltas.add(f, 1));
        execute!(conn, DELETE_KEY, key)?;
        for f in &new {
            let json = serde_json::to_string(f).map_err(|e| StoreError::Projection(e.to_string()))?;
            execute!(conn, INSERT_KEY, key, f.currency.as_str(), i64::from(f.first), json.as_str())?;
        }
    }
    deltas.write(conn).await
}

/// Empty the maintained tables and recompute every customer (inside the caller's
/// transaction).
pub(crate) async fn rebuild(conn: &mut Conn<'_>) -> Result<u64, StoreError> {
    let keys: Vec<(Option<String>,)> = fetch!(conn, fetch_all, (Option<String>,), ALL_KEYS)?;
    for sql in CLEAR_FIGURES {
        execute!(conn, sql)?;
    }
    let keys: BTreeSet<String> = keys.into_iter().filter_map(|(k,)| k).collect();
    let list: Vec<&str> = keys.iter().map(String::as_str).collect();
    for chunk in list.chunks(REBUILD_CHUNK) {
        refresh(conn, chunk.iter().copied()).await?;
    }
    execute!(conn, SET_BUILT)?;
    Ok(keys.len() as u64)
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
        let snap = |x: f64| Row { money: [x, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], counts: [0; 13] }.snapped().money[0];
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
    /// Discounts in force at the end of `month` on `currency` subscriptions whose terms are
    /// unknown (those subscriptions count at list price), from the maintained totals.
    pub async fn unresolved_discounts(&self, currency: &str, month: Month) -> Result<u64, StoreError> {
        let m = i64::from(month_index(month));
        let currency = currency.to_lowercase();
        self.with_read_transaction(async |conn| {
            let rows: Vec<TotalsRow> = fetch!(conn, fetch_all, TotalsRow, SELECT_MONTHS.as_str(), currency.as_str(), m, m)?;
            let tails: Vec<TotalsRow> = fetch!(conn, fetch_all, TotalsRow, SELECT_TAILS.as_str(), currency.as_str(), m)?;
            let mut sum = Row::default();
            rows.iter().chain(&tails).for_each(|TotalsRow(_, r)| sum.add(r, 1));
            Ok(u64::try_from(sum.counts[maintained::UNRESOLVED]).unwrap_or(0))
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
    ) -> Result<HashMap<String, crate::domain::metrics::report::RecoveredInvoice>, StoreError> {
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
                (id, crate::domain::metrics::report::RecoveredInvoice { first_failed_at, amount_due })
            })
            .collect();
        Ok(out)
    }
}
