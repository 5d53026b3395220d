//! Lifecycle email, the pure part: which events start or stop a series, when a customer is
//! at risk from their product activity, and which arm of a campaign's holdout a customer is in
//! (A/B variants are `domain::lift::Split`'s).
//! No I/O; `lifecycle::reactions` and the scheduler apply the decisions.

use crate::domain::event::Event;
use crate::domain::fields::int_at;
use crate::domain::snapshots::{InvoiceSnapshot, SubscriptionSnapshot};

pub const DAY: i64 = 86_400;
pub const WEEK: i64 = 7 * DAY;

/// What an event means for the lifecycle campaigns.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A subscription invoice was paid with money: the first one starts onboarding.
    Paid { invoice: InvoiceSnapshot },
    /// Stripe's `customer.subscription.trial_will_end` (three days before the trial ends).
    TrialWillEnd { subscription: SubscriptionSnapshot },
    /// The subscription ended; `voluntary` when the customer asked (not a failed payment).
    Ended { subscription: SubscriptionSnapshot, voluntary: bool },
    /// The subscription is live (active, trialing, past due): the customer is (back) in.
    Live { subscription: SubscriptionSnapshot },
}

/// Read the lifecycle meaning of an event, if it has one.
pub fn trigger(event: &Event) -> Option<Trigger> {
    match event.object.get("object").and_then(|o| o.as_str())? {
        "invoice" => {
            let paid_event = matches!(event.kind.as_str(), "invoice.paid" | "invoice.payment_succeeded");
            let invoice = InvoiceSnapshot::read(&event.object)?;
            (paid_event && invoice.amount_paid > 0 && invoice.subscription.is_some() && invoice.customer.is_some())
                .then_some(Trigger::Paid { invoice })
        }
        "subscription" => {
            let subscription = SubscriptionSnapshot::read(&event.object)?;
            subscription.customer.as_ref()?;
            if event.kind == "customer.subscription.trial_will_end" {
                return Some(Trigger::TrialWillEnd { subscription });
            }
            match subscription.status.as_str() {
                "canceled" | "incomplete_expired" => {
                    let voluntary = subscription.status == "canceled" && is_voluntary(&subscription);
                    Some(Trigger::Ended { subscription, voluntary })
                }
                "active" | "trialing" | "past_due" => Some(Trigger::Live { subscription }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Stripe says why in `cancellation_details.reason`: `cancellation_requested` is the customer's
/// choice; `payment_failed` / `payment_disputed` are involuntary. Without a reason (older API
/// versions), a cancellation with `canceled_at` set and no failed-payment reason counts as asked for.
fn is_voluntary(s: &SubscriptionSnapshot) -> bool {
    match s.cancel_reason.as_deref() {
        Some("cancellation_requested") => true,
        Some(_) => false,
        None => s.canceled_at.is_some(),
    }
}

/// When the trial ends, from the subscription (or the event's own `trial_end`).
pub fn trial_end(event: &Event, s: &SubscriptionSnapshot) -> Option<i64> {
    s.trial_end.or_else(|| int_at(&event.object, "trial_end"))
}

/// The outbox `case_key` of each series; a step's dedupe key is `<case key>:day<N>`.
pub fn onboarding_case(customer: &str) -> String {
    format!("onboarding:{customer}")
}

/// One trial onboarding series per customer (a second trial starts none).
pub fn trial_onboarding_case(customer: &str) -> String {
    format!("trial_onboarding:{customer}")
}

/// One trial-ending reminder per subscription and trial end.
pub fn trial_case(subscription: &str, trial_end: i64) -> String {
    format!("trial_ending:{subscription}:{trial_end}")
}

/// One win-back series per ended subscription.
pub fn winback_case(customer: &str, subscription: &str) -> String {
    format!("winback:{customer}:{subscription}")
}

/// One re-engagement series per at-risk episode (keyed by when it began).
pub fn reengage_case(customer: &str, since: i64) -> String {
    format!("reengage:{customer}:{since}")
}

/// The arm name of customers who get a lifecycle series' emails when it has a holdout.
pub const TREATED: &str = "treated";

/// The arm of `customer` in lifecycle campaign `campaign` with a `percent` holdout: `None`
/// without a holdout (nothing to compare against), else `holdout` (the series is recorded,
/// no email goes) or `treated` — by `lift::held_out("lifecycle:<campaign>", …)`, stable and
/// independent of every other experiment.
pub fn series_arm(campaign: &str, customer: &str, percent: u8) -> Option<&'static str> {
    (percent > 0).then(|| {
        if crate::domain::lift::held_out(&format!("lifecycle:{campaign}"), customer, percent) {
            crate::domain::lift::HOLDOUT
        } else {
            TREATED
        }
    })
}

/// One annual-plan offer per subscription.
pub fn annual_offer_case(subscription: &str) -> String {
    format!("annual_offer:{subscription}")
}

/// The length of a "month" for the annual offer's rules: 30 days.
pub const OFFER_MONTH_DAYS: i64 = 30;

/// Steady activity, the annual offer's condition: at least one active day (UTC day numbers,
/// `unix / 86400`) in each of the `months` 30-day windows that end with `today`.
pub fn steady_activity(active_days: &[i64], today: i64, months: i64) -> bool {
    months > 0
        && (0..months).all(|k| {
            let to = today + 1 - OFFER_MONTH_DAYS * k;
            active_days.iter().any(|d| (to - OFFER_MONTH_DAYS..to).contains(d))
        })
}

/// What a year on the yearly price saves against twelve months on the monthly one, in minor
/// units, for `quantity` seats; `None` when it saves nothing (no offer is made then).
pub fn annual_saving(monthly_unit: i64, yearly_unit: i64, quantity: i64) -> Option<i64> {
    let saving = monthly_unit.checked_mul(12)?.checked_sub(yearly_unit)?.checked_mul(quantity.max(1))?;
    (saving > 0).then_some(saving)
}

/// When a customer counts as at risk (`[lifecycle.at_risk]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtRiskRule {
    /// No activity for this many days.
    pub inactive_days: i64,
    /// Or the last 7 days fell by at least this percentage against the baseline...
    pub drop_percent: i64,
    /// ...the average week of the this many weeks before them...
    pub baseline_weeks: i64,
    /// ...when that baseline is at least this many events a week (below it, noise).
    pub min_baseline_per_week: i64,
}

impl Default for AtRiskRule {
    fn default() -> Self {
        Self { inactive_days: 30, drop_percent: 50, baseline_weeks: 4, min_baseline_per_week: 5 }
    }
}

/// A customer's activity as the store sums it at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityFacts {
    pub first_at: i64,
    pub last_at: i64,
    /// Events in the last 7 days, today included (`Windows::recent`).
    pub recent_week: i64,
    /// Events in the `baseline_weeks` weeks before those 7 days (`Windows::baseline`).
    pub baseline_total: i64,
}

/// Why a customer is at risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    Inactive,
    ActivityDrop,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::ActivityDrop => "activity_drop",
        }
    }
}

/// The verdict with the numbers behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    pub risk: Risk,
    pub recent_week: i64,
    /// Average week of the baseline period (rounded down).
    pub baseline_week: i64,
}

/// The day ranges (UTC day numbers, `unix / 86400`, end exclusive) the store sums at `now`:
/// the last 7 days including today, and the baseline weeks before them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub recent: (i64, i64),
    pub baseline: (i64, i64),
}

impl Windows {
    pub fn at(rule: &AtRiskRule, now: i64) -> Self {
        let today = now.div_euclid(DAY);
        let recent_from = today - 6;
        Self { recent: (recent_from, today + 1), baseline: (recent_from - 7 * rule.baseline_weeks, recent_from) }
    }
}

/// Whether a customer with `facts` is at risk at `now`. The baseline averages only the weeks
/// the customer was tracked for (a customer reported for two weeks has a one-week baseline),
/// and a drop needs at least one full baseline week.
pub fn assess(rule: &AtRiskRule, facts: &ActivityFacts, now: i64) -> Option<Assessment> {
    let w = Windows::at(rule, now);
    let (from, to) = (w.baseline.0 * DAY, w.baseline.1 * DAY);
    let covered_weeks = ((to - facts.first_at.max(from)) / WEEK).clamp(0, rule.baseline_weeks);
    let baseline_week = if covered_weeks > 0 { facts.baseline_total / covered_weeks } else { 0 };
    let found = |risk| Some(Assessment { risk, recent_week: facts.recent_week, baseline_week });
    if now - facts.last_at >= rule.inactive_days * DAY {
        return found(Risk::Inactive);
    }
    let dropped = facts.recent_week * 100 <= baseline_week * (100 - rule.drop_percent);
    if covered_weeks > 0 && baseline_week >= rule.min_baseline_per_week.max(1) && dropped {
        return found(Risk::ActivityDrop);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // Midnight UTC, so day arithmetic in the tests is exact.
    const NOW: i64 = 1_800_000_000 - 1_800_000_000 % DAY;

    fn facts(first_days_ago: i64, last_days_ago: i64, recent: i64, baseline_total: i64) -> ActivityFacts {
        ActivityFacts {
            first_at: NOW - first_days_ago * DAY,
            last_at: NOW - last_days_ago * DAY,
            recent_week: recent,
            baseline_total,
        }
    }

    #[test]
    fn thirty_quiet_days_is_inactive() {
        let rule = AtRiskRule::default();
        assert_eq!(assess(&rule, &facts(90, 30, 0, 0), NOW).map(|a| a.risk), Some(Risk::Inactive));
        assert_eq!(assess(&rule, &facts(90, 29, 0, 0), NOW), None);
    }

    #[test]
    fn a_halved_week_against_the_baseline_is_a_drop() {
        let rule = AtRiskRule::default();
        // Baseline 4 weeks × 20 = 20 a week; 10 this week is exactly half.
        let a = assess(&rule, &facts(60, 1, 10, 80), NOW).expect("at risk");
        assert_eq!((a.risk, a.recent_week, a.baseline_week), (Risk::ActivityDrop, 10, 20));
        assert_eq!(assess(&rule, &facts(60, 1, 11, 80), NOW), None);
    }

    #[test]
    fn the_baseline_counts_only_tracked_weeks_and_needs_enough_events() {
        let rule = AtRiskRule::default();
        // Tracked for 15 days: one full baseline week of 20.
        assert_eq!(assess(&rule, &facts(15, 1, 5, 20), NOW).map(|a| a.baseline_week), Some(20));
        // Tracked for 6 days: no baseline yet.
        assert_eq!(assess(&rule, &facts(6, 1, 0, 0), NOW), None);
        // A baseline of 4 a week is below the minimum of 5.
        assert_eq!(assess(&rule, &facts(60, 1, 0, 16), NOW), None);
    }

    #[test]
    fn steady_activity_needs_a_day_in_every_window_and_the_saving_must_be_real() {
        let today = 20_000;
        // One active day in each of the last three 30-day windows.
        assert!(steady_activity(&[today, today - 45, today - 89], today, 3));
        // The oldest window (days today-89 ..= today-60) is empty.
        assert!(!steady_activity(&[today, today - 45, today - 90], today, 3));
        assert!(!steady_activity(&[], today, 1));
        assert_eq!(annual_saving(2000, 20_000, 1), Some(4000));
        assert_eq!(annual_saving(2000, 20_000, 2), Some(8000));
        assert_eq!(annual_saving(2000, 24_000, 1), None);
    }

    #[test]
    fn series_arms_exist_only_with_a_holdout_and_follow_its_share() {
        assert_eq!(series_arm("onboarding", "cus_1", 0), None);
        assert_eq!(series_arm("onboarding", "cus_1", 10), series_arm("onboarding", "cus_1", 10));
        let held = (0..10_000).filter(|i| series_arm("winback", &format!("cus_{i}"), 10) == Some("holdout")).count();
        assert!((900..1100).contains(&held), "{held} of 10000 held out at 10 %");
    }
}
