//! Periodic checks that turn stored state into outbox rows. Each check is idempotent by its
//! dedupe keys, so running it often (or on several replicas) sends nothing twice. Today:
//! card-expiry warnings, the at-risk check (product activity → re-engagement series), the
//! monthly value recap, the NPS survey, the annual-plan offer, the owner's weekly digest, the
//! check of cancel-flow saves against billing (which sends nothing), and the recompute of the
//! maintained figures whose due time passed (which sends nothing either).

use crate::clock::Clock;
use std::sync::Arc;

use minijinja::context;

use crate::cancel::saves::decide;
use crate::cancel::storage::Plan;
use crate::domain::money::{format_minor, year_month};
use crate::ingest::react::Reactor;
use crate::lifecycle::reengagement::{REENTRY_COOLDOWN_SECS, reengagement_emails};
use crate::lifecycle::rules::{
    DAY, OFFER_MONTH_DAYS, Windows, annual_offer_case, annual_saving, assess, reengage_case, steady_activity,
};
use crate::lifecycle::storage::{AnnualCandidate, NewEpisode};
use crate::mail::composer::EmailTo;
use crate::store::Store;
use crate::store::plan::NewSeries;
use crate::telemetry::capability_ref;
use crate::workers::Outcome;

/// Customers whose maintained figures are recomputed per transaction when their due time
/// passes: bounds how long the projector and the webhooks (SQLite has one writer) wait behind
/// one, and the memory one holds.
pub const FIGURES_DUE_BATCH: i64 = 100;

/// How often the checks run: they are cheap, and an hour keeps warnings timely.
pub const INTERVAL_SECS: u64 = 3600;

/// The scheduler's checks.
#[derive(Clone, Debug)]
pub struct Scheduler {
    store: Store,
    reactor: Arc<Reactor>,
    clock: Clock,
    /// A save is confirmed this long after its effect ended when the customer still pays.
    save_confirm_secs: i64,
}

impl Scheduler {
    pub fn new(store: Store, reactor: Arc<Reactor>) -> Self {
        Self { store, reactor, clock: Clock::system(), save_confirm_secs: 30 * 86_400 }
    }

    /// Read the time from `clock` (the server's).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Confirm a save still paying `days` after its effect ended (default 30).
    pub fn with_save_confirm_days(mut self, days: i64) -> Self {
        self.save_confirm_secs = days.saturating_mul(86_400);
        self
    }

    /// Run every check at the clock's time.
    pub async fn try_run_once(&self) -> anyhow::Result<Outcome> {
        self.try_run_once_at(self.clock.now()).await
    }

    /// Run every check as if the time were `now`; `Worked(n)` = emails enqueued.
    pub async fn try_run_once_at(&self, now: i64) -> anyhow::Result<Outcome> {
        let n = self.card_expiry_warnings(now).await?
            + self.at_risk_check(now).await?
            + self.value_recaps(now).await?
            + self.nps_surveys(now).await?
            + self.annual_offers(now).await?;
        self.check_saves(now).await?;
        let n = n + self.weekly_digest(now).await?;
        if n > 0 {
            self.reactor.notify_outbox();
        }
        // Last, so a failure here never holds back the checks that email.
        self.figures_due(now).await?;
        Ok(if n > 0 { Outcome::Worked(n) } else { Outcome::Idle })
    }

    /// Recompute the maintained figures of the customers whose figures change by the clock
    /// alone (a pause resumed, a discount ended) by `now`, in bounded batches. Returns how
    /// many were recomputed.
    pub async fn figures_due(&self, now: i64) -> anyhow::Result<usize> {
        let mut n = 0;
        loop {
            let started = std::time::Instant::now();
            let done = self.store.refresh_due_figures(now, FIGURES_DUE_BATCH).await?;
            n += done;
            if i64::try_from(done).unwrap_or(i64::MAX) < FIGURES_DUE_BATCH {
                break;
            }
            // Many customers can be due at once (a database imported with another clock, a
            // server stopped for months): pause as long as each batch took, so the pass uses at
            // most about half of one core and requests and webhooks are answered meanwhile.
            tokio::time::sleep(started.elapsed()).await;
        }
        if n > 0 {
            tracing::info!(customers = n, "maintained figures recomputed at their due time");
        }
        Ok(n)
    }

    /// Assess every paying customer with reported activity; open an episode (and its
    /// re-engagement series) for each newly at-risk one. Idempotent: an open episode is
    /// skipped, and its series is keyed by the episode.
    async fn at_risk_check(&self, now: i64) -> anyhow::Result<usize> {
        let rule = self.reactor.lifecycle.campaigns.at_risk;
        let mut enqueued = 0;
        for c in self.store.activity_candidates(Windows::at(&rule, now)).await? {
            let open = c.risk_status.as_deref() == Some("at_risk");
            let cooling = c.risk_resolved_at.is_some_and(|t| now - t < REENTRY_COOLDOWN_SECS);
            if open || cooling {
                continue;
            }
            if let Some(a) = assess(&rule, &c.facts(), now) {
                tracing::info!(reason = a.risk.as_str(), "customer at risk");
                let contact = self.store.contact(&c.customer).await?;
                let emails = reengagement_emails(&self.reactor.lifecycle, &c.customer, contact.as_ref(), c.last_at, now)?;
                let episode = NewEpisode {
                    customer: &c.customer,
                    reason: a.risk.as_str(),
                    since: now,
                    last_activity_at: c.last_at,
                    recent_week: a.recent_week,
                    baseline_week: a.baseline_week,
                };
                let case_key = reengage_case(&c.customer, now);
                let series = NewSeries {
                    case_key: &case_key,
                    campaign: "reengagement",
                    customer: &c.customer,
                    subscription: None,
                    started_at: now,
                    arm: crate::lifecycle::reengagement::reengagement_arm(&self.reactor.lifecycle, &c.customer),
                };
                enqueued += self.store.start_reengagement(&episode, &series, &emails, now).await?;
            }
        }
        Ok(enqueued)
    }

    /// The monthly value recaps due at `now` (customers on their billing anniversary), once
    /// per customer per month by their outbox key. Off unless `[recap]` is enabled.
    async fn value_recaps(&self, now: i64) -> anyhow::Result<usize> {
        let emails = crate::lifecycle::recap::due_recaps(&self.store, &self.reactor.lifecycle, now).await?;
        Ok(self.store.enqueue_emails(&emails, now).await?)
    }

    /// The NPS surveys due at `now` (day 30 of a paying customer's life, then every six
    /// months), once per survey by their outbox key. Off unless `[nps]` is enabled.
    async fn nps_surveys(&self, now: i64) -> anyhow::Result<usize> {
        let emails = crate::lifecycle::nps::due_surveys(&self.store, &self.reactor.lifecycle, now).await?;
        Ok(self.store.enqueue_emails(&emails, now).await?)
    }

    /// Decide the pending cancel-flow saves that billing has proven or reversed by `now`;
    /// returns how many were decided. Idempotent: a decided save is never written again.
    pub async fn check_saves(&self, now: i64) -> anyhow::Result<usize> {
        let mut decided = 0;
        for p in self.store.pending_saves().await? {
            let Some(d) = decide(&p.save, p.subscription.as_ref(), &p.paid_invoices, self.save_confirm_secs, now) else {
                continue;
            };
            if d.state == crate::cancel::SaveState::Reversed {
                self.alert_save_reversed(&p, &d, now).await?;
            }
            if self.store.decide_save(&p.session, &d, p.mrr, p.currency.as_deref()).await? {
                tracing::info!(
                    session = %capability_ref(&p.session),
                    outcome = p.save.outcome.as_str(),
                    state = d.state.as_str(),
                    evidence = d.evidence.as_str(),
                    "save decided"
                );
                decided += 1;
            }
        }
        Ok(decided)
    }

    /// Queue the owner's alert for a reversed save. Queued before the decision is recorded
    /// (its key is unique): a crash in between re-queues nothing twice and loses nothing.
    async fn alert_save_reversed(
        &self,
        p: &crate::cancel::saves_storage::PendingSave,
        d: &crate::cancel::saves::Decision,
        now: i64,
    ) -> anyhow::Result<()> {
        let alerts = &self.reactor.alerts;
        if !alerts.any_destination() {
            return Ok(());
        }
        let customer = self.store.session_customer(&p.session).await?;
        let session_ref = capability_ref(&p.session);
        let outcome = p.save.outcome.as_str();
        if let Some(alert) = alerts.save_reversed(&session_ref, customer.as_deref(), outcome, d.evidence.as_str(), d.at) {
            let (emails, deliveries) = alerts.addressed(&alert, now);
            if self.store.enqueue_alert(&emails, &deliveries, now).await? > 0 {
                self.reactor.notify_outbox();
            }
        }
        Ok(())
    }

    /// The owner's weekly digest, once its day and hour have come this ISO week. One outbox
    /// row per week under its key, however many replicas run this.
    pub async fn weekly_digest(&self, now: i64) -> anyhow::Result<usize> {
        let digest = &self.reactor.digest;
        let Some(due) = digest.due(now) else { return Ok(0) };
        if self.store.outbox_has_key(&due.key).await? {
            return Ok(0);
        }
        let data = self.store.digest_data(due.from, due.to, now).await?;
        let Some(email) = digest.email(&due, &data, now) else { return Ok(0) };
        let n = self.store.enqueue_emails(&[email], now).await?;
        if n > 0 {
            tracing::info!(digest = %due.key, "weekly digest queued");
        }
        Ok(n)
    }

    /// The annual-plan offer: one marketing email per monthly subscription on a mapped price
    /// that is `after_months` 30-day months old and whose customer was active in each of the
    /// last `after_months` 30-day windows, when the yearly price (read from the store: its
    /// `price.*` events or a sync) saves money. Idempotent: a subscription is offered once.
    pub async fn annual_offers(&self, now: i64) -> anyhow::Result<usize> {
        let cfg = &self.reactor.lifecycle.campaigns.annual_offer;
        if !cfg.active() {
            return Ok(0);
        }
        let mut enqueued = 0;
        for c in self.store.annual_candidates(now - cfg.after_months * OFFER_MONTH_DAYS * DAY).await? {
            let Some(to_price) = cfg.prices.get(&c.price_id) else { continue };
            let Some(terms) = self.annual_terms(&c, to_price, now).await? else { continue };
            if self.make_annual_offer(&c, to_price, &terms, now).await? {
                tracing::info!(subscription = %c.subscription, "annual offer made");
                enqueued += 1;
            }
        }
        Ok(enqueued)
    }

    /// The offer `c` qualifies for: the yearly price is known, yearly, in its currency and
    /// cheaper, the customer steadily active, and a confirmation link can be signed.
    async fn annual_terms(&self, c: &AnnualCandidate, to_price: &str, now: i64) -> anyhow::Result<Option<AnnualTerms>> {
        let months = self.reactor.lifecycle.campaigns.annual_offer.after_months;
        let today = now.div_euclid(DAY);
        let (Some(monthly), Some(currency)) = (c.unit_amount, c.currency.as_deref()) else { return Ok(None) };
        let yearly = match self.store.plan(to_price).await? {
            Some(p)
                if p.recurring_interval.as_deref() == Some("year")
                    && p.interval_count.unwrap_or(1) == 1
                    && p.currency.as_deref().is_some_and(|y| y.eq_ignore_ascii_case(currency)) =>
            {
                p
            }
            _ => {
                tracing::warn!(price = %to_price, "annual offer: the yearly price is unknown, not yearly or in another currency; no offer");
                return Ok(None);
            }
        };
        let Some(yearly_unit) = yearly.unit_amount else { return Ok(None) };
        let Some(saving) = annual_saving(monthly, yearly_unit, c.quantity) else { return Ok(None) };
        let days = self.store.active_days(&c.customer, today + 1 - months * OFFER_MONTH_DAYS).await?;
        if !steady_activity(&days, today, months) {
            return Ok(None);
        }
        let Some(confirm_url) = self.reactor.links.annual(&c.customer, &c.subscription, now) else { return Ok(None) };
        Ok(Some(AnnualTerms { monthly, currency: currency.to_owned(), yearly, yearly_unit, saving, confirm_url }))
    }

    /// Queue the offer's email and record the offer with its series, once per subscription;
    /// `true` when this call made it.
    async fn make_annual_offer(
        &self,
        c: &AnnualCandidate,
        to_price: &str,
        terms: &AnnualTerms,
        now: i64,
    ) -> anyhow::Result<bool> {
        let cfg = &self.reactor.lifecycle.campaigns.annual_offer;
        let (quantity, currency) = (c.quantity.max(1), terms.currency.as_str());
        let case_key = annual_offer_case(&c.subscription);
        let ctx = context! {
            customer => context! { name => c.name.clone(), email => c.email.clone() },
            plan => context! { amount => format!("{} / month", format_minor(terms.monthly * quantity, currency)) },
            yearly => context! { name => terms.yearly.describe(), amount => format!("{} / year", format_minor(terms.yearly_unit * quantity, currency)) },
            saving => format_minor(terms.saving, currency),
            action_url => terms.confirm_url.clone(),
            action_label => "See the yearly plan",
            product_url => self.reactor.lifecycle.campaigns.product_url.clone(),
        };
        let to = EmailTo {
            dedupe_key: format!("{case_key}:offer"),
            case_key: Some(case_key.clone()),
            customer: Some(&c.customer),
            recipient: &c.email,
            send_at: now,
        };
        let email = self.reactor.composer.marketing_email(&cfg.template, ctx, to)?;
        let offer = crate::lifecycle::storage::AnnualOfferRow {
            subscription: c.subscription.clone(),
            customer: c.customer.clone(),
            item_id: c.item_id.clone(),
            from_price: c.price_id.clone(),
            to_price: to_price.to_owned(),
            offered_at: now,
            acting_until: None,
            accepted_at: None,
        };
        let series = NewSeries {
            case_key: &case_key,
            campaign: "annual_offer",
            customer: &c.customer,
            subscription: Some(&c.subscription),
            started_at: now,
            arm: None,
        };
        Ok(self.store.start_annual_offer(&offer, &series, &email, now).await?)
    }

    /// One warning per card per month, for customers with a live subscription whose card
    /// expires at the end of this month.
    async fn card_expiry_warnings(&self, now: i64) -> anyhow::Result<usize> {
        let (year, month, label) = year_month(now);
        let cards = self.store.cards_expiring(year, month).await?;
        let mut emails = Vec::with_capacity(cards.len());
        for card in &cards {
            let link = self.reactor.links.update_payment(Some(&card.customer), None, None, now);
            let ctx = context! {
                customer => context! { name => card.name.clone(), email => card.email.clone() },
                card => context! { brand => card.brand.as_deref().map(brand_name), last4 => card.last4.clone(), expires => label.clone() },
                action_url => link,
                action_label => "Update payment method",
            };
            let to = EmailTo {
                dedupe_key: format!("card_expiring:{}:{year}-{month:02}", card.id),
                case_key: None,
                customer: Some(&card.customer),
                recipient: &card.email,
                send_at: now,
            };
            emails.push(self.reactor.composer.email("card_expiring", ctx, to)?);
        }
        Ok(self.store.enqueue_emails(&emails, now).await?)
    }
}

/// `visa` → `Visa`, `amex` → `American Express`.
fn brand_name(brand: &str) -> String {
    match brand {
        "amex" => "American Express".into(),
        "mastercard" => "Mastercard".into(),
        "diners" => "Diners Club".into(),
        "unionpay" => "UnionPay".into(),
        other => {
            let mut c = other.chars();
            c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
        }
    }
}

/// An annual offer worth making: the prices compared and the link that confirms it.
struct AnnualTerms {
    monthly: i64,
    currency: String,
    yearly: Plan,
    yearly_unit: i64,
    saving: i64,
    confirm_url: String,
}
