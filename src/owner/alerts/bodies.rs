//! What each destination receives for an alert: the owner's email, Slack's message, the
//! generic webhook's JSON, and the customer page's link they carry.

use serde_json::{Value, json};

use crate::mail::EmailContent;
use crate::owner::alerts::Alert;

/// `https://…/dashboard/customers/<id>` (the id percent-encoded beyond Stripe's alphabet).
pub fn customer_url(public_url: &str, customer: &str) -> String {
    let id: String = customer
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    format!("{public_url}/dashboard/customers/{id}")
}

/// `2026-12-01` (UTC).
pub fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// Text for HTML.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Text for Slack's `mrkdwn` (its three control characters).
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub(super) fn email(alert: &Alert, link: Option<&str>) -> EmailContent {
    let mut text = format!("{}\n\n", alert.title);
    let mut html = format!("<p><strong>{}</strong></p><ul>", html_escape(&alert.title));
    for d in &alert.details {
        text.push_str(&format!("- {d}\n"));
        html.push_str(&format!("<li>{}</li>", html_escape(d)));
    }
    html.push_str("</ul>");
    if let Some(link) = link {
        text.push_str(&format!("\nCustomer page: {link}\n"));
        html.push_str(&format!("<p><a href=\"{}\">Open the customer page</a></p>", html_escape(link)));
    }
    text.push_str(&format!("\nAlert id: {}\n", alert.id));
    EmailContent { subject: format!("Holdfast alert: {}", alert.title), text, html }
}

/// Slack's incoming-webhook message: `text` (notifications, fallback) and one section block.
pub fn slack_body(alert: &Alert, link: Option<&str>) -> Value {
    let mut md = format!("*{}*", slack_escape(&alert.title));
    for d in &alert.details {
        md.push_str(&format!("\n• {}", slack_escape(d)));
    }
    if let Some(link) = link {
        md.push_str(&format!("\n<{}|Open the customer page>", slack_escape(link)));
    }
    json!({
        "text": alert.title,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": md}}],
    })
}

/// The generic webhook's JSON: `id` is the receiver's dedupe key.
pub fn webhook_body(alert: &Alert, link: Option<&str>) -> Value {
    json!({
        "id": alert.id,
        "type": alert.kind.as_str(),
        "created": alert.at,
        "title": alert.title,
        "details": alert.details,
        "customer": alert.customer,
        "customer_url": link,
        "amount": alert.amount,
        "currency": alert.currency,
    })
}
