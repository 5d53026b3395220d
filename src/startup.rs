//! Builds the whole service from `Settings`: store, migrations, reaction hook, writer, HTTP
//! server and workers. Tests call `Application::build` with port 0 and talk to the real server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio::sync::watch;
use tracing_actix_web::TracingLogger;

use crate::cancel::http as cancel;
use crate::cancel::http::CancelState;
use crate::cancel::http::pages::Pages;
use crate::clock::Clock;
use crate::config::{LimitSettings, Settings};
use crate::dunning::update_payment as billing;
use crate::dunning::update_payment::BillingPortal;
use crate::figures::http as summary;
use crate::figures::reports::Reports;
use crate::health::Health;
use crate::ingest as webhook;
use crate::ingest::Intake;
use crate::ingest::WebhookState;
use crate::ingest::projector::Projector;
use crate::ingest::react::Reactor;
use crate::ingest::refetch::Refetcher;
use crate::lifecycle::activity;
use crate::lifecycle::comeback;
use crate::lifecycle::unsubscribe;
use crate::mail::links::LinkSigner;
use crate::mail::transport::Mailer;
use crate::metrics::Metrics;
use crate::owner::dashboard;
use crate::owner::observed;
use crate::owner::quarantine;
use crate::store::Store;
use crate::store::writer::Writer;
use crate::stripe_api::{ObserveLog, StripeApi};
use crate::sync::coupons::CouponFetcher;
use crate::sync::prices::PriceTiersFetcher;
use crate::telemetry::RedactedRootSpan;
use crate::web::auth::OwnerToken;
use crate::web::body_budget::BodyBudget;
use crate::web::error;
use crate::web::health;
use crate::web::home;
use crate::web::metrics;
use crate::web::rate_limit::RateLimiter;
use crate::web::request_id;
use crate::web::security_headers;
use crate::workers::outbox::OutboxWorker;
use crate::workers::scheduler::{self, Scheduler};
use crate::workers::{self as loops};

/// The outbox is polled this often even without a wake-up (rows another replica enqueued,
/// retries whose time came, scheduled dunning steps).
const OUTBOX_POLL: Duration = Duration::from_secs(5);

/// How often discounts naming an unknown coupon, and tiered prices without tiers, are looked for.
const COUPON_POLL: Duration = Duration::from_secs(60);

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
        reactor.templates.check().context("rendering the email templates (check HOLDFAST_TEMPLATES)")?;
        // Templates named in holdfast.toml (campaigns, experiment variants) must exist too.
        let configured = settings
            .lifecycle
            .template_names()
            .into_iter()
            .chain(settings.experiments.email.iter().flat_map(|x| x.templates.values().map(String::as_str)));
        for name in configured {
            reactor
                .templates
                .render(name, crate::mail::templates::sample_context())
                .with_context(|| format!("rendering email template {name:?} named in holdfast.toml"))?;
        }
        let store = Store::connect(&settings.database_url.0).await.context("connecting to DATABASE_URL")?;
        let store = store.with_reactor(reactor.clone()).with_stripe_mode(settings.stripe_mode);
        store.migrate().await.context("running database migrations")?;
        let mailer = Mailer::new(&settings.mail).context("configuring the mail transport")?;
        let health = Health::new(clock.clone());
        let outbox = OutboxWorker::new(store.clone(), mailer, settings.mail.max_attempts)
            .with_clock(clock.clone())
            .with_health(health.clone())
            .observing(settings.observe);
        if settings.observe {
            tracing::warn!("observe-only mode: no email is sent and no change is made in Stripe; see GET /api/observed");
        }
        let scheduler = Scheduler::new(store.clone(), reactor.clone())
            .with_clock(clock.clone())
            .with_save_confirm_days(settings.cancel_flow.save_confirm_days);
        let alert_sender =
            crate::owner::alerts::deliver::AlertSender::new(store.clone(), settings.owner.alerts.clone(), clock.clone())
                .context("configuring the alert client")?
                .with_health(health.clone());
        let coupons = match &settings.stripe_secret_key {
            Some(key) => Some(CouponFetcher::new(
                store.clone(),
                StripeApi::new(key, settings.stripe_api_base.as_deref()).context("configuring the Stripe client")?,
                clock.clone(),
            )),
            None => None,
        };
        // Tiers left out of tiered prices, fetched only with a key (else the items stay unresolved).
        let tiers = match &settings.stripe_secret_key {
            Some(key) => Some(PriceTiersFetcher::new(
                store.clone(),
                StripeApi::new(key, settings.stripe_api_base.as_deref()).context("configuring the Stripe client")?,
                clock.clone(),
            )),
            None => None,
        };
        // Same-second ties are settled with Stripe only when a key is set.
        let refetcher = match &settings.stripe_secret_key {
            Some(key) => Some(Refetcher::new(
                store.clone(),
                StripeApi::new(key, settings.stripe_api_base.as_deref()).context("configuring the Stripe client")?,
                clock.clone(),
            )),
            None => None,
        };
        let listener = TcpListener::bind(&settings.bind).with_context(|| format!("binding {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let (writer, writer_task) = Writer::start(store.clone(), clock.clone());
        let budget = Arc::new(BodyBudget::new(settings.limits.webhook_buffer_bytes));
        let webhook_state = WebhookState {
            secrets: settings.webhook.secrets.clone(),
            tolerance_secs: settings.webhook.tolerance_secs,
            max_body_bytes: settings.webhook.max_body_bytes,
            writer,
            clock: clock.clone(),
            intake: Intake { budget: budget.clone(), body_timeout: settings.limits.body_timeout },
        };
        let owner = OwnerToken(settings.owner_token.clone());
        let portal = billing_portal(&settings, &store, &clock)?;
        let cancel = cancel_state(&settings, &store, &clock)?;
        let parts = HttpParts {
            store: store.clone(),
            webhook_state,
            owner,
            portal,
            cancel,
            reactor: reactor.clone(),
            public_url: settings.public_url.clone(),
            clock: clock.clone(),
            observe: settings.observe,
            budget,
            limits: settings.limits.clone(),
            health: health.clone(),
            figures: settings.figures.clone(),
        };
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
            coupons,
            tiers,
            refetcher,
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

    /// Serve until SIGTERM/SIGINT (actix stops accepting and finishes in-flight requests),
    /// then let the writer commit what is queued and the workers finish their batch.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let mut workers = Vec::new();
        // Always: webhooks only reach the tables through it.
        let projector = Projector::new(self.store.clone(), self.clock.clone()).with_health(self.health.clone());
        workers.push(tokio::spawn(projector.run(stopped.clone())));
        // With the projector, whatever `HOLDFAST_WORKERS` says: it completes what the projector
        // records (several replicas may fetch one object; the log keeps one answer).
        if let Some(refetcher) = self.refetcher.clone() {
            workers.push(tokio::spawn(loops::run_loop(
                "refetch",
                move || {
                    let r = refetcher.clone();
                    async move { r.try_run_once().await }
                },
                None,
                crate::ingest::refetch::POLL,
                stopped.clone(),
            )));
        }
        if self.run_workers {
            let outbox = self.outbox.clone();
            let wake = Some(self.reactor.outbox_ready.clone());
            workers.push(tokio::spawn(loops::run_loop(
                "outbox",
                move || {
                    let w = outbox.clone();
                    async move { w.try_run_once().await }
                },
                wake,
                OUTBOX_POLL,
                stopped.clone(),
            )));
            if let Some(fetcher) = self.coupons.clone() {
                workers.push(tokio::spawn(loops::run_loop(
                    "coupons",
                    move || {
                        let f = fetcher.clone();
                        async move { f.try_run_once().await }
                    },
                    None,
                    COUPON_POLL,
                    stopped.clone(),
                )));
            }
            if let Some(fetcher) = self.tiers.clone() {
                workers.push(tokio::spawn(loops::run_loop(
                    "price_tiers",
                    move || {
                        let f = fetcher.clone();
                        async move { f.try_run_once().await }
                    },
                    None,
                    COUPON_POLL,
                    stopped.clone(),
                )));
            }
            // Observe-only mode sends nothing out: alert rows wait, as emails are only recorded.
            if self.alert_sender.configured() && !self.observe {
                let sender = self.alert_sender.clone();
                workers.push(tokio::spawn(loops::run_loop(
                    "alerts",
                    move || {
                        let s = sender.clone();
                        async move { s.try_run_once().await }
                    },
                    None,
                    OUTBOX_POLL,
                    stopped.clone(),
                )));
            }
            let sched = self.scheduler.clone();
            let every = Duration::from_secs(scheduler::INTERVAL_SECS);
            workers.push(tokio::spawn(loops::run_loop(
                "scheduler",
                move || {
                    let s = sched.clone();
                    async move { s.try_run_once().await.map(|_| loops::Outcome::Idle) }
                },
                None,
                every,
                stopped,
            )));
        }
        // A fault that can't heal in place (a failed fsync) stops the server: `holdfast serve`
        // then exits with an error and the platform restarts it.
        let handle = self.server.handle();
        let store = self.store.clone();
        let fatal = tokio::spawn(async move {
            let reason = store.health().fatal().await;
            tracing::error!(reason = %reason, "stopping: this fault is only healed by a restart");
            handle.stop(true).await;
            reason
        });
        let served = self.server.await.context("HTTP server");
        let fatal = if fatal.is_finished() {
            fatal.await.ok()
        } else {
            fatal.abort();
            None
        };
        // The server's handlers held the last `Writer` handles; the task drains and ends.
        let _ = self.writer_task.await;
        let _ = stop.send(true);
        for w in workers {
            let _ = w.await;
        }
        self.store.close().await;
        match fatal {
            Some(reason) => Err(anyhow::anyhow!("stopped after a fatal fault: {reason}")),
            None => served,
        }
    }
}

fn billing_portal(settings: &Settings, store: &Store, clock: &Clock) -> anyhow::Result<Option<BillingPortal>> {
    let Some(key) = &settings.stripe_secret_key else { return Ok(None) };
    let stripe = StripeApi::new(key, settings.stripe_api_base.as_deref())
        .context("configuring the Stripe client")?
        .observing(observe_log(settings, store, clock));
    Ok(Some(BillingPortal {
        signer: LinkSigner::from_stripe_key(key),
        stripe,
        return_url: billing::portal_return_url(settings),
        store: store.clone(),
        clock: clock.clone(),
    }))
}

/// Where held-back Stripe calls go in observe-only mode (`None`: live).
fn observe_log(settings: &Settings, store: &Store, clock: &Clock) -> Option<ObserveLog> {
    settings.observe.then(|| ObserveLog::new(store.clone(), clock.clone()))
}

/// Small JSON bodies for owner endpoints; the webhook reads its own body with its own limit.
pub const JSON_LIMIT_BYTES: usize = 64 * 1024;
/// Forms on public pages carry a few fields.
pub const FORM_LIMIT_BYTES: usize = 16 * 1024;

/// Body limits for every extractor a handler can use (`Json`, `Form`, `Bytes`/`String`), so
/// no endpoint reads an unbounded body. Over the limit: 413 in the JSON error envelope.
pub fn body_limits(cfg: &mut web::ServiceConfig) {
    cfg.app_data(error::json_config(JSON_LIMIT_BYTES))
        .app_data(error::form_config(FORM_LIMIT_BYTES))
        .app_data(web::PayloadConfig::new(JSON_LIMIT_BYTES));
}
/// How long in-flight requests get to finish after SIGTERM.
const SHUTDOWN_TIMEOUT_SECS: u64 = 25;

/// The cancel flow's shared state: its settings, compiled pages, Stripe client and limiter.
fn cancel_state(settings: &Settings, store: &Store, clock: &Clock) -> anyhow::Result<CancelState> {
    let stripe = match &settings.stripe_secret_key {
        Some(key) => Some(
            StripeApi::new(key, settings.stripe_api_base.as_deref())
                .context("building the Stripe client")?
                .observing(observe_log(settings, store, clock)),
        ),
        None => None,
    };
    Ok(CancelState {
        mail_templates: crate::mail::templates::Templates::new(&settings.mail),
        pages: Pages::new(&settings.cancel_flow.brand).context("compiling cancel page templates")?,
        limiter: RateLimiter::new(settings.cancel_flow.rate_limit_per_minute, clock.clone())
            .with_trusted_proxy(settings.limits.trusted_proxy.clone()),
        settings: settings.cancel_flow.clone(),
        experiment: settings.experiments.save_offer.clone(),
        public_url: settings.public_url.clone(),
        stripe,
        clock: clock.clone(),
    })
}

/// Everything the HTTP handlers share.
struct HttpParts {
    store: Store,
    webhook_state: WebhookState,
    owner: OwnerToken,
    portal: Option<BillingPortal>,
    cancel: CancelState,
    reactor: Arc<Reactor>,
    public_url: String,
    clock: Clock,
    observe: bool,
    budget: Arc<BodyBudget>,
    limits: LimitSettings,
    health: Health,
    figures: crate::figures::config::FigureSettings,
}

/// Time a client gets to close its side after our answer before the connection is dropped.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

fn http_server(listener: TcpListener, parts: HttpParts) -> anyhow::Result<Server> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let HttpParts {
        store,
        webhook_state,
        owner,
        portal,
        cancel,
        reactor,
        public_url,
        clock,
        observe,
        budget,
        limits,
        health,
        figures,
    } = parts;
    let health = web::Data::new(health);
    let figures = web::Data::new(figures);
    let mode = web::Data::new(observed::Mode { observe });
    let budget = web::Data::from(budget);
    let reactor = web::Data::from(reactor);
    let reports = web::Data::new(
        Reports::new(store.clone())
            .with_experiments(reactor.experiments.clone())
            .with_clock(clock.clone())
            .with_save_confirm_days(cancel.settings.save_confirm_days)
            .with_nps_min_sample(reactor.nps.min_sample),
    );
    let store = web::Data::new(store);
    let cancel = web::Data::new(cancel);
    let owner = web::Data::new(owner);
    let webhook_state = web::Data::new(webhook_state);
    let metrics = web::Data::new(Metrics::default());
    let clock = web::Data::new(clock);
    let portal = portal.map(web::Data::new);
    let server = HttpServer::new(move || {
        let mut app = App::new()
            // Inside TracingLogger (wraps run inner-first), so the request id already exists.
            .wrap(from_fn(request_id::add_header))
            .wrap(security_headers::middleware(&public_url))
            .wrap(TracingLogger::<RedactedRootSpan>::new())
            .app_data(metrics.clone())
            .app_data(budget.clone())
            .app_data(health.clone())
            .app_data(clock.clone())
            .app_data(mode.clone())
            .app_data(store.clone())
            .app_data(webhook_state.clone())
            .app_data(owner.clone())
            .app_data(cancel.clone())
            .app_data(reports.clone())
            .app_data(reactor.clone())
            .app_data(figures.clone())
            .configure(body_limits)
            .route("/webhooks/stripe", web::post().to(webhook::receive))
            .configure(cancel::routes)
            .configure(crate::lifecycle::nps::pages::routes)
            .route("/api/summary", web::get().to(summary::get_summary))
            .route("/api/metrics/monthly", web::get().to(summary::get_monthly))
            .route("/api/observed", web::get().to(observed::get_observed))
            .route("/api/quarantine", web::get().to(quarantine::get_quarantine))
            .route("/api/customers", web::get().to(dashboard::customers::search_api))
            .route("/api/customers/{id}", web::get().to(dashboard::customers::get_customer_api))
            .route("/api/lists/{list}", web::get().to(dashboard::lists::get_list_api))
            .route("/api/figures", web::get().to(dashboard::figures::get_figures_api))
            .route("/dashboard", web::get().to(dashboard::get_dashboard))
            .route("/dashboard/customers", web::get().to(dashboard::customers::search_page))
            .route("/dashboard/customers/{id}", web::get().to(dashboard::customers::customer_page))
            .route("/dashboard/lists/{list}", web::get().to(dashboard::lists::get_list_page))
            .route("/dashboard/login", web::post().to(dashboard::post_login))
            .route("/dashboard/logout", web::post().to(dashboard::post_logout))
            .route("/", web::get().to(home::home))
            .route("/docs", web::get().to(home::docs))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/metrics", web::get().to(metrics::metrics))
            .service(
                web::resource("/api/activity")
                    .app_data(error::json_config(activity::MAX_BODY_BYTES))
                    .route(web::post().to(activity::post_activity)),
            )
            .route("/unsubscribe", web::get().to(unsubscribe::confirm))
            .route("/unsubscribe", web::post().to(unsubscribe::unsubscribe));
        // Update-payment links exist only with a Stripe key; without one, emails link to the
        // hosted invoice page and this route is not served.
        if let Some(portal) = &portal {
            app = app
                .app_data(portal.clone())
                .route("/billing/update", web::get().to(billing::update_payment))
                .route("/comeback", web::get().to(comeback::come_back))
                .route("/annual", web::get().to(crate::lifecycle::annual_offer::confirm_page))
                .route("/annual", web::post().to(crate::lifecycle::annual_offer::confirm));
        }
        app.default_service(web::to(error::not_found))
    })
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    // Bounds on what a client can hold: actix counts connections per worker thread.
    .workers(workers)
    .max_connections(limits.max_connections.div_ceil(workers))
    .client_request_timeout(limits.header_timeout)
    .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
    .listen(listener)?
    .run();
    Ok(server)
}
