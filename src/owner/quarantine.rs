//! `GET /api/quarantine` (owner): the events stored and acknowledged but never projected, with
//! why (see `domain::poison`), newest first. The envelope only: never the payload.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::store::Store;
use crate::web::auth::Owner;
use crate::web::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct QuarantineQuery {
    limit: Option<i64>,
}

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// `GET /api/quarantine[?limit=N]`: `{count, events: [{seq, event_id, type, created, received_at, reason}]}`.
pub async fn get_quarantine(
    _owner: Owner,
    store: web::Data<Store>,
    q: web::Query<QuarantineQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("bad_limit", format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let events = store.quarantined(limit).await.map_err(ApiError::store("listing quarantined events"))?;
    Ok(HttpResponse::Ok().json(json!({"count": events.len(), "events": events})))
}
