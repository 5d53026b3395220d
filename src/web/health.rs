//! `GET /healthz` (the process is up) and `GET /readyz` (the database answers, nothing on
//! the accept path is failing, and no background part has been failing for long: see
//! `store::health` and `crate::health`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use serde_json::json;

use crate::health::{Health, PartFailure};
use crate::store::Store;

/// Why the service is not ready: `503` in the JSON error envelope, plus what is failing.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct NotReady {
    code: &'static str,
    /// Every reason, joined (`event_log_append: disk full; projector: …`).
    message: String,
    failing: Vec<PartFailure>,
}

impl ResponseError for NotReady {
    fn status_code(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .json(json!({"error": {"code": self.code, "message": self.message}, "failing": self.failing}))
    }
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 `{status: "ready", database, failing: [...]}` (background parts failing for less than
/// the grace are listed, not held against readiness); otherwise 503 in the JSON error
/// envelope, the message naming every reason (`event_log_append: disk full`, `projector:
/// database unavailable for 30 s`), with `failing`.
pub async fn readyz(store: web::Data<Store>, health: web::Data<Health>) -> Result<HttpResponse, NotReady> {
    let failing = health.failures();
    let mut reasons: Vec<String> = store.health().faults().iter().map(|(part, reason)| format!("{part}: {reason}")).collect();
    reasons.extend(failing.iter().filter(|f| f.unready).map(|f| f.describe()));
    let mut code = "not_ready";
    if let Err(e) = store.ping().await {
        tracing::warn!(error = ?e, "readiness check failed");
        code = "database_unavailable";
        reasons.insert(0, "the database is not reachable".to_owned());
    }
    if reasons.is_empty() {
        return Ok(HttpResponse::Ok().json(json!({"status": "ready", "database": store.backend(), "failing": failing})));
    }
    let message = reasons.join("; ");
    tracing::warn!(reasons = %message, "not ready");
    Err(NotReady { code, message, failing })
}
