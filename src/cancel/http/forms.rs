//! What every POST of the flow starts with: a size-limited form and the session's CSRF token.

use actix_web::{HttpRequest, web};
use futures::StreamExt;
use subtle::ConstantTimeEq;

use crate::cancel::http::CancelState;
use crate::cancel::http::error::PageError;
use crate::cancel::http::session::open_session;
use crate::cancel::storage::CancelSessionRow;
use crate::store::Store;

/// Form bodies are a token, a reason and a comment of at most `COMMENT_MAX_CHARS` characters.
const FORM_LIMIT_BYTES: usize = 4 * 1024;

/// Read a small urlencoded form, refusing bodies over the limit before parsing.
async fn read_form<T: serde::de::DeserializeOwned>(mut payload: web::Payload) -> Result<T, PageError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| PageError::BadForm("body"))?;
        if body.len() + chunk.len() > FORM_LIMIT_BYTES {
            return Err(PageError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    serde_urlencoded::from_bytes(&body).map_err(|_| PageError::BadForm("form"))
}

fn check_csrf(s: &CancelSessionRow, presented: &str) -> Result<(), PageError> {
    if !presented.is_empty() && bool::from(s.csrf_token.as_bytes().ct_eq(presented.as_bytes())) {
        Ok(())
    } else {
        Err(PageError::Csrf)
    }
}

/// A form posted by a cancel page: it carries the session's CSRF token.
pub(super) trait PostedForm: serde::de::DeserializeOwned {
    fn csrf(&self) -> &str;
}

/// The start of every POST: rate limit, the form (size-limited), the live session and its
/// CSRF token.
pub(super) async fn posted<F: PostedForm>(
    req: &HttpRequest,
    id: &str,
    payload: web::Payload,
    state: &CancelState,
    store: &Store,
    now: i64,
) -> Result<(CancelSessionRow, F), PageError> {
    state.limit(req)?;
    let form: F = read_form(payload).await?;
    let s = open_session(store, id, now).await?;
    check_csrf(&s, form.csrf())?;
    Ok((s, form))
}
