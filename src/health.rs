//! What the background parts report about themselves, for `/readyz`. A part that keeps
//! failing (the projector with its database gone, the outbox with the mail server down)
//! records why and since when; each retry keeps the first failure's time, and the first
//! success clears it. `/readyz` answers 503 with the reasons once a failure has lasted
//! [`UNREADY_AFTER_SECS`], so the platform restarts the machine or routes around it; a part
//! that is merely busy (the projector catching up on a backlog) is not failing and stays ready.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use crate::clock::Clock;

/// What one pass of a background part did (a feature's `try_run_once` answers it; its loop in
/// `workers` picks the pause from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled this many items; there may be more.
    Worked(usize),
    /// Nothing was due.
    Idle,
}

/// A failed delivery (an email, an alert) is retried after a minute, doubling, at most six
/// hours apart.
const FIRST_RETRY_SECS: i64 = 60;
const MAX_RETRY_SECS: i64 = 6 * 3600;

/// Delay before attempt `attempt + 1` after `attempt` failures.
pub fn backoff_secs(attempt: i64) -> i64 {
    let exp = attempt.saturating_sub(1).clamp(0, 20) as u32;
    FIRST_RETRY_SECS.saturating_mul(1 << exp).min(MAX_RETRY_SECS)
}

/// A failure that lasts this long makes the process unready: long enough that a database
/// restart or a lock held for a moment does not flap readiness, short enough that a platform
/// notices an outage within a minute.
pub const UNREADY_AFTER_SECS: i64 = 30;

/// The part-by-part failures of one process (clones share them).
#[derive(Clone, Debug)]
pub struct Health {
    failing: Arc<Mutex<BTreeMap<&'static str, Failing>>>,
    clock: Clock,
}

#[derive(Clone, Debug)]
struct Failing {
    since: i64,
    reason: String,
}

/// One failing part, as `/readyz` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartFailure {
    pub part: &'static str,
    pub reason: String,
    /// How long it has been failing (seconds).
    pub for_secs: i64,
    /// Whether it has failed long enough to make the process unready.
    pub unready: bool,
}

impl PartFailure {
    /// `projector: database unavailable for 30 s`.
    pub fn describe(&self) -> String {
        format!("{}: {} for {} s", self.part, self.reason, self.for_secs)
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new(Clock::system())
    }
}

impl Health {
    pub fn new(clock: Clock) -> Self {
        Self { failing: Arc::default(), clock }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, Failing>> {
        // A panic elsewhere while holding the lock leaves plain data: keep using it.
        self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `part` failed (again) now, for `reason`; logged once when it starts failing.
    pub fn failed(&self, part: &'static str, reason: &str) {
        let now = self.clock.now();
        let mut failing = self.lock();
        match failing.get_mut(part) {
            Some(f) => reason.clone_into(&mut f.reason),
            None => {
                tracing::warn!(part, reason, "background part failing; retrying with back-off");
                failing.insert(part, Failing { since: now, reason: reason.to_owned() });
            }
        }
    }

    /// `part` works again.
    pub fn recovered(&self, part: &'static str) {
        if let Some(f) = self.lock().remove(part) {
            tracing::info!(part, failed_for_secs = self.clock.now() - f.since, "background part recovered");
        }
    }

    /// Whether `part` is failing now.
    pub fn is_failing(&self, part: &'static str) -> bool {
        self.lock().contains_key(part)
    }

    /// The failing parts, by name.
    pub fn failures(&self) -> Vec<PartFailure> {
        let now = self.clock.now();
        self.lock()
            .iter()
            .map(|(part, f)| {
                let for_secs = (now - f.since).max(0);
                PartFailure { part, reason: f.reason.clone(), for_secs, unready: for_secs >= UNREADY_AFTER_SECS }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_up_to_six_hours() {
        assert_eq!(backoff_secs(1), 60);
        assert_eq!(backoff_secs(2), 120);
        assert_eq!(backoff_secs(5), 960);
        assert_eq!(backoff_secs(30), MAX_RETRY_SECS);
    }

    #[test]
    fn a_failure_makes_the_process_unready_only_once_it_has_lasted() {
        let clock = Clock::fixed(1_000);
        let health = Health::new(clock.clone());
        health.failed("projector", "database unavailable");
        clock.advance(UNREADY_AFTER_SECS - 1);
        health.failed("projector", "database locked");
        let f = health.failures();
        assert_eq!(f.len(), 1);
        assert!(!f[0].unready);
        clock.advance(1);
        let f = health.failures();
        assert!(f[0].unready);
        assert_eq!(f[0].describe(), format!("projector: database locked for {UNREADY_AFTER_SECS} s"));
        health.recovered("projector");
        assert!(health.failures().is_empty());
    }
}
