//! The store's errors: a storage failure classified once for HTTP (unavailable, refused
//! data, other), and why a projection could not be made.

use crate::store::{classify, sqlite};

/// Why a projection could not be made, with its cause.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The log holds a payload that does not parse as an event.
    #[error("stored payload is not an event: {0}")]
    Payload(#[source] crate::domain::event::NotAnEvent),
    /// A customer's stored figures do not parse (written by another version?).
    #[error("stored figures of a customer are unreadable: {0}")]
    StoredFigures(#[source] serde_json::Error),
    /// A value could not be written as JSON for a batch statement.
    #[error("a batch value could not be encoded: {0}")]
    Encode(#[source] serde_json::Error),
}

/// A storage failure, classified for HTTP once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database can't be reached right now (pool timeout, closed or refused connection):
    /// the caller should retry later.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The database refused the data itself (a value a column can't hold, a key too large
    /// for its index): retrying the same rows can't succeed.
    #[error("the database refused the data")]
    Rejected(#[source] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `DATABASE_URL` names no backend we have.
    #[error("unsupported database URL scheme (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// The reaction hook could not decide (a broken template override cannot render).
    #[error("reaction failed: {0}")]
    Reaction(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An event could not be projected (its stored payload, or the projection of it).
    #[error("projection failed: {0}")]
    Projection(#[source] ProjectionError),
    /// Another projector moved the cursor first: this batch was rolled back, nothing is lost.
    #[error("the projector cursor moved under this batch")]
    CursorMoved,
    /// The group-commit writer is gone (shutting down).
    #[error("storage writer stopped")]
    WriterGone,
    /// The SQLite WAL could not be synced: committed batches may not be durable.
    #[error(transparent)]
    NotDurable(#[from] sqlite::wal_sync::SyncFailed),
}

impl StoreError {
    /// Is this the event's own failure (bad data, a bug in its projection or reactions), as
    /// opposed to the database being away? Only those park a customer.
    pub fn is_projection_failure(&self) -> bool {
        matches!(self, Self::Database(_) | Self::Rejected(_) | Self::Projection(_) | Self::Reaction(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // Protocol: the connection broke mid-exchange (e.g. closed by a proxy while the
            // database is down); WorkerCrashed: SQLite's connection thread died.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e),
            sqlx::Error::Database(ref db) => match classify::classify(db.as_ref()) {
                classify::ErrorClass::Transient => Self::Unavailable(e),
                classify::ErrorClass::Data => Self::Rejected(e),
                classify::ErrorClass::Other => Self::Database(e),
            },
            other => Self::Database(other),
        }
    }
}
