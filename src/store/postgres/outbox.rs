//! Claiming due outbox rows on Postgres: `FOR UPDATE SKIP LOCKED` lets replicas claim
//! disjoint rows concurrently; the lease (`claimed_until`) lets another worker take over a
//! claim whose worker died. The claim commits before any mail is sent.

use crate::store::StoreError;
use crate::store::outbox::ClaimedEmail;
use crate::store::postgres::PgStore;

const CLAIM: &str = "WITH due AS (SELECT id FROM outbox \
     WHERE status = 'pending' AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1) \
     ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
     UPDATE outbox o SET claimed_until = $1 + $2, claim_token = $4 FROM due WHERE o.id = due.id \
     RETURNING o.id, o.dedupe_key, o.category, o.customer, o.recipient, o.template, o.subject, o.body_text, o.body_html, o.attempts, o.unsubscribe_url";

impl PgStore {
    pub(crate) async fn claim_due_outbox(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
        token: &str,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
        let rows = sqlx::query_as(CLAIM).bind(now).bind(lease).bind(limit).bind(token).fetch_all(self.pool()).await?;
        Ok(rows)
    }
}
