//! `GET /metrics`: Prometheus text, owner only (`Authorization: Bearer <HOLDFAST_OWNER_TOKEN>`;
//! configure the scraper's `authorization` with it).

use actix_web::{HttpResponse, web};

use crate::clock::Clock;
use crate::metrics::{Gauge, Metrics, render};
use crate::store::log::ProjectorLag;
use crate::store::{OperationalCounts, Store};
use crate::web::auth::Owner;
use crate::web::body_budget::BodyBudget;
use crate::web::error::ApiError;

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(
    _owner: Owner,
    metrics: web::Data<Metrics>,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
    budget: web::Data<BodyBudget>,
) -> Result<HttpResponse, ApiError> {
    let counts =
        store.operational_counts(clock.now()).await.map_err(ApiError::store("reading the store's counts for /metrics"))?;
    let mut gauges = counts.map(gauges).unwrap_or_default();
    gauges.extend(intake_gauges(&budget));
    let lag = store.projector_lag(clock.now()).await.map_err(ApiError::store("reading the projector's lag for /metrics"))?;
    gauges.extend(projector_gauges(lag));
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(render(&metrics.snapshot(), &gauges)))
}

/// The projector's backlog: events in the log it has not passed yet, and how long the oldest
/// has waited; customers parked on a failed projection.
fn projector_gauges(lag: ProjectorLag) -> Vec<Gauge> {
    let g = |name, help, value: i64| Gauge { name, help, labels: Vec::new(), value: value as f64 };
    vec![
        g("holdfast_projector_lag_events", "Events in the log not yet projected.", lag.events),
        g("holdfast_projector_lag_seconds", "Age of the oldest event not yet projected (0 when none).", lag.seconds),
        g("holdfast_projector_parked_customers", "Customers whose projection is parked on a failed event.", lag.parked_customers),
        g("holdfast_projector_parked_events", "Events parked (failed, or waiting behind a failed one).", lag.parked_events),
        g("holdfast_projector_position", "The projector's cursor in the event log.", lag.position),
        g(
            "holdfast_figures_stale_customers",
            "Customers whose maintained figures wait for the projector to recompute them (while it works through a backlog).",
            lag.stale_figures,
        ),
        g("holdfast_figures_stale_seconds", "How long the oldest of those has waited (0 when none).", lag.stale_figures_seconds),
        g(
            "holdfast_other_mode_events_total",
            "Events of the other Stripe mode (live/test) than this instance's: stored and acknowledged, never acted on.",
            lag.other_mode_events,
        ),
        g(
            "holdfast_events_quarantined",
            "Events stored but never projected: too deep, absurd ids or strings, NUL (see GET /api/quarantine).",
            lag.quarantined_events,
        ),
        g(
            "holdfast_report_rows_skipped",
            "Rows the reports could not read and skipped (this process, all time).",
            crate::store::metrics::rows_skipped() as i64,
        ),
    ]
}

fn gauges(c: OperationalCounts) -> Vec<Gauge> {
    let g = |name, help, value: i64| Gauge { name, help, labels: Vec::new(), value: value as f64 };
    vec![
        g("holdfast_outbox_depth", "Emails waiting in the outbox.", c.outbox_depth),
        g("holdfast_outbox_oldest_age_seconds", "Age of the oldest waiting email.", c.outbox_oldest_age_secs),
        g("holdfast_emails_sent", "Emails sent (all time).", c.emails_sent),
        g("holdfast_emails_failed", "Emails that failed for good (all time).", c.emails_failed),
        g("holdfast_dunning_cases_open", "Failed-payment cases not yet recovered or lost.", c.dunning_open),
    ]
}

/// The webhook body budget, read live (per process).
fn intake_gauges(budget: &BodyBudget) -> Vec<Gauge> {
    let g = |name, help, value: f64| Gauge { name, help, labels: Vec::new(), value };
    vec![
        g(
            "holdfast_webhook_buffered_bytes",
            "Bytes reserved for webhook bodies being read or handled now.",
            budget.used() as f64,
        ),
        g("holdfast_webhook_buffer_cap_bytes", "The most bytes webhook bodies may hold at once.", budget.cap() as f64),
        g(
            "holdfast_webhook_bodies_refused",
            "Webhook bodies answered 503 for want of buffer room (all time).",
            budget.refused() as f64,
        ),
        g(
            "holdfast_webhook_bodies_evicted",
            "Slow webhook bodies cut off to make room for newer ones (all time).",
            budget.evicted() as f64,
        ),
    ]
}
