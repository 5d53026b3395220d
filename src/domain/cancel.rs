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
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::Downgraded => "downgraded",
            Self::Discounted => "discounted",
            Self::Canceled => "canceled",
            Self::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Paused, Self::Downgraded, Self::Discounted, Self::Canceled, Self::Abandoned].into_iter().find(|o| o.as_str() == s)
    }

    /// A save keeps the customer paying (or coming back).
    pub fn is_save(self) -> bool {
        matches!(self, Self::Paused | Self::Downgraded | Self::Discounted)
    }
}

/// What the customer clicked on the offer page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Pause { months: u32 },
    Downgrade,
    Discount,
    Cancel,
}

impl Choice {
    /// Parse the form's `choice` value: `pause_1`, `downgrade`, `discount`, `cancel`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
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
        }
    }

    /// The offer this choice takes, if any.
    pub fn offer(self) -> Option<OfferKind> {
        match self {
            Self::Pause { .. } => Some(OfferKind::Pause),
            Self::Downgrade => Some(OfferKind::Downgrade),
            Self::Discount => Some(OfferKind::Discount),
            Self::Cancel => None,
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
    /// A coupon is configured.
    pub coupon_configured: bool,
    /// Pause lengths are configured.
    pub pause_configured: bool,
}

/// The offers to show: those configured for the reason and enabled, that apply to this
/// subscription. Empty means the page shows only "cancel anyway".
pub fn applicable_offers(configured: &[OfferKind], enabled: &[OfferKind], facts: &OfferFacts) -> Vec<OfferKind> {
    let mut shown = Vec::new();
    for offer in configured {
        let applies = enabled.contains(offer)
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

    #[test]
    fn months_are_calendar_months() {
        // 2026-01-31T12:00:00Z + 1 month = 2026-02-28T12:00:00Z
        assert_eq!(add_months(1_769_860_800, 1), 1_772_280_000);
        assert_eq!(add_months(1_769_860_800, 0), 1_769_860_800);
        assert_eq!(months_before(1_772_280_000, 1), 1_769_860_800 - 3 * 86_400);
    }
}
