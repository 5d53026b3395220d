//! The owner's retention reports, read from the figures the projector maintains (see
//! `figures::storage`): a read assembles a few dozen total rows, never the whole history.

use crate::clock::Clock;
use crate::domain::month::Month;
use crate::domain::timeline::GivenBack;
use crate::figures::summary::{CurrencyJson, MonthlyJson, Summary};
use crate::figures::{Report, summary};
use crate::lifecycle::Experiments;
use crate::store::{Store, StoreError};

mod experiments;
mod sections;

pub use experiments::experiments_section;
pub use sections::{
    AT_RISK_LIST_MAX, at_risk_section, cancel_flow_section, emails_section, nps_section, recovery_attribution_section,
    saves_section,
};

/// Most months one `/api/metrics/monthly` request may ask for.
pub const MAX_SERIES_MONTHS: i32 = 120;

/// Reads the reports; cheap to clone.
#[derive(Clone)]
pub struct Reports {
    store: Store,
    /// The experiments whose results the summary reports.
    experiments: Experiments,
    clock: Clock,
    /// How long after an abandoned session a still-live subscription counts as kept, and a
    /// save is confirmed by time (the cancel flow's `save_confirm_days`).
    save_confirm_secs: i64,
    /// Fewer NPS answers than this are reported as too few (`[nps] min_sample`).
    nps_min_sample: i64,
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
            experiments: Experiments::default(),
            clock: Clock::system(),
            save_confirm_secs: 30 * 86_400,
            nps_min_sample: crate::lifecycle::NpsSettings::default().min_sample,
        }
    }

    /// Report NPS as too few below `n` answers.
    pub fn with_nps_min_sample(mut self, n: i64) -> Self {
        self.nps_min_sample = n;
        self
    }

    /// Report these experiments' results in the summary.
    pub fn with_experiments(mut self, experiments: Experiments) -> Self {
        self.experiments = experiments;
        self
    }

    /// Count a session kept when still paying `days` after it (see `save_confirm_secs`).
    pub fn with_save_confirm_days(mut self, days: i64) -> Self {
        self.save_confirm_secs = days.saturating_mul(86_400);
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
        // Each part's time, logged at debug level (`RUST_LOG=holdfast::figures::reports=debug`): where a
        // slow summary's time goes.
        let mut parts = Parts::start();
        // Read once: every currency's section applies it.
        let given_back = self.store.load_given_back().await?;
        parts.mark("given_back");
        let report = self.report(currency, month, month, &given_back).await?;
        parts.mark("report");
        let cancel_flow = cancel_flow_section(&self.store, month.start(), month.plus(1).start(), self.clock.now()).await?;
        parts.mark("cancel_flow");
        let mut summary = summary::summary(&report, month, cancel_flow);
        // One section per currency, so a business in several is never read as one sum.
        let mut currencies = Vec::new();
        for c in self.store.maintained_currencies().await? {
            let row = if c == summary.currency {
                summary::monthly(&report, month)
            } else {
                let other = self.report(Some(&c), month, month, &given_back).await?;
                summary::monthly(&other, month)
            };
            currencies.push(CurrencyJson {
                currency: row.currency,
                mrr_start: row.mrr_start,
                mrr_end: row.mrr_end,
                active_customers_end: row.active_customers_end,
            });
        }
        if !currencies.is_empty() {
            summary.currencies = currencies;
        }
        parts.mark("currencies");
        let unresolved = self.store.unresolved(&report.currency, month).await?;
        (summary.unresolved_discounts, summary.unresolved_prices) = (unresolved.discounts, unresolved.prices);
        parts.mark("unresolved");
        summary.emails = Some(emails_section(&self.store).await?);
        parts.mark("emails");
        summary.at_risk = Some(at_risk_section(&self.store).await?);
        parts.mark("at_risk");
        summary.experiments = Some(
            experiments_section(&self.store, &self.experiments, self.clock.now(), &summary.currency, self.save_confirm_secs)
                .await?,
        );
        parts.mark("experiments");
        summary.saves = Some(saves_section(&self.store, month.start(), month.plus(1).start(), &summary.currency).await?);
        parts.mark("saves");
        summary.recovery_attribution =
            Some(recovery_attribution_section(&self.store, month.start(), month.plus(1).start(), &summary.currency).await?);
        parts.mark("recovery_attribution");
        summary.nps = Some(nps_section(&self.store, month, self.nps_min_sample).await?);
        parts.mark("nps");
        parts.log("summary");
        Ok(summary)
    }

    /// Monthly rows `from..=to`.
    pub async fn monthly(&self, from: Month, to: Month, currency: Option<&str>) -> Result<Vec<MonthlyJson>, StoreError> {
        let given_back = self.store.load_given_back().await?;
        let report = self.report(currency, from, to, &given_back).await?;
        Ok((0..=to.since(from)).map(|i| summary::monthly(&report, from.plus(i))).collect())
    }

    /// The maintained report, with what was given back after payment (refunds, lost
    /// disputes, credit notes: few rows, read as they stand now) applied on top.
    async fn report(
        &self,
        currency: Option<&str>,
        from: Month,
        to: Month,
        given_back: &[GivenBack],
    ) -> Result<Report, StoreError> {
        let mut report = self.store.maintained_report(currency, from, to).await?;
        let invoices: Vec<&str> =
            given_back.iter().filter(|g| g.currency == report.currency).filter_map(|g| g.invoice.as_deref()).collect();
        let recovered = self.store.recovered_invoices(&invoices, &report.currency).await?;
        crate::figures::report::apply_given_back(&mut report, given_back, &recovered);
        Ok(report)
    }
}

/// The time each part of a read took, for one debug line.
pub struct Parts {
    at: std::time::Instant,
    parts: Vec<(&'static str, f64)>,
}

impl Parts {
    pub(crate) fn start() -> Self {
        Self { at: std::time::Instant::now(), parts: Vec::new() }
    }

    /// The part that just ended.
    pub(crate) fn mark(&mut self, part: &'static str) {
        let now = std::time::Instant::now();
        self.parts.push((part, (now - self.at).as_secs_f64() * 1000.0));
        self.at = now;
    }

    pub(crate) fn log(&self, what: &str) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            let parts: Vec<String> = self.parts.iter().map(|(p, ms)| format!("{p}={ms:.1}")).collect();
            tracing::debug!(what, ms = %parts.join(" "), "time per part");
        }
    }
}
