//! The owner's endpoint: `POST /api/cancel-sessions` mints a one-time cancel link.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::cancel::http::CancelState;
use crate::cancel::links::{plausible_customer_id, random_token, token_hash};
use crate::cancel::storage::NewCancelSession;
use crate::store::Store;
use crate::web::auth::Owner;
use crate::web::error::ApiError;

/// `return_url` longer than this is refused at minting.
const RETURN_URL_MAX: usize = 2000;

#[derive(Debug, Deserialize)]
pub struct MintRequest {
    customer: String,
    subscription: Option<String>,
    return_url: Option<String>,
}

#[derive(Debug, Serialize)]
struct MintResponse {
    url: String,
    expires_at: i64,
}

/// `POST /api/cancel-sessions` (owner): mint a one-time link for a customer's live
/// subscription.
pub(super) async fn mint(
    _owner: Owner,
    body: web::Json<MintRequest>,
    state: web::Data<CancelState>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if !plausible_customer_id(&body.customer) {
        return Err(ApiError::unprocessable("invalid_customer", "customer must be a Stripe customer id (cus_…)"));
    }
    if let Some(url) = &body.return_url
        && (url.len() > RETURN_URL_MAX || !(url.starts_with("https://") || url.starts_with("http://")))
    {
        return Err(ApiError::unprocessable("invalid_return_url", "return_url must be an http(s) URL"));
    }
    let now = state.now();
    let (live, _) = store
        .live_subscription_of(&body.customer, body.subscription.as_deref())
        .await
        .map_err(ApiError::store("minting a cancel link"))?
        .ok_or_else(|| ApiError::not_found("no_live_subscription", "the customer has no such live subscription"))?;
    let subscription = live.id;
    let token = random_token();
    let expires_at = now + state.settings.link_ttl_secs;
    let experiment = state.experiment.as_ref();
    let session = NewCancelSession {
        experiment: experiment.map(|x| x.split.name.clone()),
        variant: experiment.map(|x| x.split.variant(&body.customer).to_owned()),
        id: random_token(),
        link_token_hash: Some(token_hash(&token)),
        csrf_token: random_token(),
        customer: body.customer,
        subscription: Some(subscription),
        return_url: body.return_url,
        source: "minted",
        created_at: now,
        link_expires_at: expires_at,
        started_at: None,
        deadline_at: None,
    };
    store.insert_cancel_session(&session).await.map_err(ApiError::store("minting a cancel link"))?;
    Ok(HttpResponse::Created().json(MintResponse { url: format!("{}/cancel?token={token}", state.public_url), expires_at }))
}
