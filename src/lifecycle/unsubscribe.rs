//! One-click unsubscribe (RFC 8058). Every marketing email carries
//! `{public_url}/unsubscribe?token=…` in its body and in `List-Unsubscribe`, with
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.
//!
//! - `POST /unsubscribe?token=…` (what a mail client's button sends, and our page's form):
//!   the address joins the suppression list for marketing at once; answered 200.
//! - `GET /unsubscribe?token=…` shows a page with one button. A GET never unsubscribes: link
//!   scanners and previews follow GETs.
//!
//! Transactional mail (dunning, receipts of choices, trial notices) is not affected.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::Deserialize;

use crate::clock::Clock;
use crate::lifecycle::context::Lifecycle;
use crate::store::{Store, StoreError};
use crate::web::error::storage_status;
use crate::web::pages::CustomerPages;

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// Why an unsubscribe request was not done; [`UnsubscribeError::page`] is its answer.
#[derive(Debug, thiserror::Error)]
enum UnsubscribeError {
    /// No token, or one that does not verify (never said which).
    #[error("missing or invalid unsubscribe token")]
    BadLink,
    #[error("the unsubscribe could not be stored")]
    Store(#[from] StoreError),
}

impl UnsubscribeError {
    fn page(&self, pages: &CustomerPages) -> HttpResponse {
        match self {
            Self::BadLink => pages.render(StatusCode::BAD_REQUEST, "unsubscribe_invalid.html", context! {}),
            Self::Store(e) => {
                tracing::error!(error = ?e, "unsubscribe not stored");
                pages.error(
                    storage_status(e),
                    "Please try again",
                    "We couldn't record that just now. Please try again in a minute.",
                    None,
                )
            }
        }
    }
}

fn verified(lifecycle: &Lifecycle, q: &TokenQuery) -> Result<String, UnsubscribeError> {
    let token = q.token.as_deref().ok_or(UnsubscribeError::BadLink)?;
    lifecycle.composer.unsubscribe.verify(token).map_err(|_| UnsubscribeError::BadLink)
}

/// The confirmation page.
pub async fn confirm(
    req: HttpRequest,
    q: web::Query<TokenQuery>,
    lifecycle: web::Data<Lifecycle>,
    pages: web::Data<CustomerPages>,
) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    match verified(&lifecycle, &q) {
        Ok(email) => {
            let post_url = format!("{}?{}", req.path(), req.query_string());
            pages.render(StatusCode::OK, "unsubscribe_confirm.html", context! { email, post_url })
        }
        Err(e) => e.page(&pages),
    }
}

/// Unsubscribe: the address is suppressed for marketing mail before the answer.
pub async fn unsubscribe(
    req: HttpRequest,
    q: web::Query<TokenQuery>,
    lifecycle: web::Data<Lifecycle>,
    pages: web::Data<CustomerPages>,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    let result = async {
        let email = verified(&lifecycle, &q)?;
        store.suppress(&email, "marketing", "unsubscribed", clock.now()).await?;
        tracing::info!("marketing unsubscribe recorded");
        let return_url = lifecycle.campaigns.product_url.clone();
        Ok(pages.render(StatusCode::OK, "unsubscribe_done.html", context! { email, return_url }))
    };
    result.await.unwrap_or_else(|e: UnsubscribeError| e.page(&pages))
}
