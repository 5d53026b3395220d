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

use super::cancel::CancelState;
use crate::clock::Clock;
use crate::reactions::Reactor;
use crate::store::Store;

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn invalid(pages: &CancelState) -> HttpResponse {
    pages.pages.render(StatusCode::BAD_REQUEST, "unsubscribe_invalid.html", context! {})
}

/// The confirmation page.
pub async fn confirm(
    req: HttpRequest,
    q: web::Query<TokenQuery>,
    reactor: web::Data<Reactor>,
    pages: web::Data<CancelState>,
) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    let Some(token) = q.token.as_deref() else { return invalid(&pages) };
    let Ok(email) = reactor.unsubscribe.verify(token) else { return invalid(&pages) };
    let post_url = format!("{}?{}", req.path(), req.query_string());
    pages.pages.render(StatusCode::OK, "unsubscribe_confirm.html", context! { email, post_url })
}

/// Unsubscribe: the address is suppressed for marketing mail before the answer.
pub async fn unsubscribe(
    req: HttpRequest,
    q: web::Query<TokenQuery>,
    reactor: web::Data<Reactor>,
    pages: web::Data<CancelState>,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    let Some(token) = q.token.as_deref() else { return invalid(&pages) };
    let Ok(email) = reactor.unsubscribe.verify(token) else { return invalid(&pages) };
    if let Err(e) = store.suppress(&email, "marketing", "unsubscribed", clock.now()).await {
        tracing::error!(error = %e, "unsubscribe not stored");
        return pages.pages.error(
            crate::web::error::storage_status(&e),
            "Please try again",
            "We couldn't record that just now. Please try again in a minute.",
            None,
        );
    }
    tracing::info!("marketing unsubscribe recorded");
    let return_url = reactor.lifecycle.product_url.clone();
    pages.pages.render(StatusCode::OK, "unsubscribe_done.html", context! { email, return_url })
}
