//! Server-rendered customer pages (the cancel flow's, and every other feature's public pages
//! through `CustomerPages`): minijinja templates from `templates/pages/cancel/` (compiled into
//! the binary), HTML auto-escaping on, strict security headers.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use minijinja::{Environment, Value, context};

use crate::config::Brand;
use crate::web::rate_limit::RateLimiter;

const TEMPLATES: [(&str, &str); 17] = [
    ("layout.html", include_str!("../../templates/pages/cancel/layout.html")),
    ("survey.html", include_str!("../../templates/pages/cancel/survey.html")),
    ("offer.html", include_str!("../../templates/pages/cancel/offer.html")),
    ("done.html", include_str!("../../templates/pages/cancel/done.html")),
    ("error.html", include_str!("../../templates/pages/cancel/error.html")),
    ("scheduled.html", include_str!("../../templates/pages/cancel/scheduled.html")),
    ("ended.html", include_str!("../../templates/pages/cancel/ended.html")),
    ("working.html", include_str!("../../templates/pages/cancel/working.html")),
    ("billing_updated.html", include_str!("../../templates/pages/cancel/billing_updated.html")),
    // The annual-plan offer's confirm page shares the layout and brand too.
    ("annual.html", include_str!("../../templates/pages/cancel/annual.html")),
    ("annual_done.html", include_str!("../../templates/pages/cancel/annual_done.html")),
    // The unsubscribe pages share the layout and brand.
    ("unsubscribe_confirm.html", include_str!("../../templates/pages/unsubscribe/confirm.html")),
    ("unsubscribe_done.html", include_str!("../../templates/pages/unsubscribe/done.html")),
    ("unsubscribe_invalid.html", include_str!("../../templates/pages/unsubscribe/invalid.html")),
    // So do the NPS survey's pages.
    ("nps_score.html", include_str!("../../templates/pages/nps/score.html")),
    ("nps_comment.html", include_str!("../../templates/pages/nps/comment.html")),
    ("nps_invalid.html", include_str!("../../templates/pages/nps/invalid.html")),
];

/// No scripts, no external anything; the page URL is a capability, so it must never leak
/// through a Referer header or a cache.
/// Images only over https: the brand's logo (`[brand] logo_url`, validated as `https://`).
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The compiled templates and the brand they show.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
    brand: Value,
}

impl Pages {
    /// Compile the templates (a template error is a bug: tests render every page).
    pub fn new(brand: &Brand) -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        // `.html` names are auto-escaped by minijinja's default callback.
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        let brand = Value::from_serialize(serde_json::json!({
            "name": brand.name, "color": brand.color, "on_color": brand.text_on_color(), "logo_url": brand.logo_url,
        }));
        Ok(Self { env, brand })
    }

    /// Render `template` with `ctx` plus the brand, as a response with `status`.
    pub fn render(&self, status: StatusCode, template: &str, ctx: Value) -> HttpResponse {
        let full = context! { brand => self.brand.clone(), ..ctx };
        match self.env.get_template(template).and_then(|t| t.render(full)) {
            Ok(html) => page_response(status, html),
            Err(e) => {
                tracing::error!(template, error = %e, "cancel page failed to render");
                page_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!doctype html><title>Error</title><p>Something went wrong.</p>".into(),
                )
            }
        }
    }

    /// The friendly error page.
    pub fn error(&self, status: StatusCode, title: &str, message: &str, return_url: Option<&str>) -> HttpResponse {
        self.render(status, "error.html", context! { title, message, return_url })
    }
}

/// The words of the page a client over the per-address limit gets.
pub const TOO_MANY_REQUESTS: (&str, &str) = ("Too many requests", "Please wait a minute and try again.");

/// What every customer-facing page shares, whichever feature serves it (the cancel flow, the
/// update-payment link, unsubscribe, come-back, the annual offer, the NPS survey): the pages
/// in the owner's brand, one per-address limit across all of them (each click may cost a
/// Stripe call or a write), and where a page's "back to your account" link goes.
#[derive(Debug)]
pub struct CustomerPages {
    pages: Pages,
    limiter: RateLimiter,
    return_url: Option<String>,
}

impl CustomerPages {
    pub fn new(pages: Pages, limiter: RateLimiter, return_url: Option<String>) -> Self {
        Self { pages, limiter, return_url }
    }

    /// Render `template` with `ctx` plus the brand, as a response with `status`.
    pub fn render(&self, status: StatusCode, template: &str, ctx: Value) -> HttpResponse {
        self.pages.render(status, template, ctx)
    }

    /// The friendly error page.
    pub fn error(&self, status: StatusCode, title: &str, message: &str, return_url: Option<&str>) -> HttpResponse {
        self.pages.error(status, title, message, return_url)
    }

    /// The owner's "back to your account" URL (`[cancel_flow] return_url`), if set.
    pub fn return_url(&self) -> Option<&str> {
        self.return_url.as_deref()
    }

    /// Count one request against its client; false when over the limit.
    pub fn allows(&self, req: &HttpRequest) -> bool {
        self.limiter.allow_request(req)
    }

    /// The friendly `429` page when `req`'s client is over the limit.
    pub fn rate_limited(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let (title, message) = TOO_MANY_REQUESTS;
        (!self.allows(req)).then(|| self.error(StatusCode::TOO_MANY_REQUESTS, title, message, self.return_url()))
    }
}

fn page_response(status: StatusCode, html: String) -> HttpResponse {
    let mut r = HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html);
    secure(&mut r);
    r
}

/// Headers every cancel-flow response carries (pages and redirects).
pub fn secure(r: &mut HttpResponse) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// 303 See Other to `location` (after every POST, and from link entry to the session page).
pub fn see_other(location: &str) -> HttpResponse {
    let mut r = HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish();
    secure(&mut r);
    r
}
