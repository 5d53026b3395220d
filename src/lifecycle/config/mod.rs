//! Lifecycle campaigns (onboarding, trial ending, win-back, re-engagement), the at-risk rule
//! and A/B experiments. Read from the `[lifecycle.*]` tables and `[[experiments]]` of
//! `holdfast.toml`; each campaign can be switched on or off from the environment too.
//!
//! `campaign`: one email series; `annual_offer`: the annual-plan offer; `experiments`: the
//! A/B experiments; `file`: the `[lifecycle]` tables as merged by the loader.

mod annual_offer;
mod campaign;
mod experiments;
mod file;

pub use self::annual_offer::AnnualOffer;
pub use self::campaign::Campaign;
pub(crate) use self::experiments::FileExperiment;
pub use self::experiments::{ExperimentKind, Experiments};
pub(crate) use self::file::FileLifecycle;

use self::annual_offer::annual_offer;
use self::campaign::campaign;
use self::experiments::experiments;
use self::file::FileAtRisk;
use crate::config::loader::Loader;
use crate::config::{ConfigError, Source};
use crate::lifecycle::rules::AtRiskRule;

/// Everything the lifecycle reactions and the scheduler need.
#[derive(Clone, Debug)]
pub struct LifecycleSettings {
    /// `HOLDFAST_ONBOARDING` / `[lifecycle.onboarding]`: after the first paid invoice of a
    /// customer who bought directly (a customer who had the trial series does not get it too).
    pub onboarding: Campaign,
    /// `HOLDFAST_TRIAL_ONBOARDING` / `[lifecycle.trial_onboarding]`: from the first day of a
    /// trial (the subscription arrives as `trialing`).
    pub trial_onboarding: Campaign,
    /// `HOLDFAST_TRIAL_ENDING` / `[lifecycle.trial_ending]` (`enabled`, `template`): one email on
    /// `customer.subscription.trial_will_end`. Transactional (it is about billing).
    pub trial_ending: Campaign,
    /// `HOLDFAST_WINBACK` / `[lifecycle.winback]`: after a voluntary cancellation takes effect.
    pub winback: Campaign,
    /// `[lifecycle.winback] coupon`: applied to the one-click way back (a Checkout session).
    pub winback_coupon: Option<String>,
    /// `[lifecycle.winback] offer_text`: what the win-back emails say about the coupon.
    pub winback_offer_text: Option<String>,
    /// `HOLDFAST_REENGAGEMENT` / `[lifecycle.reengagement]`: while a customer is at risk.
    pub reengagement: Campaign,
    /// `[lifecycle.at_risk]`.
    pub at_risk: AtRiskRule,
    /// `HOLDFAST_ANNUAL_OFFER` / `[lifecycle.annual_offer]`: one email offering the yearly
    /// price to a steady monthly subscriber.
    pub annual_offer: AnnualOffer,
    /// `HOLDFAST_PRODUCT_URL` / `[lifecycle] product_url`: "back to the product" in emails and
    /// where the one-click way back lands after checkout.
    pub product_url: Option<String>,
    /// `[lifecycle] horizon_days` (default 3): a trigger older than this when it arrives
    /// (a late webhook, an import) records state but starts no series.
    pub horizon_days: i64,
}

impl LifecycleSettings {
    /// Read through the one loader (see `config::loader`).
    pub fn from_source(src: &impl Source) -> Result<(Self, Experiments), ConfigError> {
        Self::from_loader(&Loader::new(src)?)
    }

    /// The campaigns and experiments, checked.
    pub(crate) fn from_loader(l: &Loader<'_>) -> Result<(Self, Experiments), ConfigError> {
        let f = &l.table::<FileLifecycle>("lifecycle")?;
        let at_risk = at_risk_rule(l, &f.at_risk)?;
        let product_url = f.product_url.clone();
        if product_url.as_deref().is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://"))) {
            return Err(l.fail("lifecycle.product_url", "must start with http:// or https://"));
        }
        if f.horizon_days < 0 {
            return Err(l.fail("lifecycle.horizon_days", "must not be negative"));
        }
        let settings = Self {
            annual_offer: annual_offer(l, &f.annual_offer)?,
            onboarding: campaign(
                l,
                "onboarding",
                &f.onboarding,
                &["onboarding_day1", "onboarding_day7", "onboarding_day14", "onboarding_day30"],
            )?,
            trial_onboarding: campaign(
                l,
                "trial_onboarding",
                &f.trial_onboarding,
                &["trial_onboarding_day0", "trial_onboarding_day3", "trial_onboarding_day7"],
            )?,
            trial_ending: campaign(l, "trial_ending", &f.trial_ending, &["trial_ending"])?,
            winback: campaign(l, "winback", &f.winback, &["winback_day7", "winback_day30", "winback_day90"])?,
            winback_coupon: f.winback.coupon.clone(),
            winback_offer_text: f.winback.offer_text.clone(),
            reengagement: campaign(
                l,
                "reengagement",
                &f.reengagement,
                &["reengage_day0", "reengage_day3", "reengage_day7", "reengage_day10", "reengage_day14"],
            )?,
            at_risk,
            product_url,
            horizon_days: f.horizon_days,
        };
        let mut experiments = experiments(l, &l.table::<Vec<FileExperiment>>("experiments")?)?;
        experiments.lifecycle_holdouts = settings.holdouts();
        if settings.trial_ending.holdout_percent > 0 {
            // A reminder about billing is owed to every customer: never withheld.
            return Err(l.fail("lifecycle.trial_ending.holdout_percent", "is not allowed: the email is transactional"));
        }
        Ok((settings, experiments))
    }

    /// The campaigns with a holdout, by name, with its share.
    fn holdouts(&self) -> Vec<(String, u8)> {
        [
            ("onboarding", &self.onboarding),
            ("trial_onboarding", &self.trial_onboarding),
            ("winback", &self.winback),
            ("reengagement", &self.reengagement),
        ]
        .into_iter()
        .filter(|(_, c)| c.holdout_percent > 0)
        .map(|(name, c)| (name.to_owned(), c.holdout_percent))
        .collect()
    }

    /// Every template a campaign may render (checked at start).
    pub fn template_names(&self) -> Vec<&str> {
        [&self.onboarding, &self.trial_onboarding, &self.trial_ending, &self.winback, &self.reengagement]
            .into_iter()
            .flat_map(|c| c.templates.iter().map(String::as_str))
            .chain(std::iter::once(self.annual_offer.template.as_str()))
            .collect()
    }
}

/// `[lifecycle.at_risk]`, checked.
fn at_risk_rule(l: &Loader<'_>, a: &FileAtRisk) -> Result<AtRiskRule, ConfigError> {
    let at_risk = AtRiskRule {
        inactive_days: a.inactive_days,
        drop_percent: a.drop_percent,
        baseline_weeks: a.baseline_weeks,
        min_baseline_per_week: a.min_baseline_per_week,
    };
    if at_risk.inactive_days < 1 {
        return Err(l.fail("lifecycle.at_risk.inactive_days", "must be at least 1"));
    }
    if !(1..=100).contains(&at_risk.drop_percent) {
        return Err(l.fail("lifecycle.at_risk.drop_percent", "must be 1–100"));
    }
    if !(1..=52).contains(&at_risk.baseline_weeks) {
        return Err(l.fail("lifecycle.at_risk.baseline_weeks", "must be 1–52"));
    }
    Ok(at_risk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cancel::{OfferKind, Reason};
    use crate::config::loader::FILE_VAR;
    use std::collections::HashMap;

    fn load(vars: &[(&'static str, &str)]) -> Result<(LifecycleSettings, Experiments), ConfigError> {
        let map: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        LifecycleSettings::from_source(&map)
    }

    #[test]
    fn defaults_are_the_documented_series() {
        let (s, e) = load(&[]).expect("defaults");
        assert_eq!(s.onboarding.days, vec![1, 7, 14, 30]);
        assert_eq!(s.trial_onboarding.steps()[0], ("day0".to_owned(), 0, "trial_onboarding_day0"));
        assert_eq!(s.annual_offer, AnnualOffer::default());
        assert!(!s.annual_offer.active(), "no prices, no offers");
        assert_eq!(s.winback.days, vec![7, 30, 90]);
        assert_eq!(s.reengagement.days, vec![0, 3, 7, 10, 14]);
        assert_eq!(s.reengagement.steps()[4], ("day14".to_owned(), 14, "reengage_day14"));
        assert_eq!(s.at_risk, AtRiskRule::default());
        assert!(e.save_offer.is_none() && e.email.is_none());
    }

    #[test]
    fn the_file_configures_campaigns_and_experiments_and_the_environment_switches() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("holdfast.toml");
        std::fs::write(
            &path,
            "[lifecycle.onboarding]\ndays = [2, 9]\ntemplates = [\"hello\"]\nholdout_percent = 10\n[lifecycle.winback]\nenabled = false\n\
             [lifecycle.at_risk]\ninactive_days = 14\n\
             [[experiments]]\nname = \"pause-first\"\nkind = \"save_offer\"\npercent_b = 30\n\
             holdout_percent = 10\n[experiments.offers_by_reason]\ntoo_expensive = [\"pause\"]\n\
             [[experiments]]\nname = \"no-reminders\"\nkind = \"email\"\nholdout_percent = 5\nwithhold_dunning = true\n\
             [experiments.templates]\npayment_failed = \"payment_failed_short\"\n",
        )
        .expect("write");
        let p = path.to_string_lossy().to_string();
        let (s, e) = load(&[("HOLDFAST_CONFIG_FILE", &p), ("HOLDFAST_REENGAGEMENT", "off")]).expect("valid");
        assert_eq!(s.onboarding.steps(), vec![("day2".to_owned(), 2, "hello"), ("day9".to_owned(), 9, "hello")]);
        assert_eq!(e.lifecycle_holdouts, vec![("onboarding".to_owned(), 10)]);
        assert!(!s.winback.enabled && !s.reengagement.enabled && s.onboarding.enabled);
        assert_eq!(s.at_risk.inactive_days, 14);
        let x = e.save_offer.expect("experiment");
        assert_eq!((x.split.percent_b, x.offers_by_reason[&Reason::TooExpensive].clone()), (30, vec![OfferKind::Pause]));
        assert_eq!(x.split.holdout_percent, 10);
        assert_eq!(e.email.map(|x| x.split.holdout_percent), Some(5));
    }

    #[test]
    fn the_example_file_is_valid() {
        let (s, e) =
            load(&[("HOLDFAST_CONFIG_FILE", concat!(env!("CARGO_MANIFEST_DIR"), "/holdfast.example.toml"))]).expect("valid");
        assert_eq!(s.winback_coupon.as_deref(), Some("COMEBACK20"));
        assert_eq!(s.reengagement.days, vec![0, 3, 7, 10, 14]);
        assert_eq!(e.save_offer.map(|x| x.split.name), Some("pause-for-price".to_owned()));
    }

    #[test]
    fn bad_campaigns_and_experiments_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        for bad in [
            "[lifecycle.onboarding]\ndays = [7, 1]\n",
            "[lifecycle.onboarding]\nwhen = 1\n",
            "[lifecycle.annual_offer]\nafter_months = 0\n",
            "[lifecycle.winback]\nholdout_percent = 60\n",
            "[lifecycle.trial_ending]\nholdout_percent = 10\n",
            "[lifecycle.annual_offer]\nproration_behavior = \"later\"\n",
            "[lifecycle.annual_offer.prices]\nprice_m = \"yearly\"\n",
            "[[experiments]]\nname = \"x\"\nkind = \"email\"\n",
            "[[experiments]]\nname = \"x\"\nkind = \"email\"\npercent_b = 101\n[experiments.templates]\na = \"b\"\n",
            // A dunning holdout withholds reminders: only with the explicit opt-in.
            "[[experiments]]\nname = \"x\"\nkind = \"email\"\nholdout_percent = 10\n[experiments.templates]\na = \"b\"\n",
            "[[experiments]]\nname = \"x\"\nkind = \"save_offer\"\nholdout_percent = 60\n\
             [experiments.offers_by_reason]\nunused = [\"pause\"]\n",
        ] {
            let path = dir.path().join("bad.toml");
            std::fs::write(&path, bad).expect("write");
            let p = path.to_string_lossy().to_string();
            assert_eq!(load(&[("HOLDFAST_CONFIG_FILE", &p)]).expect_err(bad).var, FILE_VAR, "{bad}");
        }
    }
}
