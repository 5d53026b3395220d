//! `POST /webhooks/stripe`.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures::StreamExt;
use secrecy::SecretString;
use serde_json::json;

use crate::domain::event::Event;
use crate::ingest::error::WebhookError;
use crate::ingest::signature;
use crate::metrics::{Metrics, Outcome};
use crate::store::Ingested;
use crate::store::writer::Writer;
use crate::web::body_budget::{BodyBudget, Reservation};

/// What the webhook handler needs.
#[derive(Clone)]
pub struct WebhookState {
    pub secrets: Vec<SecretString>,
    pub tolerance_secs: i64,
    pub max_body_bytes: usize,
    pub writer: Writer,
    pub clock: crate::clock::Clock,
    /// The bound on buffered bodies and the time a body may take.
    pub intake: Intake,
}

/// How webhook bodies are read: one shared byte budget and a deadline per body.
#[derive(Clone, Debug)]
pub struct Intake {
    pub budget: Arc<BodyBudget>,
    pub body_timeout: Duration,
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
    let body = read_limited(req, body, state.max_body_bytes, &state.intake).await?;
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

/// A body read in full, still counted in the budget until dropped.
struct BufferedBody {
    bytes: web::Bytes,
    _reserved: Reservation,
}

impl Deref for BufferedBody {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Without a declared length a body starts with this much reserved, doubling as it grows.
const FIRST_CHUNKED_RESERVATION: usize = 16 * 1024;

/// Read the body up to `limit` bytes; refuse early on a declared length above it. Every byte
/// buffered is reserved in the shared budget first (full: 503), and the whole body must arrive
/// within the intake's deadline (else 408), so a stalled upload holds neither for long.
async fn read_limited(
    req: &HttpRequest,
    mut body: web::Payload,
    limit: usize,
    intake: &Intake,
) -> Result<BufferedBody, WebhookError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(WebhookError::TooLarge { limit });
    }
    let mut reserved =
        intake.budget.reserve(declared.unwrap_or(FIRST_CHUNKED_RESERVATION).min(limit)).map_err(|_| WebhookError::Busy)?;
    let eviction = reserved.eviction();
    // The chunks as the server received them, joined once the body is complete: a stalled
    // upload then holds only what it sent, in the server's small read buffers, rather than
    // one large allocation per connection (large short-lived allocations are what the C
    // allocator is slowest to give back to the system).
    let mut chunks: Vec<web::Bytes> = Vec::new();
    let mut received = 0;
    let read = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| WebhookError::Body)?;
            received += chunk.len();
            if received > limit {
                return Err(WebhookError::TooLarge { limit });
            }
            if received > reserved.bytes() {
                let target = received.max(reserved.bytes() * 2).min(limit);
                reserved.grow(target - reserved.bytes()).map_err(|_| WebhookError::Busy)?;
            }
            chunks.push(chunk);
        }
        Ok(())
    };
    tokio::select! {
        read = read => read?,
        () = eviction.notified() => return Err(WebhookError::Busy),
        () = tokio::time::sleep(intake.body_timeout) => return Err(WebhookError::BodyTimeout),
    }
    reserved.finish_reading();
    let bytes = match chunks.len() {
        1 => chunks.swap_remove(0),
        _ => {
            let mut joined = web::BytesMut::with_capacity(received);
            for chunk in &chunks {
                joined.extend_from_slice(chunk);
            }
            joined.freeze()
        }
    };
    Ok(BufferedBody { bytes, _reserved: reserved })
}
