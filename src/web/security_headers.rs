//! Security headers on every response (HTML pages above all; harmless on JSON).
//! Pages may set their own value of any of these: `DefaultHeaders` only fills in what a
//! response does not already carry.

use actix_web::http::header::{self, HeaderName};
use actix_web::middleware::DefaultHeaders;

/// Everything from our own origin, nothing from a CDN, no plugins, never framed.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
/// One year; sent only when the public URL is https (over http a browser would ignore it,
/// and on a local http setup it would be wrong).
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// The middleware: `App::new().wrap(security_headers::middleware(&settings.public_url))`.
pub fn middleware(public_url: &str) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Links in our pages carry signed tokens: never leak them to another site.
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((HeaderName::from_static("cross-origin-opener-policy"), "same-origin"));
    if public_url.starts_with("https://") {
        headers.add((header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY))
    } else {
        headers
    }
}
