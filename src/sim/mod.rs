//! A simulated subscription business, for the metrics correctness test and the scale bench.
//!
//! From a seed it plays customers through signups, trials, plan changes, discounts, pauses,
//! voluntary cancels and failed payments (recovered, lost or pending), keeping its OWN state
//! of every customer. `expected` computes the owner summary from that state — written from
//! `docs/metrics.md`, sharing no code with `domain::metrics` — and `events` renders the same
//! history as Stripe events, so a test can deliver the events and compare the two.

pub mod business;
pub mod events;
pub mod expected;

pub use business::{Business, Params};

/// A small, fast, seedable PRNG (splitmix64): the simulation needs reproducibility, not
/// cryptographic quality, and no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (hi exclusive; `lo` when empty).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo { lo } else { lo + (self.next_u64() % (hi - lo) as u64) as i64 }
    }

    /// True with probability `p` percent.
    pub fn chance(&mut self, percent: i64) -> bool {
        self.range(0, 100) < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as i64) as usize]
    }
}
