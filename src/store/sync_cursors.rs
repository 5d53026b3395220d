//! Resumable backfill: `sync_cursors` (migration 0005) holds, per Stripe object type, the id of
//! the last object whose snapshots are committed. The statements are the same on both
//! backends.

use super::{Store, StoreError};

const GET_CURSOR: &str = "SELECT last_id FROM sync_cursors WHERE object_type = $1";
const SAVE_CURSOR: &str = "INSERT INTO sync_cursors (object_type, last_id, updated_at) VALUES ($1, $2, $3) \
     ON CONFLICT (object_type) DO UPDATE SET last_id = excluded.last_id, updated_at = excluded.updated_at";
const CLEAR_CURSOR: &str = "DELETE FROM sync_cursors WHERE object_type = $1";

impl Store {
    /// Where an interrupted sync of `object_type` stopped (`None`: start from the beginning).
    pub async fn sync_cursor(&self, object_type: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = match self {
            Self::Sqlite(s) => sqlx::query_as(GET_CURSOR).bind(object_type).fetch_optional(s.pool()).await?,
            Self::Postgres(s) => sqlx::query_as(GET_CURSOR).bind(object_type).fetch_optional(s.pool()).await?,
        };
        Ok(row.map(|(id,)| id))
    }

    /// Remember that every object of `object_type` up to `last_id` (in Stripe's list order) is
    /// stored.
    pub async fn save_sync_cursor(&self, object_type: &str, last_id: &str, now: i64) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => {
                sqlx::query(SAVE_CURSOR).bind(object_type).bind(last_id).bind(now).execute(s.pool()).await.map(drop)?
            }
            Self::Postgres(s) => {
                sqlx::query(SAVE_CURSOR).bind(object_type).bind(last_id).bind(now).execute(s.pool()).await.map(drop)?
            }
        };
        Ok(())
    }

    /// A finished pass: the next sync of `object_type` starts over.
    pub async fn clear_sync_cursor(&self, object_type: &str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => sqlx::query(CLEAR_CURSOR).bind(object_type).execute(s.pool()).await.map(drop)?,
            Self::Postgres(s) => sqlx::query(CLEAR_CURSOR).bind(object_type).execute(s.pool()).await.map(drop)?,
        };
        Ok(())
    }

    /// Number of stored Stripe events (tests and the replicas check).
    pub async fn count_events(&self) -> Result<i64, StoreError> {
        const COUNT: &str = "SELECT COUNT(*) FROM stripe_events";
        let (n,): (i64,) = match self {
            Self::Sqlite(s) => sqlx::query_as(COUNT).fetch_one(s.pool()).await?,
            Self::Postgres(s) => sqlx::query_as(COUNT).fetch_one(s.pool()).await?,
        };
        Ok(n)
    }
}
