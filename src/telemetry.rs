//! Logging: `tracing` to stdout, human-readable or JSON (`HOLDFAST_LOG_FORMAT=json`),
//! filtered by `RUST_LOG` (default `info`). Tests log only with `TEST_LOG` set.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber once; later calls do nothing.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
