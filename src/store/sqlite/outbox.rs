//! Claiming due outbox rows on SQLite: one `UPDATE … RETURNING` inside `BEGIN IMMEDIATE`,
//! committed before any mail is sent (SQLite has one writer; no I/O while holding it).

use crate::store::StoreError;
use crate::store::outbox::ClaimedEmail;
use crate::store::sqlite::SqliteStore;

const CLAIM: &str = "UPDATE outbox SET claimed_until = $1 + $2, claim_token = $4 WHERE id IN (SELECT id FROM outbox \
     WHERE status = 'pending' AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1) \
     ORDER BY next_attempt_at, id LIMIT $3) \
     RETURNING id, dedupe_key, category, customer, recipient, template, subject, body_text, body_html, attempts, unsubscribe_url";

impl SqliteStore {
    pub(crate) async fn claim_due_outbox(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
        token: &str,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query_as(CLAIM).bind(now).bind(lease).bind(limit).bind(token).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }
}
