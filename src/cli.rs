//! Subcommands. `serve` is the default.

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{self, Settings};
use crate::domain::metrics::Month;
use crate::reports::Reports;
use crate::startup::Application;
use crate::store::Store;

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
        Command::Summary { month, currency, json } => summary(month, currency, json).await,
    }
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

async fn summary(month: Option<Month>, currency: Option<String>, json: bool) -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let url = config::database_url(&config::Env)?;
    let store = Store::connect(&url.0).await.context("connecting to DATABASE_URL")?;
    store.migrate().await.context("running database migrations")?;
    let month = month.unwrap_or_else(crate::web::summary::current_month);
    let summary = Reports::new(store).summary(month, currency.as_deref()).await.context("computing the summary")?;
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
