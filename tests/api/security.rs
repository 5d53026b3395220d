//! Security headers, owner-token enforcement and body limits.

use actix_web::{App, HttpResponse, HttpServer, test as actix_test, web};
use holdfast::startup::{FORM_LIMIT_BYTES, JSON_LIMIT_BYTES, body_limits};
use holdfast::web::auth::{Owner, OwnerToken};
use holdfast::web::security_headers::CONTENT_SECURITY_POLICY;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::helpers::{assert_owner_only, spawn_app, spawn_app_typed, spawn_owner_app};

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn assert_security_headers(response: &reqwest::Response) {
    let csp = header(response, "content-security-policy").expect("Content-Security-Policy");
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("http"), "no external origin may be allowed: {csp}");
    assert_eq!(header(response, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(response, "referrer-policy"), Some("no-referrer"));
    assert_eq!(header(response, "x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/no/such/page"] {
        let response = app.get(path).await;
        assert_security_headers(&response);
        assert_eq!(header(&response, "strict-transport-security"), None, "no HSTS over plain http");
    }
    let refused = app.post_raw("{}", Some("t=1,v1=00")).await;
    assert_eq!(refused.status(), 400);
    assert_security_headers(&refused);
}

#[tokio::test]
async fn hsts_is_sent_when_the_public_url_is_https() {
    let app = spawn_app_typed(|s| s.public_url = "https://holdfast.example.com".into()).await;
    let response = app.get("/healthz").await;
    assert_security_headers(&response);
    assert_eq!(header(&response, "strict-transport-security"), Some("max-age=31536000"));
    assert_eq!(CONTENT_SECURITY_POLICY, header(&response, "content-security-policy").expect("CSP"));
}

async fn owner_probe(_owner: Owner) -> HttpResponse {
    HttpResponse::Ok().json(json!({"owner": true}))
}

/// A real HTTP server with one owner-only route, guarded exactly as owner endpoints are.
fn owner_server(token: Option<&str>) -> String {
    let token = web::Data::new(OwnerToken(token.map(|t| SecretString::from(t.to_owned()))));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let server = HttpServer::new(move || App::new().app_data(token.clone()).route("/owner/probe", web::to(owner_probe)))
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
    tokio::spawn(server);
    address
}

#[tokio::test]
async fn the_owner_extractor_refuses_missing_and_wrong_tokens() {
    let token = "owner-token-0123456789abcdef";
    let address = owner_server(Some(token));
    let client = reqwest::Client::new();
    for method in [Method::GET, Method::POST] {
        let response = assert_owner_only(&client, method, &format!("{address}/owner/probe"), token).await;
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn owner_endpoints_are_closed_when_no_token_is_configured() {
    let address = owner_server(None);
    let client = reqwest::Client::new();
    for auth in [None, Some("Bearer "), Some("Bearer anything")] {
        let mut request = client.get(format!("{address}/owner/probe"));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 503, "{auth:?}");
        let body: Value = response.json().await.expect("JSON error");
        assert_eq!(body["error"]["code"], "owner_token_not_configured");
    }
}

#[actix_web::test]
async fn json_and_form_bodies_over_the_limit_get_413_in_the_json_envelope() {
    async fn echo_json(body: web::Json<Value>) -> HttpResponse {
        HttpResponse::Ok().json(body.into_inner())
    }
    async fn echo_form(body: web::Form<Vec<(String, String)>>) -> HttpResponse {
        HttpResponse::Ok().json(body.into_inner())
    }
    async fn echo_bytes(body: web::Bytes) -> HttpResponse {
        HttpResponse::Ok().body(body)
    }
    let service = actix_test::init_service(
        App::new()
            .configure(body_limits)
            .route("/json", web::post().to(echo_json))
            .route("/form", web::post().to(echo_form))
            .route("/bytes", web::post().to(echo_bytes)),
    )
    .await;
    let big_json = json!({"x": "a".repeat(JSON_LIMIT_BYTES)}).to_string();
    let big_form = format!("x={}", "a".repeat(FORM_LIMIT_BYTES));
    for (path, content_type, body) in [
        ("/json", "application/json", big_json.clone()),
        ("/form", "application/x-www-form-urlencoded", big_form),
        ("/bytes", "application/octet-stream", big_json),
    ] {
        let request = actix_test::TestRequest::post()
            .uri(path)
            .insert_header(("content-type", content_type))
            .set_payload(body)
            .to_request();
        let response = actix_test::call_service(&service, request).await;
        assert_eq!(response.status(), 413, "{path}");
        if path != "/bytes" {
            let body: Value = actix_test::read_body_json(response).await;
            assert_eq!(body["error"]["code"], "payload_too_large", "{path}");
        }
    }
    let small = actix_test::TestRequest::post().uri("/json").set_json(json!({"x": 1})).to_request();
    assert_eq!(actix_test::call_service(&service, small).await.status(), 200);
}

#[tokio::test]
async fn logging_out_of_the_dashboard_revokes_the_session_on_the_server() {
    const TOKEN: &str = "owner-token-logout-0123456789";
    let app = spawn_owner_app(TOKEN).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let login = client.post(format!("{}/dashboard/login", app.address)).form(&[("token", TOKEN)]).send().await.expect("sent");
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("name=value").to_owned();
    let dashboard = |cookie: String| client.get(format!("{}/dashboard", app.address)).header("Cookie", cookie).send();
    let before = dashboard(cookie.clone()).await.expect("sent").text().await.expect("html");
    assert!(before.contains("chart-mrr"), "logged in before logging out");

    let logout = client.post(format!("{}/dashboard/logout", app.address)).header("Cookie", &cookie).send().await.expect("sent");
    assert_eq!(logout.status(), 303);
    assert!(logout.headers()["set-cookie"].to_str().expect("ascii").contains("Max-Age=0"), "the browser forgets it");

    // A copy of the cookie kept elsewhere (another tab, a stolen value) no longer works.
    let after = dashboard(cookie).await.expect("sent").text().await.expect("html");
    assert!(after.contains("name=\"token\"") && !after.contains("chart-mrr"), "the login form, not the dashboard");
    // Logging in again (within the same second) gives a new session that works.
    let again = client.post(format!("{}/dashboard/login", app.address)).form(&[("token", TOKEN)]).send().await.expect("sent");
    let fresh = again.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("name=value").to_owned();
    let page = dashboard(fresh).await.expect("sent").text().await.expect("html");
    assert!(page.contains("chart-mrr"), "a new login is not caught by the old one's revocation");
}
