//! Subcommands. `serve` is the default.

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{self, Settings};
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
}

/// Run the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let json_logs = std::env::var("HOLDFAST_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    crate::telemetry::init(json_logs);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
