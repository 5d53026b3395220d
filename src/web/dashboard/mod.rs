//! `GET /dashboard`: the owner's retention dashboard, server-rendered (minijinja,
//! auto-escaped) with server-drawn SVG charts. Login posts the owner token once; the browser
//! then holds a signed, `Secure; HttpOnly; SameSite=Strict` session cookie.

pub mod charts;
pub mod session;

use std::sync::LazyLock;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::{Environment, context};
use serde::Deserialize;

use super::auth::OwnerToken;
use crate::clock::Clock;
use crate::domain::metrics::Month;
use crate::reports::Reports;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // `.html` names turn on auto-escaping.
    for (name, source) in [
        ("dashboard_layout.html", include_str!("../../../templates/pages/dashboard_layout.html")),
        ("dashboard_login.html", include_str!("../../../templates/pages/dashboard_login.html")),
        ("dashboard.html", include_str!("../../../templates/pages/dashboard.html")),
    ] {
        env.add_template(name, source).expect("dashboard templates parse");
    }
    // `{{ unix | date }}` → `2 March 2026`.
    env.add_filter("date", |unix: i64| crate::domain::dunning::format_date(unix));
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

fn logged_in(req: &HttpRequest, owner: &OwnerToken, now: i64) -> bool {
    let Some(token) = owner.0.as_ref() else { return false };
    // Parsed by hand: actix-web is built without its `cookies` feature.
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == session::COOKIE && session::verify(token, value, now))
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
    q: web::Query<DashboardQuery>,
    mode: web::Data<super::observed::Mode>,
    store: web::Data<crate::store::Store>,
) -> HttpResponse {
    if !logged_in(&req, &owner, reports.clock().now()) {
        return page(StatusCode::OK, "dashboard_login.html", context! { configured => owner.0.is_some() });
    }
    let Some(month) = q.month.as_deref().map_or(Some(reports.current_month()), |m| Month::parse(m).ok()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "dashboard_login.html",
            context! { configured => true, error => "month must be YYYY-MM" },
        );
    };
    let currency = q.currency.as_deref();
    let loaded = tokio::try_join!(reports.summary(month, currency), reports.monthly(month.plus(-11), month, currency));
    let (summary, rows) = match loaded {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = ?e, "dashboard metrics failed");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "dashboard_login.html",
                context! { configured => true, error => "metrics are unavailable right now" },
            );
        }
    };
    let charts = vec![
        charts::mrr(&rows),
        charts::churn(&rows),
        charts::cohorts(&summary.cohorts),
        charts::recovery(&rows),
        charts::cancel_flow(&summary.cancel_flow),
    ];
    // Observe-only mode: what would have been sent or changed, newest first.
    let observed = match mode.observe {
        false => None,
        true => match tokio::try_join!(store.observed_emails(OBSERVED_ROWS), store.observed_calls(OBSERVED_ROWS)) {
            Ok((emails, calls)) => Some(context! { emails => emails, calls => calls }),
            Err(e) => {
                tracing::error!(error = %e, "dashboard: observed list unreadable");
                Some(context! { error => "the observed list is unavailable right now" })
            }
        },
    };
    page(
        StatusCode::OK,
        "dashboard.html",
        context! {
            s => summary, charts => charts, prev => month.plus(-1).to_string(), next => month.plus(1).to_string(),
            observed => observed,
        },
    )
}

/// Rows of each observed list the dashboard shows (the owner API pages further).
const OBSERVED_ROWS: i64 = 50;

/// The login form's body.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Check the token; on success set the session cookie and go to the dashboard (303).
pub async fn post_login(owner: web::Data<OwnerToken>, clock: web::Data<Clock>, form: web::Form<LoginForm>) -> HttpResponse {
    let Some(token) = owner.0.as_ref().filter(|_| owner.accepts(form.token.trim())) else {
        return page(
            StatusCode::UNAUTHORIZED,
            "dashboard_login.html",
            context! { configured => owner.0.is_some(), error => "That token is not right." },
        );
    };
    let value = session::issue(token, clock.now());
    see_dashboard(format!(
        "{}={value}; Path=/dashboard; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
        session::COOKIE,
        session::TTL_SECS
    ))
}

/// Forget the session.
pub async fn post_logout() -> HttpResponse {
    see_dashboard(format!("{}=; Path=/dashboard; Max-Age=0; Secure; HttpOnly; SameSite=Strict", session::COOKIE))
}

fn see_dashboard(set_cookie: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/dashboard"))
        .insert_header((header::SET_COOKIE, set_cookie))
        .finish()
}
