//! The owner's retention reports, read from the figures the projector maintains (see
//! `store::figures`): a read assembles a few dozen total rows, never the whole history.

use std::collections::BTreeMap;

use crate::cancel::saves_storage::ArmCounts;
use crate::clock::Clock;
use crate::config::{ExperimentKind, Experiments};
use crate::domain::month::Month;
use crate::domain::timeline::GivenBack;
use crate::figures::Report;
use crate::figures::summary;
use crate::figures::summary::CancelFlowJson;
use crate::figures::summary::CancelOutcomes;
use crate::figures::summary::CurrencyJson;
use crate::figures::summary::MonthlyJson;
use crate::figures::summary::Summary;
use crate::store::{Store, StoreError};

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
            nps_min_sample: crate::config::NpsSettings::default().min_sample,
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
pub(crate) struct Parts {
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

/// The summary's `saves` section for sessions started in `[from_ts, to_ts)`: their saves by
/// state now, the confirmed saves' MRR in `currency`, and paused customers' resume rate.
pub async fn saves_section(store: &Store, from_ts: i64, to_ts: i64, currency: &str) -> Result<summary::SavesJson, StoreError> {
    use crate::cancel::rules::Outcome;
    use crate::cancel::saves::SaveState;
    let stats = store.save_stats(from_ts, to_ts).await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let ratio = |num: i64, den: i64| (den > 0).then(|| summary::rate(num as f64 / den as f64));
    let (confirmed, reversed) = (stats.count(SaveState::Confirmed), stats.count(SaveState::Reversed));
    let (paused_ok, paused_lost) =
        (stats.of(Outcome::Paused, SaveState::Confirmed), stats.of(Outcome::Paused, SaveState::Reversed));
    let by_outcome = [Outcome::Paused, Outcome::Downgraded, Outcome::Discounted, Outcome::Resumed]
        .into_iter()
        .map(|o| {
            let counts = summary::SaveCountsJson {
                pending: count(stats.of(o, SaveState::Pending)),
                confirmed: count(stats.of(o, SaveState::Confirmed)),
                reversed: count(stats.of(o, SaveState::Reversed)),
            };
            (o.as_str().to_owned(), counts)
        })
        .collect();
    Ok(summary::SavesJson {
        pending: count(stats.count(SaveState::Pending)),
        confirmed: count(confirmed),
        reversed: count(reversed),
        confirmed_rate: ratio(confirmed, confirmed + reversed),
        confirmed_saved_mrr: stats.confirmed_mrr.get(&currency.to_ascii_lowercase()).copied().unwrap_or(0.0),
        paused_resume_rate: ratio(paused_ok, paused_ok + paused_lost),
        by_outcome,
    })
}

/// The summary's `recovery_attribution` section: cases recovered in `[from_ts, to_ts)` in
/// `currency`, by what preceded the payment.
pub async fn recovery_attribution_section(
    store: &Store,
    from_ts: i64,
    to_ts: i64,
    currency: &str,
) -> Result<summary::RecoveryAttributionJson, StoreError> {
    let a = store.recovery_attribution(from_ts, to_ts, currency).await?;
    let json = |r: crate::cancel::saves_storage::Recovered| summary::RecoveredJson {
        cases: u64::try_from(r.cases).unwrap_or(0),
        amount: u64::try_from(r.amount).unwrap_or(0),
    };
    Ok(summary::RecoveryAttributionJson {
        before_email: json(a.before_email),
        after_email: json(a.after_email),
        after_click: json(a.after_click),
    })
}

/// Each arm's rate and, against the holdout, the difference with its 95 % interval.
fn arms_json(arms: &BTreeMap<String, ArmCounts>, has_holdout: bool, outcome: &str) -> Vec<summary::ArmJson> {
    arms_json_named(arms, has_holdout, outcome, &["a", "b"])
}

/// `arms_json` for arms named `names` (plus the holdout).
fn arms_json_named(
    arms: &BTreeMap<String, ArmCounts>,
    has_holdout: bool,
    outcome: &str,
    names: &[&'static str],
) -> Vec<summary::ArmJson> {
    use crate::figures::lift::HOLDOUT;
    use crate::figures::lift::lift_vs_holdout;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let pair = |c: &ArmCounts| (count(c.successes), count(c.decided));
    let holdout = arms.get(HOLDOUT).copied().unwrap_or_default();
    let mut names = names.to_vec();
    if has_holdout || arms.contains_key(HOLDOUT) {
        names.push(HOLDOUT);
    }
    names
        .into_iter()
        .map(|v| {
            let c = arms.get(v).copied().unwrap_or_default();
            let lift = (v != HOLDOUT && has_holdout).then(|| lift_vs_holdout(pair(&c), pair(&holdout))).flatten();
            let status = match (v == HOLDOUT, has_holdout, &lift) {
                (true, _, _) => "holdout",
                (false, false, _) => "no_holdout",
                (false, true, None) => "not_enough_data",
                (false, true, Some(_)) => "measured",
            };
            summary::ArmJson {
                variant: v.into(),
                outcome: outcome.into(),
                successes: count(c.successes),
                decided: count(c.decided),
                undecided: count(c.undecided),
                rate: (c.decided > 0).then(|| summary::rate(c.successes as f64 / c.decided as f64)),
                status: status.into(),
                lift: lift.map(|l| summary::LiftJson {
                    difference: summary::rate(l.difference),
                    ci_low: summary::rate(l.low),
                    ci_high: summary::rate(l.high),
                }),
            }
        })
        .collect()
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
    currency: &str,
    save_confirm_secs: i64,
) -> Result<Vec<summary::ExperimentJson>, StoreError> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let ratio = |num: i64, den: i64| (den > 0).then(|| summary::rate(num as f64 / den as f64));
    let mut out = Vec::new();
    for x in experiments.all() {
        let mut variants = Vec::new();
        let arms = match x.kind {
            ExperimentKind::SaveOffer => store.save_offer_arms(&x.name, now, save_confirm_secs).await?,
            ExperimentKind::Email => store
                .recovery_results(&x.name, currency)
                .await?
                .into_iter()
                .map(|(v, r)| (v, ArmCounts { successes: r.recovered, decided: r.recovered + r.lost, undecided: r.open }))
                .collect(),
        };
        let outcome = match x.kind {
            ExperimentKind::SaveOffer => "kept",
            ExperimentKind::Email => "recovered",
        };
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
                let results = store.recovery_results(&x.name, currency).await?;
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
        let mut retention = Vec::new();
        if x.kind == ExperimentKind::SaveOffer {
            for (days, outcome) in [(30, "retained_30d"), (90, "retained_90d")] {
                let kept = store.save_retention(&x.name, days, now).await?;
                retention.extend(arms_json(&kept, x.holdout_percent > 0, outcome));
            }
        }
        out.push(summary::ExperimentJson {
            name: x.name.clone(),
            kind: x.kind.as_str().into(),
            percent_b: x.percent_b,
            variants,
            holdout_percent: x.holdout_percent,
            arms: arms_json(&arms, x.holdout_percent > 0, outcome),
            retention,
        });
    }
    // Lifecycle series with a holdout: each measured on its own outcome.
    for (campaign, percent) in &experiments.lifecycle_holdouts {
        let Some((outcome, _)) = crate::figures::experiments::series_outcome(campaign) else { continue };
        let arms = store.series_outcomes(campaign, now).await?;
        out.push(summary::ExperimentJson {
            name: format!("lifecycle:{campaign}"),
            kind: "lifecycle_email".into(),
            percent_b: 0,
            variants: Vec::new(),
            holdout_percent: *percent,
            arms: arms_json_named(&arms, true, outcome, &[crate::lifecycle::rules::TREATED]),
            retention: Vec::new(),
        });
    }
    Ok(out)
}

/// The summary's `nps` section: the answers of the 12 months to `month` (inclusive), and
/// each of those months on its own; a score only from `min_sample` answers on.
pub async fn nps_section(store: &Store, month: Month, min_sample: i64) -> Result<summary::NpsJson, StoreError> {
    use crate::lifecycle::nps::Tally;
    let first = month.plus(-11);
    let answers = store.nps_scores(first.start(), month.plus(1).start()).await?;
    let min = u64::try_from(min_sample).unwrap_or(0);
    let figures = |t: Tally| {
        let too_few = t.n() < min;
        (if too_few { None } else { t.score() }, too_few)
    };
    let by_month = (0..12)
        .map(|i| {
            let m = first.plus(i);
            let t = Tally::of(answers.iter().filter(|(at, _)| Month::of(*at) == m).map(|(_, s)| *s));
            let (score, too_few) = figures(t);
            summary::NpsMonthJson { month: m.to_string(), n: t.n(), score, too_few }
        })
        .collect();
    let all = Tally::of(answers.iter().map(|(_, s)| *s));
    let (score, too_few) = figures(all);
    Ok(summary::NpsJson {
        from_month: first.to_string(),
        to_month: month.to_string(),
        n: all.n(),
        promoters: all.promoters,
        passives: all.passives,
        detractors: all.detractors,
        score,
        min_sample: min,
        too_few,
        by_month,
    })
}
