//! The summary's `experiments` section: each experiment in force with its variants' counts,
//! and every arm's rate against the holdout.

use std::collections::BTreeMap;

use crate::cancel::ArmCounts;
use crate::domain::lift::Split;
use crate::figures::summary;
use crate::lifecycle::{ExperimentKind, Experiments};
use crate::store::{Store, StoreError};

/// The summary's `experiments` section: both variants of each experiment in force, with the
/// counts behind each rate.
pub async fn experiments_section(
    store: &Store,
    experiments: &Experiments,
    now: i64,
    currency: &str,
    save_confirm_secs: i64,
) -> Result<Vec<summary::ExperimentJson>, StoreError> {
    let mut out = Vec::new();
    for (kind, x) in experiments.all() {
        out.push(experiment_json(store, kind, x, now, currency, save_confirm_secs).await?);
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
            arms: arms_json_named(&arms, true, outcome, &[crate::lifecycle::TREATED]),
            retention: Vec::new(),
        });
    }
    Ok(out)
}

/// One configured experiment: its variants, its arms against the holdout and (save offers)
/// the retention of the customers kept.
async fn experiment_json(
    store: &Store,
    kind: ExperimentKind,
    x: &Split,
    now: i64,
    currency: &str,
    save_confirm_secs: i64,
) -> Result<summary::ExperimentJson, StoreError> {
    let (arms, outcome, variants) = match kind {
        ExperimentKind::SaveOffer => {
            (store.save_offer_arms(&x.name, now, save_confirm_secs).await?, "kept", save_variants(store, x, now).await?)
        }
        ExperimentKind::Email => {
            let arms = store
                .recovery_results(&x.name, currency)
                .await?
                .into_iter()
                .map(|(v, r)| (v, ArmCounts { successes: r.recovered, decided: r.recovered + r.lost, undecided: r.open }))
                .collect();
            (arms, "recovered", recovery_variants(store, x, currency).await?)
        }
    };
    let mut retention = Vec::new();
    if kind == ExperimentKind::SaveOffer {
        for (days, outcome) in [(30, "retained_30d"), (90, "retained_90d")] {
            let kept = store.save_retention(&x.name, days, now).await?;
            retention.extend(arms_json(&kept, x.holdout_percent > 0, outcome));
        }
    }
    Ok(summary::ExperimentJson {
        name: x.name.clone(),
        kind: kind.as_str().into(),
        percent_b: x.percent_b,
        variants,
        holdout_percent: x.holdout_percent,
        arms: arms_json(&arms, x.holdout_percent > 0, outcome),
        retention,
    })
}

/// A save-offer experiment's two variants: their sessions by how they ended.
async fn save_variants(store: &Store, x: &Split, now: i64) -> Result<Vec<summary::VariantJson>, StoreError> {
    let results = store.save_offer_results(&x.name, now).await?;
    Ok(["a", "b"]
        .into_iter()
        .map(|v| {
            let r = results.get(v).cloned().unwrap_or_default();
            summary::VariantJson::Save(summary::SaveVariantJson {
                variant: v.into(),
                sessions: count(r.saved + r.canceled + r.abandoned + r.in_progress),
                saved: count(r.saved),
                canceled: count(r.canceled),
                abandoned: count(r.abandoned),
                in_progress: count(r.in_progress),
                save_rate: ratio(r.saved, r.saved + r.canceled + r.abandoned),
            })
        })
        .collect())
}

/// An email experiment's two variants: their dunning cases by how they ended, in `currency`.
async fn recovery_variants(store: &Store, x: &Split, currency: &str) -> Result<Vec<summary::VariantJson>, StoreError> {
    let results = store.recovery_results(&x.name, currency).await?;
    Ok(["a", "b"]
        .into_iter()
        .map(|v| {
            let r = results.get(v).cloned().unwrap_or_default();
            summary::VariantJson::Recovery(summary::RecoveryVariantJson {
                variant: v.into(),
                cases: count(r.recovered + r.lost + r.open),
                recovered: count(r.recovered),
                lost: count(r.lost),
                open: count(r.open),
                recovered_amount: count(r.recovered_amount),
                recovery_rate: ratio(r.recovered, r.recovered + r.lost),
            })
        })
        .collect())
}

/// A stored count as reported (never negative).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `num ÷ den` as reported, `None` when nothing was decided.
fn ratio(num: i64, den: i64) -> Option<f64> {
    (den > 0).then(|| summary::rate(num as f64 / den as f64))
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
    use crate::domain::lift::{HOLDOUT, lift_vs_holdout};
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
