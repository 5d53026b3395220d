//! Builds the whole service from `Settings`: store, migrations, writer, HTTP server.
//! Tests call `Application::build` with port 0 and talk to the real server.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::reports::Reports;
use crate::store::Store;
use crate::store::writer::Writer;
use crate::web::auth::OwnerToken;
use crate::web::{dashboard, error, health, summary};
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
        let server = http_server(listener, store.clone(), webhook_state, owner)?;
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
const JSON_LIMIT_BYTES: usize = 64 * 1024;
/// The dashboard's login form is one short field.
const FORM_LIMIT_BYTES: usize = 4 * 1024;
/// How long in-flight requests get to finish after SIGTERM.
const SHUTDOWN_TIMEOUT_SECS: u64 = 25;

fn http_server(listener: TcpListener, store: Store, webhook_state: WebhookState, owner: OwnerToken) -> anyhow::Result<Server> {
    let reports = web::Data::new(Reports::new(store.clone()));
    let store = web::Data::new(store);
    let owner = web::Data::new(owner);
    let webhook_state = web::Data::new(webhook_state);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(TracingLogger::default())
            .app_data(store.clone())
            .app_data(webhook_state.clone())
            .app_data(owner.clone())
            .app_data(reports.clone())
            .app_data(web::FormConfig::default().limit(FORM_LIMIT_BYTES))
            .app_data(error::json_config(JSON_LIMIT_BYTES))
            .route("/webhooks/stripe", web::post().to(webhook::receive))
            .route("/api/summary", web::get().to(summary::get_summary))
            .route("/api/metrics/monthly", web::get().to(summary::get_monthly))
            .route("/dashboard", web::get().to(dashboard::get_dashboard))
            .route("/dashboard/login", web::post().to(dashboard::post_login))
            .route("/dashboard/logout", web::post().to(dashboard::post_logout))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .default_service(web::to(error::not_found))
    })
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)?
    .run();
    Ok(server)
}
