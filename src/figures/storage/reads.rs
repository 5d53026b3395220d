//! Reads of the maintained totals: the report, the default currency, what a month could not
//! resolve, and the recovered invoices.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::domain::month::Month;
use crate::figures::maintained;
use crate::figures::maintained::{MONEY, Row, month_at, month_index};
use crate::figures::report::{CohortFigures, Report};
use crate::figures::storage::batch_sql::columns;
use crate::store::conn::{Conn, fetch};
use crate::store::{Store, StoreError};

/// The cohort totals of `currency` between two cohorts.
const SELECT_COHORTS: &str = "SELECT cohort, customers, mrr_end_of_cohort_month, active_1, active_3, active_6, active_12, \
     mrr_1, mrr_3, mrr_6, mrr_12 FROM metric_cohort_totals WHERE currency = $1 AND cohort >= $2 AND cohort <= $3 ORDER BY cohort";

const FIRST_MONTH: &str = "SELECT MIN(first_month) FROM metric_customers";

const CURRENCIES: &str = "SELECT DISTINCT currency FROM metric_tail_totals ORDER BY currency";

const STATE: &str = "SELECT built FROM metric_state WHERE id = 1";

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

/// What the figures of a month could not resolve (see [`Store::unresolved`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unresolved {
    pub discounts: u64,
    pub prices: u64,
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
