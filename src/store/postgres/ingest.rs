//! The Postgres write path: each table written once per batch, one array per column
//! (`UNNEST`), the statements and arrays made from the table's description (`store::tables`).

use std::collections::HashSet;

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row, Transaction};

use crate::domain::event::Event;
use crate::store::batch::{Writes, first_occurrences};
use crate::store::tables::{self, Dialect, Read, Table, Text, pairs};
use crate::store::{IngestOptions, Ingested, StoreError};

const INSERT_EVENTS: &str = "INSERT INTO stripe_events (id, type, created, livemode, api_version, account, payload, received_at, notify) \
     SELECT u.id, u.type, u.created, u.livemode, u.api_version, u.account, u.payload, u.received_at, $9 \
     FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::bool[], $5::text[], $6::text[], $7::text[], $8::int8[]) \
     WITH ORDINALITY AS u(id, type, created, livemode, api_version, account, payload, received_at, n) ORDER BY u.n \
     ON CONFLICT (id) DO NOTHING RETURNING id, seq";

/// Appends hold this lock from their first statement to their commit, so log positions
/// (`seq`) become visible in increasing order, on every replica: the projector, reading
/// "after my cursor", can never skip a row that commits late with a smaller `seq`.
const APPEND_LOCK: &str = "SELECT pg_advisory_xact_lock(7242101140)";

const DELETE_ITEMS: &str = "DELETE FROM subscription_items WHERE subscription_id = ANY($1)";

/// Column arrays, built by pushing one row at a time.
macro_rules! columns {
    ($rows:expr, |$r:ident| { $($name:ident: $value:expr),+ $(,)? }) => {{
        $(let mut $name = Vec::with_capacity($rows.len());)+
        for $r in $rows {
            $($name.push($value);)+
        }
        ($($name,)+)
    }};
}

/// Append the batch's events to the log (nothing else: the projector applies them later).
/// Returns each event's outcome and the log position of the last new one.
pub(crate) async fn append(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&Event],
    received_at: i64,
    options: IngestOptions,
) -> Result<(Vec<Ingested>, Option<i64>), StoreError> {
    let (firsts, _repeats) = first_occurrences(events);
    let unique: Vec<&Event> = firsts.iter().map(|&i| events[i]).collect();
    let (ids, kinds, created, livemode, versions, accounts, payloads, received) = columns!(&unique, |e| {
        ids: e.id.as_str(),
        kinds: e.kind.as_str(),
        created: e.created,
        livemode: e.livemode,
        versions: e.api_version.as_deref(),
        accounts: e.account.as_deref(),
        payloads: e.raw.as_str(),
        received: received_at,
    });
    sqlx::query(APPEND_LOCK).execute(&mut **tx).await?;
    let inserted: Vec<(String, i64)> = sqlx::query_as(INSERT_EVENTS)
        .bind(ids)
        .bind(kinds)
        .bind(created)
        .bind(livemode)
        .bind(versions)
        .bind(accounts)
        .bind(payloads)
        .bind(received)
        .bind(options.notify)
        .fetch_all(&mut **tx)
        .await?;
    let last = inserted.iter().map(|(_, seq)| *seq).max();
    let inserted: HashSet<String> = inserted.into_iter().map(|(id, _)| id).collect();
    let mut outcome = vec![Ingested::Duplicate; events.len()];
    for &i in &firsts {
        if inserted.contains(&events[i].id) {
            outcome[i] = Ingested::Stored;
        }
    }
    Ok((outcome, last))
}

/// Write a batch's projection (the projector calls it inside its transaction).
pub(crate) async fn apply(conn: &mut PgConnection, w: &Writes) -> Result<(), sqlx::Error> {
    // Each statement is bound (its arrays encoded) before it runs: nothing borrowed by an
    // iterator is held across an await (the projector's future must be `Send`).
    let customers = table_query(&tables::CUSTOMERS, pairs(&w.customers));
    write(conn, customers).await?;
    upsert_subscriptions(conn, w).await?;
    let history = table_query(&tables::SUBSCRIPTION_HISTORY, pairs(&w.history));
    write(conn, history).await?;
    let invoices = table_query(&tables::INVOICES, pairs(&w.invoices));
    write(conn, invoices).await?;
    let discounts = table_query(&tables::DISCOUNTS, pairs(&w.discounts));
    write(conn, discounts).await?;
    Ok(())
}

/// Run a table's bound statement (nothing when it had no rows).
async fn write(conn: &mut PgConnection, query: Option<Query<'static, Postgres, PgArguments>>) -> Result<(), sqlx::Error> {
    if let Some(query) = query {
        query.execute(conn).await?;
    }
    Ok(())
}

/// One column's values across the batch, with the reader that fills it.
enum Array<'r, P, C> {
    Text(for<'a> fn(&'a P, &'a C) -> Text<'a>, Vec<Text<'r>>),
    Int(fn(&P, &C) -> Option<i64>, Vec<Option<i64>>),
    Bool(fn(&P, &C) -> bool, Vec<bool>),
    Float(fn(&P, &C) -> Option<f64>, Vec<Option<f64>>),
}

/// The table's statement with one array per column bound, in the description's column
/// order; `None` for no rows.
fn table_query<'r, P: 'static, C: 'static>(
    table: &'static Table<P, C>,
    rows: impl IntoIterator<Item = (&'r P, &'r C)>,
) -> Option<Query<'static, Postgres, PgArguments>> {
    let rows = rows.into_iter();
    let capacity = rows.size_hint().0;
    let mut arrays: Vec<Array<'r, P, C>> = table
        .columns
        .iter()
        .map(|column| match column.read {
            Read::Text(f) => Array::Text(f, Vec::with_capacity(capacity)),
            Read::Int(f) => Array::Int(f, Vec::with_capacity(capacity)),
            Read::Bool(f) => Array::Bool(f, Vec::with_capacity(capacity)),
            Read::Float(f) => Array::Float(f, Vec::with_capacity(capacity)),
        })
        .collect();
    let mut any = false;
    for (p, c) in rows {
        any = true;
        for array in &mut arrays {
            match array {
                Array::Text(f, v) => v.push(f(p, c)),
                Array::Int(f, v) => v.push(f(p, c)),
                Array::Bool(f, v) => v.push(f(p, c)),
                Array::Float(f, v) => v.push(f(p, c)),
            }
        }
    }
    if !any {
        return None;
    }
    let mut query = sqlx::query(table.statement(Dialect::Postgres));
    for array in arrays {
        query = match array {
            Array::Text(_, v) => query.bind(v),
            Array::Int(_, v) => query.bind(v),
            Array::Bool(_, v) => query.bind(v),
            Array::Float(_, v) => query.bind(v),
        };
    }
    Some(query)
}

/// Upsert the subscriptions, then replace the items of those whose snapshot won.
async fn upsert_subscriptions(conn: &mut PgConnection, w: &Writes) -> Result<(), sqlx::Error> {
    let Some(query) = table_query(&tables::SUBSCRIPTIONS, pairs(&w.subscriptions)) else { return Ok(()) };
    let returned = query.fetch_all(&mut *conn).await?;
    let applied: HashSet<String> = returned.iter().map(|row| row.try_get::<String, _>(0)).collect::<Result<_, _>>()?;
    if applied.is_empty() {
        return Ok(());
    }
    let applied_ids: Vec<&str> = applied.iter().map(String::as_str).collect();
    sqlx::query(DELETE_ITEMS).bind(applied_ids).execute(&mut *conn).await?;
    let items =
        w.subscriptions.iter().filter(|(s, _)| applied.contains(&s.id)).flat_map(|(s, _)| s.items.iter().map(move |i| (s, i)));
    let items = table_query(&tables::SUBSCRIPTION_ITEMS, items);
    write(conn, items).await
}
