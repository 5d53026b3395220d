//! `spawn_app()`, a signed-event builder on Stripe's own example objects, and a per-test
//! database on whichever backend `TEST_DATABASE` names.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use holdfast::clock::Clock;
use holdfast::config::{Settings, SettingsBuilder};
use holdfast::ingest::signature::sign;
use holdfast::startup::Application;
use holdfast::store::{StateDump, Store};
use holdfast::workers::outbox::OutboxWorker;
use holdfast::workers::scheduler::Scheduler;
use serde_json::{Value, json};

pub const SECRET: &str = "whsec_test_primary_0123456789";
pub const OLD_SECRET: &str = "whsec_test_rolled_out_9876543210";

/// Stripe's example objects (tests/fixtures/stripe_objects.json).
static FIXTURES: LazyLock<Value> = LazyLock::new(|| {
    let text = include_str!("../../fixtures/stripe_objects.json");
    serde_json::from_str(text).expect("fixtures parse")
});

/// One of Stripe's example objects, to be overridden field by field.
pub fn fixture(resource: &str) -> Value {
    FIXTURES["resources"][resource].clone()
}

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

/// Which database the suite runs on.
pub fn backend() -> &'static str {
    match std::env::var("TEST_DATABASE").as_deref() {
        Ok("postgres") => "postgres",
        _ => "sqlite",
    }
}

/// A test's database, removed when the test ends (pass or panic): the SQLite file's temp
/// directory, or the Postgres database (dropped, so the cluster holds no more after a run
/// than before it).
pub enum TestDb {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Postgres { admin_url, name } = self {
            drop_postgres_database(admin_url.clone(), name.clone());
        }
    }
}

/// `DROP DATABASE … WITH (FORCE)` (the app's pool may still hold connections), on a thread
/// of its own: `Drop` can't await, and the test's runtime may be the current thread.
fn drop_postgres_database(admin_url: String, name: String) {
    let target = name.clone();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            // A busy cluster (the whole suite's pools open at once) can refuse or time out one
            // attempt; a few more keep the cluster from collecting leftover test databases.
            let mut last = String::new();
            for attempt in 0..5u32 {
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                }
                match try_drop(&admin_url, &target).await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    })
    .join();
    // Never panic in a drop (a second panic while unwinding aborts the whole suite).
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("warning: could not drop the test database {name}: {e}"),
        Err(_) => eprintln!("warning: dropping a test database panicked"),
    }
}

async fn try_drop(admin_url: &str, name: &str) -> Result<(), String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.map_err(|e| e.to_string())?;
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.map_err(|e| e.to_string())?;
    conn.close().await.map_err(|e| e.to_string())
}

/// A fresh database URL: a temp SQLite file, or a new Postgres database, with the guard that
/// removes it (keep it alive as long as the database is used).
pub async fn fresh_database() -> (String, Option<TestDb>) {
    if backend() == "postgres" {
        let admin = std::env::var("TEST_POSTGRES_URL")
            .expect("TEST_DATABASE=postgres needs TEST_POSTGRES_URL (postgres://user:pass@host/db)");
        let name = format!("holdfast_test_{}", uuid::Uuid::new_v4().simple());
        let store = Store::connect(&admin).await.expect("connect to TEST_POSTGRES_URL");
        let Store::Postgres(pg) = &store else { unreachable!("postgres URL") };
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(pg.pool())
            .await
            .expect("create test database");
        store.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).expect("URL has a database path");
        let url = format!("{base}/{name}");
        (url, Some(TestDb::Postgres { admin_url: admin, name }))
    } else {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/holdfast.db", dir.path().display());
        (url, Some(TestDb::Sqlite { _dir: dir }))
    }
}

/// Start the app with the test secrets and any extra variables.
pub async fn spawn_app_with(extra: &[(&'static str, &str)]) -> TestApp {
    spawn_app_configured(extra, |settings| settings).await
}

/// Start the app with the test secrets, any extra variables, and typed settings by their
/// `holdfast.toml` key (`|s| s.set("nps.min_sample", 2)`), through the service's own loader.
pub async fn spawn_app_configured(
    extra: &[(&'static str, &str)],
    configure: impl FnOnce(SettingsBuilder) -> SettingsBuilder,
) -> TestApp {
    let (url, dir) = fresh_database().await;
    spawn_configured_on(url, dir, extra, configure).await
}

/// Start the app on a given database URL (e.g. one routed through a proxy).
pub async fn spawn_app_on(url: String, dir: Option<TestDb>, extra: &[(&'static str, &str)]) -> TestApp {
    spawn_configured_on(url, dir, extra, |settings| settings).await
}

async fn spawn_configured_on(
    url: String,
    dir: Option<TestDb>,
    extra: &[(&'static str, &str)],
    configure: impl FnOnce(SettingsBuilder) -> SettingsBuilder,
) -> TestApp {
    init_test_logs();
    let mail_dir = tempfile::tempdir().expect("mail dir");
    let mut settings = Settings::builder()
        .var("DATABASE_URL", url.clone())
        .var("STRIPE_WEBHOOK_SECRET", SECRET)
        .var("HOLDFAST_BIND", "127.0.0.1:0")
        // Stripe's example events are test-mode events.
        .var("HOLDFAST_STRIPE_MODE", "test")
        .var("HOLDFAST_MAIL_DIR", mail_dir.path().display().to_string())
        .var("HOLDFAST_WORKERS", "off");
    // Lifecycle campaigns are off unless a test turns one on: other tests count their mail.
    for campaign in [
        "HOLDFAST_ONBOARDING",
        "HOLDFAST_TRIAL_ONBOARDING",
        "HOLDFAST_TRIAL_ENDING",
        "HOLDFAST_WINBACK",
        "HOLDFAST_REENGAGEMENT",
        "HOLDFAST_ANNUAL_OFFER",
    ] {
        settings = settings.var(campaign, "off");
    }
    for (k, v) in extra {
        settings = settings.var(k, *v);
    }
    let settings = configure(settings).build().expect("test settings are valid");
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

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
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

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

static NEXT_EVENT: AtomicU64 = AtomicU64::new(1);

/// A Stripe event wrapping `object`, with a fresh id.
pub fn event(kind: &str, created: i64, object: Value) -> Value {
    let n = NEXT_EVENT.fetch_add(1, Ordering::Relaxed);
    event_with_id(&format!("evt_test_{n:08}"), kind, created, object)
}

pub fn event_with_id(id: &str, kind: &str, created: i64, object: Value) -> Value {
    let mut e = fixture("event");
    e["id"] = json!(id);
    e["type"] = json!(kind);
    e["created"] = json!(created);
    e["api_version"] = json!("2025-03-31.basil");
    e["data"] = json!({"object": object, "previous_attributes": {}});
    e
}

/// Stripe's example customer with our id, email and creation time.
pub fn customer(id: &str, email: &str, created: i64) -> Value {
    let mut c = fixture("customer");
    c["id"] = json!(id);
    c["email"] = json!(email);
    c["name"] = json!("Test Customer");
    c["created"] = json!(created);
    c["discount"] = Value::Null;
    c
}

/// What a subscription should look like in a test.
#[derive(Clone, Debug)]
pub struct Sub {
    pub id: String,
    pub customer: String,
    pub status: &'static str,
    pub price: String,
    pub unit_amount: i64,
    pub interval: &'static str,
    pub quantity: i64,
    pub created: i64,
}

impl Sub {
    pub fn new(id: &str, customer: &str, created: i64) -> Self {
        Self {
            id: id.into(),
            customer: customer.into(),
            status: "active",
            price: "price_basic_monthly".into(),
            unit_amount: 2000,
            interval: "month",
            quantity: 1,
            created,
        }
    }

    /// Stripe's example subscription (2025+ shape: periods on the item) with our values.
    pub fn object(&self) -> Value {
        let mut s = fixture("subscription");
        s["id"] = json!(self.id);
        s["customer"] = json!(self.customer);
        s["status"] = json!(self.status);
        s["created"] = json!(self.created);
        s["start_date"] = json!(self.created);
        for field in ["cancel_at", "canceled_at", "ended_at", "trial_start", "trial_end", "pause_collection", "discount"] {
            s[field] = Value::Null;
        }
        s["cancel_at_period_end"] = json!(false);
        s["cancellation_details"] = json!({"comment": null, "feedback": null, "reason": null});
        s["discounts"] = json!([]);
        let item = &mut s["items"]["data"][0];
        item["id"] = json!(format!("si_{}", &self.id[4..]));
        item["subscription"] = json!(self.id);
        item["quantity"] = json!(self.quantity);
        item["current_period_start"] = json!(self.created);
        item["current_period_end"] = json!(self.created + 30 * 86_400);
        item["price"]["id"] = json!(self.price);
        item["price"]["unit_amount"] = json!(self.unit_amount);
        item["price"]["unit_amount_decimal"] = json!(self.unit_amount.to_string());
        item["price"]["recurring"]["interval"] = json!(self.interval);
        item["price"]["recurring"]["interval_count"] = json!(1);
        item["plan"] = Value::Null;
        s
    }
}

/// Stripe's example invoice for a subscription, 2025+ shape (`parent.subscription_details`).
pub fn invoice(id: &str, customer: &str, subscription: &str, status: &str, amount_due: i64, created: i64) -> Value {
    let mut i = fixture("invoice");
    i["id"] = json!(id);
    i["customer"] = json!(customer);
    i["status"] = json!(status);
    i["amount_due"] = json!(amount_due);
    i["amount_paid"] = json!(if status == "paid" { amount_due } else { 0 });
    i["amount_remaining"] = json!(if status == "paid" { 0 } else { amount_due });
    i["billing_reason"] = json!("subscription_cycle");
    i["created"] = json!(created);
    i["hosted_invoice_url"] = json!(format!("https://invoice.stripe.com/i/{id}"));
    i["parent"] = json!({"type": "subscription_details", "quote_details": null,
                         "subscription_details": {"metadata": {}, "subscription": subscription}});
    i["status_transitions"] = json!({"finalized_at": created, "marked_uncollectible_at": null,
        "paid_at": if status == "paid" { json!(created) } else { Value::Null }, "voided_at": null});
    i
}

/// POST `event` signed now with the primary secret; the status (0 if no answer at all).
pub async fn post_signed(client: &reqwest::Client, address: &str, event: &Value) -> u16 {
    let body = event.to_string();
    let header = sign(body.as_bytes(), SECRET, now());
    let request = client.post(format!("{address}/webhooks/stripe")).header("Content-Type", "application/json");
    match request.header("Stripe-Signature", header).body(body).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// Asserts that `url` is owner-only: no token, a wrong one, a prefix or extension of the right
/// one, another scheme or the token in the query string all get 401 (with
/// `WWW-Authenticate: Bearer`, the JSON envelope, and the presented token not echoed). Then
/// sends the right token and returns that response for the caller's own assertions.
/// Reusable for every owner endpoint: `assert_owner_only(&app.client, Method::GET, &url, token)`.
pub async fn assert_owner_only(client: &reqwest::Client, method: reqwest::Method, url: &str, token: &str) -> reqwest::Response {
    let prefix = &token[..token.len() - 1];
    let attempts = [
        None,
        Some(String::new()),
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {prefix}")),
        Some(format!("Bearer {token}x")),
        Some(format!("Basic {token}")),
        Some(token.to_owned()),
    ];
    for auth in attempts {
        let mut request = client.request(method.clone(), url);
        if let Some(auth) = &auth {
            request = request.header("Authorization", auth);
        }
        let response = request.send().await.expect("request sent");
        assert_eq!(response.status(), 401, "{method} {url} with Authorization {auth:?}");
        let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{method} {url}: 401 names the scheme");
        let body = response.text().await.expect("body");
        assert!(!body.contains(prefix), "the presented token must not be echoed: {body}");
        let json: Value = serde_json::from_str(&body).expect("JSON error envelope");
        assert_eq!(json["error"]["code"], "unauthorized");
    }
    let in_query = client.request(method.clone(), format!("{url}?token={token}")).send().await.expect("request sent");
    assert_eq!(in_query.status(), 401, "{method} {url}: a token in the query string is not accepted");
    let response = client
        .request(method.clone(), url)
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("request sent");
    assert_ne!(response.status(), 401, "{method} {url}: the right token is accepted");
    response
}

/// Run the `holdfast` binary against `database_url` and return its stdout. It runs on a
/// blocking thread: the test's runtime must keep driving the server it started (a projector
/// pass mid-transaction would otherwise hold SQLite's write lock until the command gave up).
pub async fn holdfast_cli(database_url: &str, args: &[&str]) -> String {
    let database_url = database_url.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (database_url, args) = (database_url.as_str(), args.as_slice());
        let dir = tempfile::tempdir().expect("dir");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("HOLDFAST_STRIPE_MODE", "test")
            .current_dir(dir.path())
            .output()
            .expect("holdfast runs");
        assert!(out.status.success(), "holdfast {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
