//! What each subcommand does.

use anyhow::Context;

use crate::config;
use crate::config::Source;
use crate::domain::month::Month;
use crate::figures::Reports;
use crate::settings::Settings;
use crate::startup::Application;
use crate::store::Store;
use crate::stripe_api::StripeApi;

pub(super) fn preview(template: Option<&str>) -> anyhow::Result<()> {
    use crate::mail::templates::{Templates, sample_context};
    let _ = dotenvy::dotenv();
    let Some(name) = template else {
        println!("templates: {}", Templates::names().join(", "));
        return Ok(());
    };
    let mail = config::mail_settings(&config::Env)?;
    // Only marketing mail carries an unsubscribe link; preview the others without one.
    let marketing = ["onboarding_", "winback_", "reengage_"].iter().any(|p| name.starts_with(p));
    let ctx = if marketing {
        sample_context()
    } else {
        minijinja::context! { unsubscribe_url => (), ..sample_context() }
    };
    let email = Templates::new(&mail).render(name, ctx)?;
    println!("Subject: {}\n\n--- text/plain ---\n{}\n\n--- text/html ---\n{}", email.subject, email.text, email.html);
    Ok(())
}

pub(super) async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    Application::build(settings).await?.run_until_stopped().await
}

pub(super) async fn migrate() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let url = config::database_url(&config::Env)?;
    let store = Store::connect(&url.0).await.context("connecting to DATABASE_URL")?;
    store.migrate().await.context("running database migrations")?;
    println!("migrations applied ({})", store.backend());
    Ok(())
}

/// The store, migrated, from DATABASE_URL. The import commands append to the event log and
/// project it, like the server's projector: with the service's settings available they run
/// the same reactions (recording, never emailing, imported history); with DATABASE_URL
/// alone the log is projected without reactions. Commands that project (`imports`) need the
/// server's Stripe mode, so imported history is acted on exactly as live events; the others
/// (reading, erasing) take it when it is set.
async fn migrated_store(imports: bool) -> anyhow::Result<Store> {
    let _ = dotenvy::dotenv();
    let url = config::database_url(&config::Env)?;
    let mut store = Store::connect(&url.0).await.context("connecting to DATABASE_URL")?;
    match config::stripe_mode(&config::Env) {
        Ok(mode) => store = store.with_stripe_mode(mode),
        Err(e) if imports => return Err(e.into()),
        Err(_) => {}
    }
    match Settings::from_env() {
        Ok(settings) => store = store.with_reactor(std::sync::Arc::new(crate::ingest::react::Reactor::new(&settings))),
        Err(e) => tracing::debug!(error = %e, "no service settings: projecting without reactions"),
    }
    store.migrate().await.context("running database migrations")?;
    Ok(store)
}

pub(super) async fn sync(page_size: u32, restart: bool) -> anyhow::Result<()> {
    let store = migrated_store(true).await?;
    let key = config::stripe_secret_key(&config::Env)?
        .context("STRIPE_SECRET_KEY is required for sync (a restricted key with read access to customers, subscriptions and invoices is enough)")?;
    let base = config::Env.get("STRIPE_API_BASE");
    let api = StripeApi::new(&key, base.as_deref()).context("configuring the Stripe client")?;
    if restart {
        crate::sync::restart(&store).await?;
    }
    let options = crate::sync::SyncOptions { page_size, ..Default::default() };
    let reports = crate::sync::run(&store, &api, &options).await?;
    for r in reports {
        println!(
            "{}: {} objects in {} pages, {} new events, {} already stored",
            r.name, r.objects, r.pages, r.stored, r.duplicates
        );
    }
    store.close().await;
    Ok(())
}

pub(super) async fn replay(file: &std::path::Path) -> anyhow::Result<()> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let store = migrated_store(true).await?;
    let report = crate::ingest::replay::replay(&store, &text, true, &crate::clock::Clock::system()).await?;
    println!("replayed: {} new events, {} already stored", report.stored, report.duplicates);
    store.close().await;
    Ok(())
}

pub(super) async fn reproject() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let url = config::database_url(&config::Env)?;
    // No reaction hook: rebuilding the tables must not re-run dunning or lifecycle. The
    // server's mode: the rebuilt tables hold what the live projector would have made.
    let mode = config::stripe_mode(&config::Env)?;
    let store = Store::connect(&url.0).await.context("connecting to DATABASE_URL")?.with_stripe_mode(mode);
    store.migrate().await.context("running database migrations")?;
    let events = store.reproject().await.context("rebuilding the projected tables")?;
    println!("reprojected {events} events");
    store.close().await;
    Ok(())
}

pub(super) async fn backup(file: &std::path::Path) -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let url = config::database_url(&config::Env)?;
    // Connecting creates a missing SQLite file: a mistyped DATABASE_URL would back up nothing.
    if let Some(path) = url.0.strip_prefix("sqlite://").or_else(|| url.0.strip_prefix("sqlite:")) {
        let path = path.split('?').next().unwrap_or(path);
        anyhow::ensure!(std::path::Path::new(path).exists(), "{path} does not exist: nothing to back up (check DATABASE_URL)");
    }
    let store = Store::connect(&url.0).await.context("connecting to DATABASE_URL")?;
    let written = store.backup_to(file).await;
    store.close().await;
    written?;
    println!("backup written to {}", file.display());
    Ok(())
}

pub(super) async fn forget(customer: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        customer.starts_with("cus_") && customer.len() <= 255,
        "expected a Stripe customer id (cus_…), not {:?}",
        customer.chars().take(40).collect::<String>()
    );
    let store = migrated_store(false).await?;
    let forgotten = store.forget_customer(customer).await.context("erasing the customer's data")?;
    store.close().await;
    println!("{customer}: personal data erased from {} events and {} emails", forgotten.events, forgotten.emails);
    Ok(())
}

pub(super) async fn quarantine(limit: i64) -> anyhow::Result<()> {
    anyhow::ensure!((1..=100_000).contains(&limit), "--limit must be 1 to 100000");
    let store = migrated_store(false).await?;
    let events = store.quarantined(limit).await.context("reading the quarantined events")?;
    store.close().await;
    if events.is_empty() {
        println!("no quarantined events");
    }
    for e in events {
        println!("{}\t{}\t{}\tcreated {}\treceived {}\t{}", e.seq, e.event_id, e.kind, e.created, e.received_at, e.reason);
    }
    Ok(())
}

/// Raw payloads keep personal fields this long by default: a year and a month, so a year's
/// figures can be re-derived (replays, new metrics) from complete events.
const DEFAULT_PAYLOAD_RETENTION_DAYS: u32 = 400;

pub(super) async fn prune_payloads(older_than_days: Option<u32>) -> anyhow::Result<()> {
    let days = match older_than_days {
        Some(days) => days,
        None => config::parsed(&config::Env, "HOLDFAST_PAYLOAD_RETENTION_DAYS")?.unwrap_or(DEFAULT_PAYLOAD_RETENTION_DAYS),
    };
    let store = migrated_store(false).await?;
    let cutoff = crate::clock::Clock::system().now() - i64::from(days) * 86_400;
    let changed = store.prune_payloads_before(cutoff).await.context("pruning raw payloads")?;
    store.close().await;
    println!("personal fields removed from {changed} raw events older than {days} days");
    Ok(())
}

/// The local service's base URL: given, or derived from HOLDFAST_BIND / PORT.
fn local_base(url: Option<String>) -> anyhow::Result<String> {
    Ok(match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("http://{}", config::bind(&config::Env)?.replace("0.0.0.0", "127.0.0.1")),
    })
}

pub(super) async fn healthcheck(url: Option<String>) -> anyhow::Result<()> {
    let base = local_base(url)?;
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?
        .get(format!("{}/readyz", base.trim_end_matches('/')))
        .send()
        .await
        .context("calling /readyz")?;
    anyhow::ensure!(response.status().is_success(), "/readyz answered {}", response.status());
    Ok(())
}

pub(super) async fn summary(month: Option<Month>, currency: Option<String>, json: bool) -> anyhow::Result<()> {
    let store = migrated_store(false).await?;
    // Experiments come from holdfast.toml, like the server's (the same loader; only the parts
    // the summary needs are checked).
    let loader = config::Loader::new(&config::Env).context("reading holdfast.toml")?;
    let (_, experiments) = crate::lifecycle::config::LifecycleSettings::from_loader(&loader).context("reading holdfast.toml")?;
    let brand = config::Brand::from_loader(&loader).context("reading holdfast.toml")?;
    let cancel_flow = crate::cancel::config::CancelFlowSettings::from_loader(&loader, brand).context("reading holdfast.toml")?;
    let (_, nps) = crate::lifecycle::recap::config::from_loader(&loader).context("reading holdfast.toml")?;
    let reports = Reports::new(store)
        .with_experiments(experiments)
        .with_save_confirm_days(cancel_flow.save_confirm_days)
        .with_nps_min_sample(nps.min_sample);
    let month = month.unwrap_or_else(|| reports.current_month());
    let summary = reports.summary(month, currency.as_deref()).await.context("computing the summary")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", crate::figures::table::render(&summary));
    }
    Ok(())
}

pub(super) async fn demo(dir: std::path::PathBuf, bind: Option<String>, customers: usize, seed: u64) -> anyhow::Result<()> {
    // The same `.env` as `send-event` reads, so both agree on the webhook secret and address.
    let _ = dotenvy::dotenv();
    let bind = match bind {
        Some(bind) => bind,
        None => config::bind(&config::Env)?,
    };
    let opts = crate::demo::DemoOptions { dir, bind, customers, seed, cancel_flows: 16 };
    crate::demo::run(opts).await
}

pub(super) async fn send_event(
    kind: Option<String>,
    customer: String,
    subscription: Option<String>,
    url: Option<String>,
) -> anyhow::Result<()> {
    use crate::demo::samples;
    let _ = dotenvy::dotenv();
    let Some(kind) = kind else {
        println!("event types: {}", samples::TYPES.join(", "));
        return Ok(());
    };
    anyhow::ensure!(crate::cancel::links::plausible_customer_id(&customer), "--customer must be a Stripe customer id (cus_…)");
    let subscription = subscription.unwrap_or_else(|| format!("sub_{}", &customer[4..]));
    let who = samples::Subject { customer, subscription, unique: format!("local_{}", uuid::Uuid::new_v4().simple()) };
    let now = crate::clock::Clock::system().now();
    let event = samples::sample(&kind, &who, now)
        .with_context(|| format!("no sample of {kind:?}; event types: {}", samples::TYPES.join(", ")))?;
    // The first configured secret signs, as Stripe signs with the endpoint's current one.
    let secret = match config::Env.get("STRIPE_WEBHOOK_SECRET").filter(|s| !s.trim().is_empty()) {
        Some(list) => list.split(',').next().unwrap_or_default().trim().to_owned(),
        None => {
            eprintln!("STRIPE_WEBHOOK_SECRET is not set: signing with the demo's secret (what `holdfast demo` accepts)");
            crate::demo::DEMO_WEBHOOK_SECRET.to_owned()
        }
    };
    let body = event.to_string();
    let header = crate::ingest::signature::sign(body.as_bytes(), &secret, now);
    let endpoint = format!("{}/webhooks/stripe", local_base(url)?);
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?
        .post(&endpoint)
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", header)
        .body(body)
        .send()
        .await
        .with_context(|| format!("posting to {endpoint} (is Holdfast running?)"))?;
    let status = response.status();
    let answer = response.text().await.unwrap_or_default();
    println!("{kind} {} → {endpoint}: {status} {answer}", event["id"].as_str().unwrap_or_default());
    anyhow::ensure!(status.is_success(), "the service did not accept the event");
    Ok(())
}
