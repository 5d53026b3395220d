//! The statements that read and write a batch of customers' figures, built once per backend.

use std::sync::LazyLock;

use crate::figures::maintained::{COUNTS, MONEY};
use crate::store::conn::Conn;

/// The maintained figures' columns: the money ones, then the counts.
pub(super) fn columns() -> impl Iterator<Item = &'static str> {
    MONEY.iter().chain(COUNTS.iter()).copied()
}

/// The statements that load and write a batch of customers, for one backend. Every id list
/// is one parameter, a JSON array (`IN` over it), and every batch of rows one parameter, a
/// JSON array of arrays: one statement per table whatever the batch's size.
pub(super) struct BatchSql {
    pub(super) subs_of_keys: String,
    pub(super) history_of_subs: String,
    pub(super) known_subs: String,
    pub(super) failed_of_subs: String,
    pub(super) discounts: String,
    pub(super) coupons: String,
    pub(super) price_tiers: String,
    pub(super) lines_of_subs: String,
    pub(super) stored: String,
    pub(super) delete_figures: String,
    pub(super) insert_figures: String,
    pub(super) delete_due: String,
    pub(super) insert_due: String,
    pub(super) mark_stale: String,
    pub(super) unmark_stale: String,
    pub(super) upsert_months: String,
    pub(super) upsert_tails: String,
    pub(super) upsert_cohorts: String,
}

impl BatchSql {
    fn new(postgres: bool) -> Self {
        let d = Dialect { postgres };
        let (totals, cohorts) = (total_columns(), cohort_columns());
        Self {
            subs_of_keys: format!(
                "SELECT DISTINCT COALESCE(customer, subscription_id), subscription_id FROM subscription_history \
                 WHERE COALESCE(customer, subscription_id) IN {}",
                d.list(1)
            ),
            history_of_subs: format!(
                "SELECT {HISTORY} FROM subscription_history WHERE subscription_id IN {} \
                 ORDER BY subscription_id, effective_at, event_id",
                d.list(1)
            ),
            known_subs: format!(
                "SELECT DISTINCT subscription_id FROM subscription_history WHERE subscription_id IN {}",
                d.list(1)
            ),
            failed_of_subs: format!(
                "SELECT i.id, i.subscription, i.currency, i.amount_due, f.first_failed_at, i.status \
                 FROM invoice_failures f JOIN invoices i ON i.id = f.invoice_id WHERE i.subscription IN {}",
                d.list(1)
            ),
            discounts: format!(
                "SELECT {DISCOUNT} FROM discounts WHERE id IN {} UNION SELECT {DISCOUNT} FROM discounts WHERE customer IN {} \
                 UNION SELECT {DISCOUNT} FROM discounts WHERE subscription IN {}",
                d.list(1),
                d.list(2),
                d.list(3)
            ),
            coupons: format!(
                "SELECT id, percent_off, amount_off, currency, duration, duration_in_months, applies_to_products FROM coupons \
                 WHERE id IN {}",
                d.list(1)
            ),
            price_tiers: format!("SELECT id, tiers_mode, tiers FROM prices WHERE tiers IS NOT NULL AND id IN {}", d.list(1)),
            lines_of_subs: format!(
                "SELECT subscription_id, subscription_item, invoice_id, finalized_at, amount, inclusive_tax \
                 FROM subscription_item_lines WHERE subscription_id IN {}",
                d.list(1)
            ),
            stored: format!("SELECT customer, currency, figures FROM metric_customers WHERE customer IN {}", d.list(1)),
            delete_figures: format!("DELETE FROM metric_customers WHERE customer IN {}", d.list(1)),
            insert_figures: d.insert_rows(
                "metric_customers",
                &[("customer", "text"), ("currency", "text"), ("first_month", "bigint"), ("figures", "text")],
                "",
            ),
            delete_due: format!("DELETE FROM metric_due WHERE customer IN {}", d.list(1)),
            insert_due: d.insert_rows("metric_due", &[("customer", "text"), ("due_at", "bigint")], ""),
            mark_stale: d.insert_rows(
                "metric_stale",
                &[("customer", "text"), ("marked_at", "bigint")],
                "ON CONFLICT (customer) DO NOTHING",
            ),
            unmark_stale: format!("DELETE FROM metric_stale WHERE customer IN {}", d.list(1)),
            upsert_months: d.additive("metric_month_totals", "month", &totals),
            upsert_tails: d.additive("metric_tail_totals", "month", &totals),
            upsert_cohorts: d.additive("metric_cohort_totals", "cohort", &cohorts),
        }
    }

    pub(super) fn of(conn: &Conn<'_>) -> &'static Self {
        static SQLITE: LazyLock<BatchSql> = LazyLock::new(|| BatchSql::new(false));
        static POSTGRES: LazyLock<BatchSql> = LazyLock::new(|| BatchSql::new(true));
        match conn {
            Conn::Sqlite(_) => &SQLITE,
            Conn::Postgres(_) => &POSTGRES,
        }
    }
}

/// Ids as a JSON array, bound as one parameter.
pub(super) fn json_list<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    serde_json::Value::from(ids.into_iter().collect::<Vec<_>>()).to_string()
}

/// The columns of a subscription-history row, as the batch reads them.
const HISTORY: &str = "subscription_id, event_id, effective_at, src_rank, customer, status, currency, base_mrr, \
    collection_paused, pause_resumes_at, discounts, cancel_reason, items";
/// The columns of a discount row, as the batch reads them.
const DISCOUNT: &str = "id, customer, subscription, coupon_id, percent_off, amount_off, currency, duration, starts_at, \
    ends_at, deleted, src_created";

/// The columns of the month and tail totals, with their types.
fn total_columns() -> Vec<(&'static str, &'static str)> {
    let mut totals: Vec<(&str, &str)> = vec![("currency", "text"), ("month", "bigint")];
    totals.extend(MONEY.iter().map(|c| (*c, "double precision")));
    totals.extend(COUNTS.iter().map(|c| (*c, "bigint")));
    totals
}

/// The columns of the cohort totals, with their types.
fn cohort_columns() -> Vec<(&'static str, &'static str)> {
    let mut cohorts: Vec<(&str, &str)> = vec![("currency", "text"), ("cohort", "bigint"), ("customers", "bigint")];
    cohorts.push(("mrr_end_of_cohort_month", "double precision"));
    cohorts.extend(["active_1", "active_3", "active_6", "active_12"].map(|c| (c, "bigint")));
    cohorts.extend(["mrr_1", "mrr_3", "mrr_6", "mrr_12"].map(|c| (c, "double precision")));
    cohorts
}

/// How one backend spells a bound JSON array: as a list for `IN`, or as rows to insert.
struct Dialect {
    postgres: bool,
}

impl Dialect {
    /// `IN` over the JSON array of strings bound as `$n`.
    fn list(&self, n: usize) -> String {
        if self.postgres {
            format!("(SELECT jsonb_array_elements_text(${n}::jsonb))")
        } else {
            format!("(SELECT value FROM json_each(${n}))")
        }
    }

    /// Column `i` of the rows of the JSON array of arrays bound as `$1`, typed `ty`.
    fn col(&self, i: usize, ty: &str) -> String {
        if self.postgres { format!("(r.v->>{i})::{ty}") } else { format!("json_extract(r.value, '$[{i}]')") }
    }

    /// Insert the rows of the JSON array of arrays bound as `$1`.
    fn insert_rows(&self, table: &str, cols: &[(&str, &str)], conflict: &str) -> String {
        let rows = if self.postgres { "jsonb_array_elements($1::jsonb) AS r(v)" } else { "jsonb_each($1) AS r" };
        let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        let values: Vec<String> = cols.iter().enumerate().map(|(i, (_, ty))| self.col(i, ty)).collect();
        // `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
        format!("INSERT INTO {table} ({}) SELECT {} FROM {rows} WHERE true {conflict}", names.join(", "), values.join(", "))
    }

    /// Insert rows keyed by currency and `key`, adding every column past the key to a row
    /// already there.
    fn additive(&self, table: &str, key: &str, cols: &[(&str, &str)]) -> String {
        let sets: Vec<String> = cols.iter().skip(2).map(|(c, _)| format!("{c} = {table}.{c} + excluded.{c}")).collect();
        self.insert_rows(table, cols, &format!("ON CONFLICT (currency, {key}) DO UPDATE SET {}", sets.join(", ")))
    }
}
