//! `POST /webhooks/stripe`.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures::StreamExt;
use secrecy::SecretString;
use serde_json::json;

use super::error::WebhookError;
use super::signature;
use crate::domain::event::Event;
use crate::metrics::{Metrics, Outcome};
use crate::store::Ingested;
use crate::store::writer::Writer;

/// What the webhook handler needs.
#[derive(Clone)]
pub struct WebhookState {
    pub secrets: Vec<SecretString>,
    pub tolerance_secs: i64,
    pub max_body_bytes: usize,
    pub writer: Writer,
    pub clock: crate::clock::Clock,
}

/// Verify, parse, store, and only then acknowledge; count the outcome and latency.
#[tracing::instrument(name = "webhook", skip_all, fields(stripe.event_id, stripe.event_type, outcome))]
pub async fn receive(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<WebhookState>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, WebhookError> {
    let started = Instant::now();
    let mut event_type = None;
    let result = verify_and_store(&req, body, &state, &mut event_type).await;
    let outcome = match &result {
        Ok(Ingested::Stored) => Outcome::Stored,
        Ok(Ingested::Duplicate) => Outcome::Duplicate,
        Err(e) if e.status_code().is_server_error() => Outcome::Failed,
        Err(_) => Outcome::Rejected,
    };
    tracing::Span::current().record("outcome", outcome.as_str());
    // Before the signature is checked the type is the sender's claim: don't label by it.
    let elapsed = started.elapsed();
    metrics.observe_webhook(event_type.as_deref().unwrap_or("unverified"), outcome, elapsed);
    // One line per webhook, inside the request's span (request_id) and this one (event id,
    // type, outcome). Never the body or the signature header.
    match &result {
        Ok(_) => tracing::info!(duration_ms = elapsed.as_millis() as u64, "webhook handled"),
        Err(e) => tracing::info!(duration_ms = elapsed.as_millis() as u64, error = %e, "webhook refused"),
    }
    let duplicate = result? == Ingested::Duplicate;
    Ok(HttpResponse::Ok().json(json!({"received": true, "duplicate": duplicate})))
}

async fn verify_and_store(
    req: &HttpRequest,
    body: web::Payload,
    state: &WebhookState,
    event_type: &mut Option<String>,
) -> Result<Ingested, WebhookError> {
    let body = read_limited(req, body, state.max_body_bytes).await?;
    let header = req
        .headers()
        .get("Stripe-Signature")
        .ok_or(WebhookError::MissingSignature)?
        .to_str()
        .map_err(|_| signature::SignatureError::Malformed("header is not ASCII"))?;
    let now = state.clock.now();
    signature::verify(&body, header, &state.secrets, state.tolerance_secs, now)?;
    let event = Event::parse(&body)?;
    let span = tracing::Span::current();
    span.record("stripe.event_id", event.id.as_str());
    span.record("stripe.event_type", event.kind.as_str());
    *event_type = Some(event.kind.clone());
    Ok(state.writer.submit(event).await?)
}

/// Read the body up to `limit` bytes; refuse early on a declared length above it.
async fn read_limited(req: &HttpRequest, mut body: web::Payload, limit: usize) -> Result<web::Bytes, WebhookError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(WebhookError::TooLarge { limit });
    }
    let mut buf = web::BytesMut::with_capacity(declared.unwrap_or(4096).min(limit));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| WebhookError::Body)?;
        if buf.len() + chunk.len() > limit {
            return Err(WebhookError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
