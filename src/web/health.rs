//! `GET /healthz` (the process is up) and `GET /readyz` (the database answers).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::error::json_error;
use crate::store::Store;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(store: web::Data<Store>) -> HttpResponse {
    match store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "database": store.backend()})),
        Err(e) => {
            tracing::warn!(error = ?e, "readiness check failed");
            json_error(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the database is not reachable")
        }
    }
}
