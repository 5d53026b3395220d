//! The owner-only check every owner endpoint shares.

use serde_json::Value;

/// Asserts that `url` is owner-only: no token, a wrong one, a prefix or extension of the right
/// one, another scheme or the token in the query string all get 401 (with
/// `WWW-Authenticate: Bearer`, the JSON envelope, and the presented token not echoed). Then
/// sends the right token and returns that response for the caller's own assertions.
/// Reusable for every owner endpoint: `assert_owner_only(&app.client, Method::GET, &url, token)`.
pub async fn assert_owner_only(client: &reqwest::Client, method: reqwest::Method, url: &str, token: &str) -> reqwest::Response {
    let prefix = &token[..token.len() - 1];
    let attempts = [
        None,
        Some(String::new()),
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {prefix}")),
        Some(format!("Bearer {token}x")),
        Some(format!("Basic {token}")),
        Some(token.to_owned()),
    ];
    for auth in attempts {
        let mut request = client.request(method.clone(), url);
        if let Some(auth) = &auth {
            request = request.header("Authorization", auth);
        }
        let response = request.send().await.expect("request sent");
        assert_eq!(response.status(), 401, "{method} {url} with Authorization {auth:?}");
        let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{method} {url}: 401 names the scheme");
        let body = response.text().await.expect("body");
        assert!(!body.contains(prefix), "the presented token must not be echoed: {body}");
        let json: Value = serde_json::from_str(&body).expect("JSON error envelope");
        assert_eq!(json["error"]["code"], "unauthorized");
    }
    let in_query = client.request(method.clone(), format!("{url}?token={token}")).send().await.expect("request sent");
    assert_eq!(in_query.status(), 401, "{method} {url}: a token in the query string is not accepted");
    let response = client
        .request(method.clone(), url)
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("request sent");
    assert_ne!(response.status(), 401, "{method} {url}: the right token is accepted");
    response
}
