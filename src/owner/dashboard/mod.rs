//! `GET /dashboard`: the owner's retention dashboard, server-rendered (minijinja,
//! auto-escaped) with server-drawn SVG charts. Login posts the owner token once; the browser
//! then holds a signed, `Secure; HttpOnly; SameSite=Strict` session cookie.

pub mod charts;
pub mod customers;
pub mod error;
pub mod figures;
pub mod labels;
pub mod lists;
pub mod session;
pub mod sessions;

use std::sync::LazyLock;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::{Environment, context};
use serde::Deserialize;

use self::error::DashboardError;
use crate::clock::Clock;
use crate::domain::month::Month;
use crate::figures::Reports;
use crate::owner::views as lists_store;
use crate::store::{Store, StoreError};
use crate::web::auth::OwnerToken;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // `.html` names turn on auto-escaping.
    for (name, source) in [
        ("dashboard_layout.html", include_str!("../../../templates/pages/dashboard_layout.html")),
        ("dashboard_login.html", include_str!("../../../templates/pages/dashboard_login.html")),
        ("dashboard.html", include_str!("../../../templates/pages/dashboard.html")),
        ("dashboard_nav.html", include_str!("../../../templates/pages/dashboard_nav.html")),
        ("dashboard_customer.html", include_str!("../../../templates/pages/dashboard_customer.html")),
        ("dashboard_list.html", include_str!("../../../templates/pages/dashboard_list.html")),
        ("dashboard_search.html", include_str!("../../../templates/pages/dashboard_search.html")),
    ] {
        env.add_template(name, source).expect("dashboard templates parse");
    }
    // `{{ unix | date }}` → `2 March 2026`.
    env.add_filter("date", |unix: i64| crate::domain::money::format_date(unix));
    // `{{ minor | money(currency) }}` → `$1,249.00`, `¥1,200`, `1.250 KWD`.
    env.add_filter("money", |minor: f64, currency: &str| crate::domain::money::format(minor, currency));
    // `{{ code | label }}` → the human words for a stored code (`technical_problems` → `Technical problems`).
    env.add_filter("label", |code: String| labels::label(&code));
    env.add_filter("customer_href", |id: String| lists::customer_href(&id));
    env
});

fn page(status: StatusCode, name: &str, ctx: minijinja::Value) -> HttpResponse {
    match TEMPLATES.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"))
            .insert_header(("Cache-Control", "no-store"))
            .body(html),
        Err(e) => {
            tracing::error!(error = ?e, template = name, "dashboard template failed");
            HttpResponse::InternalServerError().content_type("text/html; charset=utf-8").body("<h1>Something went wrong</h1>")
        }
    }
}

/// Whether the request carries a live session that was not logged out.
async fn logged_in(req: &HttpRequest, owner: &OwnerToken, store: &Store, now: i64) -> Result<bool, StoreError> {
    let Some(value) = owner.0.as_ref().and_then(|token| session::presented(req, token, now)) else { return Ok(false) };
    Ok(!store.dashboard_session_revoked(&session::revocation_hash(value)).await?)
}

/// `Ok` when the request carries a live session; otherwise the login form (or the page saying
/// the check failed) as the error.
async fn require_session(req: &HttpRequest, owner: &OwnerToken, store: &Store, now: i64) -> Result<(), DashboardError> {
    match logged_in(req, owner, store, now).await.map_err(DashboardError::store("checking the session"))? {
        true => Ok(()),
        false => Err(DashboardError::NoSession { configured: owner.0.is_some() }),
    }
}

/// Query of `/dashboard`.
#[derive(Debug, Deserialize)]
pub struct DashboardQuery {
    month: Option<String>,
    currency: Option<String>,
}

/// The dashboard, or the login form without a live session.
pub async fn get_dashboard(
    req: HttpRequest,
    owner: web::Data<OwnerToken>,
    reports: web::Data<Reports>,
    store: web::Data<Store>,
    q: web::Query<DashboardQuery>,
    mode: web::Data<crate::owner::observed::Mode>,
    figure_settings: web::Data<crate::figures::FigureSettings>,
) -> Result<HttpResponse, DashboardError> {
    require_session(&req, &owner, &store, reports.clock().now()).await?;
    let month = q
        .month
        .as_deref()
        .map_or(Ok(reports.current_month()), Month::parse)
        .map_err(|_| DashboardError::BadQuery("month must be YYYY-MM".into()))?;
    let currency = crate::figures::currency_param(q.currency.as_deref())
        .map_err(|_| DashboardError::BadQuery("currency must be a three-letter code such as usd".into()))?;
    let mut parts = crate::figures::Parts::start();
    let loaded = tokio::try_join!(reports.summary(month, currency), reports.monthly(month.plus(-11), month, currency));
    parts.mark("summary_and_monthly");
    let (summary, mut rows) = loaded.map_err(DashboardError::Metrics)?;
    let figures = match figures::load_for(&reports, &store, &figure_settings, month, &summary).await {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(error = ?e, "dashboard figures failed");
            None
        }
    };
    parts.mark("figures");
    parts.log("dashboard");
    // Months after this one have not happened: never drawn as data.
    let current = reports.current_month().to_string();
    rows.retain(|r| r.month <= current);
    let charts = vec![
        charts::mrr(&rows),
        charts::churn(&rows),
        charts::cohorts(&summary.cohorts),
        charts::recovery(&rows),
        charts::cancel_flow(&summary.cancel_flow),
    ];
    let observed = if mode.observe { Some(observed(&store).await) } else { None };
    Ok(page(
        StatusCode::OK,
        "dashboard.html",
        context! {
            s => summary, charts => charts, prev => month.plus(-1).to_string(), next => month.plus(1).to_string(),
            observed => observed, f => figures, future => month > reports.current_month(),
            lists => lists_store::ListKind::ALL.iter().map(|k| context! { key => k.as_str(), title => k.title() }).collect::<Vec<_>>(),
        },
    ))
}

/// Observe-only mode: what would have been sent or changed, newest first.
async fn observed(store: &Store) -> minijinja::Value {
    match tokio::try_join!(store.observed_emails(OBSERVED_ROWS), store.observed_calls(OBSERVED_ROWS)) {
        Ok((emails, calls)) => context! { emails => emails, calls => calls },
        Err(e) => {
            tracing::error!(error = %e, "dashboard: observed list unreadable");
            context! { error => "the observed list is unavailable right now" }
        }
    }
}

/// Rows of each observed list the dashboard shows (the owner API pages further).
const OBSERVED_ROWS: i64 = 50;

/// The login form's body.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Check the token; on success set the session cookie and go to the dashboard (303).
pub async fn post_login(
    owner: web::Data<OwnerToken>,
    clock: web::Data<Clock>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, DashboardError> {
    let Some(token) = owner.0.as_ref().filter(|_| owner.accepts(form.token.trim())) else {
        return Err(DashboardError::WrongToken { configured: owner.0.is_some() });
    };
    let value = session::issue(token, clock.now());
    Ok(see_dashboard(format!(
        "{}={value}; Path=/dashboard; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
        session::COOKIE,
        session::TTL_SECS
    )))
}

/// End the session: recorded as revoked until it expires (a copy of the cookie stops working
/// too), then the browser's cookie is cleared. If it cannot be recorded, nothing is claimed.
pub async fn post_logout(
    req: HttpRequest,
    owner: web::Data<OwnerToken>,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, DashboardError> {
    let now = clock.now();
    if let Some(value) = owner.0.as_ref().and_then(|token| session::presented(&req, token, now)) {
        let expires = session::expires_of(value).unwrap_or(now + session::TTL_SECS);
        store
            .revoke_dashboard_session(&session::revocation_hash(value), expires, now)
            .await
            .map_err(DashboardError::store("recording a logout"))?;
    }
    Ok(see_dashboard(format!("{}=; Path=/dashboard; Max-Age=0; Secure; HttpOnly; SameSite=Strict", session::COOKIE)))
}

fn see_dashboard(set_cookie: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/dashboard"))
        .insert_header((header::SET_COOKIE, set_cookie))
        .finish()
}
