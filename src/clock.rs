//! The one clock. Everything that reads the time asks a `Clock`, so a test (or the demo) can
//! set the time instead of racing it. Clones share one setting: setting the clock a test
//! holds moves the clock of the server it started.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Stored in place of a fixed time when the clock follows the system's.
const SYSTEM: i64 = i64::MIN;

/// Unix seconds, from the system or from a time someone set.
#[derive(Debug, Clone)]
pub struct Clock {
    fixed: Arc<AtomicI64>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system's clock (until someone sets it).
    pub fn system() -> Self {
        Self { fixed: Arc::new(AtomicI64::new(SYSTEM)) }
    }

    /// A clock stopped at `at` (unix seconds).
    pub fn fixed(at: i64) -> Self {
        Self { fixed: Arc::new(AtomicI64::new(at)) }
    }

    /// The current time, unix seconds.
    pub fn now(&self) -> i64 {
        match self.fixed.load(Ordering::Relaxed) {
            SYSTEM => chrono::Utc::now().timestamp(),
            at => at,
        }
    }

    /// Stop the clock at `at` (every clone moves with it).
    pub fn set(&self, at: i64) {
        self.fixed.store(at, Ordering::Relaxed);
    }

    /// Move the clock by `secs` from where it reads now (stopping it there).
    pub fn advance(&self, secs: i64) {
        self.set(self.now() + secs);
    }

    /// Follow the system's clock again.
    pub fn resume_system(&self) {
        self.fixed.store(SYSTEM, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_setting() {
        let clock = Clock::system();
        let other = clock.clone();
        clock.set(1_700_000_000);
        assert_eq!(other.now(), 1_700_000_000);
        other.advance(60);
        assert_eq!(clock.now(), 1_700_000_060);
        clock.resume_system();
        assert!(other.now() > 1_700_000_060);
    }
}
