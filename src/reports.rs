//! The owner's retention reports, computed from the store and cached until the history
//! changes (the ingest path bumps `history_generation` in the same transaction as the
//! events, so a cached report is exact for the generation it was computed at).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::config::{ExperimentKind, Experiments};
use crate::domain::metrics::summary::{self, CancelFlowJson, CancelOutcomes, MonthlyJson, Summary};
use crate::domain::metrics::{self, Month, Report, Timeline};
use crate::store::{Store, StoreError};

/// Most months one `/api/metrics/monthly` request may ask for.
pub const MAX_SERIES_MONTHS: i32 = 120;

type ReportKey = (String, Month, Month);

#[derive(Default)]
struct Cached {
    generation: i64,
    timeline: Option<Arc<Timeline>>,
    /// `timeline.first_month()` and `timeline.currencies()`, taken once per generation
    /// (each scans every subscription).
    first_month: Option<Month>,
    currencies: Arc<Vec<String>>,
    reports: HashMap<ReportKey, Arc<Report>>,
    /// Default currency by the instant it was chosen at (it walks the whole history).
    default_currency: HashMap<i64, String>,
}

/// A loaded history and the generation it was loaded at.
struct Loaded {
    generation: i64,
    timeline: Arc<Timeline>,
    first_month: Option<Month>,
}

/// Computes and caches reports; cheap to clone (shared cache).
#[derive(Clone)]
pub struct Reports {
    store: Store,
    cache: Arc<Mutex<Cached>>,
    /// Held while the history loads, so concurrent requests on a stale cache share one load.
    loading: Arc<tokio::sync::Mutex<()>>,
    /// The experiments whose results the summary reports.
    experiments: Experiments,
    clock: Clock,
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reports").finish_non_exhaustive()
    }
}

impl Reports {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::new(Mutex::new(Cached::default())),
            loading: Arc::new(tokio::sync::Mutex::new(())),
            experiments: Experiments::default(),
            clock: Clock::system(),
        }
    }

    /// Report these experiments' results in the summary.
    pub fn with_experiments(mut self, experiments: Experiments) -> Self {
        self.experiments = experiments;
        self
    }

    /// Read the time from `clock` (the server's).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock the reports read.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The current month (UTC) by this report's clock.
    pub fn current_month(&self) -> Month {
        Month::of(self.clock.now())
    }

    /// The summary of `month` in `currency` (default: the currency with the most MRR).
    pub async fn summary(&self, month: Month, currency: Option<&str>) -> Result<Summary, StoreError> {
        let (timeline, report) = self.report_covering(month, month, currency).await?;
        let cancel_flow = cancel_flow_section(&self.store, month.start(), month.plus(1).start(), self.clock.now()).await?;
        let mut summary = summary::summary(&report, month, cancel_flow);
        summary.unresolved_discounts = timeline.unresolved_discounts(&report.currency, month.plus(1).start());
        summary.emails = Some(emails_section(&self.store).await?);
        summary.at_risk = Some(at_risk_section(&self.store).await?);
        summary.experiments = Some(experiments_section(&self.store, &self.experiments, self.clock.now()).await?);
        Ok(summary)
    }

    /// Monthly rows `from..=to`.
    pub async fn monthly(&self, from: Month, to: Month, currency: Option<&str>) -> Result<Vec<MonthlyJson>, StoreError> {
        let (_, report) = self.report_covering(from, to, currency).await?;
        Ok((0..=to.since(from)).map(|i| summary::monthly(&report, from.plus(i))).collect())
    }

    /// A report spanning the whole history and `from..=to` (and the current month), so
    /// "had MRR before", cohorts and 12-month figures see everything before `from`.
    async fn report_covering(
        &self,
        from: Month,
        to: Month,
        currency: Option<&str>,
    ) -> Result<(Arc<Timeline>, Arc<Report>), StoreError> {
        let Loaded { generation, timeline, first_month } = self.timeline().await?;
        let now = self.current_month();
        let start = first_month.map_or(from, |f| f.min(from));
        let end = to.max(now);
        let currency = match currency {
            Some(c) => c.to_lowercase(),
            None => self.default_currency(generation, &timeline, to.plus(1).start()),
        };
        let key = (currency.clone(), start, end);
        let hit = {
            let cached = self.lock();
            cached.reports.get(&key).filter(|_| cached.generation == generation).cloned()
        };
        if let Some(r) = hit {
            return Ok((timeline, r));
        }
        let t = timeline.clone();
        let report = tokio::task::spawn_blocking(move || Arc::new(metrics::compute(&t, &currency, start, end)))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        let mut cached = self.lock();
        // A reload may have replaced the cache meanwhile: never file this report under it.
        if cached.generation == generation {
            cached.reports.insert(key, report.clone());
        }
        drop(cached);
        Ok((timeline, report))
    }

    fn default_currency(&self, generation: i64, timeline: &Timeline, at: i64) -> String {
        let currencies = {
            let cached = self.lock();
            match cached.default_currency.get(&at) {
                Some(c) if cached.generation == generation => return c.clone(),
                _ if cached.generation == generation => cached.currencies.clone(),
                _ => Arc::new(timeline.currencies()),
            }
        };
        let chosen = match currencies.as_slice() {
            [only] => only.clone(),
            _ => metrics::default_currency(timeline, at),
        };
        let mut cached = self.lock();
        if cached.generation == generation {
            cached.default_currency.insert(at, chosen.clone());
        }
        chosen
    }

    /// The history (and its first month), reloaded only when its generation moved.
    async fn timeline(&self) -> Result<Loaded, StoreError> {
        let generation = self.store.history_generation().await?;
        if let Some(hit) = self.cached_at_least(generation) {
            return Ok(hit);
        }
        // Single flight: whoever waited here while another request loaded finds that load
        // (at this generation or a newer one) in the cache instead of loading again.
        let _loading = self.loading.lock().await;
        if let Some(hit) = self.cached_at_least(generation) {
            return Ok(hit);
        }
        // Read the generation first: a commit landing during the load makes the next
        // request reload, never serves it stale.
        let timeline = Arc::new(self.store.load_timeline().await?);
        let first_month = timeline.first_month();
        let currencies = Arc::new(timeline.currencies());
        let mut cached = self.lock();
        if cached.timeline.is_none() || cached.generation <= generation {
            *cached = Cached { generation, timeline: Some(timeline.clone()), first_month, currencies, ..Cached::default() };
        }
        Ok(Loaded { generation, timeline, first_month })
    }

    /// The cached history when it was loaded at `generation` or later (a newer load is
    /// at least as fresh as the generation this request read).
    fn cached_at_least(&self, generation: i64) -> Option<Loaded> {
        let cached = self.lock();
        let timeline = cached.timeline.as_ref().filter(|_| cached.generation >= generation)?;
        Some(Loaded { generation: cached.generation, timeline: timeline.clone(), first_month: cached.first_month })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        // A panic while holding the lock leaves a cache that is at worst empty: keep going.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The summary's `emails` section: outbox totals by status (failed = gave up after retries).
pub async fn emails_section(store: &Store) -> Result<summary::EmailsJson, StoreError> {
    let c = store.outbox_counts().await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(summary::EmailsJson {
        sent: count(c.sent),
        pending: count(c.pending),
        failed: count(c.failed),
        bounced: count(c.bounced),
        suppressed: count(c.suppressed),
    })
}

/// The summary's `cancel_flow` section for sessions started in `[from_ts, to_ts)`:
/// saved = paused + downgraded + discounted; `save_rate` = saved ÷ sessions that ended
/// (saved, canceled or abandoned), `null` when none ended.
pub async fn cancel_flow_section(store: &Store, from_ts: i64, to_ts: i64, now: i64) -> Result<CancelFlowJson, StoreError> {
    let stats = store.cancel_flow_stats(from_ts, to_ts, now).await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(CancelFlowJson {
        sessions: count(stats.sessions),
        saved: count(stats.saved),
        save_rate: stats.save_rate().map(summary::rate),
        outcomes: CancelOutcomes {
            paused: count(stats.paused),
            downgraded: count(stats.downgraded),
            discounted: count(stats.discounted),
            canceled: count(stats.canceled),
            abandoned: count(stats.abandoned),
            resumed: count(stats.resumed),
        },
        reasons: stats.reasons.into_iter().map(|(reason, n)| (reason, count(n))).collect(),
    })
}

/// Most at-risk customers listed in the summary (the count is always whole).
pub const AT_RISK_LIST_MAX: i64 = 500;

/// The summary's `at_risk` section.
pub async fn at_risk_section(store: &Store) -> Result<summary::AtRiskJson, StoreError> {
    let counts = store.at_risk_counts().await?;
    let list = store.at_risk_customers(AT_RISK_LIST_MAX).await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(summary::AtRiskJson {
        count: count(counts.at_risk),
        reengaged: count(counts.reengaged),
        ended: count(counts.ended),
        customers: list
            .into_iter()
            .map(|c| summary::AtRiskCustomerJson {
                customer: c.customer,
                email: c.email,
                name: c.name,
                reason: c.reason,
                since: c.since,
                last_activity_at: c.last_activity_at,
                recent_week: c.recent_week,
                baseline_week: c.baseline_week,
            })
            .collect(),
    })
}

/// The summary's `experiments` section: both variants of each experiment in force, with the
/// counts behind each rate.
pub async fn experiments_section(
    store: &Store,
    experiments: &Experiments,
    now: i64,
) -> Result<Vec<summary::ExperimentJson>, StoreError> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let ratio = |num: i64, den: i64| (den > 0).then(|| summary::rate(num as f64 / den as f64));
    let mut out = Vec::new();
    for x in experiments.all() {
        let mut variants = Vec::new();
        match x.kind {
            ExperimentKind::SaveOffer => {
                let results = store.save_offer_results(&x.name, now).await?;
                for v in ["a", "b"] {
                    let r = results.get(v).cloned().unwrap_or_default();
                    variants.push(summary::VariantJson::Save(summary::SaveVariantJson {
                        variant: v.into(),
                        sessions: count(r.saved + r.canceled + r.abandoned + r.in_progress),
                        saved: count(r.saved),
                        canceled: count(r.canceled),
                        abandoned: count(r.abandoned),
                        in_progress: count(r.in_progress),
                        save_rate: ratio(r.saved, r.saved + r.canceled + r.abandoned),
                    }));
                }
            }
            ExperimentKind::Email => {
                let results = store.recovery_results(&x.name).await?;
                for v in ["a", "b"] {
                    let r = results.get(v).cloned().unwrap_or_default();
                    variants.push(summary::VariantJson::Recovery(summary::RecoveryVariantJson {
                        variant: v.into(),
                        cases: count(r.recovered + r.lost + r.open),
                        recovered: count(r.recovered),
                        lost: count(r.lost),
                        open: count(r.open),
                        recovered_amount: count(r.recovered_amount),
                        recovery_rate: ratio(r.recovered, r.recovered + r.lost),
                    }));
                }
            }
        }
        out.push(summary::ExperimentJson {
            name: x.name.clone(),
            kind: x.kind.as_str().into(),
            percent_b: x.percent_b,
            variants,
        });
    }
    Ok(out)
}
