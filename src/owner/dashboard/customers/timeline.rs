//! The customer's timeline: every dated fact about them as one line, newest first.

use serde::Serialize;

use crate::owner::dashboard::customers::plans_of;
use crate::owner::dashboard::labels::{label, money, outcome_detail};
use crate::owner::views::CustomerRecord;

/// One line of the customer's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub at: i64,
    /// `subscription`, `mrr`, `invoice`, `payment_failure`, `email`, `cancel_flow`, `lifecycle`,
    /// `activity`, `at_risk`, `stripe_change`, `nps`.
    pub kind: &'static str,
    pub text: String,
}

/// The lines gathered so far, in the order they were added.
#[derive(Default)]
struct Lines(Vec<Entry>);

impl Lines {
    /// A line at `at`; none when the fact has no date.
    fn push(&mut self, at: Option<i64>, kind: &'static str, text: String) {
        if let Some(at) = at {
            self.0.push(Entry { at, kind, text });
        }
    }
}

/// Every dated fact about the customer, newest first.
pub fn timeline(r: &CustomerRecord) -> Vec<Entry> {
    let mut lines = Lines::default();
    lines.push(r.customer.created, "customer", "Became a customer".into());
    subscriptions(r, &mut lines);
    mrr_changes(r, &mut lines);
    invoices(r, &mut lines);
    dunning(r, &mut lines);
    emails(r, &mut lines);
    cancel_sessions(r, &mut lines);
    lifecycle(r, &mut lines);
    activity_and_risk(r, &mut lines);
    stripe_changes_and_nps(r, &mut lines);
    // Newest first; same instant: the order they were added (the cause before the effect).
    let mut out = lines.0;
    out.sort_by_key(|e| std::cmp::Reverse(e.at));
    out
}

fn subscriptions(r: &CustomerRecord, lines: &mut Lines) {
    for s in &r.subscriptions {
        lines.push(s.created, "subscription", format!("Subscribed: {} ({})", plans_of(r, &s.id), s.id));
        lines.push(s.trial_end, "subscription", format!("Trial ends ({})", s.id));
        if let Some(at) = s.canceled_at {
            let why = s.cancel_feedback.as_deref().map(|f| format!(": {}", label(f))).unwrap_or_default();
            lines.push(Some(at), "subscription", format!("Cancellation recorded by Stripe{why} ({})", s.id));
        }
        lines.push(s.ended_at, "subscription", format!("Subscription ended ({})", s.id));
    }
}

/// MRR changes per subscription, from its recorded history.
fn mrr_changes(r: &CustomerRecord, lines: &mut Lines) {
    let mut last: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
    for p in &r.mrr_history {
        let before = last.insert(&p.subscription_id, p.base_mrr);
        if before.is_none_or(|b| (b - p.base_mrr).abs() > 0.5) {
            let from = before.map(|b| format!("{} → ", money(b, p.currency.as_deref()))).unwrap_or_default();
            lines.push(
                Some(p.effective_at),
                "mrr",
                format!("MRR {from}{} ({}, {})", money(p.base_mrr, p.currency.as_deref()), label(&p.status), p.subscription_id),
            );
        }
    }
}

fn invoices(r: &CustomerRecord, lines: &mut Lines) {
    for i in &r.invoices {
        let amount = money(i.amount_due as f64, i.currency.as_deref());
        lines.push(
            i.created,
            "invoice",
            format!("Invoice {} for {amount}: {}", i.id, label(i.status.as_deref().unwrap_or("unknown"))),
        );
        lines.push(
            i.paid_at,
            "invoice",
            format!("Invoice {} paid ({})", i.id, money(i.amount_paid as f64, i.currency.as_deref())),
        );
    }
}

fn dunning(r: &CustomerRecord, lines: &mut Lines) {
    for d in &r.dunning_cases {
        let amount = money(d.amount_due as f64, d.currency.as_deref());
        lines.push(
            Some(d.opened_at),
            "payment_failure",
            format!("Payment of {amount} failed (invoice {}); dunning case opened", d.invoice_id),
        );
        if let Some(closed) = d.closed_at {
            let how = match d.status.as_str() {
                "recovered" => {
                    format!("Recovered {}", money(d.recovered_amount.unwrap_or(d.amount_due) as f64, d.currency.as_deref()))
                }
                other => label(other),
            };
            let why = d.close_reason.as_deref().map(|r| format!(" ({})", label(r))).unwrap_or_default();
            lines.push(Some(closed), "payment_failure", format!("Dunning case for invoice {}: {how}{why}", d.invoice_id));
        }
    }
}

fn emails(r: &CustomerRecord, lines: &mut Lines) {
    for e in &r.emails {
        let at = e.sent_at.unwrap_or(if e.status == "pending" { e.next_attempt_at } else { e.created_at });
        lines.push(
            Some(at),
            "email",
            format!("Email “{}” ({}) to {}: {}", e.subject, label(&e.template), e.recipient, label(&e.status)),
        );
    }
}

fn cancel_sessions(r: &CustomerRecord, lines: &mut Lines) {
    for c in &r.cancel_sessions {
        let reason = c.reason.as_deref().map(|r| format!(", reason: {}", label(r))).unwrap_or_default();
        let comment = c.comment.as_deref().map(|t| format!(", said: “{t}”")).unwrap_or_default();
        lines.push(c.started_at, "cancel_flow", format!("Opened the cancel flow ({}){reason}{comment}", label(&c.source)));
        if let (Some(outcome), Some(at)) = (c.outcome.as_deref(), c.completed_at) {
            let detail = outcome_detail(outcome, c.outcome_detail.as_deref());
            let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
            lines.push(Some(at), "cancel_flow", format!("Cancel flow outcome: {}{detail}", label(outcome)));
        }
    }
}

fn lifecycle(r: &CustomerRecord, lines: &mut Lines) {
    for s in &r.lifecycle_series {
        lines.push(Some(s.started_at), "lifecycle", format!("{} emails started", label(&s.campaign)));
        if let Some(at) = s.stopped_at {
            let why = s.stop_reason.as_deref().map(|r| format!(" ({})", label(r))).unwrap_or_default();
            lines.push(Some(at), "lifecycle", format!("{} emails stopped{why}", label(&s.campaign)));
        }
    }
}

fn activity_and_risk(r: &CustomerRecord, lines: &mut Lines) {
    if let Some(a) = &r.activity {
        lines.push(Some(a.first_at), "activity", "First product activity reported".into());
        lines.push(Some(a.last_at), "activity", format!("Latest product activity ({} events in all)", a.total));
    }
    if let Some(a) = &r.at_risk {
        lines.push(Some(a.since), "at_risk", format!("At risk: {}", label(&a.reason)));
        if let Some(at) = a.resolved_at {
            lines.push(Some(at), "at_risk", format!("No longer at risk: {}", label(&a.status)));
        }
    }
}

fn stripe_changes_and_nps(r: &CustomerRecord, lines: &mut Lines) {
    for c in &r.stripe_changes {
        lines.push(
            Some(c.made_at),
            "stripe_change",
            format!("Holdfast changed Stripe: {} {} {} — by {}", c.method, c.path, c.params, c.triggered_by),
        );
    }
    for a in &r.nps_answers {
        let comment = a.comment.as_deref().map(|t| format!(", said: “{t}”")).unwrap_or_default();
        lines.push(
            Some(a.answered_at),
            "nps",
            format!("NPS answer: {} ({}){comment}", a.score, crate::lifecycle::nps_category(a.score)),
        );
    }
}
