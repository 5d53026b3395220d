//! The SQLite write path: each table written once per batch, from one JSON array of rows
//! (`jsonb_each`), inside one `BEGIN IMMEDIATE` transaction. A statement costs little inside
//! SQLite, but sqlx runs every statement on its worker thread, and the hand-off (two thread
//! wake-ups) cost more than the statement itself: one statement per table instead of one per
//! row took the batch from ~6 statements per event to ~10 per batch. The projected tables'
//! statements and rows are both made from their description in `store::tables`.

use std::collections::HashSet;

use serde_json::{Value, json};
use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::domain::event::Event;
use crate::store::batch::{Writes, first_occurrences};
use crate::store::tables::{self, Dialect, Read, Table, pairs};
use crate::store::{IngestOptions, Ingested, StoreError};

// Rows come as `$1`, a JSON array of arrays (one per row, columns in order); `value ->> N` is
// column N. `WHERE true` resolves SQLite's parsing ambiguity between a join's ON and the upsert's.
const INSERT_EVENTS: &str = "INSERT INTO stripe_events (id, type, created, livemode, api_version, account, payload, received_at, notify) \
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, $2, $3 FROM jsonb_each($1) \
     WHERE true ON CONFLICT (id) DO NOTHING RETURNING id, rowid";

/// Append the batch's events to the log (nothing else: the projector applies them later).
/// Returns each event's outcome and the log position of the last new one.
pub(crate) async fn append(
    tx: &mut Transaction<'_, Sqlite>,
    events: &[&Event],
    received_at: i64,
    options: IngestOptions,
) -> Result<(Vec<Ingested>, Option<i64>), StoreError> {
    let (firsts, _repeats) = first_occurrences(events);
    let rows = json_rows(firsts.iter().map(|&i| events[i]), |e| {
        json!([e.id, e.kind, e.created, e.livemode, e.api_version, e.account, e.raw])
    });
    let inserted: Vec<(String, i64)> =
        sqlx::query_as(INSERT_EVENTS).bind(rows).bind(received_at).bind(options.notify).fetch_all(&mut **tx).await?;
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

const DELETE_ITEMS: &str = "DELETE FROM subscription_items WHERE subscription_id IN (SELECT value FROM json_each($1))";

/// The JSON array `[row, …]` a batch statement reads with `jsonb_each`.
fn json_rows<T>(items: impl IntoIterator<Item = T>, row: impl Fn(T) -> Value) -> String {
    Value::Array(items.into_iter().map(row).collect()).to_string()
}

/// Write a batch's projection (the projector calls it inside its transaction).
pub(crate) async fn apply(conn: &mut SqliteConnection, w: &Writes) -> Result<(), sqlx::Error> {
    // Rows are encoded before each statement runs: nothing borrowed by an iterator is held
    // across an await (the projector's future must be `Send`).
    let customers = table_rows(&tables::CUSTOMERS, pairs(&w.customers))?;
    write(conn, &tables::CUSTOMERS, customers).await?;
    upsert_subscriptions(conn, w).await?;
    let history = table_rows(&tables::SUBSCRIPTION_HISTORY, pairs(&w.history))?;
    write(conn, &tables::SUBSCRIPTION_HISTORY, history).await?;
    let invoices = table_rows(&tables::INVOICES, pairs(&w.invoices))?;
    write(conn, &tables::INVOICES, invoices).await?;
    let discounts = table_rows(&tables::DISCOUNTS, pairs(&w.discounts))?;
    write(conn, &tables::DISCOUNTS, discounts).await?;
    Ok(())
}

/// Run `table`'s statement on the encoded `rows` (nothing when there are none).
async fn write<P, C>(conn: &mut SqliteConnection, table: &'static Table<P, C>, rows: Option<String>) -> Result<(), sqlx::Error> {
    if let Some(rows) = rows {
        sqlx::query(table.statement(Dialect::Sqlite)).bind(rows).execute(conn).await?;
    }
    Ok(())
}

/// The rows as the JSON array of arrays the table's statement reads, each row's values in the
/// description's column order; `None` for no rows.
fn table_rows<'r, P: 'r, C: 'r>(
    table: &Table<P, C>,
    rows: impl IntoIterator<Item = (&'r P, &'r C)>,
) -> Result<Option<String>, sqlx::Error> {
    let encode = |e: serde_json::Error| sqlx::Error::Encode(e.into());
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    out.push(b'[');
    for (n, (p, c)) in rows.into_iter().enumerate() {
        out.extend_from_slice(if n == 0 { b"[" } else { b",[" });
        for (i, column) in table.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match &column.read {
                Read::Text(f) => serde_json::to_writer(&mut out, &f(p, c)),
                Read::Int(f) => serde_json::to_writer(&mut out, &f(p, c)),
                Read::Bool(f) => serde_json::to_writer(&mut out, &f(p, c)),
                Read::Float(f) => serde_json::to_writer(&mut out, &f(p, c)),
            }
            .map_err(encode)?;
        }
        out.push(b']');
    }
    if out.len() == 1 {
        return Ok(None);
    }
    out.push(b']');
    String::from_utf8(out).map(Some).map_err(|e| sqlx::Error::Encode(e.into()))
}

/// Upsert the subscriptions, then replace the items of those whose snapshot won.
async fn upsert_subscriptions(conn: &mut SqliteConnection, w: &Writes) -> Result<(), sqlx::Error> {
    let Some(rows) = table_rows(&tables::SUBSCRIPTIONS, pairs(&w.subscriptions))? else { return Ok(()) };
    let applied: Vec<(String,)> =
        sqlx::query_as(tables::SUBSCRIPTIONS.statement(Dialect::Sqlite)).bind(rows).fetch_all(&mut *conn).await?;
    if applied.is_empty() {
        return Ok(());
    }
    let applied: HashSet<String> = applied.into_iter().map(|(id,)| id).collect();
    let ids = Value::Array(applied.iter().map(|id| Value::from(id.as_str())).collect()).to_string();
    sqlx::query(DELETE_ITEMS).bind(ids).execute(&mut *conn).await?;
    let items =
        w.subscriptions.iter().filter(|(s, _)| applied.contains(&s.id)).flat_map(|(s, _)| s.items.iter().map(move |i| (s, i)));
    let items = table_rows(&tables::SUBSCRIPTION_ITEMS, items)?;
    write(conn, &tables::SUBSCRIPTION_ITEMS, items).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::snapshots::SubscriptionSnapshot;
    use crate::domain::watermark::Watermark;

    /// A subscription whose every column holds a value of its own, so a value in the wrong
    /// position can't pass for the right one.
    fn subscription() -> (SubscriptionSnapshot, Watermark) {
        let object = serde_json::json!({
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "past_due", "currency": "eur",
            "created": 1001, "start_date": 1002, "trial_start": 1003, "trial_end": 1004,
            "current_period_start": 1005, "current_period_end": 1006, "cancel_at_period_end": true,
            "cancel_at": 1007, "canceled_at": 1008, "ended_at": 1009,
            "cancellation_details": {"reason": "cancellation_requested", "feedback": "too_expensive", "comment": "a\u{0}b"},
            "pause_collection": {"behavior": "void", "resumes_at": 1010},
            "discounts": ["di_1"],
            "items": {"data": [{"id": "si_1", "quantity": 2, "price": {"id": "price_1", "product": "prod_1",
                "unit_amount": 500, "currency": "eur", "recurring": {"interval": "month", "interval_count": 1}}}]}
        });
        let s = SubscriptionSnapshot::read(&object).expect("a subscription");
        let m = Watermark { rank: 7, created: 1011, tie: "tie".into(), event_id: "evt_1".into() };
        (s, m)
    }

    /// The statement's column list, as the SQLite statement names it.
    fn statement_columns(sql: &str) -> Vec<String> {
        let open = sql.find('(').expect("a column list");
        let close = open + sql[open..].find(')').expect("its end");
        sql[open + 1..close].split(", ").map(str::to_owned).collect()
    }

    #[test]
    fn the_statement_and_the_row_name_the_columns_in_one_order() {
        let row = subscription();
        let sql = tables::SUBSCRIPTIONS.statement(Dialect::Sqlite);
        let columns = statement_columns(sql);
        let rows = table_rows(&tables::SUBSCRIPTIONS, [(&row.0, &row.1)]).expect("encoded").expect("one row");
        let rows: Vec<Vec<Value>> = serde_json::from_str(&rows).expect("a JSON array of rows");
        assert_eq!(rows.len(), 1);
        assert_eq!(columns.len(), rows[0].len(), "one value per column");
        let positions: Vec<String> = (0..columns.len()).map(|i| format!("value ->> {i}")).collect();
        assert!(sql.contains(&format!("SELECT {} FROM jsonb_each($1)", positions.join(", "))), "{sql}");
        let by_name: std::collections::HashMap<&str, &Value> = columns.iter().map(String::as_str).zip(rows[0].iter()).collect();
        let expected = serde_json::json!({
            "id": "sub_1", "customer": "cus_1", "status": "past_due", "currency": "eur", "created": 1001,
            "start_date": 1002, "trial_start": 1003, "trial_end": 1004, "current_period_start": 1005,
            "current_period_end": 1006, "cancel_at_period_end": true, "cancel_at": 1007, "canceled_at": 1008,
            "ended_at": 1009, "cancel_reason": "cancellation_requested", "cancel_feedback": "too_expensive",
            "cancel_comment": "ab", "pause_behavior": "void", "pause_resumes_at": 1010, "discounts": "[\"di_1\"]",
            "base_mrr": row.0.base_mrr(), "src_rank": 7, "src_created": 1011, "src_event_id": "evt_1", "src_tie": "tie"
        });
        let expected = expected.as_object().expect("an object");
        assert_eq!(by_name.len(), expected.len(), "every column is checked: {columns:?}");
        for (name, value) in expected {
            assert_eq!(by_name.get(name.as_str()), Some(&value), "column {name}");
        }
    }

    #[test]
    fn no_rows_write_nothing() {
        let none: [(&SubscriptionSnapshot, &Watermark); 0] = [];
        assert_eq!(table_rows(&tables::SUBSCRIPTIONS, none).expect("encoded"), None);
    }
}
