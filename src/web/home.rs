//! `GET /`: a small page naming the service, with links to the dashboard and the docs, so a
//! browser pointed at the service finds its way. `GET /docs`: the README this binary was
//! built with (Markdown as plain text: readable offline, always matching the running
//! version). No inline styles: the security headers' CSP allows none.

use actix_web::HttpResponse;
use actix_web::http::header::CONTENT_TYPE;

/// The README, embedded at compile time.
const README: &str = include_str!("../../README.md");

const HOME: &str = concat!(
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Holdfast</title></head>",
    "<body>",
    "<h1>Holdfast</h1>",
    "<p>Keeps a subscription business's customers: verified Stripe webhooks, failed-payment recovery, ",
    "cancel-flow saves, lifecycle email and retention metrics.</p>",
    "<ul>",
    "<li><a href=\"/dashboard\">Dashboard</a> (sign in with the owner token)</li>",
    "<li><a href=\"/docs\">Documentation</a> (the README of this version)</li>",
    "<li>Stripe webhooks: <code>POST /webhooks/stripe</code>; health: <a href=\"/readyz\">/readyz</a></li>",
    "</ul>",
    "<p>Version ",
    env!("CARGO_PKG_VERSION"),
    "</p></body></html>"
);

pub async fn home() -> HttpResponse {
    HttpResponse::Ok().insert_header((CONTENT_TYPE, "text/html; charset=utf-8")).body(HOME)
}

pub async fn docs() -> HttpResponse {
    HttpResponse::Ok().insert_header((CONTENT_TYPE, "text/plain; charset=utf-8")).body(README)
}
