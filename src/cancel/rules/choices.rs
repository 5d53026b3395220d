//! The save offers, what the customer clicked on the offer page, and how a session ended.

use serde::{Deserialize, Serialize};

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
