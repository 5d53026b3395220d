//! Which events call for an alert, and what the alert says.

use serde_json::Value;

use crate::domain::event::Event;
use crate::owner::alerts::bodies::date;
use crate::owner::alerts::{Alert, AlertKind, Alerts, FIELD_MAX};
use crate::owner::dashboard::labels::label;

/// What every alert on one event shares: the event, its customer and how they are named.
struct About<'a> {
    event: &'a Event,
    customer: Option<String>,
    who: String,
}

impl About<'_> {
    /// The alert `alert:<id>`, its text cut to `FIELD_MAX` per field.
    fn alert(
        &self,
        kind: AlertKind,
        id: String,
        title: String,
        details: Vec<String>,
        amount: Option<f64>,
        currency: Option<String>,
    ) -> Alert {
        Alert {
            id: format!("alert:{id}"),
            kind,
            title: cut(&title),
            details: details.iter().map(|d| cut(d)).collect(),
            customer: self.customer.clone(),
            amount,
            currency,
            at: self.event.created,
        }
    }
}

impl Alerts {
    /// The alert `event` calls for, if any (`name`: the customer's name or email, if known;
    /// `customer_mrr`: the customer's MRR in the subscription's currency just before the
    /// event, when the figures know it).
    pub fn decide(&self, event: &Event, name: Option<&str>, customer_mrr: Option<f64>) -> Option<Alert> {
        let customer = event.object["customer"].as_str().map(str::to_owned);
        let who = name.map(str::to_owned).or_else(|| customer.clone()).unwrap_or_else(|| "a customer".into());
        let about = About { event, customer, who };
        match event.kind.as_str() {
            "customer.subscription.updated" | "customer.subscription.deleted" => self.subscription_alert(&about, customer_mrr),
            "invoice.payment_failed" => self.payment_failed_alert(&about),
            "charge.dispute.created" if self.settings.dispute => dispute_alert(&about),
            _ => None,
        }
    }

    /// A churn, or a cancellation newly scheduled, by a customer at or above `churn_mrr`.
    fn subscription_alert(&self, about: &About<'_>, customer_mrr: Option<f64>) -> Option<Alert> {
        let (event, who) = (about.event, &about.who);
        let o = &event.object;
        let sub = o["id"].as_str()?;
        let (own, currency) = subscription_mrr(o);
        let cur = currency.clone()?;
        // The customer's MRR as the summary counts it. When no subscription of theirs
        // in this currency was active before the event (its first snapshot is this
        // one), the figures know nothing yet: this subscription's list-price amount
        // stands in.
        let mrr = customer_mrr.unwrap_or(own);
        if !self.settings.churn_mrr.reached(mrr, &cur) {
            return None;
        }
        let reason = [&o["cancellation_details"]["feedback"], &o["cancellation_details"]["comment"]]
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(label)
            .collect::<Vec<_>>()
            .join(": ");
        let mut details = vec![format!("Customer MRR {} ({sub})", money(mrr, &cur))];
        if !reason.is_empty() {
            details.push(format!("Why: {reason}"));
        }
        if event.kind == "customer.subscription.deleted" {
            let title = format!("{who} churned ({} customer MRR)", money(mrr, &cur));
            return Some(about.alert(AlertKind::Churned, format!("churned:{sub}"), title, details, Some(mrr), currency));
        }
        let scheduled = o["cancel_at_period_end"].as_bool() == Some(true) || o["cancel_at"].is_i64();
        if !scheduled || matches!(o["status"].as_str(), Some("canceled" | "incomplete_expired")) {
            return None;
        }
        // Stripe stamps `canceled_at` when the cancellation is requested: a second
        // request after an undo is a new alert, a later update of the same one is not.
        let requested = o["canceled_at"].as_i64().or_else(|| o["cancel_at"].as_i64()).unwrap_or(0);
        if let Some(end) = o["cancel_at"].as_i64().or_else(|| o["current_period_end"].as_i64()) {
            details.push(format!("Ends {}", date(end)));
        }
        let title = format!("{who} set a subscription to cancel ({} customer MRR)", money(mrr, &cur));
        let id = format!("cancellation_scheduled:{sub}:{requested}");
        Some(about.alert(AlertKind::CancellationScheduled, id, title, details, Some(mrr), currency))
    }

    /// A failed payment at or above `payment_failed`.
    fn payment_failed_alert(&self, about: &About<'_>) -> Option<Alert> {
        let o = &about.event.object;
        let invoice = o["id"].as_str()?;
        let cur = o["currency"].as_str()?.to_ascii_lowercase();
        let amount = o["amount_due"].as_i64()? as f64;
        if !self.settings.payment_failed.reached(amount, &cur) {
            return None;
        }
        let title = format!("A payment of {} from {} failed", money(amount, &cur), about.who);
        let mut details = vec![format!("Invoice {invoice}, attempt {}", o["attempt_count"].as_i64().unwrap_or(1))];
        if let Some(next) = o["next_payment_attempt"].as_i64() {
            details.push(format!("Stripe retries on {}", date(next)));
        }
        let id = format!("payment_failed:{invoice}");
        Some(about.alert(AlertKind::PaymentFailed, id, title, details, Some(amount), Some(cur)))
    }
}

/// A dispute opened, whatever its amount.
fn dispute_alert(about: &About<'_>) -> Option<Alert> {
    let o = &about.event.object;
    let dispute = o["id"].as_str()?;
    let cur = o["currency"].as_str().unwrap_or("usd").to_ascii_lowercase();
    let amount = o["amount"].as_i64().unwrap_or(0) as f64;
    let reason = o["reason"].as_str().map_or_else(|| "not given".to_owned(), label);
    let charge = o["charge"].as_str().or_else(|| o["charge"]["id"].as_str()).unwrap_or("unknown charge");
    let mut details = vec![format!("Reason: {reason}"), format!("Charge {charge}")];
    if let Some(by) = o["evidence_details"]["due_by"].as_i64() {
        details.push(format!("Evidence due by {}", date(by)));
    }
    let title = format!("A dispute of {} was opened", money(amount, &cur));
    Some(about.alert(AlertKind::DisputeOpened, format!("dispute:{dispute}"), title, details, Some(amount), Some(cur)))
}

fn cut(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(FIELD_MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn money(minor: f64, currency: &str) -> String {
    crate::domain::money::format(minor, currency)
}

/// The monthly list-price MRR of a subscription snapshot (minor units) and its currency.
pub(super) fn subscription_mrr(sub: &Value) -> (f64, Option<String>) {
    let mut mrr = 0.0;
    let mut currency = sub["currency"].as_str().map(str::to_ascii_lowercase);
    for item in sub["items"]["data"].as_array().into_iter().flatten() {
        let price = if item["price"].is_object() { &item["price"] } else { &item["plan"] };
        let recurring = &price["recurring"];
        let interval = recurring["interval"].as_str().or_else(|| price["interval"].as_str());
        let count = recurring["interval_count"].as_i64().or_else(|| price["interval_count"].as_i64());
        let unit = price["unit_amount"].as_i64().or_else(|| price["amount"].as_i64());
        mrr += crate::domain::mrr::item_monthly(unit, item["quantity"].as_i64().unwrap_or(1), interval, count);
        if currency.is_none() {
            currency = price["currency"].as_str().map(str::to_ascii_lowercase);
        }
    }
    (mrr, currency)
}
