//! `GET /api/observed` (owner): what observe-only mode held back — the emails that would have
//! been sent and the Stripe calls that would have been made — newest first.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::store::Store;
use crate::web::auth::Owner;
use crate::web::error::ApiError;

/// Whether the service runs in observe-only mode (`HOLDFAST_MODE=observe`).
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    pub observe: bool,
}

#[derive(Debug, Deserialize)]
pub struct ObservedQuery {
    limit: Option<i64>,
}

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// `GET /api/observed[?limit=N]`: `{mode, emails: [...], stripe_calls: [...]}`.
pub async fn get_observed(
    _owner: Owner,
    store: web::Data<Store>,
    mode: web::Data<Mode>,
    q: web::Query<ObservedQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("bad_limit", format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let failed = ApiError::store("listing observed emails and calls");
    let (emails, calls) = match (store.observed_emails(limit).await, store.observed_calls(limit).await) {
        (Ok(emails), Ok(calls)) => (emails, calls),
        (Err(e), _) | (_, Err(e)) => return Err(failed(e)),
    };
    Ok(HttpResponse::Ok().json(json!({
        "mode": if mode.observe { "observe" } else { "live" },
        "emails": emails,
        "stripe_calls": calls,
    })))
}
