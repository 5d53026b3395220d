//! Splits, holdouts and lift: which variant of an A/B experiment a customer is in, which
//! customers an experiment holds out, and how an arm's outcome rate compares with the
//! holdout's.
//!
//! The interval for the difference of two proportions is Newcombe's hybrid score interval
//! (his method 10, 1998): each arm's rate gets a Wilson score interval, and the difference's
//! bounds combine the two arms' distances to their own bounds. Unlike the Wald interval it
//! stays inside [-1, 1] and keeps close to its nominal coverage for small samples and for
//! rates near 0 or 1 — which is where retention experiments live.

use sha2::{Digest, Sha256};

/// The arm name of the held-out customers.
pub const HOLDOUT: &str = "holdout";

/// z for a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Fewest decided customers per arm (holdout included) before a difference is reported;
/// below it the result says "not enough data yet".
pub const MIN_DECIDED_PER_ARM: u64 = 30;

/// Is `customer` held out of experiment `name`? The first 8 bytes of
/// SHA-256("name:holdout:customer") modulo 100, below `percent`. Stable across processes and
/// restarts, and independent of the a/b split (which hashes "name:customer"), so adding a
/// holdout moves no one between a and b except those now held out.
pub fn held_out(name: &str, customer: &str, percent: u8) -> bool {
    if percent == 0 {
        return false;
    }
    let digest = Sha256::digest(format!("{name}:holdout:{customer}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 100 < u64::from(percent)
}

/// The variant (`a` or `b`) of `customer` in experiment `name`: the first 8 bytes of
/// SHA-256("name:customer") modulo 100, below `percent_b` → `b`. Stable across processes,
/// replicas and restarts; independent between experiments.
pub fn variant(name: &str, customer: &str, percent_b: u8) -> &'static str {
    let digest = Sha256::digest(format!("{name}:{customer}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    if u64::from_be_bytes(first) % 100 < u64::from(percent_b) { "b" } else { "a" }
}

/// How an A/B experiment splits customers, whatever it varies (the cancel flow's offers, the
/// dunning emails' templates): its name, the share in variant b, and the share held out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub name: String,
    /// Share of customers in variant b, 0–100.
    pub percent_b: u8,
    /// Share held out of the experiment before the a/b split, 0–50 (`held_out`).
    pub holdout_percent: u8,
}

impl Split {
    /// `holdout`, `a` or `b` for `customer`.
    pub fn variant(&self, customer: &str) -> &'static str {
        if held_out(&self.name, customer, self.holdout_percent) {
            return HOLDOUT;
        }
        variant(&self.name, customer, self.percent_b)
    }
}

/// Wilson's score interval for `successes` out of `n`; `None` when `n` is 0.
pub fn wilson(successes: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 || successes > n {
        return None;
    }
    let (x, n) = (successes as f64, n as f64);
    let z2 = z * z;
    let center = (x + z2 / 2.0) / (n + z2);
    let half = z * (x * (n - x) / n + z2 / 4.0).sqrt() / (n + z2);
    Some(((center - half).max(0.0), (center + half).min(1.0)))
}

/// The difference of two rates (`arm − holdout`) with its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lift {
    pub difference: f64,
    pub low: f64,
    pub high: f64,
}

/// Newcombe's hybrid score interval for p₁ − p₂ (`x1` of `n1` against `x2` of `n2`).
pub fn newcombe(x1: u64, n1: u64, x2: u64, n2: u64, z: f64) -> Option<Lift> {
    let (l1, u1) = wilson(x1, n1, z)?;
    let (l2, u2) = wilson(x2, n2, z)?;
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let d = p1 - p2;
    Some(Lift {
        difference: d,
        low: d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(),
        high: d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt(),
    })
}

/// The lift of an arm over the holdout at 95 %, or `None` ("not enough data yet") while
/// either side has fewer than `MIN_DECIDED_PER_ARM` decided customers.
pub fn lift_vs_holdout(arm: (u64, u64), holdout: (u64, u64)) -> Option<Lift> {
    if arm.1 < MIN_DECIDED_PER_ARM || holdout.1 < MIN_DECIDED_PER_ARM {
        return None;
    }
    newcombe(arm.0, arm.1, holdout.0, holdout.1, Z95)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_stable_and_follow_the_split() {
        assert_eq!(variant("x", "cus_1", 50), variant("x", "cus_1", 50));
        assert_eq!(variant("x", "cus_1", 0), "a");
        assert_eq!(variant("x", "cus_1", 100), "b");
        let b = (0..10_000).filter(|i| variant("x", &format!("cus_{i}"), 30) == "b").count();
        assert!((2_700..3_300).contains(&b), "{b} of 10000 in b at 30 %");
    }

    /// SplitMix64: a small seeded generator, so the simulation is the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as f64 / u64::MAX as f64
        }

        fn bernoulli(&mut self, n: u64, p: f64) -> u64 {
            (0..n).filter(|_| self.next() < p).count() as u64
        }
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), table I: 81/263 → 0.2553–0.3662; 15/148 → 0.0624–0.1605.
        let (l, u) = wilson(81, 263, Z95).expect("interval");
        assert!((l - 0.2553).abs() < 5e-4 && (u - 0.3662).abs() < 5e-4, "{l} {u}");
        let (l, u) = wilson(15, 148, Z95).expect("interval");
        assert!((l - 0.0624).abs() < 5e-4 && (u - 0.1605).abs() < 5e-4, "{l} {u}");
        assert_eq!(wilson(0, 0, Z95), None);
        // Newcombe (1998), table II, example (a): 56/70 − 48/80 → 0.0524–0.3339 (method 10).
        let d = newcombe(56, 70, 48, 80, Z95).expect("interval");
        assert!((d.low - 0.0524).abs() < 5e-4 && (d.high - 0.3339).abs() < 5e-4, "{d:?}");
    }

    #[test]
    fn across_200_seeded_populations_the_95_interval_covers_the_true_effect_92_to_98_percent() {
        // A 10 % holdout keeping 60 % of customers, an arm lifting that to 70 %.
        let (p_arm, p_holdout) = (0.70, 0.60);
        let (n_arm, n_holdout) = (900, 100);
        let covered = (0..200u64)
            .filter(|seed| {
                let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
                let x_arm = rng.bernoulli(n_arm, p_arm);
                let x_holdout = rng.bernoulli(n_holdout, p_holdout);
                let l = lift_vs_holdout((x_arm, n_arm), (x_holdout, n_holdout)).expect("enough data");
                l.low <= p_arm - p_holdout && p_arm - p_holdout <= l.high
            })
            .count();
        assert!((184..=196).contains(&covered), "covered {covered} of 200");
    }

    #[test]
    fn small_samples_are_not_enough_data_and_the_holdout_is_stable() {
        assert_eq!(lift_vs_holdout((20, 29), (10, 100)), None);
        assert!(lift_vs_holdout((20, 30), (10, 30)).is_some());
        assert!(!held_out("x", "cus_1", 0));
        assert!(held_out("x", "cus_1", 100));
        let share = (0..10_000).filter(|i| held_out("pause-first", &format!("cus_{i}"), 10)).count();
        assert!((900..1100).contains(&share), "{share}");
        assert_eq!(held_out("pause-first", "cus_42", 10), held_out("pause-first", "cus_42", 10));
    }
}
