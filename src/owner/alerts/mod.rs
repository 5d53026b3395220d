//! Alerts to the owner when something that matters happens: a customer at or above a
//! configured MRR sets a subscription to cancel or churns, a large payment fails, a dispute is
//! opened, a cancel-flow save is reversed. Each alert has a stable id (`alert:<what>:<object>`)
//! and is planned as one row per destination under `<id>:<destination>` (an email in the
//! email outbox; Slack and the signed webhook in `alert_deliveries`), so however often it is
//! decided (a redelivered event, two replicas) each destination gets it once; the receiver
//! gets the id to dedupe on as well.
//!
//! Decided where events are projected (by the reaction hook, only for live events: never for
//! imported history or `holdfast reproject`, which runs no hook), and by the scheduler when it
//! finds a save reversed. Nothing here does I/O; `deliver` sends.

mod bodies;
mod decide;
pub mod deliver;
pub mod storage;

use serde_json::Value;

use crate::domain::event::Event;
use crate::mail::{Category, NewEmail};
use crate::owner::config::{AlertSettings, OwnerSettings};
use crate::store::plan::NewDelivery;
use crate::store::reactions::{FactsQuery, Write};
use bodies::email;
pub use bodies::{customer_url, date, html_escape, slack_body, webhook_body};
use decide::subscription_mrr;

/// Alert text is cut to this many characters per field: a body stays small whatever a
/// customer typed.
const FIELD_MAX: usize = 500;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    CancellationScheduled,
    Churned,
    PaymentFailed,
    DisputeOpened,
    SaveReversed,
}

impl AlertKind {
    /// The `type` a webhook receiver reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CancellationScheduled => "cancellation_scheduled",
            Self::Churned => "customer_churned",
            Self::PaymentFailed => "payment_failed",
            Self::DisputeOpened => "dispute_opened",
            Self::SaveReversed => "save_reversed",
        }
    }
}

/// One alert, before it is addressed to its destinations.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// `alert:<kind>:<object>`: the same for every decision about the same thing.
    pub id: String,
    pub kind: AlertKind,
    /// One line: what happened.
    pub title: String,
    /// Further lines (amounts, reason, comment).
    pub details: Vec<String>,
    pub customer: Option<String>,
    /// Minor units, with `currency`.
    pub amount: Option<f64>,
    pub currency: Option<String>,
    /// When it happened (the event's time).
    pub at: i64,
}

/// The alert policy: which alerts are on, where they go, the dashboard's base URL.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    settings: AlertSettings,
    owner_email: Option<String>,
    public_url: String,
}

impl Alerts {
    pub fn new(owner: &OwnerSettings, public_url: &str) -> Self {
        Self { settings: owner.alerts.clone(), owner_email: owner.email.clone(), public_url: public_url.to_owned() }
    }

    /// Whether any destination is configured (else nothing is decided at all).
    pub fn any_destination(&self) -> bool {
        (self.settings.email && self.owner_email.is_some())
            || self.settings.slack_url.is_some()
            || self.settings.webhook.is_some()
    }

    /// The customer page's absolute URL.
    pub fn customer_url(&self, customer: &str) -> String {
        customer_url(&self.public_url, customer)
    }

    /// The customers whose names the alerts on `event` would show (their contacts are read).
    pub fn wants(&self, q: &mut FactsQuery, event: &Event, notify: bool) {
        if notify
            && self.any_destination()
            && self.decide(event, None, Some(f64::MAX)).is_some()
            && let Some(c) = event.object["customer"].as_str()
        {
            q.customers.insert(c.to_owned());
            if event.kind.starts_with("customer.subscription.") {
                q.customer_mrr.insert((c.to_owned(), event.created));
            }
        }
    }

    /// A reversed save: the customer took an offer, then cancelled anyway (or the
    /// subscription ended). `session_ref` is the session's `capability_ref`, never its id.
    pub fn save_reversed(
        &self,
        session_ref: &str,
        customer: Option<&str>,
        outcome: &str,
        evidence: &str,
        at: i64,
    ) -> Option<Alert> {
        if !self.settings.save_reversed {
            return None;
        }
        let who = customer.unwrap_or("a customer");
        Some(Alert {
            id: format!("alert:save_reversed:{session_ref}"),
            kind: AlertKind::SaveReversed,
            title: format!(
                "A save was reversed: {who} took the {} offer but did not stay",
                crate::owner::dashboard::labels::label(outcome)
            ),
            details: vec![format!("Evidence: {}", crate::owner::dashboard::labels::label(evidence))],
            customer: customer.map(str::to_owned),
            amount: None,
            currency: None,
            at,
        })
    }

    /// `alert`'s rows, one per configured destination.
    pub fn addressed(&self, alert: &Alert, now: i64) -> (Vec<NewEmail>, Vec<NewDelivery>) {
        let mut emails = Vec::new();
        let mut deliveries = Vec::new();
        let link = alert.customer.as_deref().map(|c| self.customer_url(c));
        if let (true, Some(to)) = (self.settings.email, &self.owner_email) {
            emails.push(NewEmail {
                dedupe_key: format!("{}:email", alert.id),
                case_key: None,
                category: Category::Transactional,
                customer: None,
                recipient: to.clone(),
                template: format!("alert_{}", alert.kind.as_str()),
                content: email(alert, link.as_deref()),
                send_at: now,
                unsubscribe_url: None,
            });
        }
        let mut push = |destination: &'static str, body: Value| {
            deliveries.push(NewDelivery {
                dedupe_key: format!("{}:{destination}", alert.id),
                alert_id: alert.id.clone(),
                kind: alert.kind.as_str(),
                destination,
                body: body.to_string(),
            });
        };
        if self.settings.slack_url.is_some() {
            push("slack", slack_body(alert, link.as_deref()));
        }
        if self.settings.webhook.is_some() {
            push("webhook", webhook_body(alert, link.as_deref()));
        }
        (emails, deliveries)
    }

    /// The writes for `alert` in a reaction plan.
    pub fn writes(&self, alert: &Alert, now: i64) -> Vec<Write> {
        let (emails, deliveries) = self.addressed(alert, now);
        emails.into_iter().map(Write::Enqueue).chain(deliveries.into_iter().map(Write::Deliver)).collect()
    }

    /// The alert writes for the run's events (live events only).
    pub fn react(&self, facts: &crate::store::reactions::Facts, event: &Event, now: i64, notify: bool) -> Vec<Write> {
        if !notify || !self.any_destination() {
            return Vec::new();
        }
        let customer = event.object["customer"].as_str();
        let name = customer.and_then(|c| facts.contacts.get(c)).and_then(|c| c.name.clone().or_else(|| c.email.clone()));
        let currency = subscription_mrr(&event.object).1;
        let mrr = customer
            .and_then(|c| facts.customer_mrr.get(&(c.to_owned(), event.created)))
            .zip(currency)
            .and_then(|(by_currency, cur)| by_currency.get(&cur).copied());
        self.decide(event, name.as_deref(), mrr).map(|a| self.writes(&a, now)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn alerts(pairs: &[(&'static str, &str)]) -> Alerts {
        let mut map: HashMap<&str, String> = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        map.insert("HOLDFAST_OWNER_EMAIL", "owner@example.com".into());
        Alerts::new(&OwnerSettings::from_source(&map).expect("settings"), "https://hf.example.com")
    }

    fn event(kind: &str, object: Value) -> Event {
        let body = json!({"id": "evt_1", "object": "event", "type": kind, "created": 1_800_000_000, "data": {"object": object}});
        Event::parse(body.to_string().as_bytes()).expect("event")
    }

    fn sub(cancel: bool, amount: i64) -> Value {
        json!({"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active", "currency": "usd",
            "cancel_at_period_end": cancel, "canceled_at": if cancel { json!(1_799_999_000) } else { Value::Null },
            "items": {"data": [{"quantity": 1, "price": {"unit_amount": amount, "currency": "usd",
                "recurring": {"interval": "year", "interval_count": 1}}}]}})
    }

    #[test]
    fn a_scheduled_cancellation_alerts_at_the_customers_threshold_only() {
        let a = alerts(&[("HOLDFAST_ALERT_CHURN_MRR", "usd:500")]);
        // 6000.00 a year is 500.00 a month: at the threshold.
        let alert = a.decide(&event("customer.subscription.updated", sub(true, 600_000)), Some("Ada"), None).expect("alert");
        assert_eq!(alert.kind, AlertKind::CancellationScheduled);
        assert_eq!(alert.id, "alert:cancellation_scheduled:sub_1:1799999000");
        assert!(alert.title.contains("Ada") && alert.title.contains("$500.00"), "{}", alert.title);
        assert!(a.decide(&event("customer.subscription.updated", sub(true, 599_999)), None, None).is_none());
        assert!(a.decide(&event("customer.subscription.updated", sub(false, 900_000)), None, None).is_none());
        // The customer's MRR decides when the figures know it, not this subscription's amount.
        let whole = a.decide(&event("customer.subscription.updated", sub(true, 100)), None, Some(50_000.0)).expect("customer");
        assert!(whole.title.contains("$500.00 customer MRR"), "{}", whole.title);
        assert!(a.decide(&event("customer.subscription.updated", sub(true, 900_000)), None, Some(49_999.0)).is_none());
        let churned = a.decide(&event("customer.subscription.deleted", sub(false, 900_000)), None, None).expect("churn");
        assert_eq!((churned.kind, churned.id.as_str()), (AlertKind::Churned, "alert:churned:sub_1"));
        assert!(alerts(&[]).decide(&event("customer.subscription.deleted", sub(false, 900_000)), None, None).is_none(), "off");
    }

    #[test]
    fn each_destination_gets_its_own_key_and_format() {
        let a = alerts(&[
            ("HOLDFAST_ALERT_SLACK_URL", "https://hooks.slack.com/services/T/B/x"),
            ("HOLDFAST_ALERT_WEBHOOK_URL", "https://example.com/hook"),
            ("HOLDFAST_ALERT_WEBHOOK_SECRET", "0123456789abcdef"),
        ]);
        let dispute = json!({"id": "dp_1", "object": "dispute", "amount": 4900, "currency": "usd", "reason": "fraudulent",
            "charge": "ch_1"});
        let alert = a.decide(&event("charge.dispute.created", dispute), None, None).expect("dispute alert");
        let (emails, deliveries) = a.addressed(&alert, 1);
        assert_eq!(emails.len(), 1);
        assert_eq!(emails[0].dedupe_key, "alert:dispute:dp_1:email");
        assert_eq!(emails[0].recipient, "owner@example.com");
        let keys: Vec<&str> = deliveries.iter().map(|d| d.dedupe_key.as_str()).collect();
        assert_eq!(keys, ["alert:dispute:dp_1:slack", "alert:dispute:dp_1:webhook"]);
        let slack: Value = serde_json::from_str(&deliveries[0].body).expect("json");
        assert!(slack["text"].as_str().is_some_and(|t| t.contains("$49.00")));
        assert_eq!(slack["blocks"][0]["text"]["type"], "mrkdwn");
        let hook: Value = serde_json::from_str(&deliveries[1].body).expect("json");
        assert_eq!((hook["id"].as_str(), hook["type"].as_str()), (Some("alert:dispute:dp_1"), Some("dispute_opened")));
    }

    #[test]
    fn slack_text_cannot_inject_links_and_html_is_escaped() {
        let mut alert = alerts(&[]).save_reversed("ref", Some("cus_1"), "paused", "ended", 1).expect("on");
        alert.title = "<https://evil.test|click> & <b>".into();
        let md = slack_body(&alert, None)["blocks"][0]["text"]["text"].as_str().unwrap_or_default().to_owned();
        assert!(md.contains("&lt;https://evil.test|click&gt; &amp; &lt;b&gt;"), "{md}");
        assert!(email(&alert, None).html.contains("&lt;b&gt;"));
        assert_eq!(customer_url("https://x", "cus_1/../a"), "https://x/dashboard/customers/cus_1%2F..%2Fa");
    }
}
