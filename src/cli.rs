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
    /// Email tools.
    #[command(subcommand)]
    Email(EmailCommand),
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

/// Run the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let json_logs = std::env::var("HOLDFAST_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    crate::telemetry::init(json_logs);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Email(EmailCommand::Preview { template }) => preview(template.as_deref()),
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
    let email = Templates::new(&mail).render(name, sample_context())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
