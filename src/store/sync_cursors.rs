//! Resumable backfill: `sync_cursors` (migration 0005) holds, per Stripe object type, the id of
//! the last object whose snapshots are committed. The statements are the same on both
//! backends.

use crate::store::conn::{execute, fetch};
use crate::store::{Store, StoreError};

const GET_CURSOR: &str = "SELECT last_id FROM sync_cursors WHERE object_type = $1";
const SAVE_CURSOR: &str = "INSERT INTO sync_cursors (object_type, last_id, updated_at) VALUES ($1, $2, $3) \
     ON CONFLICT (object_type) DO UPDATE SET last_id = excluded.last_id, updated_at = excluded.updated_at";
const CLEAR_CURSOR: &str = "DELETE FROM sync_cursors WHERE object_type = $1";

impl Store {
    /// Where an interrupted sync of `object_type` stopped (`None`: start from the beginning).
    pub async fn sync_cursor(&self, object_type: &str) -> Result<Option<String>, StoreError> {
        let row = self.with_conn(async |c| fetch!(c, fetch_optional, (String,), GET_CURSOR, object_type)).await?;
        Ok(row.map(|(id,)| id))
    }

    /// Remember that every object of `object_type` up to `last_id` (in Stripe's list order) is
    /// stored.
    pub async fn save_sync_cursor(&self, object_type: &str, last_id: &str, now: i64) -> Result<(), StoreError> {
        self.with_conn(async |c| execute!(c, SAVE_CURSOR, object_type, last_id, now)).await?;
        Ok(())
    }

    /// A finished pass: the next sync of `object_type` starts over.
    pub async fn clear_sync_cursor(&self, object_type: &str) -> Result<(), StoreError> {
        self.with_conn(async |c| execute!(c, CLEAR_CURSOR, object_type)).await?;
        Ok(())
    }

    /// Number of Stripe events in the log (tests and the replicas check). On SQLite a webhook
    /// acknowledged a moment ago may still wait in the inbox, not counted here: wait for the
    /// projector (`wait_projected`) first.
    pub async fn count_events(&self) -> Result<i64, StoreError> {
        const COUNT: &str = "SELECT COUNT(*) FROM stripe_events";
        let (n,) = self.with_conn(async |c| fetch!(c, fetch_one, (i64,), COUNT)).await?;
        Ok(n)
    }
}
