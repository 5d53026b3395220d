//! The `holdfast` binary: a switchboard of subscommands.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = holdfast::cli::Cli::parse();
    let result = holdfast::cli::run(cli).await;
    holdfast::telemetry::flush();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the context chain: "connecting to DATABASE_URL: …".
            eprintln!("holdfast: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
