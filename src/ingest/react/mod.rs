//! The event reactions, composed: each feature's deciders (dunning, lifecycle emails) and the
//! owner's alerts, each with the part of the settings it reads. For a run of projected
//! events they name the stored facts they need (`wants`), and from those facts and the
//! events alone they return the plan of what should be written: dunning cases, cards,
//! lifecycle series, outbox rows (`decide`). No connection, no I/O: the store loads the
//! facts and writes the plan inside the projector's transaction, calling this module only
//! through `store::reactions::ReactionHook`.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::domain::event::Event;
use crate::dunning::EmailExperiment;
use crate::dunning::reactions::Dunning;
use crate::dunning::rules::trigger;
use crate::lifecycle::context::Lifecycle;
use crate::lifecycle::nps::NpsLinks;
use crate::mail::composer::Composer;
use crate::mail::links::Links;
use crate::mail::templates::Templates;
use crate::mail::unsubscribe::UnsubscribeLinks;
use crate::owner::alerts::Alerts;
use crate::owner::digest::Digest;
use crate::settings::Settings;
use crate::store::reactions::{Deciding, Facts, FactsQuery, OutboxWake, ReactError, ReactionPlan};

/// Everything the hook and the scheduler need; built once from `Settings`, shared by the
/// store and workers. The HTTP pages take only their part (`lifecycle`).
#[derive(Debug)]
pub struct Reactor {
    /// Renders every email (shared by the parts below).
    pub composer: Arc<Composer>,
    /// The link policy (shared by the parts below).
    pub links: Links,
    pub dunning: Dunning,
    pub lifecycle: Arc<Lifecycle>,
    /// Woken after a commit that enqueued mail, so the outbox worker doesn't wait a poll.
    pub outbox_ready: Arc<Notify>,
    /// Alerts to the owner (email, Slack, signed webhook).
    pub alerts: Alerts,
    /// The owner's weekly digest (the scheduler sends it).
    pub digest: Digest,
}

/// What the lifecycle campaigns read, from the settings, sharing `composer`, `links` and the
/// outbox's wake-up with the other features.
fn lifecycle_context(settings: &Settings, composer: Arc<Composer>, links: Links, outbox: OutboxWake) -> Lifecycle {
    Lifecycle {
        campaigns: settings.lifecycle.clone(),
        composer,
        links,
        recap: settings.recap.clone(),
        nps: settings.nps.clone(),
        nps_links: NpsLinks::new(&settings.public_url, settings.cancel_flow.link_secret.as_ref(), &settings.webhook.secrets),
        nps_product: settings.nps.product.clone().unwrap_or_else(|| settings.mail.brand.name.clone()),
        outbox,
    }
}

impl Reactor {
    /// From the settings: the shared composer and links, then each feature's part.
    pub fn new(settings: &Settings) -> Self {
        let variants = settings.experiments.email.as_ref().map(EmailExperiment::template_variants);
        let unsubscribe =
            UnsubscribeLinks::new(&settings.public_url, settings.cancel_flow.link_secret.as_ref(), &settings.webhook.secrets);
        let composer = Arc::new(Composer::new(Templates::new(&settings.mail), unsubscribe, variants));
        let links = Links::new(&settings.public_url, settings.stripe_secret_key.as_ref());
        let outbox_ready = Arc::new(Notify::new());
        let outbox = OutboxWake(outbox_ready.clone());
        Self {
            dunning: Dunning::new(
                &settings.dunning,
                settings.experiments.email.clone(),
                settings.lifecycle.product_url.clone(),
                composer.clone(),
                links.clone(),
            ),
            lifecycle: Arc::new(lifecycle_context(settings, composer.clone(), links.clone(), outbox)),
            composer,
            links,
            outbox_ready,
            alerts: Alerts::new(&settings.owner, &settings.public_url),
            digest: Digest::new(&settings.owner, &settings.public_url),
        }
    }

    /// The stored facts deciding on `events` needs (see `decide`).
    pub fn wants(&self, events: &[&Event], notify: bool) -> FactsQuery {
        let mut q = FactsQuery::default();
        for event in events {
            if let Some(t) = crate::lifecycle::rules::trigger(event) {
                crate::lifecycle::reactions::wants(&self.lifecycle, &mut q, event, &t, notify);
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
                crate::lifecycle::reactions::react(&self.lifecycle, &mut d, event, t, now, notify)?;
            }
            if let Some(t) = trigger(event) {
                crate::dunning::reactions::react(&self.dunning, &mut d, event, t, now, notify)?;
            }
            let alerts = self.alerts.react(&d.facts, event, now, notify);
            d.writes.extend(alerts);
        }
        Ok(ReactionPlan { writes: d.writes })
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::mail::NewEmail;
    use crate::store::reactions::{Contact, Write};

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
        // Not the subscription's open cases: a subscription whose payments keep failing can
        // hold many, and reading them all at every failure slowed the projector as they grew.
        assert!(q.ended_subscriptions.is_empty(), "{q:?}");

        let plan = r.decide(contact(), &[&failed], NOW, true).expect("plan");
        assert!(matches!(&plan.writes[0], Write::OpenCase(c) if c.invoice_id == "in_1" && c.status == "open"));
        let emails: Vec<&NewEmail> =
            plan.writes.iter().filter_map(|w| if let Write::EnqueueOrReschedule(e) = w { Some(e) } else { None }).collect();
        assert!(!emails.is_empty(), "the series is planned: {plan:?}");
        assert!(emails.iter().all(|e| e.recipient == "ada@example.com" && e.case_key.as_deref() == Some("dunning:in_1")));
    }

    #[test]
    fn an_ended_subscription_asks_for_its_open_cases_and_loses_them() {
        let r = reactor();
        let ended = json!({
            "id": "evt_9", "object": "event", "type": "customer.subscription.deleted", "created": NOW - 10,
            "data": {"object": {"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "canceled",
                "currency": "usd", "created": NOW - 86_400, "items": {"object": "list", "data": []}}},
        });
        let ended = Event::parse(ended.to_string().as_bytes()).expect("event");
        let q = r.wants(&[&ended], true);
        assert!(q.ended_subscriptions.contains("sub_1"), "{q:?}");

        let failed = invoice_event("evt_1", "invoice.payment_failed", NOW - 60, "open");
        let first = r.decide(contact(), &[&failed], NOW, true).expect("plan");
        let Some(Write::OpenCase(case)) = first.writes.into_iter().next() else { panic!("a case opens") };
        let mut facts = contact();
        facts.cases.insert("in_1".into(), case);
        let plan = r.decide(facts, &[&ended], NOW, true).expect("plan");
        let lost = plan.writes.iter().any(
            |w| matches!(w, Write::CloseCase { invoice, closing, .. } if invoice == "in_1" && closing.reason == "subscription_ended"),
        );
        assert!(lost, "{plan:?}");
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
