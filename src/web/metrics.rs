//! `GET /metrics`: Prometheus text, owner only (`Authorization: Bearer <HOLDFAST_OWNER_TOKEN>`;
//! configure the scraper's `authorization` with it).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::auth::Owner;
use super::error::json_error;
use crate::clock::Clock;
use crate::metrics::{Gauge, Metrics, render};
use crate::store::{OperationalCounts, Store};

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(
    _owner: Owner,
    metrics: web::Data<Metrics>,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
) -> HttpResponse {
    let counts = match store.operational_counts(clock.now()).await {
        Ok(counts) => counts,
        Err(e) => {
            tracing::warn!(error = ?e, "metrics: store counts unavailable");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the database is not reachable");
        }
    };
    let gauges = counts.map(gauges).unwrap_or_default();
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(render(&metrics.snapshot(), &gauges))
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
