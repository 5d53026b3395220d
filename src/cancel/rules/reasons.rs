//! The survey's answers, and how they map to Stripe's `cancellation_details.feedback`.

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
