//! Sends `alert_deliveries` rows: claim due rows (a short transaction), POST each with no
//! transaction open, record the outcome. A 2xx is delivered; a timeout, a connection error, a
//! 408, 429 or 5xx is retried with the outbox's back-off up to `MAX_ATTEMPTS`; any other answer
//! fails the row for good (a wrong URL does not get better). The destination URLs and the
//! signing secret are never logged: a log line names the row, its destination and the status.
//!
//! A destination whose deliveries keep failing (`FAULT_AFTER` in a row, retried or refused)
//! is reported to `/readyz` as the part `alert_delivery`, as the outbox reports the mail
//! server: listed at once, unready once it has lasted `crate::health::UNREADY_AFTER_SECS`;
//! the next delivery that goes through to it clears it.
//!
//! The generic webhook is signed the way Stripe signs its webhooks:
//! `Holdfast-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::clock::Clock;
use crate::health::{Health, Outcome, backoff_secs};
use crate::owner::alerts::storage::{ClaimedDelivery, DeliveryOutcome};
use crate::owner::config::AlertSettings;
use crate::store::Store;

/// The `/readyz` part.
pub const PART: &str = "alert_delivery";
/// Failed deliveries in a row to one destination before it is reported: one 500 or a timeout
/// is a receiver's moment, not an outage.
pub const FAULT_AFTER: u32 = 3;

/// Rows claimed per pass.
const BATCH: i64 = 32;
/// A claim not settled within this is taken over (its worker died).
const LEASE_SECS: i64 = 120;
/// Tries before a row is `failed`.
pub const MAX_ATTEMPTS: i64 = 8;
/// The whole request, connecting included.
const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this much of a receiver's answer is read (only for the log's status line).
const RESPONSE_MAX: usize = 4096;

type HmacSha256 = Hmac<Sha256>;

/// The `Holdfast-Signature` header's value for `body` sent at `t`.
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers the alert rows.
#[derive(Clone, Debug)]
pub struct AlertSender {
    store: Store,
    settings: AlertSettings,
    http: reqwest::Client,
    clock: Clock,
    health: Health,
    /// Failed deliveries in a row, by destination (clones share them).
    failures: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl AlertSender {
    pub fn new(store: Store, settings: AlertSettings, clock: Clock) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect would resend the signed body somewhere the owner did not configure.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Holdfast/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { store, settings, http, clock, health: Health::default(), failures: Arc::default() })
    }

    /// Report destinations that keep failing to `health` (the server's).
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Count the pass's outcomes per destination; fault or heal the part.
    fn report(&self, results: &[(ClaimedDelivery, DeliveryOutcome)]) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (row, outcome) in results {
            let n = failures.entry(row.destination.clone()).or_default();
            *n = match outcome {
                DeliveryOutcome::Sent => 0,
                DeliveryOutcome::Retry { .. } | DeliveryOutcome::Failed { .. } => n.saturating_add(1),
            };
        }
        let failing: Vec<&str> = failures.iter().filter(|(_, n)| **n >= FAULT_AFTER).map(|(d, _)| d.as_str()).collect();
        if failing.is_empty() {
            self.health.recovered(PART);
        } else {
            // Names the destinations only: their URLs are secrets.
            let reason = format!("deliveries to {} keep failing (alerts wait and are retried)", failing.join(" and "));
            self.health.failed(PART, &reason);
        }
    }

    /// Whether there is anything to send to (else the loop need not run).
    pub fn configured(&self) -> bool {
        self.settings.slack_url.is_some() || self.settings.webhook.is_some()
    }

    /// One pass at the clock's time.
    pub async fn try_run_once(&self) -> anyhow::Result<Outcome> {
        self.try_run_once_at(self.clock.now()).await
    }

    /// One pass as if the time were `now`.
    pub async fn try_run_once_at(&self, now: i64) -> anyhow::Result<Outcome> {
        let token = uuid::Uuid::new_v4().to_string();
        let rows = self.store.claim_alert_deliveries(now, LEASE_SECS, BATCH, &token).await?;
        if rows.is_empty() {
            return Ok(Outcome::Idle);
        }
        let n = rows.len();
        let mut results = Vec::with_capacity(n);
        for row in rows {
            let outcome = self.deliver(&row, now).await;
            match &outcome {
                DeliveryOutcome::Sent => tracing::info!(alert.row = row.id, destination = %row.destination, "alert delivered"),
                DeliveryOutcome::Retry { error, give_up, .. } => tracing::warn!(
                    alert.row = row.id, destination = %row.destination, attempts = row.attempts + 1, error = %error, give_up,
                    "alert delivery failed"
                ),
                DeliveryOutcome::Failed { error } => tracing::error!(
                    alert.row = row.id, destination = %row.destination, error = %error, "alert delivery refused; not retried"
                ),
            }
            results.push((row, outcome));
        }
        self.report(&results);
        self.store.record_alert_deliveries(&results, &token, now).await?;
        Ok(Outcome::Worked(n))
    }

    /// Passes until nothing is due at `now` (tests, the CLI).
    pub async fn run_until_idle_at(&self, now: i64) -> anyhow::Result<usize> {
        let mut total = 0;
        while let Outcome::Worked(n) = self.try_run_once_at(now).await? {
            total += n;
        }
        Ok(total)
    }

    async fn deliver(&self, row: &ClaimedDelivery, now: i64) -> DeliveryOutcome {
        let request = match (row.destination.as_str(), &self.settings.slack_url, &self.settings.webhook) {
            ("slack", Some(url), _) => self.http.post(url.0.expose_secret()),
            ("webhook", _, Some(hook)) => self
                .http
                .post(hook.url.0.expose_secret())
                .header("Holdfast-Signature", signature(hook.secret.expose_secret().as_bytes(), now, &row.body))
                .header("Holdfast-Alert-Id", &row.alert_id),
            _ => return DeliveryOutcome::Failed { error: format!("no {} destination is configured now", row.destination) },
        };
        let sent = request.header("content-type", "application/json").body(row.body.clone()).send().await;
        match sent {
            Ok(mut response) => {
                let status = response.status();
                // Read a little of the answer so the connection can be reused; never log it.
                let mut read = 0;
                while read < RESPONSE_MAX {
                    match response.chunk().await {
                        Ok(Some(chunk)) => read += chunk.len(),
                        _ => break,
                    }
                }
                if status.is_success() {
                    DeliveryOutcome::Sent
                } else if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
                    self.retry(row, format!("the receiver answered {status}"), now)
                } else {
                    DeliveryOutcome::Failed { error: format!("the receiver answered {status}") }
                }
            }
            // `without_url`: the URL is a secret (Slack's carries its token).
            Err(e) => self.retry(row, e.without_url().to_string(), now),
        }
    }

    fn retry(&self, row: &ClaimedDelivery, error: String, now: i64) -> DeliveryOutcome {
        let attempt = row.attempts + 1;
        DeliveryOutcome::Retry { error, retry_at: now + backoff_secs(attempt), give_up: attempt >= MAX_ATTEMPTS }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_stripes_scheme() {
        // HMAC-SHA256("key", "1.{}") computed independently.
        let s = signature(b"key", 1, "{}");
        assert!(s.starts_with("t=1,v1="), "{s}");
        assert_eq!(s.len(), "t=1,v1=".len() + 64);
        assert_ne!(signature(b"key", 2, "{}"), s, "the time is signed");
        assert_ne!(signature(b"other", 1, "{}"), s, "the secret is the key");
    }
}
