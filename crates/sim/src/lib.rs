//! A simulated subscription business, for the metrics truth tests, the scale bench and
//! `holdfast demo`.
//!
//! From a seed it plays customers through signups, trials, plan changes, discounts, pauses,
//! voluntary cancels and failed payments (recovered, lost or pending), keeping its OWN state
//! of every customer. `expected` computes the owner summary from that state — written from
//! `docs/metrics.md`, sharing no code with Holdfast's `figures` module (a crate of its own,
//! it cannot reach the service's code) — and `events` renders the same history as Stripe
//! events, so a test can deliver the events and compare the two.

pub mod business;
pub mod events;
pub mod expected;
mod play;

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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::{Value, json};

    use super::*;

    const DAY: i64 = 86_400;
    const START: i64 = 1_735_689_600; // 2025-01-01

    fn business(seed: u64) -> Business {
        Business::simulate(Params { seed, customers: 60, start: START, end: START + 425 * DAY, signup_until: START + 330 * DAY })
    }

    /// id, type, time and object of every event, to compare two renderings.
    fn rendered(b: &Business) -> Vec<(String, &'static str, i64, Value)> {
        events::render(b, &|_| json!({})).into_iter().map(|e| (e.id, e.kind, e.created, e.object)).collect()
    }

    #[test]
    fn the_rng_repeats_from_a_seed_and_stays_in_range() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..100).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));

        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let x = rng.range(-5, 5);
            assert!((-5..5).contains(&x), "{x} outside -5..5");
        }
        assert_eq!(rng.range(3, 3), 3, "an empty range gives its low end");
        assert_eq!(rng.range(3, 1), 3);
        assert!((0..1000).all(|_| !rng.chance(0)) && (0..1000).all(|_| rng.chance(100)));
        let picked: HashSet<char> = (0..1000).map(|_| rng.pick(&['a', 'b', 'c'])).collect();
        assert_eq!(picked, HashSet::from(['a', 'b', 'c']), "every element is picked over 1,000 draws");
    }

    #[test]
    fn the_same_seed_plays_the_same_business_and_another_seed_another() {
        let (a, b, c) = (business(11), business(11), business(12));
        assert_eq!(rendered(&a), rendered(&b));
        assert_ne!(
            rendered(&a).into_iter().map(|e| e.3).collect::<Vec<_>>(),
            rendered(&c).into_iter().map(|e| e.3).collect::<Vec<_>>()
        );
        assert_eq!(expected::summaries(&a), expected::summaries(&b));
    }

    #[test]
    fn events_are_unique_and_each_customers_are_in_time_order_within_the_simulated_span() {
        let b = business(3);
        let events = events::render(&b, &|_| json!({}));
        assert!(events.len() > b.customers.len(), "{} events for {} customers", events.len(), b.customers.len());
        let ids: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), events.len(), "event ids are unique");
        for (i, c) in b.customers.iter().enumerate() {
            let prefix = format!("evt_3_{i:05}_");
            let times: Vec<i64> = events.iter().filter(|e| e.id.starts_with(&prefix)).map(|e| e.created).collect();
            assert!(!times.is_empty(), "{} has events", c.id);
            assert!(times.is_sorted(), "{}'s events in time order: {times:?}", c.id);
            assert!(times.iter().all(|t| (START..=b.params.end).contains(t)), "{}'s events inside the span", c.id);
        }
    }

    #[test]
    fn the_expected_summary_has_every_month_of_the_span_in_order() {
        let b = business(5);
        let (labels, bounds) = expected::months(START, b.params.end);
        assert_eq!(labels.first().map(String::as_str), Some("2025-01"));
        assert_eq!(labels.last().map(String::as_str), Some("2026-03"), "425 days from 2025-01-01 end on 2026-03-02: 15 months");
        assert_eq!(labels.len(), 15);
        assert_eq!(bounds.len(), labels.len() + 1, "a boundary after the last month");
        let summaries = expected::summaries(&b);
        let months: Vec<&str> = summaries.iter().filter_map(|s| s["month"].as_str()).collect();
        assert_eq!(months, labels);
        assert_eq!(expected::currencies(&b), vec!["jpy", "usd"], "one customer in ten pays in yen");
        for currency in ["jpy", "usd"] {
            let only = expected::summaries_in(&b, currency);
            assert_eq!(only.len(), labels.len());
            assert!(only.iter().all(|s| s["currency"] == currency), "{currency}: every month in its currency");
        }
    }
}
