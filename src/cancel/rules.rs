//! The cancel flow's rules, without I/O: the survey's reasons and how they map to Stripe's
//! `cancellation_details.feedback`, the offers, and which offers apply to a subscription.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A survey answer. The order is the order shown on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    TooExpensive,
    Unused,
    MissingFeatures,
    SwitchedService,
    LowQuality,
    TechnicalProblems,
    Other,
}

impl Reason {
    /// Every reason, in page order.
    pub const ALL: [Reason; 7] = [
        Self::TooExpensive,
        Self::Unused,
        Self::MissingFeatures,
        Self::SwitchedService,
        Self::LowQuality,
        Self::TechnicalProblems,
        Self::Other,
    ];

    /// Our name for it (form values, the database, the owner summary).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooExpensive => "too_expensive",
            Self::Unused => "unused",
            Self::MissingFeatures => "missing_features",
            Self::SwitchedService => "switched_service",
            Self::LowQuality => "low_quality",
            Self::TechnicalProblems => "technical_problems",
            Self::Other => "other",
        }
    }

    /// Parse a form value; unknown values are `None` (never a default).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What the customer reads.
    pub fn label(self) -> &'static str {
        match self {
            Self::TooExpensive => "It's too expensive",
            Self::Unused => "I'm not using it enough",
            Self::MissingFeatures => "It's missing a feature I need",
            Self::SwitchedService => "I switched to another product",
            Self::LowQuality => "It didn't deliver the value I expected",
            Self::TechnicalProblems => "I had technical problems",
            Self::Other => "Something else",
        }
    }

    /// Stripe's `cancellation_details.feedback` value. Stripe has no "technical problems":
    /// it is sent as `other` and the comment is prefixed so the owner still sees why
    /// (`too_complex` means hard to use, which is a different complaint).
    pub fn stripe_feedback(self) -> &'static str {
        match self {
            Self::TooExpensive => "too_expensive",
            Self::Unused => "unused",
            Self::MissingFeatures => "missing_features",
            Self::SwitchedService => "switched_service",
            Self::LowQuality => "low_quality",
            Self::TechnicalProblems | Self::Other => "other",
        }
    }

    /// The comment sent to Stripe as `cancellation_details[comment]`.
    pub fn stripe_comment(self, comment: Option<&str>) -> Option<String> {
        let comment = comment.map(str::trim).filter(|c| !c.is_empty());
        match (self, comment) {
            (Self::TechnicalProblems, Some(c)) => Some(format!("Technical problems: {c}")),
            (Self::TechnicalProblems, None) => Some("Technical problems".into()),
            (_, c) => c.map(str::to_owned),
        }
    }
}

/// A save offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferKind {
    Pause,
    Downgrade,
    Discount,
}

impl OfferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Downgrade => "downgrade",
            Self::Discount => "discount",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pause, Self::Downgrade, Self::Discount].into_iter().find(|o| o.as_str() == s)
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Paused,
    Downgraded,
    Discounted,
    Canceled,
    /// Left unfinished past the session timeout.
    Abandoned,
    /// A cancellation already scheduled in Stripe was undone ("Keep my subscription").
    Resumed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::Downgraded => "downgraded",
            Self::Discounted => "discounted",
            Self::Canceled => "canceled",
            Self::Abandoned => "abandoned",
            Self::Resumed => "resumed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Paused, Self::Downgraded, Self::Discounted, Self::Canceled, Self::Abandoned, Self::Resumed]
            .into_iter()
            .find(|o| o.as_str() == s)
    }

    /// A save keeps the customer paying (or coming back).
    pub fn is_save(self) -> bool {
        matches!(self, Self::Paused | Self::Downgraded | Self::Discounted)
    }
}

/// What the customer clicked on the offer page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Pause {
        months: u32,
    },
    Downgrade,
    Discount,
    Cancel,
    /// Undo a cancellation already scheduled in Stripe.
    Keep,
}

impl Choice {
    /// Parse the form's `choice` value: `pause_1`, `downgrade`, `discount`, `cancel`, `keep`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "keep" => Some(Self::Keep),
            "downgrade" => Some(Self::Downgrade),
            "discount" => Some(Self::Discount),
            "cancel" => Some(Self::Cancel),
            other => other.strip_prefix("pause_")?.parse().ok().map(|months| Self::Pause { months }),
        }
    }

    /// Stable name, used in idempotency keys.
    pub fn key(self) -> String {
        match self {
            Self::Pause { months } => format!("pause_{months}"),
            Self::Downgrade => "downgrade".into(),
            Self::Discount => "discount".into(),
            Self::Cancel => "cancel".into(),
            Self::Keep => "keep".into(),
        }
    }

    /// The offer this choice takes, if any.
    pub fn offer(self) -> Option<OfferKind> {
        match self {
            Self::Pause { .. } => Some(OfferKind::Pause),
            Self::Downgrade => Some(OfferKind::Downgrade),
            Self::Discount => Some(OfferKind::Discount),
            Self::Cancel | Self::Keep => None,
        }
    }
}

/// The default offers per reason: too expensive → discount or downgrade; everything else →
/// pause (for a missing feature the comment is kept with the session and sent to Stripe).
pub fn default_offers_by_reason() -> BTreeMap<Reason, Vec<OfferKind>> {
    Reason::ALL
        .into_iter()
        .map(|r| match r {
            Reason::TooExpensive => (r, vec![OfferKind::Discount, OfferKind::Downgrade]),
            _ => (r, vec![OfferKind::Pause]),
        })
        .collect()
}

/// Facts about the customer's subscription that decide which offers apply.
#[derive(Debug, Clone, Default)]
pub struct OfferFacts {
    /// Collection is paused already (or a pause from an earlier session still runs).
    pub paused: bool,
    /// The cheaper price the subscription's only item maps to, if any.
    pub downgrade_to: Option<String>,
    /// A discount is in force, or one was applied within the cooldown.
    pub recently_discounted: bool,
    /// A coupon is configured for the subscription's interval and currency.
    pub coupon_configured: bool,
    /// At least one configured pause length fits the subscription (see `pause_plan`).
    pub pause_configured: bool,
    /// The last payment failed (`past_due`, `unpaid`): the card comes first, and no price
    /// offer is made on a debt.
    pub past_due: bool,
}

/// The offers to show: those configured for the reason and enabled, that apply to this
/// subscription. Empty means the page shows only "cancel anyway".
pub fn applicable_offers(configured: &[OfferKind], enabled: &[OfferKind], facts: &OfferFacts) -> Vec<OfferKind> {
    let mut shown = Vec::new();
    for offer in configured {
        let applies = enabled.contains(offer)
            && !facts.past_due
            && match offer {
                OfferKind::Pause => facts.pause_configured && !facts.paused,
                OfferKind::Downgrade => facts.downgrade_to.is_some(),
                OfferKind::Discount => facts.coupon_configured && !facts.recently_discounted,
            };
        if applies && !shown.contains(offer) {
            shown.push(*offer);
        }
    }
    shown
}

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

/// Which customers a segment's offers are for; unset fields match everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Segment {
    /// Stripe's `recurring.interval` (`month`, `year`, …).
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    /// Whole months since the subscription started, inclusive bounds.
    pub min_tenure_months: Option<u32>,
    pub max_tenure_months: Option<u32>,
    /// The offers for each reason; a reason absent here falls through to the next segment.
    pub offers_by_reason: BTreeMap<Reason, Vec<OfferKind>>,
}

impl Segment {
    pub fn matches(&self, billing: &Billing, tenure_months: u32) -> bool {
        self.interval.as_ref().is_none_or(|i| billing.interval.as_ref() == Some(i))
            && self.interval_count.is_none_or(|c| billing.interval_count.max(1) == c)
            && self.min_tenure_months.is_none_or(|m| tenure_months >= m)
            && self.max_tenure_months.is_none_or(|m| tenure_months <= m)
    }
}

/// The configured offers for `reason`: the first matching segment that lists the reason, else
/// the per-reason default.
pub fn configured_offers<'a>(
    segments: &'a [Segment],
    by_reason: &'a BTreeMap<Reason, Vec<OfferKind>>,
    billing: &Billing,
    tenure_months: u32,
    reason: Reason,
) -> &'a [OfferKind] {
    segments
        .iter()
        .filter(|s| s.matches(billing, tenure_months))
        .find_map(|s| s.offers_by_reason.get(&reason))
        .or_else(|| by_reason.get(&reason))
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Whole calendar months from `start` to `now` (0 when `now` is earlier).
pub fn whole_months_between(start: i64, now: i64) -> u32 {
    let mut months = 0;
    while months < 1200 && add_months(start, months + 1) <= now {
        months += 1;
    }
    months
}

/// `months` calendar months after `from` (unix seconds), same time of day; the day is clamped
/// to the target month's length (31 Jan + 1 month = 28/29 Feb).
pub fn add_months(from: i64, months: u32) -> i64 {
    use chrono::{DateTime, Months};
    DateTime::from_timestamp(from, 0)
        .and_then(|t| t.checked_add_months(Months::new(months)))
        .map(|t| t.timestamp())
        .unwrap_or(from + i64::from(months) * 30 * 86_400)
}

/// `months` calendar months before `from` (unix seconds): the start of a cooldown window.
pub fn months_before(from: i64, months: u32) -> i64 {
    use chrono::{DateTime, Months};
    DateTime::from_timestamp(from, 0)
        .and_then(|t| t.checked_sub_months(Months::new(months)))
        .map(|t| t.timestamp())
        .unwrap_or(from - i64::from(months) * 31 * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> OfferFacts {
        OfferFacts {
            paused: false,
            downgrade_to: Some("price_cheap".into()),
            recently_discounted: false,
            coupon_configured: true,
            pause_configured: true,
            past_due: false,
        }
    }

    const ALL: [OfferKind; 3] = [OfferKind::Pause, OfferKind::Downgrade, OfferKind::Discount];

    #[test]
    fn reasons_map_to_stripe_feedback_values() {
        let stripe = ["too_expensive", "unused", "missing_features", "switched_service", "low_quality", "too_complex", "other"];
        for r in Reason::ALL {
            assert!(stripe.contains(&r.stripe_feedback()), "{r:?}");
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::TechnicalProblems.stripe_comment(Some(" crashes ")).as_deref(), Some("Technical problems: crashes"));
        assert_eq!(Reason::MissingFeatures.stripe_comment(Some("SSO")).as_deref(), Some("SSO"));
        assert_eq!(Reason::Other.stripe_comment(Some("  ")), None);
        assert_eq!(Reason::parse("bogus"), None);
    }

    #[test]
    fn offers_appear_only_where_they_apply() {
        let by_reason = default_offers_by_reason();
        let expensive = &by_reason[&Reason::TooExpensive];
        assert_eq!(applicable_offers(expensive, &ALL, &facts()), vec![OfferKind::Discount, OfferKind::Downgrade]);
        let cheapest = OfferFacts { downgrade_to: None, ..facts() };
        assert_eq!(applicable_offers(expensive, &ALL, &cheapest), vec![OfferKind::Discount]);
        let discounted = OfferFacts { recently_discounted: true, downgrade_to: None, ..facts() };
        assert!(applicable_offers(expensive, &ALL, &discounted).is_empty());
        let paused = OfferFacts { paused: true, ..facts() };
        assert!(applicable_offers(&by_reason[&Reason::Unused], &ALL, &paused).is_empty());
        assert_eq!(applicable_offers(&by_reason[&Reason::Unused], &ALL, &facts()), vec![OfferKind::Pause]);
        assert!(applicable_offers(&by_reason[&Reason::Unused], &[OfferKind::Discount], &facts()).is_empty());
    }

    #[test]
    fn choices_parse_strictly() {
        assert_eq!(Choice::parse("pause_2"), Some(Choice::Pause { months: 2 }));
        assert_eq!(Choice::parse("pause_x"), None);
        assert_eq!(Choice::parse("cancel"), Some(Choice::Cancel));
        assert_eq!(Choice::parse("refund"), None);
    }

    fn billing(interval: &str, count: i64, period_end: i64) -> Billing {
        Billing { interval: Some(interval.into()), interval_count: count, period_end: Some(period_end), pausable: false }
    }

    #[test]
    fn pauses_forgo_only_whole_paused_periods() {
        // 2026-01-31T12:00:00Z; the paid period ends 2026-02-28T12:00:00Z.
        let now = 1_769_860_800;
        let end = 1_772_280_000;
        let monthly = billing("month", 1, end);
        let p = pause_plan(&monthly, 2, now).expect("monthly pauses fit");
        assert_eq!(p.resumes_on, add_months(end, 2));
        assert_eq!(p.resumes_at, add_months(end, 2) - RESUME_MARGIN_SECS);
        let quarterly = billing("month", 3, end);
        assert_eq!(pause_plan(&quarterly, 1, now), None);
        assert_eq!(pause_plan(&quarterly, 2, now), None);
        assert_eq!(pause_plan(&quarterly, 3, now).map(|p| p.resumes_on), Some(add_months(end, 3)));
        let yearly = billing("year", 1, end);
        assert!((1..=11).all(|m| pause_plan(&yearly, m, now).is_none()));
        assert_eq!(pause_plan(&yearly, 12, now).map(|p| p.resumes_on), Some(add_months(end, 12)));
        assert_eq!(pause_plan(&billing("week", 1, end), 1, now), None);
        assert_eq!(pause_plan(&billing("month", 1, now - 1), 1, now), None, "no known renewal ahead");
        // Stripe pauses a flexible-mode yearly subscription itself: from now, any length.
        let flexible = Billing { pausable: true, ..yearly };
        let p = pause_plan(&flexible, 2, now).expect("a scheduled pause");
        assert_eq!((p.method, p.resumes_on, p.resumes_at), (PauseMethod::Schedule, add_months(now, 2), add_months(now, 2)));
    }

    #[test]
    fn segments_pick_offers_by_interval_and_tenure() {
        let by_reason = default_offers_by_reason();
        let yearly_new = Segment {
            interval: Some("year".into()),
            max_tenure_months: Some(6),
            offers_by_reason: [(Reason::TooExpensive, vec![OfferKind::Downgrade])].into_iter().collect(),
            ..Segment::default()
        };
        let segments = [yearly_new];
        let yearly = billing("year", 1, 0);
        let monthly = billing("month", 1, 0);
        assert_eq!(configured_offers(&segments, &by_reason, &yearly, 2, Reason::TooExpensive), &[OfferKind::Downgrade]);
        assert_eq!(
            configured_offers(&segments, &by_reason, &yearly, 7, Reason::TooExpensive),
            &[OfferKind::Discount, OfferKind::Downgrade]
        );
        assert_eq!(
            configured_offers(&segments, &by_reason, &monthly, 2, Reason::TooExpensive),
            &[OfferKind::Discount, OfferKind::Downgrade]
        );
        assert_eq!(configured_offers(&segments, &by_reason, &yearly, 2, Reason::Unused), &[OfferKind::Pause]);
        assert_eq!(whole_months_between(1_769_860_800, 1_772_280_000), 1);
        assert_eq!(whole_months_between(1_772_280_000, 1_769_860_800), 0);
    }

    #[test]
    fn a_past_due_subscription_gets_no_offer() {
        let by_reason = default_offers_by_reason();
        let past_due = OfferFacts { past_due: true, ..facts() };
        for r in Reason::ALL {
            assert!(applicable_offers(&by_reason[&r], &ALL, &past_due).is_empty());
        }
    }

    #[test]
    fn months_are_calendar_months() {
        // 2026-01-31T12:00:00Z + 1 month = 2026-02-28T12:00:00Z
        assert_eq!(add_months(1_769_860_800, 1), 1_772_280_000);
        assert_eq!(add_months(1_769_860_800, 0), 1_769_860_800);
        assert_eq!(months_before(1_772_280_000, 1), 1_769_860_800 - 3 * 86_400);
    }
}
