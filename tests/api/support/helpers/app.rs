//! The server under test: `spawn_app()` and its variants, and the requests tests send it.

use holdfast::clock::Clock;
use holdfast::ingest::signature::sign;
use holdfast::settings::{Settings, SettingsBuilder};
use holdfast::startup::Application;
use holdfast::store::{StateDump, Store};
use holdfast::workers::outbox::OutboxWorker;
use holdfast::workers::scheduler::Scheduler;
use serde_json::Value;

use super::config::Config;
use super::database::{TestDb, fresh_database};
use super::stripe_objects::{SECRET, now};

/// How long a test waits for the projector before failing.
pub const PROJECTOR_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A running Holdfast on a fresh database.
pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub store: Store,
    pub client: reqwest::Client,
    /// The outbox sender, driven by hand (`HOLDFAST_WORKERS=off` unless a test turns it on).
    pub outbox: OutboxWorker,
    /// The periodic checks (card expiry), driven by hand.
    pub scheduler: Scheduler,
    /// The alert sender (reports to the server's `/readyz`), driven by hand.
    pub alert_sender: holdfast::owner::alerts::deliver::AlertSender,
    /// The server's clock: system time until a test sets it.
    pub clock: Clock,
    /// Where `.eml` files go when no `SMTP_URL` is given.
    pub mail_dir: tempfile::TempDir,
    /// Declared last, so dropped last: the database outlives the handles above.
    _dir: Option<TestDb>,
}

/// Start the app with the test defaults changed by `config`.
pub async fn spawn_app_with(config: Config) -> TestApp {
    let (url, dir) = fresh_database().await;
    spawn_app_on(url, dir, config).await
}

/// Start the app with typed changes to the test settings (`|s| s.owner_token = …`).
pub async fn spawn_app_typed(change: impl FnOnce(&mut Settings) + Send + 'static) -> TestApp {
    spawn_app_with(Config::new().with(change)).await
}

/// Start the app with the owner API and dashboard open to `token`.
pub async fn spawn_owner_app(token: &str) -> TestApp {
    spawn_app_with(Config::new().owner_token(token)).await
}

/// Start the app on a given database URL (e.g. one routed through a proxy).
pub async fn spawn_app_on(url: String, dir: Option<TestDb>, config: Config) -> TestApp {
    init_test_logs();
    let mail_dir = tempfile::tempdir().expect("mail dir");
    let settings = settings_on(&url, &mail_dir, config);
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    let (outbox, scheduler, clock) = (app.outbox_worker(), app.scheduler(), app.clock());
    let alert_sender = app.alert_sender();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        database_url: url,
        store,
        client: reqwest::Client::new(),
        outbox,
        scheduler,
        clock,
        alert_sender,
        mail_dir,
        _dir: dir,
    }
}

/// The settings a test's server runs with: the test defaults on database `url`, mail into
/// `mail_dir`, changed by `config`.
pub fn settings_on(url: &str, mail_dir: &tempfile::TempDir, config: Config) -> Settings {
    test_defaults(mail_dir).then(config).build(required(url))
}

/// Settings for parts that run without a server (templates, rules): what the service
/// requires, changed by `config`.
pub fn serverless_settings(config: Config) -> Settings {
    config.build(required(holdfast::config::DEFAULT_DATABASE_URL))
}

/// What the service needs before it starts, as its environment gives it: the database, the
/// test webhook secret, a port of the system's choosing, and test mode (Stripe's example
/// events are test-mode events).
fn required(url: &str) -> SettingsBuilder {
    Settings::builder()
        .var("DATABASE_URL", url)
        .var("STRIPE_WEBHOOK_SECRET", SECRET)
        .var("HOLDFAST_BIND", "127.0.0.1:0")
        .var("HOLDFAST_STRIPE_MODE", "test")
}

/// The defaults every test starts from: mail into `mail_dir`, workers driven by hand, and
/// every lifecycle campaign off unless a test turns one on (other tests count their mail).
fn test_defaults(mail_dir: &tempfile::TempDir) -> Config {
    let mail_dir = mail_dir.path().to_path_buf();
    let campaigns = ["onboarding", "trial_onboarding", "trial_ending", "winback", "reengagement", "annual_offer"];
    campaigns.iter().fold(Config::new(), |config, name| config.key(&format!("lifecycle.{name}.enabled"), false)).with(move |s| {
        s.mail.mail_dir = mail_dir;
        s.run_workers = false;
    })
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Config::new()).await
}

fn init_test_logs() {
    if std::env::var("TEST_LOG").is_ok() {
        holdfast::telemetry::init(false);
    }
}

impl TestApp {
    /// POST a body with the given Stripe-Signature header (or none).
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>, signature: Option<&str>) -> reqwest::Response {
        let mut request =
            self.client.post(format!("{}/webhooks/stripe", self.address)).header("Content-Type", "application/json").body(body);
        if let Some(sig) = signature {
            request = request.header("Stripe-Signature", sig);
        }
        request.send().await.expect("request sent")
    }

    /// POST an event signed now with the primary secret, as Stripe would. When it is
    /// acknowledged, waits for the projector to have passed it (a 200 promises the event is
    /// in the log; the tables follow), so the caller reads the projected state.
    pub async fn post_event(&self, event: &Value) -> reqwest::Response {
        let body = event.to_string();
        let header = sign(body.as_bytes(), SECRET, now());
        let response = self.post_raw(body, Some(&header)).await;
        if response.status() == 200 {
            self.wait_projected().await;
        }
        response
    }

    /// Wait until the projector has passed every event in the log (projected or parked).
    /// An explicit wait on its cursor, never a sleep; fails the test after 30 s.
    pub async fn wait_projected(&self) {
        let caught_up = self.store.wait_projected(PROJECTOR_WAIT).await.expect("projector cursor readable");
        assert!(caught_up, "the projector did not pass the log's head within {PROJECTOR_WAIT:?}");
    }

    /// POST an event and insist it was acknowledged.
    pub async fn deliver(&self, event: &Value) {
        let response = self.post_event(event).await;
        assert_eq!(response.status(), 200, "event {} not acknowledged: {:?}", event["id"], response.text().await);
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("request sent")
    }

    /// Every projected row, once the projector has passed every event received so far.
    pub async fn state(&self) -> StateDump {
        self.wait_projected().await;
        self.store.dump_state().await.expect("state readable")
    }
}
