//! Dunning reactions: open one case per failed invoice and plan its series; close it as
//! recovered or lost, cancelling what is still pending; keep cards for expiry warnings.
//! Decided from the run's facts; every write goes into the plan.

use minijinja::context;

use crate::domain::event::Event;
use crate::domain::money::{format_amount, format_date};
use crate::domain::snapshots::InvoiceSnapshot;
use crate::dunning::rules::{AfterRetries, CardFacts, CaseState, Step, Trigger, opens_case};
use std::sync::Arc;

use crate::dunning::config::{DunningSettings, EmailExperiment};
use crate::dunning::rules::Cadence;
use crate::mail::composer::{Composer, EmailTo};
use crate::mail::links::Links;
use crate::store::reactions::{Card, Closing, Deciding, DunningCase, FactsQuery, ReactError, StoredCard, Write};

/// What the dunning deciders read: the cadence, the email composer, the link policy, the
/// email experiment (a case records its customer's arm) and the product's URL (the way back
/// once a subscription ends).
#[derive(Debug)]
pub struct Dunning {
    pub cadence: Cadence,
    pub composer: Arc<Composer>,
    pub links: Links,
    pub email_experiment: Option<EmailExperiment>,
    pub product_url: Option<String>,
}

impl Dunning {
    /// From the dunning settings, the email experiment and the product's URL, sharing
    /// `composer` and `links` with the other features.
    pub fn new(
        d: &DunningSettings,
        email_experiment: Option<EmailExperiment>,
        product_url: Option<String>,
        composer: Arc<Composer>,
        links: Links,
    ) -> Self {
        Self {
            cadence: Cadence {
                days: d.cadence_days.clone(),
                final_notice_secs: d.final_notice_hours * 3600,
                horizon_secs: d.horizon_days * 86_400,
                tries: d.stripe_tries,
                after_retries: d.after_retries,
            },
            composer,
            links,
            email_experiment,
            product_url,
        }
    }
}

/// The facts `react` reads for `t`.
pub(crate) fn wants(q: &mut FactsQuery, t: &Trigger) {
    match t {
        Trigger::Failed { invoice, .. } => {
            q.invoices.insert(invoice.id.clone());
            q.subscriptions.extend(invoice.subscription.clone());
            q.customers.extend(invoice.customer.clone());
        }
        Trigger::Paid { invoice } if invoice.amount_paid > 0 => {
            q.invoices.insert(invoice.id.clone());
        }
        Trigger::Paid { .. } => {}
        Trigger::InvoiceLost { invoice_id, .. } => {
            q.invoices.insert(invoice_id.clone());
        }
        Trigger::SubscriptionEnded { subscription } => {
            q.ended_subscriptions.insert(subscription.clone());
        }
        Trigger::Card(card) => {
            q.cards.insert(card.id.clone());
        }
    }
}

/// Decide on one event's trigger.
pub(crate) fn react(r: &Dunning, d: &mut Deciding, event: &Event, t: Trigger, now: i64, notify: bool) -> Result<(), ReactError> {
    match t {
        Trigger::Failed { invoice, action_required, customer_email, customer_name } => {
            let facts = Failure { event, invoice: &invoice, action_required, email: customer_email, name: customer_name, notify };
            return on_failure(r, d, facts, now);
        }
        Trigger::Paid { invoice } => on_paid(d, &invoice, event.created),
        Trigger::InvoiceLost { invoice_id, reason } => lose(d, &invoice_id, reason, event.created),
        Trigger::SubscriptionEnded { subscription } => {
            let mut open: Vec<String> = d
                .facts
                .cases
                .values()
                .filter(|c| c.status == "open" && c.subscription.as_deref() == Some(subscription.as_str()))
                .map(|c| c.invoice_id.clone())
                .collect();
            open.sort();
            for invoice in open {
                lose(d, &invoice, "subscription_ended", event.created);
            }
        }
        Trigger::Card(card) => store_card(d, card, event),
    }
    Ok(())
}

struct Failure<'a> {
    event: &'a Event,
    invoice: &'a InvoiceSnapshot,
    action_required: bool,
    email: Option<String>,
    name: Option<String>,
    /// False for imported history: record the case, send nothing.
    notify: bool,
}

pub(crate) fn case_key(invoice: &str) -> String {
    format!("dunning:{invoice}")
}

fn on_failure(r: &Dunning, d: &mut Deciding, f: Failure<'_>, now: i64) -> Result<(), ReactError> {
    let case = match d.facts.cases.get(&f.invoice.id).cloned() {
        Some(case) if case.status != "open" => return Ok(()),
        Some(case) => failed_again(d, &f, case),
        None => match open_case(r, d, &f, now) {
            Some(case) => case,
            None => return Ok(()),
        },
    };
    // The email experiment's holdout (an opt-in) gets no dunning email: the case is still
    // recorded, so its recovery is measured against the emailed arms.
    if case.silent || case.variant.as_deref() == Some(crate::domain::lift::HOLDOUT) {
        return Ok(());
    }
    plan_series(r, d, &case, &f, now)
}

/// Another failure of an open case's invoice.
fn failed_again(d: &mut Deciding, f: &Failure<'_>, mut case: DunningCase) -> DunningCase {
    let inv = f.invoice;
    // A retry or a late/out-of-order delivery: the series runs from the earliest
    // failure, and the newest failure says which try this was and when Stripe tries
    // next. `attempt_count` only grows, so it orders failures better than their
    // timestamps (two in one second are not a tie).
    if (inv.attempt_count, f.event.created) >= (case.attempt_count, case.last_failure_at) {
        case.next_payment_attempt = inv.next_payment_attempt;
        case.last_failure_at = f.event.created;
        case.amount_due = inv.amount_due;
        case.attempt_count = inv.attempt_count;
    }
    case.opened_at = case.opened_at.min(f.event.created);
    d.facts.cases.insert(case.invoice_id.clone(), case.clone());
    d.push(Write::RecordFailure(case.clone()));
    case
}

/// The invoice's first failure: a new case, unless the failure opens none or the invoice
/// is already settled (then the case is opened and closed at once, and `None`).
fn open_case(r: &Dunning, d: &mut Deciding, f: &Failure<'_>, now: i64) -> Option<DunningCase> {
    let inv = f.invoice;
    let sub_status = inv.subscription.as_ref().and_then(|s| d.facts.subscription_status.get(s)).cloned();
    if let Err(why) = opens_case(inv, sub_status.as_deref()) {
        tracing::debug!(stripe.invoice = %inv.id, reason = ?why, "failed payment opens no dunning case");
        return None;
    }
    let case = new_case(r, f, now);
    d.facts.cases.insert(case.invoice_id.clone(), case.clone());
    d.push(Write::OpenCase(case.clone()));
    // The invoice may already be settled (its payment event arrived first).
    match d.facts.invoice_status.get(&inv.id).map(String::as_str) {
        Some("paid") => {
            let paid_at = inv.paid_at.unwrap_or(f.event.created);
            recover(d, &case.invoice_id, inv.amount_paid.max(inv.amount_due), paid_at);
            None
        }
        Some("void") => {
            lose(d, &inv.id, "voided", f.event.created);
            None
        }
        Some("uncollectible") => {
            lose(d, &inv.id, "uncollectible", f.event.created);
            None
        }
        _ => Some(case),
    }
}

/// An open case for the failed invoice, in the email experiment's arm of its customer.
fn new_case(r: &Dunning, f: &Failure<'_>, now: i64) -> DunningCase {
    let inv = f.invoice;
    let experiment = r.email_experiment.as_ref();
    DunningCase {
        invoice_id: inv.id.clone(),
        customer: inv.customer.clone(),
        subscription: inv.subscription.clone(),
        kind: if f.action_required { "action_required" } else { "payment_failed" }.into(),
        status: "open".into(),
        silent: !f.notify || r.cadence.beyond_horizon(f.event.created, now),
        currency: inv.currency.clone(),
        amount_due: inv.amount_due,
        opened_at: f.event.created,
        next_payment_attempt: inv.next_payment_attempt,
        closed_at: None,
        close_reason: None,
        recovered_amount: None,
        recovered_after_secs: None,
        emails_before_close: None,
        last_failure_at: f.event.created,
        experiment: experiment.map(|x| x.split.name.clone()),
        variant: experiment.zip(inv.customer.as_deref()).map(|(x, c)| x.split.variant(c).to_owned()),
        attempt_count: inv.attempt_count,
    }
}

/// What every email of one case's series shares.
struct Series<'a> {
    case: &'a DunningCase,
    customer: &'a str,
    recipient: String,
    name: Option<String>,
    action_required: bool,
    hosted: Option<&'a str>,
    /// Where the customer updates their card (or, action required, confirms the payment).
    update_link: Option<String>,
    now: i64,
}

fn plan_series(r: &Dunning, d: &mut Deciding, case: &DunningCase, f: &Failure<'_>, now: i64) -> Result<(), ReactError> {
    let Some(series) = series_of(r, d, case, f, now) else { return Ok(()) };
    let state = CaseState {
        opened_at: case.opened_at,
        last_failure_at: case.last_failure_at,
        attempt_count: case.attempt_count,
        next_payment_attempt: case.next_payment_attempt,
        action_required: series.action_required,
    };
    let plan = r.cadence.plan(&state);
    let after = r.cadence.after_retries;
    for step in &plan.withdraw {
        d.push(Write::CancelEmail(step_key(&case.invoice_id, *step)));
    }
    for (step, due) in plan.send {
        let (link, label) = series.action(r, step);
        let ctx = context! {
            customer => context! { name => series.name.clone(), email => series.recipient.clone() },
            invoice => context! {
                id => case.invoice_id.clone(),
                amount => format_amount(case.amount_due, case.currency.as_deref()),
                failed_on => format_date(case.opened_at),
                last_attempt_on => case.next_payment_attempt.map(format_date),
                hosted_invoice_url => series.hosted,
            },
            after_retries => after.as_str(),
            action_url => link,
            action_label => label,
        };
        let to = EmailTo {
            dedupe_key: step_key(&case.invoice_id, step),
            case_key: Some(case_key(&case.invoice_id)),
            customer: Some(series.customer),
            recipient: &series.recipient,
            send_at: due,
        };
        // Already queued: the store follows an earlier failure time or Stripe's new retry date.
        d.push(Write::EnqueueOrReschedule(r.composer.email(step.template(series.action_required), ctx, to)?));
    }
    Ok(())
}

/// The series' shared parts; `None` when nobody can be emailed (no customer, an erased
/// one, no address known).
fn series_of<'a>(r: &Dunning, d: &Deciding, case: &'a DunningCase, f: &Failure<'a>, now: i64) -> Option<Series<'a>> {
    let customer = case.customer.as_deref()?;
    let contact = d.facts.contacts.get(customer).cloned();
    if contact.as_ref().is_some_and(|c| c.deleted) {
        return None;
    }
    let recipient = contact.as_ref().and_then(|c| c.email.clone()).or_else(|| f.email.clone());
    let Some(recipient) = recipient else {
        tracing::warn!(stripe.invoice = %case.invoice_id, "failed payment but no email address known for the customer");
        return None;
    };
    let name = contact.and_then(|c| c.name).or_else(|| f.name.clone());
    let action_required = case.kind == "action_required";
    let hosted = f.invoice.hosted_invoice_url.as_deref();
    let update_link = if action_required {
        hosted.map(str::to_owned)
    } else {
        r.links.update_payment(Some(customer), Some(&case.invoice_id), hosted, now)
    };
    Some(Series { case, customer, recipient, name, action_required, hosted, update_link, now })
}

impl Series<'_> {
    /// The email's button for `step`: its link and its label.
    fn action(&self, r: &Dunning, step: Step) -> (Option<String>, &'static str) {
        let invoice = &self.case.invoice_id;
        // Once Stripe stops trying, a new card is not charged by itself: the way out is to
        // pay the invoice (or, when the subscription ends, to subscribe again).
        match step {
            Step::Stopped if r.cadence.after_retries == AfterRetries::Canceled => (
                self.case
                    .subscription
                    .as_deref()
                    .and_then(|sub| r.links.come_back(self.customer, sub, r.product_url.as_deref(), self.now)),
                "Subscribe again",
            ),
            Step::Stopped => (self.hosted.map(str::to_owned).or_else(|| self.update_link.clone()), "Pay the invoice"),
            _ if self.action_required => (self.update_link.clone(), "Confirm payment"),
            _ => (self.update_link.as_deref().map(|l| r.links.for_email(l, &step_key(invoice, step))), "Update payment method"),
        }
    }
}

fn step_key(invoice: &str, step: Step) -> String {
    format!("{}:{}", case_key(invoice), step.key())
}

fn on_paid(d: &mut Deciding, inv: &InvoiceSnapshot, event_created: i64) {
    if inv.amount_paid <= 0 {
        // A $0 invoice.paid (trial start) is not a recovery.
        return;
    }
    if d.facts.cases.get(&inv.id).is_some_and(|c| c.status == "open") {
        recover(d, &inv.id, inv.amount_paid, inv.paid_at.unwrap_or(event_created));
    }
}

/// Close `invoice`'s case as `closing` (if it is open), in the plan and in the run's facts.
fn close(d: &mut Deciding, invoice: &str, closing: Closing) {
    if let Some(case) = d.facts.cases.get_mut(invoice)
        && case.status == "open"
    {
        case.status = closing.status.to_owned();
        case.closed_at = Some(closing.closed_at);
        case.close_reason = Some(closing.reason.clone());
        case.recovered_amount = closing.recovered_amount;
        case.recovered_after_secs = closing.recovered_after_secs;
    }
    d.push(Write::CloseCase { invoice: invoice.to_owned(), case_key: case_key(invoice), closing });
}

fn recover(d: &mut Deciding, invoice: &str, amount: i64, paid_at: i64) {
    let opened_at = d.facts.cases.get(invoice).map_or(paid_at, |c| c.opened_at);
    d.push(Write::CancelCase(case_key(invoice)));
    let closing = Closing {
        status: "recovered",
        closed_at: paid_at,
        reason: "paid".into(),
        recovered_amount: Some(amount),
        recovered_after_secs: Some((paid_at - opened_at).max(0)),
    };
    close(d, invoice, closing);
}

fn lose(d: &mut Deciding, invoice: &str, reason: &str, at: i64) {
    // The "payments have stopped" notice explains exactly this ending (the subscription
    // canceled after the last try): it still goes. Everything else of the case is moot.
    d.push(Write::CancelCaseExcept { case_key: case_key(invoice), keep: step_key(invoice, Step::Stopped) });
    let closing =
        Closing { status: "lost", closed_at: at, reason: reason.to_owned(), recovered_amount: None, recovered_after_secs: None };
    close(d, invoice, closing);
}

fn store_card(d: &mut Deciding, c: CardFacts, event: &Event) {
    // The store keeps the newest snapshot; the run's facts follow the same rule.
    let newer = d.facts.cards.get(&c.id).is_none_or(|stored| event.created >= stored.src_created);
    if newer {
        d.facts.cards.insert(c.id.clone(), StoredCard { customer: c.customer.clone(), src_created: event.created });
    }
    let card =
        Card { id: c.id, customer: c.customer, brand: c.brand, last4: c.last4, exp_month: c.exp_month, exp_year: c.exp_year };
    d.push(Write::UpsertCard { card, created: event.created, event_id: event.id.clone() });
}
