//! The summary's sections other than the experiments: each read from the store's totals
//! for one range of months and shaped as its JSON.

use crate::domain::month::Month;
use crate::figures::summary;
use crate::figures::summary::{CancelFlowJson, CancelOutcomes};
use crate::store::{Store, StoreError};

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
    use crate::cancel::{Outcome, SaveState};
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
    let json = |r: crate::cancel::Recovered| summary::RecoveredJson {
        cases: u64::try_from(r.cases).unwrap_or(0),
        amount: u64::try_from(r.amount).unwrap_or(0),
    };
    Ok(summary::RecoveryAttributionJson {
        before_email: json(a.before_email),
        after_email: json(a.after_email),
        after_click: json(a.after_click),
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

/// The summary's `nps` section: the answers of the 12 months to `month` (inclusive), and
/// each of those months on its own; a score only from `min_sample` answers on.
pub async fn nps_section(store: &Store, month: Month, min_sample: i64) -> Result<summary::NpsJson, StoreError> {
    use crate::lifecycle::Tally;
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
