//! The pause that fits a subscription's billing, and how Stripe makes it.

use crate::cancel::rules::add_months;

/// How a subscription is billed, as far as the offers care: its one recurring interval and the
/// end of the period the customer has paid for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Billing {
    /// Stripe's `recurring.interval` (`day`, `week`, `month`, `year`) shared by every item;
    /// `None` when the items disagree or nothing is known.
    pub interval: Option<String>,
    pub interval_count: i64,
    /// The end of the current (paid) period: the next renewal.
    pub period_end: Option<i64>,
    /// Stripe can pause the subscription itself: flexible billing mode, charged
    /// automatically, no subscription schedule attached yet.
    pub pausable: bool,
}

impl Billing {
    /// The interval in whole calendar months (`month` × count, `year` × 12 × count); `None`
    /// for daily and weekly plans, which no calendar-month pause fits.
    pub fn months(&self) -> Option<u32> {
        let count = u32::try_from(self.interval_count.max(1)).ok()?;
        match self.interval.as_deref()? {
            "month" => Some(count),
            "year" => count.checked_mul(12),
            _ => None,
        }
    }

    /// A short name for the interval: `month`, `3 months`, `year`.
    pub fn label(&self) -> Option<String> {
        let unit = self.interval.as_deref()?;
        Some(if self.interval_count <= 1 { unit.to_owned() } else { format!("{} {unit}s", self.interval_count) })
    }
}

/// Collection resumes this long before the renewal that ends a pause, so that renewal's
/// invoice is created after `resumes_at` and is charged, not voided.
pub const RESUME_MARGIN_SECS: i64 = 3_600;

/// How a pause is made in Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseMethod {
    /// A subscription schedule from the subscription with one pause schedule: paused now
    /// (status `paused`: no invoices, no new periods, the unused time credited), resumed by
    /// Stripe at `resumes_at`. For subscriptions Stripe can pause (`Billing::pausable`), any
    /// interval.
    Schedule,
    /// `pause_collection[behavior]=void` until `resumes_at`. The customer keeps the period
    /// already paid for; the next `months ÷ interval` renewals are voided, which is exactly
    /// the paused time; the renewal after that is charged.
    Collection,
}

/// A pause that fits the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PausePlan {
    pub method: PauseMethod,
    pub months: u32,
    /// The day billing restarts, shown on the button: `now + months` for a schedule, the
    /// renewal `period_end + months` for a collection pause.
    pub resumes_on: i64,
    /// What Stripe is sent: `resumes_on` (schedule) or `resumes_on - RESUME_MARGIN_SECS`.
    pub resumes_at: i64,
}

/// The pause of `months` for a subscription billed as `billing`, or `None` when no pause of
/// that length forgoes only the paused time. Where Stripe can pause the subscription itself,
/// any length (nothing is invoiced while paused, and nothing more). Otherwise only a
/// collection pause, and none for a length that is not a whole number of billing periods
/// (any pause of a yearly plan shorter than a year, 1 or 2 months of a quarterly one), a
/// daily or weekly plan, or an unknown renewal date.
pub fn pause_plan(billing: &Billing, months: u32, now: i64) -> Option<PausePlan> {
    if months == 0 {
        return None;
    }
    if billing.pausable {
        let resumes_on = add_months(now, months);
        return Some(PausePlan { method: PauseMethod::Schedule, months, resumes_on, resumes_at: resumes_on });
    }
    let interval = billing.months()?;
    let period_end = billing.period_end.filter(|&end| end > now)?;
    if months == 0 || interval == 0 || !months.is_multiple_of(interval) {
        return None;
    }
    let resumes_on = add_months(period_end, months);
    Some(PausePlan { method: PauseMethod::Collection, months, resumes_on, resumes_at: resumes_on - RESUME_MARGIN_SECS })
}
