//! The projected tables, each described once: its columns in order, each with how its value is
//! read from a row, and how a row meets a stored one (conflict key, watermark guard). Both
//! backends' batch statements are rendered from a description (once per process), and both
//! backends build their rows from the same description, so a statement's columns and a row's
//! values can't drift apart.
//!
//! Adding a column to a projected table: the migration pair, the snapshot field, and one line
//! in the table's description here. The Postgres bind type follows from the reader (text,
//! int8, bool, float8); SQLite reads every value out of one JSON array of rows.
//!
//! A row has two parts: a snapshot and the watermark of the event it came from, or (for
//! `subscription_items`) a subscription and one of its items.

use std::borrow::Cow;
use std::sync::OnceLock;

mod projected;

pub use projected::{CUSTOMERS, DISCOUNTS, INVOICES, SUBSCRIPTION_HISTORY, SUBSCRIPTION_ITEMS, SUBSCRIPTIONS};

/// A text value, borrowed from the row when it can be.
pub type Text<'r> = Option<Cow<'r, str>>;

/// How one column's value is read from a row `(P, C)`; the variant is the value's type.
pub enum Read<P, C> {
    Text(for<'r> fn(&'r P, &'r C) -> Text<'r>),
    Int(fn(&P, &C) -> Option<i64>),
    Bool(fn(&P, &C) -> bool),
    Float(fn(&P, &C) -> Option<f64>),
}

impl<P, C> Read<P, C> {
    /// The element type of the array Postgres binds this column as.
    pub fn pg_type(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Int(_) => "int8",
            Self::Bool(_) => "bool",
            Self::Float(_) => "float8",
        }
    }
}

/// One column of a projected table.
pub struct Column<P, C> {
    pub name: &'static str,
    pub read: Read<P, C>,
}

impl<P, C> Column<P, C> {
    pub const fn text(name: &'static str, read: for<'r> fn(&'r P, &'r C) -> Text<'r>) -> Self {
        Self { name, read: Read::Text(read) }
    }
    pub const fn int(name: &'static str, read: fn(&P, &C) -> Option<i64>) -> Self {
        Self { name, read: Read::Int(read) }
    }
    pub const fn bool(name: &'static str, read: fn(&P, &C) -> bool) -> Self {
        Self { name, read: Read::Bool(read) }
    }
    pub const fn float(name: &'static str, read: fn(&P, &C) -> Option<f64>) -> Self {
        Self { name, read: Read::Float(read) }
    }
}

/// Which watermark decides between an incoming row and the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// `(src_rank, src_created, src_event_id)`.
    Newer,
    /// `(src_rank, src_created, src_tie, src_event_id)`: the tables with a same-second tie rule.
    NewerTie,
}

impl Guard {
    /// The watermark columns compared, in order, and whether each is text (Postgres compares
    /// text in the "C" collation, bytewise, as SQLite and Rust do).
    pub fn columns(self) -> &'static [(&'static str, bool)] {
        match self {
            Self::Newer => &[("src_rank", false), ("src_created", false), ("src_event_id", true)],
            Self::NewerTie => &[("src_rank", false), ("src_created", false), ("src_tie", true), ("src_event_id", true)],
        }
    }
}

/// What happens when a row's key is stored already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// The stored row stays (history and items are written once).
    Keep,
    /// The stored row is replaced (every column but `key`) when the incoming watermark is the
    /// greater by `guard`.
    Replace { key: &'static str, guard: Guard },
}

/// The two SQL dialects the statements are rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Rows as one JSON array of arrays (`$1`), read with `jsonb_each` (`value ->> N` is column N).
    Sqlite,
    /// One array per column (`$N` is column N), read with `UNNEST`.
    Postgres,
}

/// A projected table, described once.
pub struct Table<P: 'static, C: 'static> {
    pub name: &'static str,
    pub columns: &'static [Column<P, C>],
    pub on_conflict: OnConflict,
    /// A column the statement returns for each row it wrote.
    pub returning: Option<&'static str>,
    statements: [OnceLock<String>; 2],
}

impl<P, C> Table<P, C> {
    const fn new(
        name: &'static str,
        on_conflict: OnConflict,
        returning: Option<&'static str>,
        columns: &'static [Column<P, C>],
    ) -> Self {
        Self { name, columns, on_conflict, returning, statements: [OnceLock::new(), OnceLock::new()] }
    }

    /// The batch statement of this table in `dialect`, rendered on first use.
    pub fn statement(&self, dialect: Dialect) -> &str {
        self.statements[dialect as usize].get_or_init(|| self.render(dialect))
    }

    fn render(&self, dialect: Dialect) -> String {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
        let source = match dialect {
            // `WHERE true` resolves SQLite's parsing ambiguity between a join's ON and the upsert's.
            // `jsonb_each`, not `json_each`: each row's `value` comes as JSONB, so the `->>` of
            // each column is a lookup; with `json_each` each `->>` parsed the row's text again,
            // which was most of the cost of a 250-row upsert (README, "Benchmarks").
            Dialect::Sqlite => {
                let values: Vec<String> = (0..self.columns.len()).map(|i| format!("value ->> {i}")).collect();
                format!("SELECT {} FROM jsonb_each($1) WHERE true", values.join(", "))
            }
            Dialect::Postgres => {
                let arrays: Vec<String> =
                    self.columns.iter().enumerate().map(|(i, c)| format!("${}::{}[]", i + 1, c.read.pg_type())).collect();
                format!("SELECT * FROM UNNEST({})", arrays.join(", "))
            }
        };
        let mut sql = format!("INSERT INTO {} AS t ({}) {source} ON CONFLICT ", self.name, names.join(", "));
        match self.on_conflict {
            OnConflict::Keep => sql.push_str("DO NOTHING"),
            OnConflict::Replace { key, guard } => {
                let set: Vec<String> = names.iter().filter(|n| **n != key).map(|n| format!("{n} = excluded.{n}")).collect();
                let side = |table: &str| {
                    let parts: Vec<String> = guard
                        .columns()
                        .iter()
                        .map(|(name, text)| match (dialect, text) {
                            (Dialect::Postgres, true) => format!("{table}.{name} COLLATE \"C\""),
                            _ => format!("{table}.{name}"),
                        })
                        .collect();
                    format!("({})", parts.join(", "))
                };
                sql.push_str(&format!("({key}) DO UPDATE SET {} WHERE {} > {}", set.join(", "), side("excluded"), side("t")));
            }
        }
        if let Some(column) = self.returning {
            match dialect {
                Dialect::Sqlite => sql.push_str(&format!(" RETURNING {column}")),
                Dialect::Postgres => sql.push_str(&format!(" RETURNING t.{column}")),
            }
        }
        sql
    }
}

/// The rows of a batch's `(snapshot, watermark)` pairs, as the writers take them.
pub fn pairs<P, C>(rows: &[(P, C)]) -> impl Iterator<Item = (&P, &C)> {
    rows.iter().map(|(p, c)| (p, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the tests read of a description.
    struct Described {
        name: &'static str,
        columns: Vec<&'static str>,
        types: Vec<&'static str>,
        on_conflict: OnConflict,
        returning: Option<&'static str>,
        sqlite: &'static str,
        postgres: &'static str,
    }

    fn described<P, C>(t: &'static Table<P, C>) -> Described {
        Described {
            name: t.name,
            columns: t.columns.iter().map(|c| c.name).collect(),
            types: t.columns.iter().map(|c| c.read.pg_type()).collect(),
            on_conflict: t.on_conflict,
            returning: t.returning,
            sqlite: t.statement(Dialect::Sqlite),
            postgres: t.statement(Dialect::Postgres),
        }
    }

    fn all() -> Vec<Described> {
        vec![
            described(&CUSTOMERS),
            described(&SUBSCRIPTIONS),
            described(&SUBSCRIPTION_ITEMS),
            described(&SUBSCRIPTION_HISTORY),
            described(&INVOICES),
            described(&DISCOUNTS),
        ]
    }

    #[test]
    fn both_statements_list_the_described_columns_in_order() {
        for Described { name, columns, types, sqlite, postgres, .. } in all() {
            let list = format!("INSERT INTO {name} AS t ({}) SELECT ", columns.join(", "));
            assert!(sqlite.starts_with(&list), "{sqlite}");
            assert!(postgres.starts_with(&list), "{postgres}");
            let values: Vec<String> = (0..columns.len()).map(|i| format!("value ->> {i}")).collect();
            assert!(sqlite.contains(&format!("SELECT {} FROM jsonb_each($1) WHERE true ON CONFLICT", values.join(", "))));
            let arrays: Vec<String> = types.iter().enumerate().map(|(i, t)| format!("${}::{t}[]", i + 1)).collect();
            assert!(postgres.contains(&format!("SELECT * FROM UNNEST({}) ON CONFLICT", arrays.join(", "))), "{postgres}");
        }
    }

    #[test]
    fn upserts_replace_every_column_but_the_key_under_their_watermark() {
        for Described { name, columns, on_conflict, returning, sqlite, postgres, .. } in all() {
            match on_conflict {
                OnConflict::Keep => {
                    assert!(sqlite.ends_with("ON CONFLICT DO NOTHING") && postgres.ends_with("ON CONFLICT DO NOTHING"));
                }
                OnConflict::Replace { key, guard } => {
                    assert!(columns.contains(&key), "{name}: the key is a column");
                    for (watermark, _) in guard.columns() {
                        assert!(columns.contains(watermark), "{name}: the guard's {watermark} is a column");
                    }
                    let set: Vec<String> = columns.iter().filter(|c| **c != key).map(|c| format!("{c} = excluded.{c}")).collect();
                    let set = format!("ON CONFLICT ({key}) DO UPDATE SET {} WHERE ", set.join(", "));
                    assert!(sqlite.contains(&set) && postgres.contains(&set), "{name}");
                }
            }
            assert_eq!(returning.is_some(), sqlite.contains(" RETURNING "), "{name}");
        }
    }

    #[test]
    fn the_guards_compare_watermarks_as_the_domain_orders_them() {
        let sql = |d| SUBSCRIPTIONS.statement(d).to_owned();
        assert!(sql(Dialect::Sqlite).ends_with(
            "WHERE (excluded.src_rank, excluded.src_created, excluded.src_tie, excluded.src_event_id) \
             > (t.src_rank, t.src_created, t.src_tie, t.src_event_id) RETURNING id"
        ));
        assert!(sql(Dialect::Postgres).ends_with(
            "WHERE (excluded.src_rank, excluded.src_created, excluded.src_tie COLLATE \"C\", excluded.src_event_id COLLATE \"C\") \
             > (t.src_rank, t.src_created, t.src_tie COLLATE \"C\", t.src_event_id COLLATE \"C\") RETURNING t.id"
        ));
        assert!(CUSTOMERS.statement(Dialect::Sqlite).ends_with(
            "WHERE (excluded.src_rank, excluded.src_created, excluded.src_event_id) > (t.src_rank, t.src_created, t.src_event_id)"
        ));
    }
}
