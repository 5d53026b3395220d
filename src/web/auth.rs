//! Owner authentication: `Authorization: Bearer <HOLDFAST_OWNER_TOKEN>`, compared in
//! constant time. Handlers take an `Owner` argument to require it.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, ResponseError, web};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::web::error::json_error;

/// The configured owner token; absent means owner endpoints are closed.
#[derive(Clone, Debug)]
pub struct OwnerToken(pub Option<SecretString>);

impl OwnerToken {
    /// Constant-time check of a presented token.
    pub fn accepts(&self, presented: &str) -> bool {
        match &self.0 {
            Some(token) => bool::from(token.expose_secret().as_bytes().ct_eq(presented.as_bytes())),
            None => false,
        }
    }
}

/// Proof that the request carries the owner's token.
#[derive(Debug)]
pub struct Owner;

/// Why an owner request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or invalid owner token (Authorization: Bearer <HOLDFAST_OWNER_TOKEN>)")]
    Unauthorized,
    #[error("owner endpoints are disabled: set HOLDFAST_OWNER_TOKEN")]
    NotConfigured,
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotConfigured => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let code = match self {
            Self::Unauthorized => "unauthorized",
            Self::NotConfigured => "owner_token_not_configured",
        };
        let mut response = json_error(self.status_code(), code, &self.to_string());
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(actix_web::http::header::WWW_AUTHENTICATE, actix_web::http::header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

impl FromRequest for Owner {
    type Error = AuthError;
    type Future = Ready<Result<Self, AuthError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = req.app_data::<web::Data<OwnerToken>>();
        let outcome = match token {
            Some(t) if t.0.is_none() => Err(AuthError::NotConfigured),
            Some(t) if bearer(req).is_some_and(|b| t.accepts(b)) => Ok(Owner),
            _ => Err(AuthError::Unauthorized),
        };
        ready(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let token = OwnerToken(Some(SecretString::from("s3cret-owner-token")));
        assert!(token.accepts("s3cret-owner-token"));
        assert!(!token.accepts("s3cret-owner-toke"));
        assert!(!token.accepts(""));
        assert!(!OwnerToken(None).accepts(""));
    }
}
