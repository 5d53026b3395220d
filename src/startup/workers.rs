//! Running until stopped: the HTTP server, and the background workers beside it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::ingest::projector::Projector;
use crate::startup::Application;
use crate::workers::{
    scheduler, {self as loops},
};

/// The outbox is polled this often even without a wake-up (rows another replica enqueued,
/// retries whose time came, scheduled dunning steps).
const OUTBOX_POLL: Duration = Duration::from_secs(5);

/// How often discounts naming an unknown coupon, and tiered prices without tiers, are looked for.
const COUPON_POLL: Duration = Duration::from_secs(60);

impl Application {
    /// Serve until SIGTERM/SIGINT (actix stops accepting and finishes in-flight requests),
    /// then let the writer commit what is queued and the workers finish their batch.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let workers = self.spawn_workers(stopped);
        // A fault that can't heal in place (a failed fsync) stops the server: `holdfast serve`
        // then exits with an error and the platform restarts it.
        let handle = self.server.handle();
        let store = self.store.clone();
        let fatal = tokio::spawn(async move {
            let reason = store.health().fatal().await;
            tracing::error!(reason = %reason, "stopping: this fault is only healed by a restart");
            handle.stop(true).await;
            reason
        });
        let served = self.server.await.context("HTTP server");
        let fatal = if fatal.is_finished() {
            fatal.await.ok()
        } else {
            fatal.abort();
            None
        };
        // The server's handlers held the last `Writer` handles; the task drains and ends.
        let _ = self.writer_task.await;
        let _ = stop.send(true);
        for w in workers {
            let _ = w.await;
        }
        self.store.close().await;
        match fatal {
            Some(reason) => Err(anyhow::anyhow!("stopped after a fatal fault: {reason}")),
            None => served,
        }
    }

    /// The projector always; with it, whatever `HOLDFAST_WORKERS` says, the refetcher: it
    /// completes what the projector records (several replicas may fetch one object; the log
    /// keeps one answer). The others when workers are on.
    fn spawn_workers(&self, stopped: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut workers = Vec::new();
        // Always: webhooks only reach the tables through it.
        let projector = Projector::new(self.store.clone(), self.clock.clone()).with_health(self.health.clone());
        workers.push(tokio::spawn(projector.run(stopped.clone())));
        if let Some(refetcher) = self.refetcher.clone() {
            workers.push(spawn_loop("refetch", None, crate::ingest::refetch::POLL, stopped.clone(), move || {
                let r = refetcher.clone();
                async move { r.try_run_once().await }
            }));
        }
        if self.run_workers {
            workers.extend(self.spawn_switched_workers(stopped));
        }
        workers
    }

    /// The workers `HOLDFAST_WORKERS` switches: outbox, Stripe fetchers, alerts, scheduler.
    fn spawn_switched_workers(&self, stopped: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut workers = Vec::new();
        let outbox = self.outbox.clone();
        let wake = Some(self.reactor.outbox_ready.clone());
        workers.push(spawn_loop("outbox", wake, OUTBOX_POLL, stopped.clone(), move || {
            let w = outbox.clone();
            async move { w.try_run_once().await }
        }));
        if let Some(fetcher) = self.coupons.clone() {
            workers.push(spawn_loop("coupons", None, COUPON_POLL, stopped.clone(), move || {
                let f = fetcher.clone();
                async move { f.try_run_once().await }
            }));
        }
        if let Some(fetcher) = self.tiers.clone() {
            workers.push(spawn_loop("price_tiers", None, COUPON_POLL, stopped.clone(), move || {
                let f = fetcher.clone();
                async move { f.try_run_once().await }
            }));
        }
        // Observe-only mode sends nothing out: alert rows wait, as emails are only recorded.
        if self.alert_sender.configured() && !self.observe {
            let sender = self.alert_sender.clone();
            workers.push(spawn_loop("alerts", None, OUTBOX_POLL, stopped.clone(), move || {
                let s = sender.clone();
                async move { s.try_run_once().await }
            }));
        }
        let sched = self.scheduler.clone();
        let every = Duration::from_secs(scheduler::INTERVAL_SECS);
        workers.push(spawn_loop("scheduler", None, every, stopped, move || {
            let s = sched.clone();
            async move { s.try_run_once().await.map(|_| loops::Outcome::Idle) }
        }));
        workers
    }
}

/// Run `pass` as the worker `name` until stopped: woken by `wake`, else every `idle`.
fn spawn_loop<F, Fut>(
    name: &'static str,
    wake: Option<Arc<Notify>>,
    idle: Duration,
    stopped: watch::Receiver<bool>,
    pass: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<loops::Outcome>> + Send + 'static,
{
    tokio::spawn(loops::run_loop(name, pass, wake, idle, stopped))
}
