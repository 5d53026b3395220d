//! Builds the whole service from `Settings`: store, migrations, reaction hook, writer, HTTP
//! server and workers. Tests call `Application::build` with port 0 and talk to the real server.
//!
//! `http`: the HTTP server, its routes and the state its handlers share; `workers`: running
//! until stopped, with the background workers.

mod http;
mod workers;

pub use self::http::{FORM_LIMIT_BYTES, JSON_LIMIT_BYTES, body_limits};

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use anyhow::Context;

use self::http::{HttpParts, http_server};
use crate::clock::Clock;
use crate::health::Health;
use crate::ingest::react::Reactor;
use crate::ingest::refetch::Refetcher;
use crate::mail::transport::Mailer;
use crate::settings::Settings;
use crate::store::Store;
use crate::store::writer::Writer;
use crate::stripe_api::StripeApi;
use crate::sync::coupons::CouponFetcher;
use crate::sync::prices::PriceTiersFetcher;
use crate::workers::outbox::OutboxWorker;
use crate::workers::scheduler::Scheduler;

/// The running service.
pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    writer_task: tokio::task::JoinHandle<()>,
    reactor: Arc<Reactor>,
    outbox: OutboxWorker,
    scheduler: Scheduler,
    alert_sender: crate::owner::alerts::deliver::AlertSender,
    coupons: Option<CouponFetcher>,
    tiers: Option<PriceTiersFetcher>,
    refetcher: Option<Refetcher>,
    run_workers: bool,
    observe: bool,
    clock: Clock,
    health: Health,
}

impl Application {
    /// Connect, migrate, start the writer and bind the listener (not yet serving).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// Build with a given clock (tests and the demo set the time through it).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let reactor = Arc::new(Reactor::new(&settings));
        check_templates(&settings, &reactor)?;
        let store = Store::connect(&settings.database_url.0).await.context("connecting to DATABASE_URL")?;
        let store = store.with_reactor(reactor.clone()).with_stripe_mode(settings.stripe_mode);
        store.migrate().await.context("running database migrations")?;
        let health = Health::new(clock.clone());
        let outbox = outbox_worker(&settings, &store, &clock, &health)?;
        let scheduler = Scheduler::new(store.clone(), reactor.clone())
            .with_clock(clock.clone())
            .with_save_confirm_days(settings.cancel_flow.save_confirm_days);
        let alert_sender =
            crate::owner::alerts::deliver::AlertSender::new(store.clone(), settings.owner.alerts.clone(), clock.clone())
                .context("configuring the alert client")?
                .with_health(health.clone());
        let fetchers = Fetchers::new(&settings, &store, &clock)?;
        let listener = TcpListener::bind(&settings.bind).with_context(|| format!("binding {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let (writer, writer_task) = Writer::start(store.clone(), clock.clone());
        let parts = HttpParts::new(&settings, &store, writer, &reactor, &clock, &health)?;
        let server = http_server(listener, parts)?;
        tracing::info!(port, database = store.backend(), "holdfast listening");
        Ok(Self {
            port,
            server,
            store,
            writer_task,
            reactor,
            outbox,
            scheduler,
            alert_sender,
            coupons: fetchers.coupons,
            tiers: fetchers.tiers,
            refetcher: fetchers.refetcher,
            run_workers: settings.run_workers,
            observe: settings.observe,
            clock,
            health,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application's store (tests read state through it).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// The clock every part of the service reads (tests set it).
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// What the background parts report (`/readyz` reads it).
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The outbox sender, for driving it by hand (`HOLDFAST_WORKERS=off`, tests).
    pub fn outbox_worker(&self) -> OutboxWorker {
        self.outbox.clone()
    }

    /// The periodic checks, for driving them by hand.
    pub fn scheduler(&self) -> Scheduler {
        self.scheduler.clone()
    }

    /// The sender of alerts to Slack and the signed webhook, for driving it by hand.
    pub fn alert_sender(&self) -> crate::owner::alerts::deliver::AlertSender {
        self.alert_sender.clone()
    }

    /// The fetcher of coupons discounts name but Holdfast never saw (`None` without
    /// `STRIPE_SECRET_KEY`), for driving it by hand.
    pub fn coupon_fetcher(&self) -> Option<CouponFetcher> {
        self.coupons.clone()
    }

    /// The fetcher of tiered prices' tiers Holdfast never saw (`None` without
    /// `STRIPE_SECRET_KEY`), for driving it by hand.
    pub fn price_tiers_fetcher(&self) -> Option<PriceTiersFetcher> {
        self.tiers.clone()
    }
}

/// Render every email template, and every template `holdfast.toml` names (campaigns,
/// experiment variants): a missing or broken one stops the start.
fn check_templates(settings: &Settings, reactor: &Reactor) -> anyhow::Result<()> {
    reactor.composer.templates.check().context("rendering the email templates (check HOLDFAST_TEMPLATES)")?;
    // Templates named in holdfast.toml (campaigns, experiment variants) must exist too.
    let configured = settings
        .lifecycle
        .template_names()
        .into_iter()
        .chain(settings.experiments.email.iter().flat_map(|x| x.templates.values().map(String::as_str)));
    for name in configured {
        reactor
            .composer
            .templates
            .render(name, crate::mail::templates::sample_context())
            .with_context(|| format!("rendering email template {name:?} named in holdfast.toml"))?;
    }
    Ok(())
}

/// The outbox sender over the configured mail transport.
fn outbox_worker(settings: &Settings, store: &Store, clock: &Clock, health: &Health) -> anyhow::Result<OutboxWorker> {
    let mailer = Mailer::new(&settings.mail).context("configuring the mail transport")?;
    let outbox = OutboxWorker::new(store.clone(), mailer, settings.mail.max_attempts)
        .with_clock(clock.clone())
        .with_health(health.clone())
        .observing(settings.observe);
    if settings.observe {
        tracing::warn!("observe-only mode: no email is sent and no change is made in Stripe; see GET /api/observed");
    }
    Ok(outbox)
}

/// What is fetched from Stripe in the background, each only with a key.
struct Fetchers {
    coupons: Option<CouponFetcher>,
    /// Tiers left out of tiered prices (without a key the items stay unresolved).
    tiers: Option<PriceTiersFetcher>,
    /// Same-second ties, settled with Stripe.
    refetcher: Option<Refetcher>,
}

impl Fetchers {
    fn new(settings: &Settings, store: &Store, clock: &Clock) -> anyhow::Result<Self> {
        Ok(Self {
            coupons: stripe_client(settings)?.map(|api| CouponFetcher::new(store.clone(), api, clock.clone())),
            tiers: stripe_client(settings)?.map(|api| PriceTiersFetcher::new(store.clone(), api, clock.clone())),
            refetcher: stripe_client(settings)?.map(|api| Refetcher::new(store.clone(), api, clock.clone())),
        })
    }
}

/// A Stripe client of its own, when a key is set.
fn stripe_client(settings: &Settings) -> anyhow::Result<Option<StripeApi>> {
    settings
        .stripe_secret_key
        .as_ref()
        .map(|key| StripeApi::new(key, settings.stripe_api_base.as_deref()).context("configuring the Stripe client"))
        .transpose()
}
