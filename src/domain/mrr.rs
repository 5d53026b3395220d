//! Monthly recurring revenue arithmetic, as `docs/metrics.md` defines it.

/// Monthly-normalised amount of one subscription item, in minor units (may carry fractions
/// of a cent: a yearly price ÷ 12). Unknown intervals or amounts contribute 0.
pub fn item_monthly(unit_amount: Option<i64>, quantity: i64, interval: Option<&str>, interval_count: Option<i64>) -> f64 {
    let Some(amount) = unit_amount else { return 0.0 };
    let count = interval_count.filter(|c| *c > 0).unwrap_or(1) as f64;
    let months = match interval {
        Some("month") => count,
        Some("year") => 12.0 * count,
        // Weeks and days are normalised with 52 weeks / 365 days in 12 months.
        Some("week") => count * 12.0 / 52.0,
        Some("day") => count * 12.0 / 365.0,
        _ => return 0.0,
    };
    amount as f64 * quantity.max(0) as f64 / months
}

/// Apply a discount to a monthly amount: `percent_off` scales it, `amount_off` (already
/// monthly-normalised) subtracts, never below zero.
pub fn discounted(monthly: f64, percent_off: Option<f64>, amount_off_monthly: Option<f64>) -> f64 {
    let after_percent = match percent_off {
        Some(p) => monthly * (1.0 - p / 100.0),
        None => monthly,
    };
    (after_percent - amount_off_monthly.unwrap_or(0.0)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_normalised_to_a_month() {
        assert_eq!(item_monthly(Some(2000), 1, Some("month"), Some(1)), 2000.0);
        assert_eq!(item_monthly(Some(2000), 3, Some("month"), Some(1)), 6000.0);
        assert_eq!(item_monthly(Some(12000), 1, Some("year"), Some(1)), 1000.0);
        assert_eq!(item_monthly(Some(3000), 1, Some("month"), Some(3)), 1000.0);
        assert!((item_monthly(Some(10000), 1, Some("year"), None) - 833.333_333).abs() < 1e-3);
        assert_eq!(item_monthly(None, 1, Some("month"), Some(1)), 0.0);
        assert_eq!(item_monthly(Some(100), 1, Some("fortnight"), Some(1)), 0.0);
    }

    #[test]
    fn discounts_scale_or_subtract_but_never_go_negative() {
        assert_eq!(discounted(1000.0, Some(30.0), None), 700.0);
        assert_eq!(discounted(1000.0, None, Some(250.0)), 750.0);
        assert_eq!(discounted(1000.0, None, Some(2500.0)), 0.0);
        assert_eq!(discounted(1000.0, None, None), 1000.0);
    }
}
