//! The outbox sender: claim due rows (a short transaction), send each by the transport with
//! no transaction open, record the outcome (another short transaction). Transient failures
//! back off exponentially up to `OUTBOX_MAX_ATTEMPTS`, then the row is `failed`; a permanent
//! SMTP rejection marks it `bounced` and suppresses the address.

use crate::clock::Clock;
use crate::health::{Health, backoff_secs};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::mail::EmailContent;
use crate::mail::transport::{Mailer, Outgoing, SendFailure};
use crate::store::Store;
use crate::store::outbox::{ClaimedEmail, SendOutcome};
use crate::workers::Outcome;

/// Rows claimed per pass.
pub const BATCH: i64 = 64;
/// Sends in flight at once per worker.
const CONCURRENCY: usize = 8;
/// A claim not settled within this is taken over by another worker (its worker died).
pub const LEASE_SECS: i64 = 300;

/// Sends the outbox.
#[derive(Clone, Debug)]
pub struct OutboxWorker {
    store: Store,
    mailer: Mailer,
    max_attempts: i64,
    clock: Clock,
    /// Observe-only mode: due rows are marked `observed`, never sent.
    observe: bool,
    /// Where a database or mail server outage is reported (`/readyz`).
    health: Health,
}

/// The parts' names in `/readyz`: the outbox's database work, and the mail server.
const PART: &str = "outbox";
const MAIL_PART: &str = "mail server";

impl OutboxWorker {
    pub fn new(store: Store, mailer: Mailer, max_attempts: i64) -> Self {
        Self { store, mailer, max_attempts, clock: Clock::system(), observe: false, health: Health::default() }
    }

    /// Observe-only mode (`HOLDFAST_MODE=observe`): record instead of sending.
    pub fn observing(mut self, observe: bool) -> Self {
        self.observe = observe;
        self
    }

    /// Report outages to `health` (the server's).
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Read the time from `clock` (the server's).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// One pass at the current time.
    pub async fn try_run_once(&self) -> anyhow::Result<Outcome> {
        self.try_run_once_at(self.clock.now()).await
    }

    /// One pass as if the time were `now`: claim what is due, send, record. A failed pass (the
    /// database) or a batch whose sends all failed for want of the mail server is reported to
    /// `/readyz`; the next pass that works clears it. Rows themselves back off one by one.
    #[tracing::instrument(name = "outbox_pass", skip_all)]
    pub async fn try_run_once_at(&self, now: i64) -> anyhow::Result<Outcome> {
        let pass = self.pass(now).await;
        match &pass {
            Err(e) => {
                let reason =
                    e.downcast_ref::<crate::store::StoreError>().map_or("database unavailable", crate::store::log::outage_reason);
                self.health.failed(PART, reason);
            }
            Ok((_, mail)) => {
                self.health.recovered(PART);
                if mail.sent > 0 {
                    self.health.recovered(MAIL_PART);
                } else if mail.unreachable > 0 {
                    self.health.failed(MAIL_PART, "unreachable (emails wait and are retried)");
                } else if self.health.is_failing(MAIL_PART) && self.store.outbox_counts().await.is_ok_and(|c| c.pending == 0) {
                    // Nothing left to send (the waiting emails were withdrawn or gave up):
                    // nothing is held up by the mail server any more.
                    self.health.recovered(MAIL_PART);
                }
            }
        }
        pass.map(|(outcome, _)| outcome)
    }

    async fn pass(&self, now: i64) -> anyhow::Result<(Outcome, MailReport)> {
        let token = uuid::Uuid::new_v4().to_string();
        let rows = self.store.claim_due_outbox(now, LEASE_SECS, BATCH, &token).await?;
        if rows.is_empty() {
            return Ok((Outcome::Idle, MailReport::default()));
        }
        let count = rows.len();
        if self.observe {
            // Nothing leaves: each due row is kept, with what it would have said, for the owner.
            let results: Vec<(ClaimedEmail, SendOutcome)> = rows.into_iter().map(|r| (r, SendOutcome::Observed)).collect();
            results.iter().for_each(|(row, outcome)| log_outcome(row, outcome));
            self.store.record_send_outcomes(&results, &token, now).await?;
            return Ok((Outcome::Worked(count), MailReport::default()));
        }
        // Checked once per batch; if the check itself fails, the rows are retried later.
        let mut results: Vec<(ClaimedEmail, SendOutcome)> = Vec::with_capacity(count);
        let mut to_send = Vec::with_capacity(count);
        match self.store.suppression_reasons(&rows).await {
            Ok(reasons) => {
                for (row, reason) in rows.into_iter().zip(reasons) {
                    match reason {
                        Some(reason) => results.push((row, SendOutcome::Suppressed { reason })),
                        None => to_send.push(row),
                    }
                }
            }
            Err(e) => {
                for row in rows {
                    let outcome = self.retry(&row, format!("suppression check failed: {e}"), now);
                    results.push((row, outcome));
                }
            }
        }
        let sent: Vec<(ClaimedEmail, SendOutcome)> = futures::stream::iter(to_send)
            .map(|row| async move {
                let outcome = self.deliver(&row, now).await;
                (row, outcome)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mail = MailReport {
            sent: sent.iter().filter(|(_, o)| matches!(o, SendOutcome::Sent { .. } | SendOutcome::Bounced { .. })).count(),
            unreachable: sent.iter().filter(|(_, o)| matches!(o, SendOutcome::Retry { .. })).count(),
        };
        results.extend(sent);
        results.iter().for_each(|(row, outcome)| log_outcome(row, outcome));
        self.store.record_send_outcomes(&results, &token, now).await?;
        Ok((Outcome::Worked(count), mail))
    }

    /// Passes until nothing is due at `now` (tests, the CLI).
    pub async fn run_until_idle_at(&self, now: i64) -> anyhow::Result<usize> {
        let mut total = 0;
        while let Outcome::Worked(n) = self.try_run_once_at(now).await? {
            total += n;
        }
        Ok(total)
    }

    async fn deliver(&self, row: &ClaimedEmail, now: i64) -> SendOutcome {
        let message_id = self.message_id(row);
        let content = EmailContent { subject: row.subject.clone(), text: row.body_text.clone(), html: row.body_html.clone() };
        let mail = Outgoing {
            to: &row.recipient,
            message_id: &message_id,
            content: &content,
            unsubscribe_url: row.unsubscribe_url.as_deref(),
        };
        match self.mailer.send(mail).await {
            Ok(()) => SendOutcome::Sent { message_id },
            // The row keeps the cause's text; the typed error decides what happens next.
            Err(e) => match e.kind() {
                SendFailure::Permanent => SendOutcome::Bounced { error: e.to_string() },
                SendFailure::Invalid => SendOutcome::Invalid { error: e.to_string() },
                SendFailure::Transient => self.retry(row, e.to_string(), now),
            },
        }
    }

    fn retry(&self, row: &ClaimedEmail, error: String, now: i64) -> SendOutcome {
        let attempt = row.attempts + 1;
        SendOutcome::Retry { error, retry_at: now + backoff_secs(attempt), give_up: attempt >= self.max_attempts }
    }

    /// Stable across retries of the same row, unique per row: `<42.3fa9c1d2e4b5@domain>`.
    fn message_id(&self, row: &ClaimedEmail) -> String {
        let digest = Sha256::digest(row.dedupe_key.as_bytes());
        format!("<{}.{}@{}>", row.id, hex::encode(&digest[..6]), self.mailer.domain())
    }
}

/// What the mail server did in one pass: answered (sent or refused for good), or failed.
#[derive(Debug, Default, Clone, Copy)]
struct MailReport {
    sent: usize,
    unreachable: usize,
}

fn log_outcome(row: &ClaimedEmail, outcome: &SendOutcome) {
    // Never the address or the content: the row id and template identify it.
    match outcome {
        SendOutcome::Sent { .. } => tracing::info!(outbox.id = row.id, template = %row.template, "email sent"),
        SendOutcome::Retry { error, give_up: false, .. } => {
            tracing::warn!(outbox.id = row.id, attempts = row.attempts + 1, error = %error, "email send failed; will retry")
        }
        SendOutcome::Retry { error, give_up: true, .. } => {
            tracing::error!(outbox.id = row.id, attempts = row.attempts + 1, error = %error, "email send failed; giving up")
        }
        SendOutcome::Bounced { error } => tracing::warn!(outbox.id = row.id, error = %error, "email bounced; address suppressed"),
        SendOutcome::Suppressed { reason } => tracing::info!(outbox.id = row.id, reason, "email not sent: suppressed"),
        SendOutcome::Invalid { error } => tracing::error!(outbox.id = row.id, error = %error, "email invalid; not sent"),
        SendOutcome::Observed => {
            tracing::info!(outbox.id = row.id, template = %row.template, "observe mode: email recorded, not sent")
        }
    }
}
