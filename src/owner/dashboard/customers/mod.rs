//! One customer, whole: `/dashboard/customers/<id>` and `GET /api/customers/<id>` (owner).
//! Subscriptions and plans, MRR over time, invoices and payment failures with their dunning
//! case and emails, cancel sessions, lifecycle series, activity and at-risk state, and every
//! change Holdfast made in Stripe — and all of it again as one timeline, newest first.
//! Search (`/dashboard/customers?q=`, `GET /api/customers?q=`) by email, name or Stripe id.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::owner::dashboard::error::DashboardError;
use crate::owner::dashboard::labels::label;
use crate::owner::dashboard::labels::money;
use crate::owner::dashboard::labels::outcome_detail;
use crate::owner::dashboard::lists::customer_href;
use crate::owner::dashboard::page;
use crate::owner::dashboard::require_session;
use crate::owner::views::CustomerRecord;
use crate::owner::views::Found;
use crate::owner::views::PlanItem;
use crate::store::Store;
use crate::web::auth::{Owner, OwnerToken};
use crate::web::error::ApiError;

/// Most customers a search returns.
const SEARCH_LIMIT: i64 = 50;

/// One line of the customer's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub at: i64,
    /// `subscription`, `mrr`, `invoice`, `payment_failure`, `email`, `cancel_flow`, `lifecycle`,
    /// `activity`, `at_risk`, `stripe_change`, `nps`.
    pub kind: &'static str,
    pub text: String,
}

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

fn plans_of(r: &CustomerRecord, subscription: &str) -> String {
    let names: Vec<_> = r.items.iter().filter(|i| i.subscription_id == subscription).map(plan_name).collect();
    if names.is_empty() { "a subscription".into() } else { names.join(", ") }
}

/// Every dated fact about the customer, newest first.
pub fn timeline(r: &CustomerRecord) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut push = |at: Option<i64>, kind: &'static str, text: String| {
        if let Some(at) = at {
            out.push(Entry { at, kind, text });
        }
    };
    push(r.customer.created, "customer", "Became a customer".into());
    for s in &r.subscriptions {
        push(s.created, "subscription", format!("Subscribed: {} ({})", plans_of(r, &s.id), s.id));
        push(s.trial_end, "subscription", format!("Trial ends ({})", s.id));
        if let Some(at) = s.canceled_at {
            let why = s.cancel_feedback.as_deref().map(|f| format!(": {}", label(f))).unwrap_or_default();
            push(Some(at), "subscription", format!("Cancellation recorded by Stripe{why} ({})", s.id));
        }
        push(s.ended_at, "subscription", format!("Subscription ended ({})", s.id));
    }
    // MRR changes per subscription, from its recorded history.
    let mut last: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
    for p in &r.mrr_history {
        let before = last.insert(&p.subscription_id, p.base_mrr);
        if before.is_none_or(|b| (b - p.base_mrr).abs() > 0.5) {
            let from = before.map(|b| format!("{} → ", money(b, p.currency.as_deref()))).unwrap_or_default();
            push(
                Some(p.effective_at),
                "mrr",
                format!("MRR {from}{} ({}, {})", money(p.base_mrr, p.currency.as_deref()), label(&p.status), p.subscription_id),
            );
        }
    }
    for i in &r.invoices {
        let amount = money(i.amount_due as f64, i.currency.as_deref());
        push(i.created, "invoice", format!("Invoice {} for {amount}: {}", i.id, label(i.status.as_deref().unwrap_or("unknown"))));
        push(i.paid_at, "invoice", format!("Invoice {} paid ({})", i.id, money(i.amount_paid as f64, i.currency.as_deref())));
    }
    for d in &r.dunning_cases {
        let amount = money(d.amount_due as f64, d.currency.as_deref());
        push(
            Some(d.opened_at),
            "payment_failure",
            format!("Payment of {amount} failed (invoice {}); dunning case opened", d.invoice_id),
        );
        if let Some(closed) = d.closed_at {
            let how = match d.status.as_str() {
                "recovered" => {
                    format!("Recovered {}", money(d.recovered_amount.unwrap_or(d.amount_due) as f64, d.currency.as_deref()))
                }
                other => label(other),
            };
            let why = d.close_reason.as_deref().map(|r| format!(" ({})", label(r))).unwrap_or_default();
            push(Some(closed), "payment_failure", format!("Dunning case for invoice {}: {how}{why}", d.invoice_id));
        }
    }
    for e in &r.emails {
        let at = e.sent_at.unwrap_or(if e.status == "pending" { e.next_attempt_at } else { e.created_at });
        push(
            Some(at),
            "email",
            format!("Email “{}” ({}) to {}: {}", e.subject, label(&e.template), e.recipient, label(&e.status)),
        );
    }
    for c in &r.cancel_sessions {
        let reason = c.reason.as_deref().map(|r| format!(", reason: {}", label(r))).unwrap_or_default();
        let comment = c.comment.as_deref().map(|t| format!(", said: “{t}”")).unwrap_or_default();
        push(c.started_at, "cancel_flow", format!("Opened the cancel flow ({}){reason}{comment}", label(&c.source)));
        if let (Some(outcome), Some(at)) = (c.outcome.as_deref(), c.completed_at) {
            let detail = outcome_detail(outcome, c.outcome_detail.as_deref());
            let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
            push(Some(at), "cancel_flow", format!("Cancel flow outcome: {}{detail}", label(outcome)));
        }
    }
    for s in &r.lifecycle_series {
        push(Some(s.started_at), "lifecycle", format!("{} emails started", label(&s.campaign)));
        if let Some(at) = s.stopped_at {
            let why = s.stop_reason.as_deref().map(|r| format!(" ({})", label(r))).unwrap_or_default();
            push(Some(at), "lifecycle", format!("{} emails stopped{why}", label(&s.campaign)));
        }
    }
    if let Some(a) = &r.activity {
        push(Some(a.first_at), "activity", "First product activity reported".into());
        push(Some(a.last_at), "activity", format!("Latest product activity ({} events in all)", a.total));
    }
    if let Some(a) = &r.at_risk {
        push(Some(a.since), "at_risk", format!("At risk: {}", label(&a.reason)));
        if let Some(at) = a.resolved_at {
            push(Some(at), "at_risk", format!("No longer at risk: {}", label(&a.status)));
        }
    }
    for c in &r.stripe_changes {
        push(
            Some(c.made_at),
            "stripe_change",
            format!("Holdfast changed Stripe: {} {} {} — by {}", c.method, c.path, c.params, c.triggered_by),
        );
    }
    for a in &r.nps_answers {
        let comment = a.comment.as_deref().map(|t| format!(", said: “{t}”")).unwrap_or_default();
        push(
            Some(a.answered_at),
            "nps",
            format!("NPS answer: {} ({}){comment}", a.score, crate::lifecycle::nps::category(a.score)),
        );
    }
    // Newest first; same instant: the order they were added (the cause before the effect).
    out.sort_by_key(|e| std::cmp::Reverse(e.at));
    out
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
    let subscriptions: Vec<_> = r
        .subscriptions
        .iter()
        .map(|s| {
            context! {
                id => s.id, status => label(&s.status), plans => plans_of(&r, &s.id),
                mrr => money(s.base_mrr, s.currency.as_deref()), created => s.created,
                renews => s.current_period_end, ends => s.cancel_at.or(if s.cancel_at_period_end == 1 { s.current_period_end } else { None }),
                ended => s.ended_at,
            }
        })
        .collect();
    let invoices: Vec<_> = r
        .invoices
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
        .collect();
    let emails: Vec<_> = r
        .emails
        .iter()
        .map(|e| context! { at => e.sent_at.unwrap_or(e.created_at), subject => e.subject, template => label(&e.template), status => label(&e.status) })
        .collect();
    let cancels: Vec<_> = r
        .cancel_sessions
        .iter()
        .map(|c| {
            context! {
                at => c.started_at, reason => c.reason.as_deref().map(label), comment => c.comment,
                outcome => c.outcome.as_deref().map(label).unwrap_or_else(|| "Not finished".into()),
                detail => c.outcome.as_deref().map(|o| outcome_detail(o, c.outcome_detail.as_deref())),
            }
        })
        .collect();
    let mrr_points: Vec<_> = r
        .mrr_history
        .iter()
        .map(|p| context! { at => p.effective_at, subscription => p.subscription_id, status => label(&p.status), mrr => money(p.base_mrr, p.currency.as_deref()) })
        .collect();
    let series: Vec<_> = r
        .lifecycle_series
        .iter()
        .map(|s| context! { campaign => label(&s.campaign), started => s.started_at, status => label(&s.status), stopped => s.stopped_at })
        .collect();
    let at_risk = r.at_risk.as_ref().map(|a| {
        context! { status => label(&a.status), reason => label(&a.reason), since => a.since, recent => a.recent_week, usual => a.baseline_week }
    });
    let changes: Vec<_> = r
        .stripe_changes
        .iter()
        .map(|c| context! { at => c.made_at, call => format!("{} {}", c.method, c.path), params => c.params, by => c.triggered_by })
        .collect();
    let c = &r.customer;
    Ok(page(
        StatusCode::OK,
        "dashboard_customer.html",
        context! {
            id => c.id, name => c.name, email => c.email, created => c.created, deleted => c.deleted == 1,
            mrr_now => mrr_now(&r), subscriptions => subscriptions, invoices => invoices, emails => emails,
            cancels => cancels, mrr_points => mrr_points, series => series, activity => r.activity, at_risk => at_risk,
            changes => changes, timeline => timeline(&r),
        },
    ))
}
