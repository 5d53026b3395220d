//! The event-reaction hook: runs inside the projector's transaction, for the events of a
//! batch, after their projection is applied (the store calls it through
//! `store::reactions::ReactionHook`, without importing this module). It writes dunning cases, cards and outbox
//! rows — data only: no mail, no network. Lifecycle emails (issue 7) hook in here too.

pub mod dunning;
pub mod lifecycle;

use std::sync::Arc;

use minijinja::Value;
use tokio::sync::Notify;

use crate::config::{Experiments, LifecycleSettings, Settings};
use crate::domain::dunning::{Cadence, trigger};
use crate::domain::event::Event;
use crate::mail::links::{LINK_TTL_SECS, LinkSigner};
use crate::mail::templates::{RenderError, Templates};
use crate::mail::unsubscribe::UnsubscribeLinks;
use crate::mail::{Category, EmailContent, NewEmail};
use crate::store::conn::Conn;

/// Everything the hook needs; built once from `Settings`, shared by the store and workers.
#[derive(Debug)]
pub struct Reactor {
    pub templates: Templates,
    pub cadence: Cadence,
    links: Links,
    /// Campaign settings (issue 7).
    pub lifecycle: LifecycleSettings,
    /// A/B experiments in force.
    pub experiments: Experiments,
    /// One-click unsubscribe links of marketing mail.
    pub unsubscribe: UnsubscribeLinks,
    /// Woken after a commit that enqueued mail, so the outbox worker doesn't wait a poll.
    pub outbox_ready: Arc<Notify>,
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

/// A win-back link must outlive the whole series (90 days by default).
pub const COMEBACK_TTL_SECS: i64 = 180 * 86_400;

/// A failure of the hook: the whole batch's transaction is rolled back.
#[derive(Debug, thiserror::Error)]
pub enum ReactError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Render(#[from] RenderError),
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
        }
    }

    /// The link policy.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// React to the batch's new events (in event-time order, so a batch holding a failure
    /// and its payment ends the same as two deliveries). Returns the emails enqueued.
    /// With `notify` false (imported history: sync, replay) state is recorded but nothing is
    /// sent, whatever the events' age.
    pub async fn react(&self, conn: &mut Conn<'_>, events: &[&Event], now: i64, notify: bool) -> Result<usize, ReactError> {
        let mut ordered: Vec<&Event> = events.to_vec();
        ordered.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let cases = dunning::CaseLookup::for_batch(conn, &ordered).await?;
        let mut lifecycle = lifecycle::Lookup::for_batch(self, conn, &ordered, notify).await?;
        let mut enqueued = 0;
        for event in ordered {
            if let Some(t) = crate::domain::lifecycle::trigger(event) {
                enqueued += lifecycle::react(self, conn, &mut lifecycle, event, t, now, notify).await?;
            }
            if let Some(t) = trigger(event)
                && cases.may_matter(&t)
            {
                enqueued += dunning::react(self, conn, event, t, now, notify).await?;
            }
        }
        Ok(enqueued)
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
    fn react<'a, 'c: 'a>(
        &'a self,
        conn: &'a mut Conn<'c>,
        events: &'a [&'a Event],
        now: i64,
        notify: bool,
    ) -> futures::future::BoxFuture<'a, Result<usize, crate::store::StoreError>> {
        Box::pin(async move {
            Reactor::react(self, conn, events, now, notify).await.map_err(|e| match e {
                ReactError::Database(e) => crate::store::StoreError::from(e),
                ReactError::Render(e) => crate::store::StoreError::Reaction(e.to_string()),
            })
        })
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
