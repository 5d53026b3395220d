//! NPS answers: stored once per survey (first answer wins, however often the link is opened
//! or its form posted), an optional comment, and — for a low score from a paying customer —
//! an at-risk episode with its re-engagement series, in the answer's transaction.

use crate::lifecycle::storage::{NewEpisode, open_episode, start_series};
use crate::mail::NewEmail;
use crate::store::conn::{execute, fetch};
use crate::store::plan::NewSeries;
use crate::store::{Store, StoreError, outbox};

/// A paying customer the survey may go to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NpsCandidate {
    pub customer: String,
    pub email: String,
    pub name: Option<String>,
    /// When their paying life began: the earliest trial end or start of their subscriptions.
    pub started_at: i64,
}

const CANDIDATES: &str = "SELECT c.id AS customer, c.email, c.name, \
     CAST(MIN(COALESCE(s.trial_end, s.start_date, s.created, 0)) AS BIGINT) AS started_at \
     FROM customers c JOIN subscriptions s ON s.customer = c.id \
     WHERE c.email IS NOT NULL AND CASE WHEN c.deleted THEN 0 ELSE 1 END = 1 \
     AND EXISTS (SELECT 1 FROM subscriptions p WHERE p.customer = c.id AND p.status IN ('active', 'past_due')) \
     GROUP BY c.id, c.email, c.name ORDER BY c.id";
const PAYING: &str = "SELECT COUNT(*) FROM subscriptions WHERE customer = $1 AND status IN ('active', 'past_due')";
const LAST_ACTIVITY: &str = "SELECT last_at FROM customer_activity WHERE customer = $1";
const INSERT: &str = "INSERT INTO nps_answers (survey, customer, score, paying, answered_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (survey) DO NOTHING";
const ANSWER: &str = "SELECT score, comment FROM nps_answers WHERE survey = $1";
const COMMENT: &str = "UPDATE nps_answers SET comment = $2, commented_at = $3 WHERE survey = $1 AND comment IS NULL";
const SCORES: &str =
    "SELECT answered_at, score FROM nps_answers WHERE answered_at >= $1 AND answered_at < $2 ORDER BY answered_at";

/// A new answer.
#[derive(Debug, Clone)]
pub struct NewAnswer<'a> {
    pub survey: &'a str,
    pub customer: &'a str,
    pub score: i64,
    pub paying: bool,
    pub at: i64,
}

/// The at-risk episode a low score starts, with its rendered re-engagement emails.
#[derive(Debug, Clone)]
pub struct RiskStart<'a> {
    pub episode: NewEpisode<'a>,
    pub series: NewSeries<'a>,
    pub emails: Vec<NewEmail>,
}

/// What became of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// Stored now; `at_risk` when it opened an episode.
    Stored { at_risk: bool },
    /// The survey was answered before, with this score: nothing changed.
    Already { score: i64 },
}

impl Store {
    /// Paying customers with an address, with the start of their paying life.
    pub async fn nps_candidates(&self) -> Result<Vec<NpsCandidate>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, NpsCandidate, CANDIDATES)).await
    }

    /// Whether `customer` pays now (an active or past-due subscription).
    pub async fn is_paying(&self, customer: &str) -> Result<bool, StoreError> {
        Ok(self.with_conn(async |c| fetch!(c, fetch_one, (i64,), PAYING, customer)).await?.0 > 0)
    }

    /// `customer`'s latest reported activity.
    pub async fn last_activity_at(&self, customer: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.with_conn(async |c| fetch!(c, fetch_optional, (i64,), LAST_ACTIVITY, customer)).await?.map(|r| r.0))
    }

    /// Store an answer once; with `risk` (a low score from a paying customer) open its
    /// at-risk episode and queue its series in the same transaction, unless one is open.
    pub async fn record_nps_answer(&self, a: &NewAnswer<'_>, risk: Option<&RiskStart<'_>>) -> Result<Answered, StoreError> {
        self.in_transaction(async |c| {
            if execute!(c, INSERT, a.survey, a.customer, a.score, i64::from(a.paying), a.at)? == 0 {
                let (score, _) = fetch!(c, fetch_one, (i64, Option<String>), ANSWER, a.survey)?;
                return Ok(Answered::Already { score });
            }
            let Some(risk) = risk else { return Ok(Answered::Stored { at_risk: false }) };
            if !open_episode(c, &risk.episode).await? {
                return Ok(Answered::Stored { at_risk: false });
            }
            // As the at-risk check does: a series only when there are emails to send.
            if !risk.emails.is_empty() && start_series(c, &risk.series).await? {
                for email in &risk.emails {
                    outbox::enqueue(c, email, a.at).await?;
                }
            }
            Ok(Answered::Stored { at_risk: true })
        })
        .await
    }

    /// The answer to `survey`: its score and comment.
    pub async fn nps_answer(&self, survey: &str) -> Result<Option<(i64, Option<String>)>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_optional, (i64, Option<String>), ANSWER, survey)).await
    }

    /// Add the comment to an answered survey (once); `false` when there was no answer or
    /// it has a comment already.
    pub async fn add_nps_comment(&self, survey: &str, comment: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self.in_transaction(async |c| execute!(c, COMMENT, survey, comment, now)).await? == 1)
    }

    /// Every answer's time and score in `[from, to)`.
    pub async fn nps_scores(&self, from: i64, to: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        self.with_conn(async |c| fetch!(c, fetch_all, (i64, i64), SCORES, from, to)).await
    }
}
