//! Why a cancel page was refused: one enum, one place deciding status and the words shown.
//! Pages never say which check failed in a way that helps a guesser, and never show ids.

use actix_web::http::StatusCode;

use crate::cancel::stripe_actions::ActionError;
use crate::store::StoreError;

/// A refused or failed cancel-flow request.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Unknown, forged, foreign, used or expired link; unknown session.
    #[error("link not valid")]
    BadLink,
    /// The session timed out before it was finished.
    #[error("session expired")]
    Expired,
    /// The form's CSRF token did not match the session's.
    #[error("csrf token mismatch")]
    Csrf,
    /// The customer has no live subscription to cancel.
    #[error("no live subscription")]
    NoSubscription,
    /// A malformed form or a choice that isn't on offer.
    #[error("bad form: {0}")]
    BadForm(&'static str),
    #[error("form too large")]
    TooLarge,
    #[error("rate limited")]
    RateLimited,
    /// `STRIPE_SECRET_KEY` is not set.
    #[error("stripe not configured")]
    StripeNotConfigured,
    /// Stripe refused or failed (or the call could not be made); nothing was recorded.
    #[error("stripe call failed")]
    Stripe(#[source] ActionError),
    /// Observe-only mode: the change was recorded for the owner, not made. Retrying can't
    /// help, so the page sends the customer to the owner instead of offering "try again".
    #[error("observe-only mode")]
    Observed,
    #[error("storage")]
    Store(#[from] StoreError),
}

impl PageError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadLink | Self::Expired | Self::Csrf => StatusCode::FORBIDDEN,
            Self::NoSubscription => StatusCode::NOT_FOUND,
            Self::BadForm(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::StripeNotConfigured | Self::Observed => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(e) => crate::web::error::storage_status(e),
            Self::Stripe(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// Title and message for the friendly page.
    pub fn words(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadLink => (
                "This link doesn't work",
                "It may have expired, been used already, or been copied incompletely. Please start again from your account page.",
            ),
            Self::Expired => (
                "This page has expired",
                "For your security it timed out. Nothing was changed. Please start again from your account page.",
            ),
            Self::Csrf => (
                "Please try again",
                "This form was out of date, so nothing was changed. Please start again from your account page.",
            ),
            Self::NoSubscription => {
                ("No active subscription", "We couldn't find an active subscription to cancel on your account.")
            }
            Self::BadForm(_) => ("Please try again", "We couldn't read that answer. Nothing was changed."),
            Self::TooLarge => ("That was too long", "Please shorten your comment and try again. Nothing was changed."),
            Self::RateLimited => crate::web::pages::TOO_MANY_REQUESTS,
            Self::Observed => (
                "We can't make this change here yet",
                "Nothing was changed. Please make this change from your account page, or contact us and we'll do it for you.",
            ),
            Self::StripeNotConfigured | Self::Stripe(_) | Self::Store(_) => {
                ("We couldn't complete that", "Something went wrong on our side and nothing was changed. Please try again.")
            }
        }
    }
}
