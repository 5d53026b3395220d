//! The per-client limit of the public pages (cancel flow, unsubscribe, come-back and
//! update-payment links): enough to stop a script from guessing links, hammering Stripe
//! through us or sending mail. One process, in memory, on `governor`'s GCRA (a smooth rate
//! with a burst of the per-minute allowance, no doubled burst at a window's edge). Behind a
//! proxy the address comes from its forwarding headers when the proxy is trusted
//! (`client_ip`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix_web::HttpRequest;
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter as Gcra};

use crate::clock::Clock;
use crate::config::TrustedProxy;
use crate::web::client_ip::client_ip;

/// Past this many tracked clients, the ones whose allowance is full again are forgotten.
const PRUNE_AT: usize = 10_000;
/// The table's hard cap: when even pruning leaves this many clients, a new one is refused
/// (`429`) rather than letting an address-rotating attacker grow the table without bound.
const MAX_CLIENTS: usize = 100_000;

/// Who a request is counted against: an IPv4 address, or an IPv6 address's /64 (one
/// subscriber usually holds a whole /64, so per-address limits would be no limit at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(u32::from(v4)),
                None => Self::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The application's clock as governor reads time, so tests that set the clock move the
/// limiter too (seconds are fine grain enough for a per-minute allowance).
#[derive(Debug, Clone)]
struct AppClock(Clock);

impl GovernorClock for AppClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.0.now()).unwrap_or(0))
    }
}

/// Requests allowed per client per minute.
pub struct RateLimiter {
    limiter: Gcra<ClientKey, HashMapStateStore<ClientKey>, AppClock, NoOpMiddleware<Duration>>,
    proxy: TrustedProxy,
    clock: Clock,
    /// When the table was last pruned (unix seconds): a prune walks every client, so it runs
    /// at most once a second however many requests arrive.
    pruned_at: AtomicI64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("clients", &self.limiter.len()).finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// `per_minute` requests a minute per client (at least one), reading time from `clock`.
    pub fn new(per_minute: u32, clock: Clock) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: Gcra::hashmap_with_clock(quota, AppClock(clock.clone())),
            proxy: TrustedProxy::None,
            clock,
            pruned_at: AtomicI64::new(i64::MIN),
        }
    }

    /// Believe forwarding headers from these proxies.
    pub fn with_trusted_proxy(mut self, proxy: TrustedProxy) -> Self {
        self.proxy = proxy;
        self
    }

    /// Count one request against its client; false when over the limit.
    pub fn allow_request(&self, req: &HttpRequest) -> bool {
        self.allow(client_ip(req, &self.proxy))
    }

    /// Count one request from `ip`; false when over the limit. A request whose address is
    /// unknown (no peer address) is not limited here.
    pub fn allow(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return true };
        let clients = self.limiter.len();
        if clients > PRUNE_AT {
            let now = self.clock.now();
            let last = self.pruned_at.load(Ordering::Relaxed);
            if now > last && self.pruned_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                self.limiter.retain_recent();
            }
            if self.limiter.len() >= MAX_CLIENTS {
                return false;
            }
        }
        self.limiter.check_key(&ClientKey::from(ip)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_applies_per_client_and_refills_with_time() {
        let clock = Clock::fixed(120);
        let limiter = RateLimiter::new(2, clock.clone());
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert!(limiter.allow(a) && limiter.allow(a));
        assert!(!limiter.allow(a), "a third request in the same minute is refused");
        assert!(limiter.allow(b), "another client has its own allowance");
        clock.set(150);
        assert!(limiter.allow(a), "half a minute later one request is allowed again");
        assert!(!limiter.allow(a));
    }

    #[test]
    fn the_client_table_is_bounded_and_idle_clients_are_forgotten() {
        let clock = Clock::fixed(1_000);
        let limiter = RateLimiter::new(1, clock.clone());
        for n in 0..MAX_CLIENTS as u32 {
            assert!(limiter.allow(Some(IpAddr::from(n.to_be_bytes()))), "client {n}'s first request");
        }
        let newcomer = Some(IpAddr::from([250, 0, 0, 1]));
        assert!(!limiter.allow(newcomer), "a full table of busy clients refuses a new one");
        // governor forgets a client once its state can't be told from a fresh one: here, one
        // emission interval (a minute) after its allowance was full again.
        clock.set(1_121);
        assert!(limiter.allow(newcomer), "idle clients are forgotten");
        assert!(limiter.limiter.len() < PRUNE_AT, "{} clients kept", limiter.limiter.len());
    }

    #[test]
    fn addresses_of_one_ipv6_subscriber_share_an_allowance() {
        let limiter = RateLimiter::new(1, Clock::fixed(60));
        let first: IpAddr = "2001:db8:1:2::1".parse().expect("an IPv6 address");
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("an IPv6 address");
        let other_64: IpAddr = "2001:db8:1:3::1".parse().expect("an IPv6 address");
        assert!(limiter.allow(Some(first)));
        assert!(!limiter.allow(Some(same_64)), "rotating within a /64 does not reset the limit");
        assert!(limiter.allow(Some(other_64)));
    }
}
