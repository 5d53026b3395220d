//! Background loops: the outbox sender and the scheduler of periodic checks. Each is a loop
//! around a public `try_run_once_at(now)` (tests call it with a chosen clock instead of
//! sleeping); the loop picks the pause and stops on a shutdown signal after its batch.

pub mod outbox;
pub mod scheduler;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

pub use crate::health::Outcome;

/// Pause after a failed pass (database down): don't spin. Doubles per failure in a row up to
/// `ON_ERROR_MAX`; back to the first pause after a pass that works.
const ON_ERROR: Duration = Duration::from_secs(1);
const ON_ERROR_MAX: Duration = Duration::from_secs(30);

/// Run `pass` until `stop` turns true. After a full batch it goes again at once; when idle it
/// waits for `wake` or `idle`, whichever first (the poll catches rows another replica
/// enqueued and rows whose time came).
pub async fn run_loop<F, Fut>(
    name: &'static str,
    mut pass: F,
    wake: Option<Arc<Notify>>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    tracing::info!(worker = name, "worker started");
    let mut on_error = ON_ERROR;
    while !*stop.borrow() {
        let pause = match pass().await {
            Ok(outcome) => {
                on_error = ON_ERROR;
                if matches!(outcome, Outcome::Worked(_)) { Duration::ZERO } else { idle }
            }
            Err(e) => {
                let pause = on_error;
                tracing::warn!(
                    worker = name,
                    error = format!("{e:#}"),
                    retry_in_secs = pause.as_secs(),
                    "worker pass failed; retrying"
                );
                on_error = (on_error * 2).min(ON_ERROR_MAX);
                pause
            }
        };
        if pause.is_zero() {
            continue;
        }
        let woken = async {
            match &wake {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!(worker = name, "worker stopped");
}
