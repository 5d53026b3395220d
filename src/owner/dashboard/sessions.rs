//! Dashboard sessions ended by logging out (migration 0011): the SHA-256 of the cookie value
//! until it would have expired. The statements are the same on both backends.

use crate::store::conn::{execute, fetch};
use crate::store::{Store, StoreError};

const REVOKE: &str = "INSERT INTO dashboard_session_revocations (session_hash, expires_at) VALUES ($1, $2) \
     ON CONFLICT (session_hash) DO NOTHING";
const FORGET_EXPIRED: &str = "DELETE FROM dashboard_session_revocations WHERE expires_at <= $1";
const IS_REVOKED: &str = "SELECT 1 FROM dashboard_session_revocations WHERE session_hash = $1";

impl Store {
    /// Record a session as ended until `expires_at` (and drop records that expired by `now`).
    pub async fn revoke_dashboard_session(&self, session_hash: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
        self.with_conn(async |c| {
            execute!(c, FORGET_EXPIRED, now)?;
            execute!(c, REVOKE, session_hash, expires_at)
        })
        .await?;
        Ok(())
    }

    /// Whether a session was ended by logging out.
    pub async fn dashboard_session_revoked(&self, session_hash: &str) -> Result<bool, StoreError> {
        let row = self.with_conn(async |c| fetch!(c, fetch_optional, (i32,), IS_REVOKED, session_hash)).await?;
        Ok(row.is_some())
    }
}
