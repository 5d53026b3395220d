//! Subcommands. `serve` is the default.

use clap::{Parser, Subcommand};

use crate::domain::month::Month;

mod commands;

use commands::{
    backup, demo, forget, healthcheck, migrate, preview, prune_payloads, quarantine, replay, reproject, send_event, serve,
    summary, sync,
};

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
    /// Write a consistent copy of the SQLite database (DATABASE_URL) to FILE while the service
    /// runs; restore by stopping the service and putting the copy in the database's place.
    Backup {
        /// The new file (never overwritten).
        file: std::path::PathBuf,
    },
    /// Erase a customer's personal data (email, name, addresses, comments, emails sent) from
    /// the database, raw events included; figures stay. Delete the customer in Stripe too.
    Forget {
        /// The Stripe customer id, `cus_…`.
        customer: String,
    },
    /// Null the personal fields of raw event payloads older than the retention
    /// (HOLDFAST_PAYLOAD_RETENTION_DAYS, default 400); figures stay. Run it daily (cron).
    PrunePayloads {
        /// Override the retention, in days.
        #[arg(long)]
        older_than_days: Option<u32>,
    },
    /// List the quarantined events: stored and acknowledged, never projected (too deep, absurd
    /// ids or strings, NUL), newest first. The same list as `GET /api/quarantine`.
    Quarantine {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
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
    /// See it work, offline: a fresh demo database with a simulated business, a local
    /// stand-in for Stripe's API and email written to a folder; prints the links to try.
    Demo {
        /// The demo's directory (its database and mail folder are replaced at every start).
        #[arg(long, default_value = "holdfast-demo")]
        dir: std::path::PathBuf,
        /// Address to listen on (default: HOLDFAST_BIND, else 127.0.0.1:8080; port 0 picks one).
        #[arg(long)]
        bind: Option<String>,
        /// Simulated customers.
        #[arg(long, default_value_t = 300)]
        customers: usize,
        /// The simulation's seed (another seed, another business).
        #[arg(long, default_value_t = 2024)]
        seed: u64,
    },
    /// Sign a bundled sample event with STRIPE_WEBHOOK_SECRET and post it to a running
    /// Holdfast, as Stripe would (an offline `stripe trigger`). Omit TYPE to list them.
    SendEvent {
        /// The event type, e.g. invoice.payment_failed.
        #[arg(value_name = "TYPE")]
        kind: Option<String>,
        /// The customer the event is about (default: the demo's Ada Lovelace).
        #[arg(long, default_value = crate::demo::DEMO_DUNNING_CUSTOMER)]
        customer: String,
        /// The subscription the event is about (default: the customer's `sub_…` twin).
        #[arg(long)]
        subscription: Option<String>,
        /// Base URL of the service (default: derived from HOLDFAST_BIND / PORT).
        #[arg(long)]
        url: Option<String>,
    },
}

/// `holdfast email …`
#[derive(Debug, Subcommand)]
pub enum EmailCommand {
    /// Render a template with sample data and print its subject, text and HTML parts
    /// (honours HOLDFAST_TEMPLATES and the brand: `[brand]` in holdfast.toml, HOLDFAST_BRAND_*).
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
    let quiet = matches!(cli.command, Some(Command::Demo { .. } | Command::SendEvent { .. }));
    crate::telemetry::init_with_default(json_logs, if quiet { "warn" } else { "info,sqlx=warn" });
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Sync { page_size, restart } => sync(page_size, restart).await,
        Command::Replay { file } => replay(&file).await,
        Command::Reproject => reproject().await,
        Command::Healthcheck { url } => healthcheck(url).await,
        Command::Email(EmailCommand::Preview { template }) => preview(template.as_deref()),
        Command::Summary { month, currency, json } => summary(month, currency, json).await,
        Command::Demo { dir, bind, customers, seed } => demo(dir, bind, customers, seed).await,
        Command::SendEvent { kind, customer, subscription, url } => send_event(kind, customer, subscription, url).await,
        Command::Backup { file } => backup(&file).await,
        Command::Forget { customer } => forget(&customer).await,
        Command::PrunePayloads { older_than_days } => prune_payloads(older_than_days).await,
        Command::Quarantine { limit } => quarantine(limit).await,
    }
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
