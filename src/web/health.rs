//! `GET /healthz` (the process is up) and `GET /readyz` (the accept path works: the database
//! answers and no part of the append path is failing).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::error::json_error;
use crate::store::Store;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when nothing on the accept path is failing (see `store::health`) and the database
/// answers; otherwise `503` naming each failing part and why.
pub async fn readyz(store: web::Data<Store>) -> HttpResponse {
    let faults = store.health().faults();
    if !faults.is_empty() {
        let reasons: Vec<String> = faults.iter().map(|(part, reason)| format!("{part}: {reason}")).collect();
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", &reasons.join("; "));
    }
    match store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "database": store.backend()})),
        Err(e) => {
            tracing::warn!(error = ?e, "readiness check failed");
            json_error(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the database is not reachable")
        }
    }
}
