//! Discounts and their coupons' terms: when a discount is in force by its own dates.

use chrono::{DateTime, Months};

/// What a coupon takes off, and for how long.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CouponTerms {
    pub percent_off: Option<f64>,
    /// Per invoice, in `currency`'s minor units.
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    /// `once`, `repeating` or `forever`.
    pub duration: Option<String>,
    pub duration_in_months: Option<i64>,
    /// `applies_to.products` (`None`: every product).
    pub products: Option<Vec<String>>,
}

impl CouponTerms {
    pub(super) fn is_known(&self) -> bool {
        self.percent_off.is_some() || self.amount_off.is_some()
    }
}

/// A discount: a coupon applied to a customer or a subscription from `starts_at`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discount {
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub coupon_id: Option<String>,
    /// Terms that arrived with the discount (API versions that embedded the coupon).
    pub embedded: CouponTerms,
    pub starts_at: Option<i64>,
    /// Stripe's `end` (set for `repeating` coupons).
    pub ends_at: Option<i64>,
    /// When a `*.discount.deleted` event removed it.
    pub deleted_at: Option<i64>,
}

impl Discount {
    /// In force at `t` by its own dates: started, not past its end, not deleted. A `once`
    /// coupon covers one billing interval from its start; a `repeating` one without an `end`
    /// its `duration_in_months` from its start.
    pub(crate) fn in_force(&self, terms: Option<&CouponTerms>, interval_months: f64, t: i64) -> bool {
        if self.starts_at.is_some_and(|s| s > t) || self.deleted_at.is_some_and(|d| d < t) {
            return false;
        }
        self.effective_end(terms, interval_months).is_none_or(|e| e >= t)
    }

    /// When it stops applying by its own dates, if it does: its `end`, else a `once`
    /// coupon's one billing interval or a `repeating` one's `duration_in_months` from its start.
    pub fn effective_end(&self, terms: Option<&CouponTerms>, interval_months: f64) -> Option<i64> {
        let derived_end = || {
            let start = self.starts_at?;
            let terms = terms?;
            match terms.duration.as_deref() {
                Some("once") => Some(start + (interval_months * SECONDS_PER_MONTH).round() as i64),
                Some("repeating") => add_months(start, terms.duration_in_months?),
                _ => None,
            }
        };
        self.ends_at.or_else(derived_end)
    }
}

/// An average month (365.25 / 12 days), for `once` coupons on non-monthly intervals.
const SECONDS_PER_MONTH: f64 = 2_629_800.0;

fn add_months(ts: i64, months: i64) -> Option<i64> {
    let at = DateTime::from_timestamp(ts, 0)?;
    Some(at.checked_add_months(Months::new(u32::try_from(months).ok()?))?.timestamp())
}
