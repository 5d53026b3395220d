//! What `/readyz` reports besides "the database answers": the parts of the accept path that
//! are failing right now (the WAL syncer can't open the WAL, the ingest connection can't
//! commit), each with its reason, and the one fault that is never healed in place (a failed
//! fsync), after which the process must restart.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// The accept path's health, shared by the store's parts; cheap to read.
#[derive(Debug)]
pub struct Health {
    faults: Mutex<BTreeMap<&'static str, String>>,
    fatal: watch::Sender<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Self { faults: Mutex::new(BTreeMap::new()), fatal: watch::Sender::new(None) }
    }
}

impl Health {
    /// `part` is failing for `reason` (logged once per fault, not per retry).
    pub fn fault(&self, part: &'static str, reason: impl Into<String>) {
        let reason = reason.into();
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        if faults.get(part) != Some(&reason) {
            tracing::warn!(part, reason = %reason, "not ready: retrying until the cause goes away");
            faults.insert(part, reason);
        }
    }

    /// `part` works again.
    pub fn healed(&self, part: &'static str) {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        if faults.remove(part).is_some() {
            tracing::info!(part, "recovered");
        }
    }

    /// Is `part` failing now?
    pub fn is_faulty(&self, part: &'static str) -> bool {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).contains_key(part)
    }

    /// Every failing part with its reason, the fatal fault first.
    pub fn faults(&self) -> Vec<(&'static str, String)> {
        let mut all: Vec<_> = self.fatal.borrow().iter().map(|r| ("fatal", r.clone())).collect();
        let faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        all.extend(faults.iter().map(|(p, r)| (*p, r.clone())));
        all
    }

    /// A fault that can't be healed in this process: `holdfast serve` stops and exits with an
    /// error so the platform restarts it.
    pub fn fail_for_good(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.fatal.send_if_modified(|f| {
            if f.is_some() {
                return false;
            }
            *f = Some(reason);
            true
        });
    }

    /// Wait until a fault is declared fatal; returns its reason.
    pub async fn fatal(&self) -> String {
        let mut rx = self.fatal.subscribe();
        let reason = rx.wait_for(Option::is_some).await.ok().and_then(|r| r.clone());
        match reason {
            Some(reason) => reason,
            // The sender lives as long as `self`: unreachable, but never a false alarm.
            None => std::future::pending().await,
        }
    }
}
