//! Dunning reactions: open one case per failed invoice and enqueue its series; close it as
//! recovered or lost, cancelling what is still pending; keep cards for expiry warnings.

use std::collections::HashSet;

use minijinja::context;

use super::{EmailTo, ReactError, Reactor};
use crate::domain::dunning::{
    AfterRetries, CardFacts, CaseState, Step, Trigger, format_amount, format_date, opens_case, trigger,
};
use crate::domain::event::Event;
use crate::domain::snapshots::InvoiceSnapshot;
use crate::store::conn::Conn;
use crate::store::dunning::{self as cases, Card, Closing, DunningCase};
use crate::store::outbox;

/// Apply one event's trigger; returns the emails enqueued.
pub(super) async fn react(
    r: &Reactor,
    conn: &mut Conn<'_>,
    event: &Event,
    t: Trigger,
    now: i64,
    notify: bool,
) -> Result<usize, ReactError> {
    match t {
        Trigger::Failed { invoice, action_required, customer_email, customer_name } => {
            let facts = Failure { event, invoice: &invoice, action_required, email: customer_email, name: customer_name, notify };
            on_failure(r, conn, facts, now).await
        }
        Trigger::Paid { invoice } => on_paid(conn, &invoice, event.created, now).await.map(|_| 0),
        Trigger::InvoiceLost { invoice_id, reason } => lose(conn, &invoice_id, reason, event.created, now).await.map(|_| 0),
        Trigger::SubscriptionEnded { subscription } => {
            for invoice in cases::open_cases_for_subscription(conn, &subscription).await? {
                lose(conn, &invoice, "subscription_ended", event.created, now).await?;
            }
            Ok(0)
        }
        Trigger::Card(card) => store_card(conn, card, event).await.map(|_| 0),
    }
}

/// Which payments of a batch can settle a case, read once for the batch: a payment whose
/// invoice has no open case (nearly all of them) does nothing, and asking per payment was a
/// query per event inside the single-writer transaction.
pub(super) struct CaseLookup {
    /// Invoices with an open case, or failing earlier in this batch (which may open one).
    open: HashSet<String>,
}

impl CaseLookup {
    pub(super) async fn for_batch(conn: &mut Conn<'_>, events: &[&Event]) -> Result<Self, ReactError> {
        let (mut paid, mut failing) = (Vec::new(), Vec::new());
        for t in events.iter().filter_map(|e| trigger(e)) {
            match t {
                Trigger::Paid { invoice } if invoice.amount_paid > 0 => paid.push(invoice.id),
                Trigger::Failed { invoice, .. } => failing.push(invoice.id),
                _ => {}
            }
        }
        let paid: Vec<&str> = paid.iter().map(String::as_str).collect();
        let mut open = cases::open_cases_among(conn, &paid).await?;
        open.extend(failing);
        Ok(Self { open })
    }

    /// Whether `t` needs its reaction run (`false` only for a payment that settles nothing).
    pub(super) fn may_matter(&self, t: &Trigger) -> bool {
        match t {
            Trigger::Paid { invoice } => invoice.amount_paid > 0 && self.open.contains(&invoice.id),
            _ => true,
        }
    }
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

async fn on_failure(r: &Reactor, conn: &mut Conn<'_>, f: Failure<'_>, now: i64) -> Result<usize, ReactError> {
    let inv = f.invoice;
    let existing = cases::get_case(conn, &inv.id).await?;
    let case = match existing {
        Some(case) if case.status != "open" => return Ok(0),
        Some(mut case) => {
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
            cases::update_failure(conn, &case).await?;
            case
        }
        None => {
            let sub_status = match &inv.subscription {
                Some(s) => cases::subscription_status(conn, s).await?,
                None => None,
            };
            if let Err(why) = opens_case(inv, sub_status.as_deref()) {
                tracing::debug!(stripe.invoice = %inv.id, reason = ?why, "failed payment opens no dunning case");
                return Ok(0);
            }
            let experiment = r.experiments.email.as_ref();
            let case = DunningCase {
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
                experiment: experiment.map(|x| x.name.clone()),
                variant: experiment.zip(inv.customer.as_deref()).map(|(x, c)| x.variant(c).to_owned()),
                attempt_count: inv.attempt_count,
            };
            cases::insert_case(conn, &case).await?;
            // The invoice may already be settled (its payment event arrived first).
            match cases::invoice_status(conn, &inv.id).await?.as_deref() {
                Some("paid") => {
                    recover(conn, &case, inv.amount_paid.max(inv.amount_due), inv.paid_at.unwrap_or(f.event.created), now)
                        .await?;
                    return Ok(0);
                }
                Some("void") => return lose(conn, &inv.id, "voided", f.event.created, now).await.map(|_| 0),
                Some("uncollectible") => return lose(conn, &inv.id, "uncollectible", f.event.created, now).await.map(|_| 0),
                _ => {}
            }
            case
        }
    };
    // The email experiment's holdout (an opt-in) gets no dunning email: the case is still
    // recorded, so its recovery is measured against the emailed arms.
    if case.silent || case.variant.as_deref() == Some(crate::domain::lift::HOLDOUT) {
        return Ok(0);
    }
    enqueue_series(r, conn, &case, &f, now).await
}

async fn enqueue_series(
    r: &Reactor,
    conn: &mut Conn<'_>,
    case: &DunningCase,
    f: &Failure<'_>,
    now: i64,
) -> Result<usize, ReactError> {
    let Some(customer) = &case.customer else { return Ok(0) };
    let contact = cases::contact(conn, customer).await?;
    if contact.as_ref().is_some_and(|c| c.deleted) {
        return Ok(0);
    }
    let recipient = contact.as_ref().and_then(|c| c.email.clone()).or_else(|| f.email.clone());
    let Some(recipient) = recipient else {
        tracing::warn!(stripe.invoice = %case.invoice_id, "failed payment but no email address known for the customer");
        return Ok(0);
    };
    let name = contact.and_then(|c| c.name).or_else(|| f.name.clone());
    let action_required = case.kind == "action_required";
    let hosted = f.invoice.hosted_invoice_url.as_deref();
    let update_link = if action_required {
        hosted.map(str::to_owned)
    } else {
        r.links().update_payment(Some(customer), Some(&case.invoice_id), hosted, now)
    };
    let state = CaseState {
        opened_at: case.opened_at,
        last_failure_at: case.last_failure_at,
        attempt_count: case.attempt_count,
        next_payment_attempt: case.next_payment_attempt,
        action_required,
    };
    let plan = r.cadence.plan(&state);
    let after = r.cadence.after_retries;
    for step in &plan.withdraw {
        outbox::cancel_key(conn, &step_key(&case.invoice_id, *step), now).await?;
    }
    let mut enqueued = 0;
    for (step, due) in plan.send {
        // Once Stripe stops trying, a new card is not charged by itself: the way out is to
        // pay the invoice (or, when the subscription ends, to subscribe again).
        let (link, label) = match step {
            Step::Stopped if after == AfterRetries::Canceled => (
                case.subscription
                    .as_deref()
                    .and_then(|sub| r.links().come_back(customer, sub, r.lifecycle.product_url.as_deref(), now)),
                "Subscribe again",
            ),
            Step::Stopped => (hosted.map(str::to_owned).or_else(|| update_link.clone()), "Pay the invoice"),
            _ if action_required => (update_link.clone(), "Confirm payment"),
            _ => (
                update_link.as_deref().map(|l| r.links().for_email(l, &step_key(&case.invoice_id, step))),
                "Update payment method",
            ),
        };
        let ctx = context! {
            customer => context! { name => name.clone(), email => recipient.clone() },
            invoice => context! {
                id => case.invoice_id.clone(),
                amount => format_amount(case.amount_due, case.currency.as_deref()),
                failed_on => format_date(case.opened_at),
                last_attempt_on => case.next_payment_attempt.map(format_date),
                hosted_invoice_url => hosted,
            },
            after_retries => after.as_str(),
            action_url => link,
            action_label => label,
        };
        let to = EmailTo {
            dedupe_key: step_key(&case.invoice_id, step),
            case_key: Some(case_key(&case.invoice_id)),
            customer: Some(customer),
            recipient: &recipient,
            send_at: due,
        };
        let email = r.email(step.template(action_required), ctx, to)?;
        if outbox::enqueue(conn, &email, now).await? {
            enqueued += 1;
        } else {
            // Already queued: follow an earlier failure time or Stripe's new retry date.
            outbox::reschedule(conn, &email, now).await?;
        }
    }
    Ok(enqueued)
}

fn step_key(invoice: &str, step: Step) -> String {
    format!("{}:{}", case_key(invoice), step.key())
}

async fn on_paid(conn: &mut Conn<'_>, inv: &InvoiceSnapshot, event_created: i64, now: i64) -> Result<(), ReactError> {
    if inv.amount_paid <= 0 {
        // A $0 invoice.paid (trial start) is not a recovery.
        return Ok(());
    }
    if let Some(case) = cases::get_case(conn, &inv.id).await?
        && case.status == "open"
    {
        recover(conn, &case, inv.amount_paid, inv.paid_at.unwrap_or(event_created), now).await?;
    }
    Ok(())
}

async fn recover(conn: &mut Conn<'_>, case: &DunningCase, amount: i64, paid_at: i64, now: i64) -> Result<(), ReactError> {
    let key = case_key(&case.invoice_id);
    outbox::cancel_case(conn, &key, now).await?;
    let emails = outbox::sent_for_case(conn, &key).await?;
    let closing = Closing {
        status: "recovered",
        closed_at: paid_at,
        reason: "paid",
        recovered_amount: Some(amount),
        recovered_after_secs: Some((paid_at - case.opened_at).max(0)),
        emails_before_close: emails,
    };
    cases::close_case(conn, &case.invoice_id, &closing).await?;
    Ok(())
}

async fn lose(conn: &mut Conn<'_>, invoice: &str, reason: &str, at: i64, now: i64) -> Result<(), ReactError> {
    let key = case_key(invoice);
    // The "payments have stopped" notice explains exactly this ending (the subscription
    // canceled after the last try): it still goes. Everything else of the case is moot.
    outbox::cancel_case_except(conn, &key, &step_key(invoice, Step::Stopped), now).await?;
    let emails = outbox::sent_for_case(conn, &key).await?;
    let closing = Closing {
        status: "lost",
        closed_at: at,
        reason,
        recovered_amount: None,
        recovered_after_secs: None,
        emails_before_close: emails,
    };
    cases::close_case(conn, invoice, &closing).await?;
    Ok(())
}

async fn store_card(conn: &mut Conn<'_>, c: CardFacts, event: &Event) -> Result<(), ReactError> {
    let card =
        Card { id: c.id, customer: c.customer, brand: c.brand, last4: c.last4, exp_month: c.exp_month, exp_year: c.exp_year };
    cases::upsert_card(conn, &card, event.created, &event.id).await?;
    Ok(())
}
