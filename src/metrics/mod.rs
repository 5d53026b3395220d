//! Operational metrics in Prometheus' text format (`GET /metrics`, owner only). A small
//! hand-written registry: two families fed by the webhook path, plus gauges read from the
//! store at scrape time. Per process: with several replicas, scrape each one.

mod text;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

pub use text::{Gauge, render};

/// Upper bounds (seconds) of the webhook latency histogram: from a group commit's few
/// milliseconds to a stalled database.
pub const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// What happened to one webhook, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Stored and projected for the first time.
    Stored,
    /// Seen before; nothing changed.
    Duplicate,
    /// Refused with a 4xx (signature, size, not an event).
    Rejected,
    /// Not stored because of us (5xx): Stripe retries.
    Failed,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// The process's counters; one per app, shared by every worker thread.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    events: BTreeMap<(String, Outcome), u64>,
    latency: Histogram,
}

/// A fixed-bucket histogram (cumulative on output).
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    /// Observations per bucket of `LATENCY_BUCKETS`, not cumulative; the last is `+Inf`.
    pub counts: [u64; LATENCY_BUCKETS.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let bucket = LATENCY_BUCKETS.iter().position(|le| seconds <= *le).unwrap_or(LATENCY_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

/// A consistent copy of the counters, for rendering.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub events: Vec<(String, Outcome, u64)>,
    pub latency: Histogram,
}

impl Metrics {
    /// Count one webhook of `event_type` ("unverified" before the signature is checked) with
    /// its outcome and the time from request to answer.
    pub fn observe_webhook(&self, event_type: &str, outcome: Outcome, elapsed: Duration) {
        // A poisoned lock only means another thread panicked mid-increment: keep counting.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.events.entry((event_type.to_owned(), outcome)).or_default() += 1;
        inner.latency.observe(elapsed.as_secs_f64());
    }

    /// Copy the counters out (the lock is held for a copy, never for I/O).
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Snapshot { events: inner.events.iter().map(|((t, o), n)| (t.clone(), *o, *n)).collect(), latency: inner.latency.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_the_totals() {
        let m = Metrics::default();
        m.observe_webhook("invoice.paid", Outcome::Stored, Duration::from_millis(3));
        m.observe_webhook("invoice.paid", Outcome::Stored, Duration::from_secs(60));
        m.observe_webhook("invoice.paid", Outcome::Duplicate, Duration::from_millis(1));
        let s = m.snapshot();
        assert_eq!(s.events, vec![("invoice.paid".into(), Outcome::Stored, 2), ("invoice.paid".into(), Outcome::Duplicate, 1)]);
        assert_eq!(s.latency.counts[0], 1, "1 ms is in the first bucket");
        assert_eq!(s.latency.counts[2], 1, "3 ms is in the 5 ms bucket");
        assert_eq!(s.latency.counts[LATENCY_BUCKETS.len()], 1, "a minute is only in +Inf");
        assert_eq!(s.latency.count, 3);
    }
}
