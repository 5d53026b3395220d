//! Subcommands. `serve` is the default.

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{self, Settings, Source};
use crate::domain::metrics::Month;
use crate::reports::Reports;
use crate::startup::Application;
use crate::store::Store;
use crate::stripe_api::StripeApi;

/// Holdfast: keeps your Stripe subscribers.
#[derive(Debug, Parser)]
#[command(name = "holdfast", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive Stripe webhooks and run the workers (the default).
    Serve,
    /// Apply database migrations and exit (they also run at every start).
    Migrate,
    /// Backfill customers, subscriptions and invoices from Stripe's API (STRIPE_SECRET_KEY).
    /// Safe to re-run; resumes an interrupted run; sends no email.
    Sync {
        /// Objects per Stripe API page (1-100).
        #[arg(long, default_value_t = crate::sync::MAX_PAGE_SIZE)]
        page_size: u32,
        /// Forget an interrupted run and start from the beginning.
        #[arg(long)]
        restart: bool,
    },
    /// Import events from a JSON-lines file or a Stripe `events list` JSON (no signature
    /// check: only replay files you trust). Idempotent; sends no email.
    Replay {
        /// The file to import (`-` reads standard input).
        file: std::path::PathBuf,
    },
    /// Rebuild the projected tables (customers, subscriptions and their items and history,
    /// invoices, discounts) from the event log, after a fix in projection code. Sends no
    /// email and calls no Stripe API; dunning cases and the outbox are left as they are.
    Reproject,
    /// Exit 0 when the local server answers /readyz (the container HEALTHCHECK: no curl).
    Healthcheck {
        /// Base URL to check (default: derived from HOLDFAST_BIND / PORT).
        #[arg(long)]
        url: Option<String>,
    },
    /// Email tools.
    #[command(subcommand)]
    Email(EmailCommand),
    /// Print the owner summary of a month (the same figures as `GET /api/summary`).
    Summary {
        /// The month, YYYY-MM (default: the current month, UTC).
        #[arg(long, value_parser = parse_month)]
        month: Option<Month>,
        /// The currency (default: the one with the most MRR).
        #[arg(long)]
        currency: Option<String>,
        /// Print the JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `holdfast email …`
#[derive(Debug, Subcommand)]
pub enum EmailCommand {
    /// Render a template with sample data and print its subject, text and HTML parts
    /// (honours HOLDFAST_TEMPLATES, HOLDFAST_BRAND_NAME, HOLDFAST_BRAND_COLOR).
    Preview {
        /// Template name, e.g. payment_failed; omit to list them.
        template: Option<String>,
    },
}

fn parse_month(s: &str) -> Result<Month, String> {
    Month::parse(s).map_err(|e| e.to_string())
}

/// Run the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let json_logs = std::env::var("HOLDFAST_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    crate::telemetry::init(json_logs);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Sync { page_size, restart } => sync(page_size, restart).await,
        Command::Replay { file } => replay(&file).await,
        Command::Reproject => reproject().await,
        Command::Healthcheck { url } => healthcheck(url).await,
        Command::Email(EmailCommand::Preview { template }) => preview(template.as_deref()),
        Command::Summary { month, currency, json } => summary(month, currency, json).await,
    }
}

fn preview(template: Option<&str>) -> anyhow::Result<()> {
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

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    Application::build(settings).await?.run_until_stopped().await
}

async fn migrate() -> anyhow::Result<()> {
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
/// alone the log is projected without reactions.
async fn migrated_store() -> anyhow::Result<Store> {
    let _ = dotenvy::dotenv();
    let url = config::database_url(&config::Env)?;
    let mut store = Store::connect(&url.0).await.context("connecting to DATABASE_URL")?;
    match Settings::from_env() {
        Ok(settings) => store = store.with_reactor(std::sync::Arc::new(crate::reactions::Reactor::new(&settings))),
        Err(e) => tracing::debug!(error = %e, "no service settings: projecting without reactions"),
    }
    store.migrate().await.context("running database migrations")?;
    Ok(store)
}

async fn sync(page_size: u32, restart: bool) -> anyhow::Result<()> {
    let store = migrated_store().await?;
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

async fn replay(file: &std::path::Path) -> anyhow::Result<()> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let store = migrated_store().await?;
    let report = crate::replay::replay(&store, &text, true, &crate::clock::Clock::system()).await?;
    println!("replayed: {} new events, {} already stored", report.stored, report.duplicates);
    store.close().await;
    Ok(())
}

async fn reproject() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let url = config::database_url(&config::Env)?;
    // No reaction hook: rebuilding the tables must not re-run dunning or lifecycle.
    let store = Store::connect(&url.0).await.context("connecting to DATABASE_URL")?;
    store.migrate().await.context("running database migrations")?;
    let events = store.reproject().await.context("rebuilding the projected tables")?;
    println!("reprojected {events} events");
    store.close().await;
    Ok(())
}

async fn healthcheck(url: Option<String>) -> anyhow::Result<()> {
    let base = match url {
        Some(url) => url,
        None => format!("http://{}", config::bind(&config::Env)?.replace("0.0.0.0", "127.0.0.1")),
    };
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

async fn summary(month: Option<Month>, currency: Option<String>, json: bool) -> anyhow::Result<()> {
    let store = migrated_store().await?;
    // Experiments come from holdfast.toml, like the server's.
    let (_, experiments) = crate::config::LifecycleSettings::from_source(&crate::config::Env).context("reading holdfast.toml")?;
    let reports = Reports::new(store).with_experiments(experiments);
    let month = month.unwrap_or_else(|| reports.current_month());
    let summary = reports.summary(month, currency.as_deref()).await.context("computing the summary")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", crate::domain::metrics::table::render(&summary));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
