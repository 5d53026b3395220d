//! Every answer the webhook endpoint can give, decided in one place.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::domain::event::NotAnEvent;
use crate::ingest::signature::SignatureError;
use crate::store::writer::WriteError;
use crate::web::error::json_error;

/// When a refused-for-load sender should come back (`Retry-After`, seconds): a stalled
/// upload is cut off by the body deadline within that time, and a storage fault being
/// retried (busy database, no descriptor, full disk) has had as many retries.
const BUSY_RETRY_AFTER_SECS: &str = "10";

/// Why a webhook was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("missing Stripe-Signature header")]
    MissingSignature,
    #[error("{0}")]
    Signature(#[from] SignatureError),
    #[error("body is not a Stripe event: {0}")]
    NotAnEvent(#[from] NotAnEvent),
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("could not read the request body")]
    Body,
    /// The body did not arrive in time.
    #[error("the request body was not received in time")]
    BodyTimeout,
    /// Too many bodies are being read at once: Stripe retries.
    #[error("too many webhooks are being received at once; retry later")]
    Busy,
    /// Storage failed: Stripe must retry, so never a 4xx.
    #[error("event not stored; retry later")]
    Store(#[from] WriteError),
}

impl WebhookError {
    fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::Signature(SignatureError::Malformed(_) | SignatureError::NoV1) => "malformed_signature",
            Self::Signature(SignatureError::BadSignature) => "bad_signature",
            Self::Signature(SignatureError::TooOld { .. }) => "timestamp_too_old",
            Self::Signature(SignatureError::TooNew { .. }) => "timestamp_in_future",
            Self::NotAnEvent(_) => "not_an_event",
            Self::TooLarge { .. } => "payload_too_large",
            Self::Body => "bad_body",
            Self::BodyTimeout => "body_timeout",
            Self::Busy => "busy",
            Self::Store(WriteError::Refused) => "unstorable_event",
            Self::Store(_) => "storage_unavailable",
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(WriteError::Failed) => StatusCode::INTERNAL_SERVER_ERROR,
            // The database can never hold this event as it is; the rest of its batch is stored.
            Self::Store(WriteError::Refused) => StatusCode::BAD_REQUEST,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // Messages never carry the secret, the signature or the body (see SignatureError).
        let mut response = json_error(self.status_code(), self.code(), &self.to_string());
        if matches!(self, Self::Busy | Self::Store(WriteError::Unavailable | WriteError::Stopped)) {
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static(BUSY_RETRY_AFTER_SECS),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use crate::store::sqlite::wal_sync::SyncFailed;

    #[test]
    fn a_failed_fsync_answers_unavailable() {
        let e = StoreError::NotDurable(SyncFailed::Fsync);
        let answer = actix_web::ResponseError::status_code(&WebhookError::Store(WriteError::from(&e)));
        assert_eq!(answer, StatusCode::SERVICE_UNAVAILABLE);
    }
}
