//! The demo's stand-in for Stripe's API: an HTTP server on a local port that answers the
//! calls Holdfast makes (Billing Portal sessions, subscription updates) with Stripe-shaped
//! objects and records them, so the demo never reaches Stripe even when a real key is set in
//! the environment. Its pages show what would have been sent: every call with its
//! parameters, and the emails written to the mail folder.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use serde_json::json;

use crate::demo::samples;

/// One request Holdfast made to "Stripe".
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    /// The form parameters, decoded, in order.
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Shared {
    calls: Mutex<Vec<Call>>,
    base: String,
    mail_dir: PathBuf,
}

/// The running stand-in.
pub struct StandIn {
    pub url: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
}

impl StandIn {
    /// Start on 127.0.0.1 (an unused port). Signals are left to the demo's own server.
    pub fn start(mail_dir: PathBuf) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the Stripe stand-in")?;
        let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let shared = Arc::new(Shared { calls: Mutex::default(), base: url.clone(), mail_dir });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .route("/", web::get().to(page))
                .route("/portal", web::get().to(portal_page))
                .default_service(web::to(api))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self { url, shared, handle })
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// Every API request: recorded, then answered as Stripe would for the calls Holdfast makes.
async fn api(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let path = req.path().to_owned();
    let method = req.method().to_string();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let answer = match (method.as_str(), path.split('/').collect::<Vec<_>>().as_slice()) {
        ("POST", ["", "v1", "billing_portal", "sessions"]) => {
            let customer = param("customer").unwrap_or_default();
            let mut session = samples::object("billing_portal.session");
            session["id"] = json!(format!("bps_demo_{}", shared.calls.lock().map(|c| c.len()).unwrap_or(0)));
            session["customer"] = json!(customer);
            session["livemode"] = json!(false);
            session["return_url"] = json!(param("return_url"));
            let query = serde_urlencoded::to_string([("customer", customer.as_str())]).unwrap_or_default();
            session["url"] = json!(format!("{}/portal?{query}", shared.base));
            Some(session)
        }
        ("POST" | "GET", ["", "v1", "subscriptions", id]) => {
            let mut s = samples::subscription(id, "cus_demo", "price_team_m", 4900, "active", 0);
            s["customer"] = json!(param("customer"));
            Some(s)
        }
        _ => None,
    };
    if let Ok(mut calls) = shared.calls.lock() {
        calls.push(Call { method, path: path.clone(), params });
    }
    match answer {
        Some(object) => HttpResponse::Ok().json(object),
        None => HttpResponse::NotFound().json(json!({"error": {"type": "invalid_request_error",
            "message": format!("the Holdfast demo's Stripe stand-in does not answer {path}")}})),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `(file name, To, Subject)` of every email in the mail folder, newest first.
fn emails(dir: &std::path::Path) -> Vec<(String, String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "eml")).collect())
        .unwrap_or_default();
    files.sort_by_key(|e| std::cmp::Reverse(e.metadata().and_then(|m| m.modified()).ok()));
    files
        .iter()
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let header = |name: &str| {
                text.lines()
                    .take_while(|l| !l.is_empty())
                    .find_map(|l| l.strip_prefix(name).map(str::trim).map(str::to_owned))
                    .unwrap_or_default()
            };
            (e.file_name().to_string_lossy().into_owned(), header("To:"), header("Subject:"))
        })
        .collect()
}

fn render(shared: &Shared, heading: &str) -> HttpResponse {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Stripe stand-in (Holdfast demo)</title></head>\
         <body style=\"font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem\">",
    );
    html.push_str(&format!("<h1>{}</h1>", escape(heading)));
    html.push_str(
        "<p>This is the Holdfast demo. Nothing here reached Stripe and no email left this machine: \
         below is what would have been sent.</p><h2>Calls to Stripe's API</h2>",
    );
    let calls = shared.calls.lock().map(|c| c.clone()).unwrap_or_default();
    if calls.is_empty() {
        html.push_str("<p>None yet.</p>");
    }
    html.push_str("<ol>");
    for c in calls.iter().rev() {
        let params: Vec<String> = c.params.iter().map(|(k, v)| format!("{}={}", escape(k), escape(v))).collect();
        html.push_str(&format!(
            "<li><code>{} {}</code><br><small>{}</small></li>",
            c.method,
            escape(&c.path),
            params.join(" &nbsp; ")
        ));
    }
    html.push_str("</ol>");
    let mails = emails(&shared.mail_dir);
    html.push_str(&format!(
        "<h2>Emails ({} in <code>{}</code>)</h2><ol>",
        mails.len(),
        escape(&shared.mail_dir.display().to_string())
    ));
    for (file, to, subject) in mails.iter().take(50) {
        html.push_str(&format!("<li>{} &mdash; to {} <small>({})</small></li>", escape(subject), escape(to), escape(file)));
    }
    html.push_str("</ol></body></html>");
    HttpResponse::Ok().insert_header((CONTENT_TYPE, "text/html; charset=utf-8")).body(html)
}

async fn page(shared: web::Data<Shared>) -> HttpResponse {
    render(&shared, "What Holdfast would have sent")
}

#[derive(serde::Deserialize)]
struct PortalQuery {
    customer: Option<String>,
}

/// Where a Billing Portal session's URL leads in the demo.
async fn portal_page(query: web::Query<PortalQuery>, shared: web::Data<Shared>) -> HttpResponse {
    let customer = query.customer.clone().unwrap_or_default();
    render(&shared, &format!("Stripe's Billing Portal would open here for {customer} to update their card"))
}
