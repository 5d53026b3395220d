//! Dunning cases and cards, written from a reaction plan on the projector's connection.
//! Same SQL on both backends.

use crate::store::conn::{Conn, execute, fetch};
use crate::store::plan::{Card, Closing, Contact, DunningCase};
use crate::store::{Store, StoreError};

const ALL: &str = "SELECT invoice_id, customer, subscription, kind, status, silent, currency, amount_due, opened_at, \
     next_payment_attempt, closed_at, close_reason, recovered_amount, recovered_after_secs, emails_before_close, last_failure_at, \
     experiment, variant, attempt_count FROM dunning_cases ORDER BY invoice_id";
const INSERT: &str = "INSERT INTO dunning_cases (invoice_id, customer, subscription, kind, status, silent, currency, amount_due, \
     opened_at, next_payment_attempt, last_failure_at, experiment, variant, attempt_count) \
     VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $9, $10, $11, $12, $13) \
     ON CONFLICT (invoice_id) DO NOTHING";
const UPDATE_FAILURE: &str = "UPDATE dunning_cases SET opened_at = $2, next_payment_attempt = $3, last_failure_at = $4, amount_due = $5, \
     attempt_count = $6 WHERE invoice_id = $1";
/// The emails delivered before the close are counted here, in the same statement.
const CLOSE: &str = "UPDATE dunning_cases SET status = $2, closed_at = $3, close_reason = $4, recovered_amount = $5, \
     recovered_after_secs = $6, emails_before_close = (SELECT COUNT(*) FROM outbox WHERE case_key = $7 AND status = 'sent') \
     WHERE invoice_id = $1 AND status = 'open'";
/// Open a case (no-op if the invoice has one).
pub async fn insert_case(conn: &mut Conn<'_>, c: &DunningCase) -> Result<bool, sqlx::Error> {
    let n = execute!(
        conn,
        INSERT,
        &c.invoice_id,
        &c.customer,
        &c.subscription,
        &c.kind,
        c.silent,
        &c.currency,
        c.amount_due,
        c.opened_at,
        c.next_payment_attempt,
        c.last_failure_at,
        &c.experiment,
        &c.variant,
        c.attempt_count
    )?;
    Ok(n == 1)
}

/// Postgres: `INSERT` for many cases (distinct invoices) in one statement.
const INSERT_MANY_POSTGRES: &str = "INSERT INTO dunning_cases (invoice_id, customer, subscription, kind, status, silent, currency, \
     amount_due, opened_at, next_payment_attempt, last_failure_at, experiment, variant, attempt_count) \
     SELECT i, cu, su, k, 'open', si, cur, a, o, n, l, e, v, ac FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
     $5::boolean[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::bigint[]) \
     WITH ORDINALITY AS m(i, cu, su, k, si, cur, a, o, n, l, e, v, ac, ord) ORDER BY ord \
     ON CONFLICT (invoice_id) DO NOTHING";

/// Open these cases (each a no-op if its invoice has one), as `insert_case` each in turn
/// would; one statement on Postgres.
pub async fn insert_cases(conn: &mut Conn<'_>, cases: &[&DunningCase]) -> Result<(), sqlx::Error> {
    let pg = match conn {
        Conn::Sqlite(c) => return insert_cases_sqlite(c, cases).await,
        Conn::Postgres(pg) => pg,
    };
    if cases.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&DunningCase) -> Option<&str>| -> Vec<Option<&str>> { cases.iter().map(|c| f(c)).collect() };
    let number = |f: fn(&DunningCase) -> Option<i64>| -> Vec<Option<i64>> { cases.iter().map(|c| f(c)).collect() };
    sqlx::query(INSERT_MANY_POSTGRES)
        .bind(text(|c| Some(c.invoice_id.as_str())))
        .bind(text(|c| c.customer.as_deref()))
        .bind(text(|c| c.subscription.as_deref()))
        .bind(text(|c| Some(c.kind.as_str())))
        .bind(cases.iter().map(|c| c.silent).collect::<Vec<bool>>())
        .bind(text(|c| c.currency.as_deref()))
        .bind(number(|c| Some(c.amount_due)))
        .bind(number(|c| Some(c.opened_at)))
        .bind(number(|c| c.next_payment_attempt))
        .bind(number(|c| Some(c.last_failure_at)))
        .bind(text(|c| c.experiment.as_deref()))
        .bind(text(|c| c.variant.as_deref()))
        .bind(number(|c| Some(c.attempt_count)))
        .execute(&mut **pg)
        .await?;
    Ok(())
}

/// SQLite: `INSERT` as rows of `VALUES` (`store::sqlite::many_rows`).
const INSERT_MANY_SQLITE_HEAD: &str = "INSERT INTO dunning_cases (invoice_id, customer, subscription, kind, status, silent, \
     currency, amount_due, opened_at, next_payment_attempt, last_failure_at, experiment, variant, attempt_count) VALUES ";
const INSERT_MANY_SQLITE_ROW: &str = "(?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const INSERT_MANY_SQLITE_TAIL: &str = " ON CONFLICT (invoice_id) DO NOTHING";

/// `insert_cases` on SQLite: a few statements for all of them. Rows are inserted in order,
/// so of two cases for one invoice the first stays, as one statement each would leave it.
async fn insert_cases_sqlite(c: &mut sqlx::SqliteConnection, cases: &[&DunningCase]) -> Result<(), sqlx::Error> {
    use crate::store::sqlite::many_rows::statements;
    for (sql, chunk) in statements(cases, INSERT_MANY_SQLITE_HEAD, INSERT_MANY_SQLITE_ROW, INSERT_MANY_SQLITE_TAIL) {
        let mut query = sqlx::query(sql);
        for case in chunk {
            query = query
                .bind(&case.invoice_id)
                .bind(&case.customer)
                .bind(&case.subscription)
                .bind(case.kind.as_str())
                .bind(case.silent)
                .bind(&case.currency)
                .bind(case.amount_due)
                .bind(case.opened_at)
                .bind(case.next_payment_attempt)
                .bind(case.last_failure_at)
                .bind(&case.experiment)
                .bind(&case.variant)
                .bind(case.attempt_count);
        }
        query.execute(&mut *c).await?;
    }
    Ok(())
}

/// Record a further failure of an open case.
pub async fn update_failure(conn: &mut Conn<'_>, c: &DunningCase) -> Result<(), sqlx::Error> {
    execute!(
        conn,
        UPDATE_FAILURE,
        &c.invoice_id,
        c.opened_at,
        c.next_payment_attempt,
        c.last_failure_at,
        c.amount_due,
        c.attempt_count
    )
    .map(|_| ())
}

/// Close an open case (emails delivered under `case_key` counted); `false` if it was not open.
pub async fn close_case(conn: &mut Conn<'_>, invoice: &str, case_key: &str, c: &Closing) -> Result<bool, sqlx::Error> {
    let n = execute!(
        conn,
        CLOSE,
        invoice,
        c.status,
        c.closed_at,
        c.reason.as_str(),
        c.recovered_amount,
        c.recovered_after_secs,
        case_key
    )?;
    Ok(n == 1)
}

const CONTACT: &str = "SELECT email, name, deleted FROM customers WHERE id = $1";

impl Store {
    /// The stored customer, if any.
    pub async fn contact(&self, customer: &str) -> Result<Option<Contact>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_optional, Contact, CONTACT, customer)).await
    }
}

const UPSERT_CARD: &str = "INSERT INTO payment_methods AS t (id, customer, brand, last4, exp_month, exp_year, src_created, \
     src_event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, \
     brand = excluded.brand, last4 = excluded.last4, exp_month = excluded.exp_month, exp_year = excluded.exp_year, \
     src_created = excluded.src_created, src_event_id = excluded.src_event_id WHERE excluded.src_created >= t.src_created";

/// Keep the newest snapshot of a card (older events never win).
pub async fn upsert_card(conn: &mut Conn<'_>, card: &Card, created: i64, event_id: &str) -> Result<(), sqlx::Error> {
    execute!(
        conn,
        UPSERT_CARD,
        &card.id,
        &card.customer,
        &card.brand,
        &card.last4,
        card.exp_month,
        card.exp_year,
        created,
        event_id
    )
    .map(|_| ())
}

/// A card expiring this month whose customer has a live subscription.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExpiringCard {
    pub id: String,
    pub customer: String,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub email: String,
    pub name: Option<String>,
}

const EXPIRING: &str = "SELECT p.id, p.customer, p.brand, p.last4, c.email, c.name FROM payment_methods p \
     JOIN customers c ON c.id = p.customer \
     WHERE p.exp_year = $1 AND p.exp_month = $2 AND c.email IS NOT NULL AND NOT c.deleted \
     AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.customer = p.customer AND s.status IN ('active', 'trialing', 'past_due')) \
     ORDER BY p.id";

impl Store {
    /// Cards expiring in `month`/`year` of customers with a live subscription.
    pub async fn cards_expiring(&self, year: i64, month: i64) -> Result<Vec<ExpiringCard>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, ExpiringCard, EXPIRING, year, month)).await
    }

    /// Every dunning case, by invoice id.
    pub async fn dunning_cases(&self) -> Result<Vec<DunningCase>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, DunningCase, ALL)).await
    }
}

const CUSTOMER_NAME: &str = "SELECT name FROM customers WHERE id = $1";

impl Store {
    /// The stored name of a customer, to greet them by it.
    pub async fn customer_name(&self, customer: &str) -> Result<Option<String>, StoreError> {
        let row = self.with_conn(async |c| fetch!(c, fetch_optional, (Option<String>,), CUSTOMER_NAME, customer)).await?;
        Ok(row.and_then(|(n,)| n).filter(|n| !n.trim().is_empty()))
    }
}

const HOSTED_URL: &str = "SELECT hosted_invoice_url FROM invoices WHERE id = $1";

impl Store {
    /// The hosted page of an invoice (the fallback when the Billing Portal can't be opened).
    pub async fn invoice_hosted_url(&self, invoice: &str) -> Result<Option<String>, StoreError> {
        let row = self.with_conn(async |c| fetch!(c, fetch_optional, (Option<String>,), HOSTED_URL, invoice)).await?;
        Ok(row.and_then(|(u,)| u))
    }
}
