//! Cancel-flow sessions (`cancel_sessions`, migration 0003) and the reads the flow needs from
//! the projected subscriptions. Every statement here is the same text on both backends (plain
//! `$N` placeholders, BIGINT/TEXT columns only), so it is written once and run on either pool.
//! Each write is one conditional statement: no transaction is held across a Stripe call.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cancel::rules::Outcome;
use crate::store::{Store, StoreError};

/// One cancel session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CancelSessionRow {
    pub id: String,
    pub csrf_token: String,
    pub customer: String,
    pub subscription: Option<String>,
    pub return_url: Option<String>,
    pub source: String,
    pub created_at: i64,
    pub link_expires_at: i64,
    pub started_at: Option<i64>,
    pub deadline_at: Option<i64>,
    pub reason: Option<String>,
    pub feedback: Option<String>,
    pub comment: Option<String>,
    pub reason_at: Option<i64>,
    /// JSON array of offer kinds shown after the survey.
    pub offers_shown: String,
    pub acting_until: Option<i64>,
    pub attempts: i64,
    pub outcome: Option<String>,
    pub outcome_detail: Option<String>,
    pub paused_until: Option<i64>,
    pub completed_at: Option<i64>,
    /// The save-offer experiment variant (`a`/`b`) the session began in, if one was running.
    pub variant: Option<String>,
}

/// A session to insert.
#[derive(Debug, Clone)]
pub struct NewCancelSession {
    pub id: String,
    /// sha256 hex of the one-time token, for minted links; `None` for signed links.
    pub link_token_hash: Option<String>,
    pub csrf_token: String,
    pub customer: String,
    pub subscription: Option<String>,
    pub return_url: Option<String>,
    pub source: &'static str,
    pub created_at: i64,
    pub link_expires_at: i64,
    /// Signed links start at once; minted ones when first opened.
    pub started_at: Option<i64>,
    pub deadline_at: Option<i64>,
    /// The save-offer experiment in force and the customer's variant in it.
    pub experiment: Option<String>,
    pub variant: Option<String>,
}

/// The survey answer and what it led to.
#[derive(Debug, Clone)]
pub struct SurveyAnswer<'a> {
    pub reason: &'a str,
    pub feedback: &'a str,
    pub comment: Option<&'a str>,
    pub offers_shown_json: &'a str,
    pub at: i64,
}

/// The cancel flow over a period, for the owner summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CancelFlowStats {
    /// Sessions started (first opened) in `[from_ts, to_ts)`.
    pub sessions: i64,
    /// paused + downgraded + discounted.
    pub saved: i64,
    pub paused: i64,
    pub downgraded: i64,
    pub discounted: i64,
    pub canceled: i64,
    /// A cancellation already scheduled in Stripe, undone ("Keep my subscription"). Not a
    /// save offer taken, so neither in `saved` nor in `save_rate`.
    pub resumed: i64,
    /// Recorded as abandoned, or unfinished past their deadline.
    pub abandoned: i64,
    /// Unfinished and still within their deadline.
    pub in_progress: i64,
    /// Sessions per survey reason (`too_expensive`, …); sessions without an answer are absent.
    pub reasons: BTreeMap<String, i64>,
}

impl CancelFlowStats {
    /// saved / sessions that ended (saved + canceled + abandoned); `None` when none ended.
    pub fn save_rate(&self) -> Option<f64> {
        let ended = self.saved + self.canceled + self.abandoned;
        (ended > 0).then(|| self.saved as f64 / ended as f64)
    }
}

const INSERT_SESSION: &str = "INSERT INTO cancel_sessions (id, link_token_hash, csrf_token, customer, subscription, return_url, \
     source, created_at, link_expires_at, started_at, deadline_at, experiment, variant) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

const START_MINTED: &str = concat!(
    "UPDATE cancel_sessions SET started_at = $2, deadline_at = $2 + $3 \
     WHERE link_token_hash = $1 AND started_at IS NULL AND link_expires_at > $2 RETURNING ",
    "id, csrf_token, customer, subscription, return_url, source, created_at, link_expires_at, started_at, \
     deadline_at, reason, feedback, comment, reason_at, offers_shown, acting_until, attempts, outcome, outcome_detail, paused_until, \
     completed_at, variant"
);

const SELECT_SESSION: &str = concat!(
    "SELECT ",
    "id, csrf_token, customer, subscription, return_url, source, created_at, link_expires_at, started_at, \
     deadline_at, reason, feedback, comment, reason_at, offers_shown, acting_until, attempts, outcome, outcome_detail, paused_until, \
     completed_at, variant",
    " FROM cancel_sessions WHERE id = $1"
);

const RECORD_SURVEY: &str = "UPDATE cancel_sessions SET reason = $2, feedback = $3, comment = $4, offers_shown = $5, reason_at = $6 \
     WHERE id = $1 AND outcome IS NULL AND started_at IS NOT NULL AND deadline_at > $6 \
     AND (acting_until IS NULL OR acting_until < $6)";

const RECORD_COMMENT: &str = "UPDATE cancel_sessions SET comment = $2 WHERE id = $1 AND outcome IS NULL";

const CLAIM_ACTION: &str = "UPDATE cancel_sessions SET acting_until = $2 + $3, attempts = attempts + 1 \
     WHERE id = $1 AND outcome IS NULL AND deadline_at > $2 AND (acting_until IS NULL OR acting_until < $2) RETURNING attempts";

const RELEASE_ACTION: &str = "UPDATE cancel_sessions SET acting_until = NULL WHERE id = $1 AND outcome IS NULL";

// A save starts `pending` until billing proves or reverses it (see `cancel::saves`).
pub(crate) const RECORD_OUTCOME: &str = "UPDATE cancel_sessions SET outcome = $2, outcome_detail = $3, paused_until = $4, completed_at = $5, \
     acting_until = NULL, save_state = CASE WHEN $2 IN ('paused', 'downgraded', 'discounted', 'resumed') THEN 'pending' END \
     WHERE id = $1 AND outcome IS NULL";

const MARK_ABANDONED: &str = "UPDATE cancel_sessions SET outcome = 'abandoned', completed_at = deadline_at \
     WHERE outcome IS NULL AND started_at IS NOT NULL AND deadline_at <= $1 AND (acting_until IS NULL OR acting_until < $1)";

const SELECT_STATS_ROWS: &str = "SELECT outcome, reason, deadline_at FROM cancel_sessions WHERE started_at IS NOT NULL AND started_at >= $1 AND started_at < $2";

/// Run `$body` with `$pool` bound to whichever backend's pool: the SQL is the same text.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite(s) => {
                let $pool = s.pool();
                $body
            }
            Store::Postgres(s) => {
                let $pool = s.pool();
                $body
            }
        }
    };
}

mod projected;

pub use projected::Plan;

impl Store {
    /// Insert a new session (signed link opened, or link minted by the owner).
    pub async fn insert_cancel_session(&self, s: &NewCancelSession) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(INSERT_SESSION)
                .bind(&s.id).bind(&s.link_token_hash).bind(&s.csrf_token).bind(&s.customer).bind(&s.subscription)
                .bind(&s.return_url).bind(s.source).bind(s.created_at).bind(s.link_expires_at).bind(s.started_at)
                .bind(s.deadline_at).bind(&s.experiment).bind(&s.variant)
                .execute(pool).await?;
        });
        Ok(())
    }

    /// Open a minted one-time link: succeeds once, before it expires; `None` for an unknown,
    /// used or expired token (the caller answers all three the same way).
    pub async fn start_minted_cancel_session(
        &self,
        token_hash: &str,
        now: i64,
        timeout_secs: i64,
    ) -> Result<Option<CancelSessionRow>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_as(START_MINTED).bind(token_hash).bind(now).bind(timeout_secs).fetch_optional(pool).await?),
        )
    }

    /// A session by its id.
    pub async fn cancel_session(&self, id: &str) -> Result<Option<CancelSessionRow>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(SELECT_SESSION).bind(id).fetch_optional(pool).await?))
    }

    /// Record the survey answer and the offers shown; false when the session is finished,
    /// past its deadline or busy with a Stripe call.
    pub async fn record_cancel_survey(&self, id: &str, a: &SurveyAnswer<'_>) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(RECORD_SURVEY)
            .bind(id).bind(a.reason).bind(a.feedback).bind(a.comment).bind(a.offers_shown_json).bind(a.at)
            .execute(pool).await?.rows_affected());
        Ok(done == 1)
    }

    /// Replace the session's comment (one written on the offer page) while it is unfinished.
    pub async fn record_cancel_comment(&self, id: &str, comment: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => { sqlx::query(RECORD_COMMENT).bind(id).bind(comment).execute(pool).await?; });
        Ok(())
    }

    /// Take the session's action lease for `lease_secs` before calling Stripe: `Some(attempt)`
    /// (1, 2, …) when taken, `None` when finished, expired or another request holds it.
    pub async fn claim_cancel_action(&self, id: &str, now: i64, lease_secs: i64) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> =
            on_pool!(self, pool => sqlx::query_as(CLAIM_ACTION).bind(id).bind(now).bind(lease_secs).fetch_optional(pool).await?);
        Ok(row.map(|(n,)| n))
    }

    /// Give the lease back after a failed Stripe call (the customer may try again).
    pub async fn release_cancel_action(&self, id: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => { sqlx::query(RELEASE_ACTION).bind(id).execute(pool).await?; });
        Ok(())
    }

    /// Record how the session ended — only after Stripe accepted the change.
    pub async fn record_cancel_outcome(
        &self,
        id: &str,
        outcome: Outcome,
        detail_json: &str,
        paused_until: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(RECORD_OUTCOME)
            .bind(id).bind(outcome.as_str()).bind(detail_json).bind(paused_until).bind(now)
            .execute(pool).await?.rows_affected());
        Ok(done == 1)
    }

    /// Write `abandoned` on sessions left unfinished past their deadline; returns how many.
    pub async fn mark_abandoned_cancel_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(MARK_ABANDONED).bind(now).execute(pool).await?.rows_affected());
        Ok(done)
    }

    /// The cancel flow between `from_ts` (inclusive) and `to_ts` (exclusive), unix seconds.
    ///
    /// Semantics (the owner summary's `cancel_flow` section reads this):
    /// - a session belongs to the period in which it was **started** (first opened); minted
    ///   links never opened are not sessions;
    /// - each session counts once, under its outcome: `paused`, `downgraded`, `discounted`,
    ///   `canceled`, `abandoned` (recorded, or unfinished past its deadline at the time of the
    ///   call), else `in_progress`;
    /// - `saved` = paused + downgraded + discounted; `save_rate()` = saved / ended sessions;
    /// - `reasons` counts sessions by survey reason, whatever their outcome.
    ///
    /// Unfinished sessions whose deadline is before `now` count as abandoned.
    pub async fn cancel_flow_stats(&self, from_ts: i64, to_ts: i64, now: i64) -> Result<CancelFlowStats, StoreError> {
        let rows: Vec<(Option<String>, Option<String>, Option<i64>)> =
            on_pool!(self, pool => sqlx::query_as(SELECT_STATS_ROWS).bind(from_ts).bind(to_ts).fetch_all(pool).await?);
        let mut stats = CancelFlowStats::default();
        for (outcome, reason, deadline) in rows {
            stats.sessions += 1;
            if let Some(r) = reason {
                *stats.reasons.entry(r).or_default() += 1;
            }
            match outcome.as_deref().and_then(Outcome::parse) {
                Some(Outcome::Paused) => stats.paused += 1,
                Some(Outcome::Downgraded) => stats.downgraded += 1,
                Some(Outcome::Discounted) => stats.discounted += 1,
                Some(Outcome::Canceled) => stats.canceled += 1,
                Some(Outcome::Abandoned) => stats.abandoned += 1,
                Some(Outcome::Resumed) => stats.resumed += 1,
                None if deadline.is_some_and(|d| d <= now) => stats.abandoned += 1,
                None => stats.in_progress += 1,
            }
        }
        stats.saved = stats.paused + stats.downgraded + stats.discounted;
        Ok(stats)
    }
}
