//! The HTTP server: its routes, the state its handlers share, and the bounds on what a client
//! may hold.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::cancel::{CancelState, http as cancel};
use crate::clock::Clock;
use crate::config::LimitSettings;
use crate::dunning::{BillingPortal, update_payment as billing};
use crate::figures::{Reports, http as summary};
use crate::health::Health;
use crate::ingest as webhook;
use crate::ingest::react::Reactor;
use crate::ingest::{Intake, WebhookState};
use crate::lifecycle::context::Lifecycle;
use crate::lifecycle::{activity, comeback, unsubscribe};
use crate::mail::links::LinkSigner;
use crate::metrics::Metrics;
use crate::owner::{dashboard, observed, quarantine};
use crate::settings::Settings;
use crate::store::Store;
use crate::store::writer::Writer;
use crate::stripe_api::{ObserveLog, StripeApi};
use crate::telemetry::RedactedRootSpan;
use crate::web::auth::OwnerToken;
use crate::web::body_budget::BodyBudget;
use crate::web::pages::{CustomerPages, Pages};
use crate::web::rate_limit::RateLimiter;
use crate::web::{error, health, home, metrics, request_id, security_headers};

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

/// The customer pages every feature's public pages share: compiled in the owner's brand, with
/// one per-address limit.
fn customer_pages(settings: &Settings, clock: &Clock) -> anyhow::Result<CustomerPages> {
    let pages = Pages::new(&settings.cancel_flow.brand).context("compiling the customer page templates")?;
    let limiter = RateLimiter::new(settings.cancel_flow.rate_limit_per_minute, clock.clone())
        .with_trusted_proxy(settings.limits.trusted_proxy.clone());
    Ok(CustomerPages::new(pages, limiter, settings.cancel_flow.return_url.clone()))
}

/// The cancel flow's shared state: its settings, the customer pages and a Stripe client.
fn cancel_state(
    settings: &Settings,
    store: &Store,
    clock: &Clock,
    pages: web::Data<CustomerPages>,
) -> anyhow::Result<CancelState> {
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
        pages,
        settings: settings.cancel_flow.clone(),
        experiment: settings.experiments.save_offer.clone(),
        public_url: settings.public_url.clone(),
        stripe,
        clock: clock.clone(),
    })
}

/// Everything the HTTP handlers share.
pub(super) struct HttpParts {
    store: Store,
    webhook_state: WebhookState,
    owner: OwnerToken,
    portal: Option<BillingPortal>,
    cancel: CancelState,
    customer_pages: web::Data<CustomerPages>,
    reactor: Arc<Reactor>,
    public_url: String,
    clock: Clock,
    observe: bool,
    budget: Arc<BodyBudget>,
    limits: LimitSettings,
    health: Health,
    figures: crate::figures::FigureSettings,
    experiments: crate::lifecycle::config::Experiments,
}

impl HttpParts {
    /// The handlers' state: the webhook's (with `writer`), the owner's token, the billing
    /// portal and the cancel flow.
    pub(super) fn new(
        settings: &Settings,
        store: &Store,
        writer: Writer,
        reactor: &Arc<Reactor>,
        clock: &Clock,
        health: &Health,
    ) -> anyhow::Result<Self> {
        let budget = Arc::new(BodyBudget::new(settings.limits.webhook_buffer_bytes));
        let webhook_state = WebhookState {
            secrets: settings.webhook.secrets.clone(),
            tolerance_secs: settings.webhook.tolerance_secs,
            max_body_bytes: settings.webhook.max_body_bytes,
            writer,
            clock: clock.clone(),
            intake: Intake { budget: budget.clone(), body_timeout: settings.limits.body_timeout },
        };
        let customer_pages = web::Data::new(customer_pages(settings, clock)?);
        Ok(Self {
            store: store.clone(),
            webhook_state,
            owner: OwnerToken(settings.owner_token.clone()),
            portal: billing_portal(settings, store, clock)?,
            cancel: cancel_state(settings, store, clock, customer_pages.clone())?,
            customer_pages,
            reactor: reactor.clone(),
            public_url: settings.public_url.clone(),
            clock: clock.clone(),
            observe: settings.observe,
            budget,
            limits: settings.limits.clone(),
            health: health.clone(),
            figures: settings.figures.clone(),
            experiments: settings.experiments.clone(),
        })
    }
}

/// The handlers' shared state, wrapped once and cloned into every worker thread's app.
#[derive(Clone)]
struct AppData {
    public_url: String,
    metrics: web::Data<Metrics>,
    budget: web::Data<BodyBudget>,
    health: web::Data<Health>,
    clock: web::Data<Clock>,
    mode: web::Data<observed::Mode>,
    store: web::Data<Store>,
    webhook_state: web::Data<WebhookState>,
    owner: web::Data<OwnerToken>,
    cancel: web::Data<CancelState>,
    customer_pages: web::Data<CustomerPages>,
    reports: web::Data<Reports>,
    lifecycle: web::Data<Lifecycle>,
    figures: web::Data<crate::figures::FigureSettings>,
    portal: Option<web::Data<BillingPortal>>,
}

impl AppData {
    fn new(parts: HttpParts) -> Self {
        let reports = Reports::new(parts.store.clone())
            .with_experiments(parts.experiments)
            .with_clock(parts.clock.clone())
            .with_save_confirm_days(parts.cancel.settings.save_confirm_days)
            .with_nps_min_sample(parts.reactor.lifecycle.nps.min_sample);
        Self {
            public_url: parts.public_url,
            metrics: web::Data::new(Metrics::default()),
            budget: web::Data::from(parts.budget),
            health: web::Data::new(parts.health),
            clock: web::Data::new(parts.clock),
            mode: web::Data::new(observed::Mode { observe: parts.observe }),
            store: web::Data::new(parts.store),
            webhook_state: web::Data::new(parts.webhook_state),
            owner: web::Data::new(parts.owner),
            cancel: web::Data::new(parts.cancel),
            customer_pages: parts.customer_pages,
            reports: web::Data::new(reports),
            lifecycle: web::Data::from(parts.reactor.lifecycle.clone()),
            figures: web::Data::new(parts.figures),
            portal: parts.portal.map(web::Data::new),
        }
    }
}

/// Time a client gets to close its side after our answer before the connection is dropped.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) fn http_server(listener: TcpListener, parts: HttpParts) -> anyhow::Result<Server> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let limits = parts.limits.clone();
    let data = AppData::new(parts);
    let server = HttpServer::new(move || {
        let d = &data;
        let mut app = App::new()
            // Inside TracingLogger (wraps run inner-first), so the request id already exists.
            .wrap(from_fn(request_id::add_header))
            .wrap(security_headers::middleware(&d.public_url))
            .wrap(TracingLogger::<RedactedRootSpan>::new())
            .app_data(d.metrics.clone())
            .app_data(d.budget.clone())
            .app_data(d.health.clone())
            .app_data(d.clock.clone())
            .app_data(d.mode.clone())
            .app_data(d.store.clone())
            .app_data(d.webhook_state.clone())
            .app_data(d.owner.clone())
            .app_data(d.cancel.clone())
            .app_data(d.customer_pages.clone())
            .app_data(d.reports.clone())
            .app_data(d.lifecycle.clone())
            .app_data(d.figures.clone())
            .configure(body_limits)
            .configure(routes);
        // Update-payment links exist only with a Stripe key; without one, emails link to the
        // hosted invoice page and this route is not served.
        if let Some(portal) = &d.portal {
            app = app.app_data(portal.clone()).configure(portal_routes);
        }
        app.default_service(web::to(error::not_found))
    })
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    // Bounds on what a client can hold: actix counts connections per worker thread.
    .workers(workers)
    .max_connections(limits.max_connections.div_ceil(workers))
    .client_request_timeout(limits.header_timeout)
    .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
    // Answers go out as written: with Nagle's algorithm on, a response written in parts
    // (a streamed export) can wait ~40 ms for the client's delayed ACK.
    .tcp_nodelay(true)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Every route but the billing portal's.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/stripe", web::post().to(webhook::receive))
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
        .route("/unsubscribe", web::post().to(unsubscribe::unsubscribe))
        .route("/billing/updated", web::get().to(billing::updated_page));
}

/// The routes that need the billing portal (a Stripe key).
fn portal_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/billing/update", web::get().to(billing::update_payment))
        .route("/comeback", web::get().to(comeback::come_back))
        .route("/annual", web::get().to(crate::lifecycle::annual_offer::confirm_page))
        .route("/annual", web::post().to(crate::lifecycle::annual_offer::confirm));
}

fn billing_portal(settings: &Settings, store: &Store, clock: &Clock) -> anyhow::Result<Option<BillingPortal>> {
    let Some(key) = &settings.stripe_secret_key else { return Ok(None) };
    let stripe = StripeApi::new(key, settings.stripe_api_base.as_deref())
        .context("configuring the Stripe client")?
        .observing(observe_log(settings, store, clock));
    Ok(Some(BillingPortal {
        signer: LinkSigner::from_stripe_key(key),
        stripe,
        return_url: billing::portal_return_url(
            settings.cancel_flow.return_url.as_deref(),
            settings.lifecycle.product_url.as_deref(),
            &settings.public_url,
        ),
        store: store.clone(),
        clock: clock.clone(),
    }))
}

/// Where held-back Stripe calls go in observe-only mode (`None`: live).
fn observe_log(settings: &Settings, store: &Store, clock: &Clock) -> Option<ObserveLog> {
    settings.observe.then(|| ObserveLog::new(store.clone(), clock.clone()))
}
