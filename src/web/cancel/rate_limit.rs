//! A small fixed-window limiter per client address for the public cancel pages: enough to
//! stop a script from guessing links or hammering Stripe through us. One process, in memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// When the table grows past this, windows that are over are dropped.
const PRUNE_AT: usize = 10_000;
const WINDOW_SECS: i64 = 60;

/// Requests allowed per address per minute.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    seen: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, seen: Mutex::new(HashMap::new()) }
    }

    /// Count one request from `ip` at `now`; false when over the limit.
    pub fn allow(&self, ip: Option<IpAddr>, now: i64) -> bool {
        let Some(ip) = ip else { return true };
        let window = now.div_euclid(WINDOW_SECS);
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() > PRUNE_AT {
            seen.retain(|_, (w, _)| *w == window);
        }
        let entry = seen.entry(ip).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        entry.1 <= self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_applies_per_address_and_window() {
        let limiter = RateLimiter::new(2);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert!(limiter.allow(a, 120) && limiter.allow(a, 121));
        assert!(!limiter.allow(a, 122));
        assert!(limiter.allow(b, 122));
        assert!(limiter.allow(a, 180));
    }
}
