//! `x-request-id` on every response: the id `tracing-actix-web` gave the request's root span,
//! so a user's report ("request 7f3c… failed") leads straight to the log lines.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing_actix_web::RequestId;

/// The response header carrying the request id.
pub const HEADER: &str = "x-request-id";

/// Middleware (`from_fn`); must sit inside `TracingLogger`, which assigns the id.
pub async fn add_header(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req.extensions().get::<RequestId>().copied();
    let mut res = next.call(req).await?;
    if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
        res.headers_mut().insert(HeaderName::from_static(HEADER), value);
    }
    Ok(res)
}
