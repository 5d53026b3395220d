//! The `holdfast` binary: a switchboard of subscommands.

use clap::Parser;

/// jemalloc for every allocation in the process, SQLite's too (see `Cargo.toml`).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
