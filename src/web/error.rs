//! The one JSON error envelope every endpoint answers with:
//! `{"error": {"code": "bad_signature", "message": "…"}}`, and [`ApiError`], the error the JSON
//! handlers return: a handler says *what* went wrong, this module decides the status and body.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::store::StoreError;

/// A message shown in an error body: fixed text or text naming the limit that was passed.
pub type Message = Cow<'static, str>;

/// Why a JSON endpoint refused or failed a request. `code` is the stable machine-readable
/// name clients match on; `message` must be safe to show (no secrets, no internals).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (a parameter, a header, the body's content).
    #[error("{message}")]
    BadRequest { code: &'static str, message: Message },
    /// The thing asked for does not exist.
    #[error("{message}")]
    NotFound { code: &'static str, message: Message },
    /// The request conflicts with an earlier one (an idempotency key reused for other content).
    #[error("{message}")]
    Conflict { code: &'static str, message: Message },
    /// The body or a batch in it is larger than the endpoint accepts.
    #[error("{message}")]
    PayloadTooLarge { code: &'static str, message: Message },
    /// Well-formed, but a value is not acceptable (e.g. not a Stripe id).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: Message },
    /// Storage failed while `doing` something; the cause is logged, never shown.
    #[error("storage failed while {doing}")]
    Store {
        #[source]
        source: StoreError,
        doing: &'static str,
    },
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<Message>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    pub fn not_found(code: &'static str, message: impl Into<Message>) -> Self {
        Self::NotFound { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<Message>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    pub fn too_large(code: &'static str, message: impl Into<Message>) -> Self {
        Self::PayloadTooLarge { code, message: message.into() }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<Message>) -> Self {
        Self::Unprocessable { code, message: message.into() }
    }

    /// A storage failure while `doing` something (`"listing quarantined events"`): use as
    /// `.map_err(ApiError::store("…"))`.
    pub fn store(doing: &'static str) -> impl FnOnce(StoreError) -> Self {
        move |source| Self::Store { source, doing }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Store { source, .. } => storage_status(source),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::BadRequest { code, message }
            | Self::NotFound { code, message }
            | Self::Conflict { code, message }
            | Self::PayloadTooLarge { code, message }
            | Self::Unprocessable { code, message } => json_error(status, code, message),
            // The cause is logged here once, never put in the body (it may name the database).
            Self::Store { source, doing } if status == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(error = ?source, doing, "storage unavailable");
                json_error(status, "storage_unavailable", "storage is unavailable; try again shortly")
            }
            Self::Store { source, doing } => {
                tracing::error!(error = ?source, doing, "storage failed");
                json_error(status, "storage_failed", "storage failed; the error was logged")
            }
        }
    }
}

/// A JSON error response. `message` must be safe to show (no secrets, no internals). Used by
/// the `ResponseError` implementations only; handlers return an error type instead.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message}}))
}

/// The status a storage failure is answered with, decided here for every handler and page:
/// the database can't be reached right now, or a write was not made durable → `503` (try
/// again); anything else (a bug, data the database refuses) → `500`.
pub fn storage_status(e: &StoreError) -> StatusCode {
    match e {
        StoreError::Unavailable(_) | StoreError::NotDurable(_) | StoreError::WriterGone => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Answer for bodies over an endpoint's limit and malformed JSON, used by actix extractors.
pub fn json_config(limit: usize) -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default().limit(limit).error_handler(|err, _req| {
        let refused = match &err {
            actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
            | actix_web::error::JsonPayloadError::Overflow { .. } => ApiError::too_large("payload_too_large", err.to_string()),
            _ => ApiError::bad_request("bad_json", err.to_string()),
        };
        actix_web::error::InternalError::from_response(err, refused.error_response()).into()
    })
}

/// The same for URL-encoded forms (public pages' POSTs).
pub fn form_config(limit: usize) -> actix_web::web::FormConfig {
    actix_web::web::FormConfig::default().limit(limit).error_handler(|err, _req| {
        let refused = match &err {
            actix_web::error::UrlencodedError::Overflow { .. } => ApiError::too_large("payload_too_large", err.to_string()),
            _ => ApiError::bad_request("bad_form", err.to_string()),
        };
        actix_web::error::InternalError::from_response(err, refused.error_response()).into()
    })
}

/// Unknown routes answer in the same envelope.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("not_found", "no such endpoint"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: ApiError) -> (StatusCode, serde_json::Value) {
        let response = e.error_response();
        let status = response.status();
        let body = actix_web::body::to_bytes(response.into_body()).await.expect("body");
        (status, serde_json::from_slice(&body).expect("json body"))
    }

    fn envelope(code: &str, message: &str) -> serde_json::Value {
        json!({"error": {"code": code, "message": message}})
    }

    #[tokio::test]
    async fn each_refusal_answers_its_status_code_and_message() {
        let cases = [
            (ApiError::bad_request("bad_limit", format!("limit must be 1 to {}", 10)), StatusCode::BAD_REQUEST),
            (ApiError::not_found("customer_not_found", "no customer"), StatusCode::NOT_FOUND),
            (ApiError::conflict("idempotency_key_reused", "use a new key"), StatusCode::CONFLICT),
            (ApiError::too_large("too_many_items", "split it"), StatusCode::PAYLOAD_TOO_LARGE),
            (ApiError::unprocessable("invalid_customer", "cus_…"), StatusCode::UNPROCESSABLE_ENTITY),
        ];
        for (error, status) in cases {
            let (code, message) = match &error {
                ApiError::BadRequest { code, message }
                | ApiError::NotFound { code, message }
                | ApiError::Conflict { code, message }
                | ApiError::PayloadTooLarge { code, message }
                | ApiError::Unprocessable { code, message } => (*code, message.to_string()),
                ApiError::Store { .. } => unreachable!("no store error in this list"),
            };
            assert_eq!(error.status_code(), status);
            assert_eq!(answer(error).await, (status, envelope(code, &message)));
        }
    }

    #[tokio::test]
    async fn a_store_error_keeps_its_cause_and_never_shows_it() {
        let secret = "postgres://holdfast:hunter2@db.internal:5432/holdfast";
        let unavailable = StoreError::Unavailable(sqlx::Error::Configuration(secret.into()));
        let broken = StoreError::Database(sqlx::Error::Protocol(secret.into()));

        let e = ApiError::store("reading a customer record")(unavailable);
        assert!(std::error::Error::source(&e).is_some(), "the store error is the source");
        let (status, body) = answer(e).await;
        assert_eq!(
            (status, body.clone()),
            (StatusCode::SERVICE_UNAVAILABLE, envelope("storage_unavailable", "storage is unavailable; try again shortly"))
        );
        assert!(!body.to_string().contains("hunter2") && !body.to_string().contains("postgres://"));

        let (status, body) = answer(ApiError::store("searching customers")(broken)).await;
        assert_eq!(
            (status, body.clone()),
            (StatusCode::INTERNAL_SERVER_ERROR, envelope("storage_failed", "storage failed; the error was logged"))
        );
        assert!(!body.to_string().contains("hunter2"));
    }
}
