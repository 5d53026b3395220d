//! A small fixed-window limiter per client address for the public pages (cancel flow,
//! unsubscribe, come-back and update-payment links): enough to stop a script from guessing
//! links, hammering Stripe through us or sending mail. One process, in memory. Behind a proxy
//! the address comes from its forwarding headers when the proxy is trusted (`client_ip`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use actix_web::HttpRequest;

use crate::config::TrustedProxy;
use crate::web::client_ip::client_ip;

/// When the table grows past this, windows that are over are dropped.
const PRUNE_AT: usize = 10_000;
const WINDOW_SECS: i64 = 60;

/// Requests allowed per address per minute.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    seen: Mutex<HashMap<IpAddr, (i64, u32)>>,
    proxy: TrustedProxy,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, seen: Mutex::new(HashMap::new()), proxy: TrustedProxy::None }
    }

    /// Believe forwarding headers from these proxies.
    pub fn with_trusted_proxy(mut self, proxy: TrustedProxy) -> Self {
        self.proxy = proxy;
        self
    }

    /// Count one request at `now` against its client's address; false when over the limit.
    pub fn allow_request(&self, req: &HttpRequest, now: i64) -> bool {
        self.allow(client_ip(req, &self.proxy), now)
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
