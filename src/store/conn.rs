//! A connection (usually inside a caller's transaction) of either backend, for statements
//! whose SQL text is the same on both: the outbox, dunning cases, cards. The macros run one
//! statement on whichever backend the `Conn` holds.

use sqlx::{PgConnection, SqliteConnection};

/// A borrowed connection of either backend. Callers holding a transaction pass
/// `Conn::Sqlite(&mut *tx)` or `Conn::Postgres(&mut *tx)`.
pub enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

/// Execute a statement; evaluates to `Result<u64 rows affected, sqlx::Error>`.
macro_rules! execute {
    ($conn:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        match $conn {
            $crate::store::conn::Conn::Sqlite(c) => sqlx::query($sql)$(.bind($bind))*.execute(&mut **c).await.map(|r| r.rows_affected()),
            $crate::store::conn::Conn::Postgres(c) => sqlx::query($sql)$(.bind($bind))*.execute(&mut **c).await.map(|r| r.rows_affected()),
        }
    };
}

/// Fetch rows as `$t` (a `FromRow` type or tuple) with `$method` (`fetch_all`, `fetch_optional`, `fetch_one`).
macro_rules! fetch {
    ($conn:expr, $method:ident, $t:ty, $sql:expr $(, $bind:expr)* $(,)?) => {
        match $conn {
            $crate::store::conn::Conn::Sqlite(c) => sqlx::query_as::<_, $t>($sql)$(.bind($bind))*.$method(&mut **c).await,
            $crate::store::conn::Conn::Postgres(c) => sqlx::query_as::<_, $t>($sql)$(.bind($bind))*.$method(&mut **c).await,
        }
    };
}

pub(crate) use execute;
pub(crate) use fetch;
