//! The one JSON error envelope every endpoint answers with:
//! `{"error": {"code": "bad_signature", "message": "…"}}`.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::json;

use crate::store::StoreError;

/// A JSON error response. `message` must be safe to show (no secrets, no internals).
pub fn json_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message}}))
}

/// The status a storage failure is answered with, decided here for every handler: the
/// database can't be reached right now, or a write was not made durable → `503` (try again);
/// anything else (a bug, data the database refuses) → `500`.
pub fn storage_status(e: &StoreError) -> StatusCode {
    match e {
        StoreError::Unavailable(_) | StoreError::NotDurable(_) | StoreError::WriterGone => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON answer to a storage failure while `doing` something: the status from
/// [`storage_status`], a message that says whether to retry, and the cause logged here once
/// (never in the body).
pub fn storage_failure(e: &StoreError, doing: &'static str) -> HttpResponse {
    let status = storage_status(e);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = ?e, doing, "storage unavailable");
        json_error(status, "storage_unavailable", "storage is unavailable; try again shortly")
    } else {
        tracing::error!(error = ?e, doing, "storage failed");
        json_error(status, "storage_failed", "storage failed; the error was logged")
    }
}

/// Answer for bodies over an endpoint's limit and malformed JSON, used by actix extractors.
pub fn json_config(limit: usize) -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default().limit(limit).error_handler(|err, _req| {
        let (status, code) = match &err {
            actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
            | actix_web::error::JsonPayloadError::Overflow { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            _ => (StatusCode::BAD_REQUEST, "bad_json"),
        };
        let message = err.to_string();
        actix_web::error::InternalError::from_response(err, json_error(status, code, &message)).into()
    })
}

/// The same for URL-encoded forms (public pages' POSTs).
pub fn form_config(limit: usize) -> actix_web::web::FormConfig {
    actix_web::web::FormConfig::default().limit(limit).error_handler(|err, _req| {
        let (status, code) = match &err {
            actix_web::error::UrlencodedError::Overflow { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            _ => (StatusCode::BAD_REQUEST, "bad_form"),
        };
        let message = err.to_string();
        actix_web::error::InternalError::from_response(err, json_error(status, code, &message)).into()
    })
}

/// Unknown routes answer in the same envelope.
pub async fn not_found() -> HttpResponse {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
