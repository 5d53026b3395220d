//! Builds the whole service from `Settings`: store, migrations, writer, HTTP server.
//! Tests call `Application::build` with port 0 and talk to the real server.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::store::Store;
use crate::store::writer::Writer;
use crate::telemetry::RedactedRootSpan;
use crate::web::auth::OwnerToken;
use crate::web::{error, health, security_headers};
use crate::webhook::{self, WebhookState};

/// The running service.
pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    writer_task: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Connect, migrate, start the writer and bind the listener (not yet serving).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database_url.0).await.context("connecting to DATABASE_URL")?;
        store.migrate().await.context("running database migrations")?;
        let listener = TcpListener::bind(&settings.bind).with_context(|| format!("binding {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let (writer, writer_task) = Writer::start(store.clone());
        let webhook_state = WebhookState {
            secrets: settings.webhook.secrets.clone(),
            tolerance_secs: settings.webhook.tolerance_secs,
            max_body_bytes: settings.webhook.max_body_bytes,
            writer,
        };
        let owner = OwnerToken(settings.owner_token.clone());
        let server = http_server(listener, store.clone(), webhook_state, owner, settings.public_url.clone())?;
        tracing::info!(port, database = store.backend(), "holdfast listening");
        Ok(Self { port, server, store, writer_task })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application's store (tests read state through it).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Serve until SIGTERM/SIGINT (actix stops accepting and finishes in-flight requests),
    /// then let the writer commit what is queued.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await.context("HTTP server")?;
        // The server's handlers held the last `Writer` handles; the task drains and ends.
        let _ = self.writer_task.await;
        self.store.close().await;
        Ok(())
    }
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

fn http_server(
    listener: TcpListener,
    store: Store,
    webhook_state: WebhookState,
    owner: OwnerToken,
    public_url: String,
) -> anyhow::Result<Server> {
    let store = web::Data::new(store);
    let owner = web::Data::new(owner);
    let webhook_state = web::Data::new(webhook_state);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(security_headers::middleware(&public_url))
            .wrap(TracingLogger::<RedactedRootSpan>::new())
            .app_data(store.clone())
            .app_data(webhook_state.clone())
            .app_data(owner.clone())
            .configure(body_limits)
            .route("/webhooks/stripe", web::post().to(webhook::receive))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .default_service(web::to(error::not_found))
    })
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)?
    .run();
    Ok(server)
}
