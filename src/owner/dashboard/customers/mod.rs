//! One customer, whole: `/dashboard/customers/<id>` and `GET /api/customers/<id>` (owner).
//! Subscriptions and plans, MRR over time, invoices and payment failures with their dunning
//! case and emails, cancel sessions, lifecycle series, activity and at-risk state, and every
//! change Holdfast made in Stripe — and all of it again as one timeline, newest first.
//! Search (`/dashboard/customers?q=`, `GET /api/customers?q=`) by email, name or Stripe id.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::{Value, context};
use serde::Deserialize;

use crate::clock::Clock;
use crate::owner::dashboard::error::DashboardError;
use crate::owner::dashboard::labels::{label, money, outcome_detail};
use crate::owner::dashboard::lists::customer_href;
use crate::owner::dashboard::{page, require_session};
use crate::owner::views::{CustomerRecord, Found, PlanItem};
use crate::store::Store;
use crate::web::auth::{Owner, OwnerToken};
use crate::web::error::ApiError;

mod timeline;

pub use timeline::{Entry, timeline};

/// Most customers a search returns.
const SEARCH_LIMIT: i64 = 50;

/// `Pro ($9.00 / month) × 2`, what is known of a plan.
fn plan_name(i: &PlanItem) -> String {
    let name = i.name.clone().or_else(|| i.price_id.clone()).unwrap_or_else(|| "a plan".into());
    let price = i.unit_amount.map(|a| {
        let every = match (i.recurring_interval.as_deref(), i.interval_count.unwrap_or(1)) {
            (Some(iv), 1) => format!(" / {iv}"),
            (Some(iv), n) => format!(" every {n} {iv}s"),
            (None, _) => String::new(),
        };
        format!(" ({}{every})", money(a as f64, i.currency.as_deref()))
    });
    let quantity = if i.quantity > 1 { format!(" × {}", i.quantity) } else { String::new() };
    format!("{name}{}{quantity}", price.unwrap_or_default())
}

/// The plans of one of the customer's subscriptions, by name.
fn plans_of(r: &CustomerRecord, subscription: &str) -> String {
    let names: Vec<_> = r.items.iter().filter(|i| i.subscription_id == subscription).map(plan_name).collect();
    if names.is_empty() { "a subscription".into() } else { names.join(", ") }
}

/// The customer's MRR now, per currency, from the live subscriptions.
fn mrr_now(r: &CustomerRecord) -> Vec<String> {
    let mut by_currency: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for s in r.subscriptions.iter().filter(|s| matches!(s.status.as_str(), "active" | "trialing" | "past_due" | "unpaid")) {
        *by_currency.entry(s.currency.clone().unwrap_or_default()).or_default() += s.base_mrr;
    }
    by_currency.into_iter().map(|(c, m)| money(m, Some(&c))).collect()
}

/// The customer's record as the API returns it: the stored facts, the timeline and labels.
fn as_json(r: &CustomerRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("timeline".into(), serde_json::to_value(timeline(r)).unwrap_or_default());
        o.insert("mrr_now".into(), mrr_now(r).into());
        o.insert("dashboard_page".into(), customer_href(&r.customer.id).into());
    }
    v
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && !id.chars().any(char::is_control)
}

/// `GET /api/customers/<id>` (owner).
pub async fn get_customer_api(_owner: Owner, store: web::Data<Store>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if !valid_id(&id) {
        return Err(ApiError::bad_request("bad_customer_id", "the customer id must be 1 to 255 printable characters"));
    }
    let r = store
        .customer_record(&id)
        .await
        .map_err(ApiError::store("reading a customer record"))?
        .ok_or_else(|| ApiError::not_found("customer_not_found", "no customer with that id has been seen"))?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(as_json(&r)))
}

/// Query of a search.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

fn search_text(q: &SearchQuery) -> Result<String, &'static str> {
    let text = q.q.as_deref().unwrap_or("").trim().to_owned();
    if text.is_empty() || text.chars().count() > 200 || text.chars().any(char::is_control) {
        return Err("q must be 1 to 200 printable characters: an email, a name or a Stripe id");
    }
    Ok(text)
}

/// `GET /api/customers?q=…` (owner): customers by email, name or Stripe id.
pub async fn search_api(_owner: Owner, store: web::Data<Store>, q: web::Query<SearchQuery>) -> Result<HttpResponse, ApiError> {
    let text = search_text(&q).map_err(|msg| ApiError::bad_request("bad_query", msg))?;
    let found = store.search_customers(&text, SEARCH_LIMIT).await.map_err(ApiError::store("searching customers"))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "query": text, "customers": found_json(&found) })))
}

fn found_json(found: &[Found]) -> Vec<serde_json::Value> {
    found
        .iter()
        .map(|f| {
            let mut v = serde_json::to_value(f).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("dashboard_page".into(), customer_href(&f.id).into());
            }
            v
        })
        .collect()
}

/// `GET /dashboard/customers?q=…`: the search results (one match goes straight to its page).
pub async fn search_page(
    req: HttpRequest,
    owner: web::Data<OwnerToken>,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, DashboardError> {
    require_session(&req, &owner, &store, clock.now()).await?;
    let text = search_text(&q).map_err(DashboardError::BadSearch)?;
    let found = store.search_customers(&text, SEARCH_LIMIT).await.map_err(DashboardError::store("searching customers"))?;
    if let [only] = found.as_slice() {
        return Ok(HttpResponse::SeeOther().insert_header((actix_web::http::header::LOCATION, customer_href(&only.id))).finish());
    }
    Ok(page(StatusCode::OK, "dashboard_search.html", context! { query => text, found => found_json(&found) }))
}

/// `GET /dashboard/customers/<id>`.
pub async fn customer_page(
    req: HttpRequest,
    owner: web::Data<OwnerToken>,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
    id: web::Path<String>,
) -> Result<HttpResponse, DashboardError> {
    require_session(&req, &owner, &store, clock.now()).await?;
    if !valid_id(&id) {
        return Err(DashboardError::BadSearch("that is not a customer id"));
    }
    let r = store
        .customer_record(&id)
        .await
        .map_err(DashboardError::store("reading a customer record"))?
        .ok_or_else(|| DashboardError::NoSuchCustomer(id.into_inner()))?;
    let c = &r.customer;
    Ok(page(
        StatusCode::OK,
        "dashboard_customer.html",
        context! {
            id => c.id, name => c.name, email => c.email, created => c.created, deleted => c.deleted == 1,
            mrr_now => mrr_now(&r), subscriptions => subscription_rows(&r), invoices => invoice_rows(&r),
            emails => email_rows(&r), cancels => cancel_rows(&r), mrr_points => mrr_points(&r), series => series_rows(&r),
            activity => r.activity, at_risk => at_risk(&r), changes => change_rows(&r), timeline => timeline(&r),
        },
    ))
}

/// The page's subscriptions: plans, MRR, renewal or end.
fn subscription_rows(r: &CustomerRecord) -> Vec<Value> {
    r.subscriptions
        .iter()
        .map(|s| {
            context! {
                id => s.id, status => label(&s.status), plans => plans_of(r, &s.id),
                mrr => money(s.base_mrr, s.currency.as_deref()), created => s.created,
                renews => s.current_period_end, ends => s.cancel_at.or(if s.cancel_at_period_end == 1 { s.current_period_end } else { None }),
                ended => s.ended_at,
            }
        })
        .collect()
}

/// The page's invoices, each with its dunning case and the case's emails.
fn invoice_rows(r: &CustomerRecord) -> Vec<Value> {
    r.invoices
        .iter()
        .map(|i| {
            let case = r.dunning_cases.iter().find(|d| d.invoice_id == i.id);
            let key = format!("dunning:{}", i.id);
            let emails: Vec<_> = r
                .emails
                .iter()
                .filter(|e| e.case_key.as_deref() == Some(key.as_str()))
                .map(|e| format!("{} — {}", label(&e.template), label(&e.status)))
                .collect();
            context! {
                id => i.id, created => i.created, amount => money(i.amount_due as f64, i.currency.as_deref()),
                status => label(i.status.as_deref().unwrap_or("unknown")),
                case => case.map(|d| format!("{}{}", label(&d.status), d.close_reason.as_deref().map(|c| format!(" ({})", label(c))).unwrap_or_default())),
                emails => emails,
            }
        })
        .collect()
}

fn email_rows(r: &CustomerRecord) -> Vec<Value> {
    r.emails
        .iter()
        .map(|e| context! { at => e.sent_at.unwrap_or(e.created_at), subject => e.subject, template => label(&e.template), status => label(&e.status) })
        .collect()
}

fn cancel_rows(r: &CustomerRecord) -> Vec<Value> {
    r.cancel_sessions
        .iter()
        .map(|c| {
            context! {
                at => c.started_at, reason => c.reason.as_deref().map(label), comment => c.comment,
                outcome => c.outcome.as_deref().map(label).unwrap_or_else(|| "Not finished".into()),
                detail => c.outcome.as_deref().map(|o| outcome_detail(o, c.outcome_detail.as_deref())),
            }
        })
        .collect()
}

fn mrr_points(r: &CustomerRecord) -> Vec<Value> {
    r.mrr_history
        .iter()
        .map(|p| context! { at => p.effective_at, subscription => p.subscription_id, status => label(&p.status), mrr => money(p.base_mrr, p.currency.as_deref()) })
        .collect()
}

fn series_rows(r: &CustomerRecord) -> Vec<Value> {
    r.lifecycle_series
        .iter()
        .map(|s| context! { campaign => label(&s.campaign), started => s.started_at, status => label(&s.status), stopped => s.stopped_at })
        .collect()
}

fn at_risk(r: &CustomerRecord) -> Option<Value> {
    r.at_risk.as_ref().map(|a| {
        context! { status => label(&a.status), reason => label(&a.reason), since => a.since, recent => a.recent_week, usual => a.baseline_week }
    })
}

fn change_rows(r: &CustomerRecord) -> Vec<Value> {
    r.stripe_changes
        .iter()
        .map(|c| context! { at => c.made_at, call => format!("{} {}", c.method, c.path), params => c.params, by => c.triggered_by })
        .collect()
}
