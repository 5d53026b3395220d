//! The event reactions (dunning, lifecycle emails), as deciders: for a run of projected
//! events they name the stored facts they need (`wants`), and from those facts and the
//! events alone they return the plan of what should be written: dunning cases, cards,
//! lifecycle series, outbox rows (`decide`). No connection, no I/O: the store loads the
//! facts and writes the plan inside the projector's transaction, calling this module only
//! through `store::reactions::ReactionHook`.

use std::sync::Arc;

use minijinja::Value;
use tokio::sync::Notify;

use crate::config::{Experiments, LifecycleSettings, Settings};
use crate::domain::event::Event;
use crate::dunning::rules::Cadence;
use crate::dunning::rules::trigger;
use crate::mail::links::{LINK_TTL_SECS, LinkSigner};
use crate::mail::templates::{RenderError, Templates};
use crate::mail::unsubscribe::UnsubscribeLinks;
use crate::mail::{Category, EmailContent, NewEmail};
use crate::store::reactions::{Facts, FactsQuery, ReactionPlan, Write};

/// Everything the hook needs; built once from `Settings`, shared by the store and workers.
#[derive(Debug)]
pub struct Reactor {
    pub templates: Templates,
    pub cadence: Cadence,
    links: Links,
    /// Lifecycle campaign settings.
    pub lifecycle: LifecycleSettings,
    /// A/B experiments in force.
    pub experiments: Experiments,
    /// One-click unsubscribe links of marketing mail.
    pub unsubscribe: UnsubscribeLinks,
    /// Woken after a commit that enqueued mail, so the outbox worker doesn't wait a poll.
    pub outbox_ready: Arc<Notify>,
    /// Alerts to the owner (email, Slack, signed webhook).
    pub alerts: crate::owner::alerts::Alerts,
    /// The owner's weekly digest (the scheduler sends it).
    pub digest: crate::owner::digest::Digest,
    /// The monthly value recap.
    pub recap: crate::config::RecapSettings,
    /// The NPS survey, its signed links, and the product it asks about.
    pub nps: crate::config::NpsSettings,
    pub nps_links: crate::lifecycle::nps::NpsLinks,
    pub nps_product: String,
}

/// How update-payment links are made.
#[derive(Debug, Clone)]
pub struct Links {
    public_url: String,
    signer: Option<LinkSigner>,
}

impl Links {
    /// The update-payment link for `customer`: the signed Holdfast link when a Stripe key is
    /// configured (it opens a Billing Portal session at click time), else `fallback` (the
    /// invoice's hosted page).
    pub fn update_payment(
        &self,
        customer: Option<&str>,
        invoice: Option<&str>,
        fallback: Option<&str>,
        now: i64,
    ) -> Option<String> {
        match (&self.signer, customer) {
            (Some(signer), Some(customer)) => {
                let token = signer.sign(customer, invoice, now + LINK_TTL_SECS);
                Some(format!("{}/billing/update?token={token}", self.public_url))
            }
            _ => fallback.map(str::to_owned),
        }
    }

    /// `link` marked as sent in the email keyed `dedupe_key` (`&m=<email_ref>`), when it is
    /// Holdfast's own update-payment link (a click on it is recorded); other links unchanged.
    pub fn for_email(&self, link: &str, dedupe_key: &str) -> String {
        match link.starts_with(&format!("{}/billing/update?", self.public_url)) {
            true => format!("{link}&m={}", crate::mail::links::email_ref(dedupe_key)),
            false => link.to_owned(),
        }
    }

    /// The one-click way back after a cancellation: a signed link that opens a prefilled
    /// Stripe Checkout for the ended subscription's plan (needs `STRIPE_SECRET_KEY`), else
    /// `fallback` (the product).
    pub fn come_back(&self, customer: &str, subscription: &str, fallback: Option<&str>, now: i64) -> Option<String> {
        match &self.signer {
            Some(signer) => {
                let token = signer.sign(customer, Some(subscription), now + COMEBACK_TTL_SECS);
                Some(format!("{}/comeback?token={token}", self.public_url))
            }
            None => fallback.map(str::to_owned),
        }
    }
}

impl Links {
    /// The re-engagement series' pause link: signed for `customer` with the mark
    /// `PAUSE_LINK_MARK` in place of an invoice, valid as long as an update-payment link. It
    /// opens the cancel flow's pause offer; `None` without a Stripe key (nothing could pause).
    pub fn pause(&self, customer: &str, now: i64) -> Option<String> {
        let signer = self.signer.as_ref()?;
        let token = signer.sign(customer, Some(PAUSE_LINK_MARK), now + LINK_TTL_SECS);
        Some(format!("{}/pause?token={token}", self.public_url))
    }
}

impl Links {
    /// The annual-plan offer's confirm link for `customer`'s `subscription` (valid as long as
    /// an update-payment link); `None` without a Stripe key.
    pub fn annual(&self, customer: &str, subscription: &str, now: i64) -> Option<String> {
        let signer = self.signer.as_ref()?;
        let token = signer.sign(customer, Some(&format!("{ANNUAL_LINK_PREFIX}{subscription}")), now + LINK_TTL_SECS);
        Some(format!("{}/annual?token={token}", self.public_url))
    }
}

/// What an annual-offer link's token carries before the subscription id, where an
/// update-payment link names its invoice.
pub const ANNUAL_LINK_PREFIX: &str = "annual-";

/// What a pause link's token carries where an update-payment link names its invoice, so a
/// token made for one page is never taken by another.
pub const PAUSE_LINK_MARK: &str = "pause";

/// A win-back link must outlive the whole series (90 days by default).
pub const COMEBACK_TTL_SECS: i64 = 180 * 86_400;

/// A failure of the hook: the whole batch's transaction is rolled back.
#[derive(Debug, thiserror::Error)]
pub enum ReactError {
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// The decision in progress for one run of events: the facts as the run's earlier
/// decisions left them, and the writes decided so far (applied later, in this order).
#[derive(Debug)]
pub(crate) struct Deciding {
    pub(crate) facts: Facts,
    pub(crate) writes: Vec<Write>,
}

impl Deciding {
    pub(crate) fn push(&mut self, w: Write) {
        self.writes.push(w);
    }
}

impl Reactor {
    /// From the settings (templates, cadence, links).
    pub fn new(settings: &Settings) -> Self {
        let d = &settings.dunning;
        Self {
            templates: Templates::new(&settings.mail),
            cadence: Cadence {
                days: d.cadence_days.clone(),
                final_notice_secs: d.final_notice_hours * 3600,
                horizon_secs: d.horizon_days * 86_400,
                tries: d.stripe_tries,
                after_retries: d.after_retries,
            },
            links: Links {
                public_url: settings.public_url.clone(),
                signer: settings.stripe_secret_key.as_ref().map(LinkSigner::from_stripe_key),
            },
            lifecycle: settings.lifecycle.clone(),
            experiments: settings.experiments.clone(),
            unsubscribe: UnsubscribeLinks::new(
                &settings.public_url,
                settings.cancel_flow.link_secret.as_ref(),
                &settings.webhook.secrets,
            ),
            outbox_ready: Arc::new(Notify::new()),
            alerts: crate::owner::alerts::Alerts::new(&settings.owner, &settings.public_url),
            digest: crate::owner::digest::Digest::new(&settings.owner, &settings.public_url),
            recap: settings.recap.clone(),
            nps: settings.nps.clone(),
            nps_links: crate::lifecycle::nps::NpsLinks::new(
                &settings.public_url,
                settings.cancel_flow.link_secret.as_ref(),
                &settings.webhook.secrets,
            ),
            nps_product: settings.nps.product.clone().unwrap_or_else(|| settings.mail.brand.name.clone()),
        }
    }

    /// The link policy.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The stored facts deciding on `events` needs (see `decide`).
    pub fn wants(&self, events: &[&Event], notify: bool) -> FactsQuery {
        let mut q = FactsQuery::default();
        for event in events {
            if let Some(t) = crate::lifecycle::rules::trigger(event) {
                crate::lifecycle::reactions::wants(self, &mut q, event, &t, notify);
            }
            if let Some(t) = trigger(event) {
                crate::dunning::reactions::wants(&mut q, &t);
            }
            self.alerts.wants(&mut q, event, notify);
        }
        q
    }

    /// Decide on the run's events (in event-time order, so a run holding a failure and its
    /// payment ends the same as two deliveries) from `facts`, which `wants` named. With
    /// `notify` false (imported history: sync, replay) state is recorded but nothing is
    /// sent, whatever the events' age.
    pub fn decide(&self, facts: Facts, events: &[&Event], now: i64, notify: bool) -> Result<ReactionPlan, ReactError> {
        let mut ordered: Vec<&Event> = events.to_vec();
        ordered.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let mut d = Deciding { facts, writes: Vec::new() };
        for event in ordered {
            if let Some(t) = crate::lifecycle::rules::trigger(event) {
                crate::lifecycle::reactions::react(self, &mut d, event, t, now, notify)?;
            }
            if let Some(t) = trigger(event) {
                crate::dunning::reactions::react(self, &mut d, event, t, now, notify)?;
            }
            let alerts = self.alerts.react(&d.facts, event, now, notify);
            d.writes.extend(alerts);
        }
        Ok(ReactionPlan { writes: d.writes })
    }

    /// Render a transactional email (dunning, receipts, trial notices).
    pub fn email(&self, template: &str, ctx: Value, to: EmailTo<'_>) -> Result<NewEmail, RenderError> {
        self.build(template, ctx, to, Category::Transactional)
    }

    /// Render a marketing email: it carries the recipient's one-click unsubscribe link (in
    /// the body as `unsubscribe_url`, and later as the List-Unsubscribe header).
    pub fn marketing_email(&self, template: &str, ctx: Value, to: EmailTo<'_>) -> Result<NewEmail, RenderError> {
        self.build(template, ctx, to, Category::Marketing)
    }

    /// The template `customer` gets in place of `template` under the email experiment.
    pub fn template_for<'a>(&'a self, template: &'a str, customer: Option<&str>) -> &'a str {
        match (&self.experiments.email, customer) {
            (Some(x), Some(c)) if x.variant(c) == "b" => x.templates.get(template).map_or(template, String::as_str),
            _ => template,
        }
    }

    fn build(&self, template: &str, ctx: Value, to: EmailTo<'_>, category: Category) -> Result<NewEmail, RenderError> {
        let template = self.template_for(template, to.customer);
        let unsubscribe_url = (category == Category::Marketing).then(|| self.unsubscribe.url(to.recipient));
        let ctx = minijinja::context! { unsubscribe_url => unsubscribe_url.clone(), ..ctx };
        let content: EmailContent = self.templates.render(template, ctx)?;
        Ok(NewEmail {
            dedupe_key: to.dedupe_key,
            case_key: to.case_key,
            category,
            customer: to.customer.map(str::to_owned),
            recipient: to.recipient.to_owned(),
            template: template.to_owned(),
            content,
            send_at: to.send_at,
            unsubscribe_url,
        })
    }

    /// Wake the outbox worker (after the commit).
    pub fn notify_outbox(&self) {
        self.outbox_ready.notify_one();
    }
}

impl crate::store::reactions::ReactionHook for Reactor {
    fn wants(&self, events: &[&Event], notify: bool) -> FactsQuery {
        Reactor::wants(self, events, notify)
    }

    fn decide(
        &self,
        facts: Facts,
        events: &[&Event],
        now: i64,
        notify: bool,
    ) -> Result<ReactionPlan, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Reactor::decide(self, facts, events, now, notify)?)
    }

    fn notify_outbox(&self) {
        Reactor::notify_outbox(self);
    }
}

/// Addressing of one email.
#[derive(Debug, Clone)]
pub struct EmailTo<'a> {
    pub dedupe_key: String,
    pub case_key: Option<String>,
    pub customer: Option<&'a str>,
    pub recipient: &'a str,
    pub send_at: i64,
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::store::reactions::Contact;

    const NOW: i64 = 1_800_000_000;

    fn reactor() -> Reactor {
        let vars: HashMap<&str, String> =
            HashMap::from([("STRIPE_WEBHOOK_SECRET", "whsec_test".to_owned()), ("HOLDFAST_STRIPE_MODE", "test".to_owned())]);
        Reactor::new(&Settings::from_source(&vars).expect("settings"))
    }

    fn invoice_event(id: &str, kind: &str, created: i64, status: &str) -> Event {
        let body = json!({
            "id": id, "object": "event", "type": kind, "created": created,
            "data": {"object": {
                "id": "in_1", "object": "invoice", "customer": "cus_1", "subscription": "sub_1",
                "status": status, "amount_due": 2000, "amount_paid": if status == "paid" { 2000 } else { 0 },
                "currency": "usd", "attempt_count": 1, "billing_reason": "subscription_cycle",
            }},
        });
        Event::parse(body.to_string().as_bytes()).expect("event")
    }

    fn contact() -> Facts {
        let mut facts = Facts::default();
        let c = Contact { email: Some("ada@example.com".into()), name: Some("Ada".into()), deleted: false };
        facts.contacts.insert("cus_1".into(), c);
        facts
    }

    #[test]
    fn a_failure_is_decided_from_the_facts_it_names_and_planned_as_writes() {
        let r = reactor();
        let failed = invoice_event("evt_1", "invoice.payment_failed", NOW - 60, "open");
        let q = r.wants(&[&failed], true);
        assert!(q.invoices.contains("in_1") && q.subscriptions.contains("sub_1") && q.customers.contains("cus_1"));

        let plan = r.decide(contact(), &[&failed], NOW, true).expect("plan");
        assert!(matches!(&plan.writes[0], Write::OpenCase(c) if c.invoice_id == "in_1" && c.status == "open"));
        let emails: Vec<&NewEmail> =
            plan.writes.iter().filter_map(|w| if let Write::EnqueueOrReschedule(e) = w { Some(e) } else { None }).collect();
        assert!(!emails.is_empty(), "the series is planned: {plan:?}");
        assert!(emails.iter().all(|e| e.recipient == "ada@example.com" && e.case_key.as_deref() == Some("dunning:in_1")));
    }

    #[test]
    fn a_failure_and_its_payment_in_one_run_end_recovered_whatever_their_order_in_the_run() {
        let r = reactor();
        let failed = invoice_event("evt_1", "invoice.payment_failed", NOW - 60, "open");
        let paid = invoice_event("evt_2", "invoice.paid", NOW - 30, "paid");
        for run in [[&failed, &paid], [&paid, &failed]] {
            let plan = r.decide(contact(), &run, NOW, true).expect("plan");
            let closing = plan.writes.iter().find_map(|w| match w {
                Write::CloseCase { invoice, closing, .. } if invoice == "in_1" => Some(closing),
                _ => None,
            });
            let closing = closing.expect("the case closes in the same plan");
            assert_eq!((closing.status, closing.reason.as_str(), closing.recovered_amount), ("recovered", "paid", Some(2000)));
            let cancel = plan.writes.iter().position(|w| matches!(w, Write::CancelCase(k) if k == "dunning:in_1"));
            let last_enqueue = plan.writes.iter().rposition(|w| matches!(w, Write::EnqueueOrReschedule(_)));
            assert!(cancel > last_enqueue, "pending emails are cancelled after they were queued: {plan:?}");
        }
    }

    #[test]
    fn a_failure_of_a_closed_case_plans_nothing() {
        let r = reactor();
        let failed = invoice_event("evt_3", "invoice.payment_failed", NOW - 60, "open");
        let mut facts = contact();
        let first = r.decide(contact(), &[&failed], NOW, true).expect("plan");
        let Some(Write::OpenCase(mut case)) = first.writes.into_iter().next() else { panic!("a case opens") };
        case.status = "recovered".into();
        facts.cases.insert("in_1".into(), case);
        assert!(r.decide(facts, &[&failed], NOW, true).expect("plan").writes.is_empty());
    }
}
