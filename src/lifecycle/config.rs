//! Lifecycle campaigns (onboarding, trial ending, win-back, re-engagement), the at-risk rule
//! and A/B experiments. Read from the `[lifecycle.*]` tables and `[[experiments]]` of
//! `holdfast.toml`; each campaign can be switched on or off from the environment too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cancel::config::offers;
use crate::cancel::rules::OfferKind;
use crate::cancel::rules::Reason;
use crate::config::loader::Loader;
use crate::config::{ConfigError, Source};
use crate::lifecycle::rules::AtRiskRule;

/// One email series: on/off, the day of each step, the template of each step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Campaign {
    pub enabled: bool,
    /// Days after the trigger at which each email goes (`0` = at once).
    pub days: Vec<i64>,
    /// Template of each step; a shorter list repeats its last template for the extra steps.
    pub templates: Vec<String>,
    /// `holdout_percent` (0–50, default 0): share of customers whose series is recorded but
    /// sends nothing, assigned stably (`domain::lifecycle::series_arm`), so the series'
    /// outcome can be compared against not writing at all.
    pub holdout_percent: u8,
}

impl Campaign {
    /// `(step key, day, template)` for each email: `day7`, 7, `winback_day7`.
    pub fn steps(&self) -> Vec<(String, i64, &str)> {
        self.days
            .iter()
            .enumerate()
            .filter_map(|(i, &day)| {
                let template = self.templates.get(i).or(self.templates.last())?;
                Some((format!("day{day}"), day, template.as_str()))
            })
            .collect()
    }
}

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

/// The annual-plan offer (`[lifecycle.annual_offer]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnualOffer {
    /// On by default; it does nothing without `prices`.
    pub enabled: bool,
    /// `after_months` (default 3): offered once a monthly subscription is this many 30-day
    /// months old and had product activity in each of its last `after_months` 30-day windows.
    pub after_months: i64,
    /// `prices`: monthly price id → the yearly price id offered in its place.
    pub prices: BTreeMap<String, String>,
    /// `proration_behavior` (default `always_invoice`: the customer pays the difference now
    /// and the year starts today; `create_prorations` leaves it to the next invoice; `none`).
    pub proration_behavior: String,
    /// `template` (default `annual_offer`).
    pub template: String,
}

impl Default for AnnualOffer {
    fn default() -> Self {
        Self {
            enabled: true,
            after_months: 3,
            prices: BTreeMap::new(),
            proration_behavior: "always_invoice".into(),
            template: "annual_offer".into(),
        }
    }
}

impl AnnualOffer {
    /// Whether offers can be made at all.
    pub fn active(&self) -> bool {
        self.enabled && !self.prices.is_empty()
    }
}

/// Which thing an experiment splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExperimentKind {
    /// Variant b gets other offers in the cancel flow; the summary reports save rate per variant.
    SaveOffer,
    /// Variant b gets other email templates; the summary reports dunning recovery per variant.
    Email,
}

impl ExperimentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SaveOffer => "save_offer",
            Self::Email => "email",
        }
    }
}

/// One A/B experiment: customers are split by a stable hash of (name, customer id).
#[derive(Clone, Debug)]
pub struct Experiment {
    pub name: String,
    pub kind: ExperimentKind,
    /// Share of customers in variant b, 0–100.
    pub percent_b: u8,
    /// Save-offer experiments: variant b's offers for the reasons listed (others as in a).
    pub offers_by_reason: BTreeMap<Reason, Vec<OfferKind>>,
    /// Email experiments: variant b's template for each template listed.
    pub templates: BTreeMap<String, String>,
    /// `holdout_percent` (0–50, default 0): share of customers held out of the experiment —
    /// no offer shown (save offers: "cancel anyway" only), no dunning email (email
    /// experiments, opt-in: `withhold_dunning`) — assigned stably by `domain::lift::held_out`,
    /// before the a/b split.
    pub holdout_percent: u8,
}

impl Experiment {
    /// `holdout`, `a` or `b` for `customer`.
    pub fn variant(&self, customer: &str) -> &'static str {
        if crate::figures::lift::held_out(&self.name, customer, self.holdout_percent) {
            return crate::figures::lift::HOLDOUT;
        }
        crate::lifecycle::rules::variant(&self.name, customer, self.percent_b)
    }
}

/// The experiments in force: at most one per kind.
#[derive(Clone, Debug, Default)]
pub struct Experiments {
    pub save_offer: Option<Experiment>,
    pub email: Option<Experiment>,
    /// Lifecycle campaigns with a holdout (`[lifecycle.<campaign>] holdout_percent`), by
    /// campaign name: the summary reports each one's outcome per arm.
    pub lifecycle_holdouts: Vec<(String, u8)>,
}

impl Experiments {
    pub fn all(&self) -> impl Iterator<Item = &Experiment> {
        self.save_offer.iter().chain(self.email.iter())
    }
}

/// `[lifecycle.<campaign>]`, merged (defaults, file, the campaign's on/off variable).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCampaign {
    enabled: bool,
    days: Vec<i64>,
    templates: Option<Vec<String>>,
    template: Option<String>,
    coupon: Option<String>,
    offer_text: Option<String>,
    holdout_percent: Option<i64>,
}

impl FileCampaign {
    fn new(days: &[i64]) -> Self {
        Self {
            enabled: true,
            days: days.to_vec(),
            templates: None,
            template: None,
            coupon: None,
            offer_text: None,
            holdout_percent: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileAtRisk {
    inactive_days: i64,
    drop_percent: i64,
    baseline_weeks: i64,
    min_baseline_per_week: i64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileAnnualOffer {
    enabled: bool,
    after_months: i64,
    #[serde(default)]
    prices: BTreeMap<String, String>,
    proration_behavior: String,
    template: String,
}

/// `[lifecycle]`, merged.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLifecycle {
    product_url: Option<String>,
    horizon_days: i64,
    onboarding: FileCampaign,
    trial_onboarding: FileCampaign,
    trial_ending: FileCampaign,
    winback: FileCampaign,
    reengagement: FileCampaign,
    at_risk: FileAtRisk,
    annual_offer: FileAnnualOffer,
}

impl Default for FileLifecycle {
    fn default() -> Self {
        let r = AtRiskRule::default();
        let a = AnnualOffer::default();
        Self {
            product_url: None,
            horizon_days: 3,
            onboarding: FileCampaign::new(&[1, 7, 14, 30]),
            trial_onboarding: FileCampaign::new(&[0, 3, 7]),
            trial_ending: FileCampaign::new(&[0]),
            winback: FileCampaign::new(&[7, 30, 90]),
            reengagement: FileCampaign::new(&[0, 3, 7, 10, 14]),
            at_risk: FileAtRisk {
                inactive_days: r.inactive_days,
                drop_percent: r.drop_percent,
                baseline_weeks: r.baseline_weeks,
                min_baseline_per_week: r.min_baseline_per_week,
            },
            annual_offer: FileAnnualOffer {
                enabled: a.enabled,
                after_months: a.after_months,
                prices: a.prices,
                proration_behavior: a.proration_behavior,
                template: a.template,
            },
        }
    }
}

/// `[[experiments]]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileExperiment {
    name: String,
    kind: String,
    percent_b: Option<i64>,
    offers_by_reason: Option<BTreeMap<String, Vec<String>>>,
    templates: Option<BTreeMap<String, String>>,
    holdout_percent: Option<i64>,
    withhold_dunning: Option<bool>,
}

/// Checks a campaign's merged table; `default_templates` when it names none.
fn campaign(l: &Loader<'_>, what: &str, f: &FileCampaign, default_templates: &[&str]) -> Result<Campaign, ConfigError> {
    let key = |field: &str| format!("lifecycle.{what}.{field}");
    let days = f.days.clone();
    if days.is_empty() || days.iter().any(|d| !(0..=365).contains(d)) || days.windows(2).any(|w| w[0] >= w[1]) {
        return Err(l.fail(&key("days"), "must be increasing numbers from 0 to 365"));
    }
    let templates = match (&f.templates, &f.template) {
        (Some(t), _) if !t.is_empty() => t.clone(),
        (_, Some(t)) => vec![t.clone()],
        _ => default_templates.iter().map(|t| (*t).to_owned()).collect(),
    };
    if templates.iter().any(|t| t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
        return Err(l.fail(&key("templates"), "template names are letters, digits, _ and -"));
    }
    let holdout_percent = u8::try_from(f.holdout_percent.unwrap_or(0))
        .ok()
        .filter(|p| *p <= 50)
        .ok_or_else(|| l.fail(&key("holdout_percent"), "must be 0–50"))?;
    Ok(Campaign { enabled: f.enabled, days, templates, holdout_percent })
}

impl LifecycleSettings {
    /// Read through the one loader (see `config::loader`).
    pub fn from_source(src: &impl Source) -> Result<(Self, Experiments), ConfigError> {
        Self::from_loader(&Loader::new(src)?)
    }

    /// The campaigns and experiments, checked.
    pub(crate) fn from_loader(l: &Loader<'_>) -> Result<(Self, Experiments), ConfigError> {
        let f = &l.tables.lifecycle;
        let a = &f.at_risk;
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
        let mut experiments = experiments(l, &l.tables.experiments)?;
        experiments.lifecycle_holdouts = [
            ("onboarding", &settings.onboarding),
            ("trial_onboarding", &settings.trial_onboarding),
            ("winback", &settings.winback),
            ("reengagement", &settings.reengagement),
        ]
        .into_iter()
        .filter(|(_, c)| c.holdout_percent > 0)
        .map(|(name, c)| (name.to_owned(), c.holdout_percent))
        .collect();
        if settings.trial_ending.holdout_percent > 0 {
            // A reminder about billing is owed to every customer: never withheld.
            return Err(l.fail("lifecycle.trial_ending.holdout_percent", "is not allowed: the email is transactional"));
        }
        Ok((settings, experiments))
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

fn annual_offer(l: &Loader<'_>, f: &FileAnnualOffer) -> Result<AnnualOffer, ConfigError> {
    if !(1..=24).contains(&f.after_months) {
        return Err(l.fail("lifecycle.annual_offer.after_months", "must be 1–24"));
    }
    let price_id =
        |p: &str| p.starts_with("price_") && p.len() <= 255 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if f.prices.iter().any(|(m, y)| !price_id(m) || !price_id(y) || m == y) {
        return Err(l.fail("lifecycle.annual_offer.prices", "maps a monthly price id (price_…) to another, yearly one"));
    }
    if !["always_invoice", "create_prorations", "none"].contains(&f.proration_behavior.as_str()) {
        return Err(l.fail("lifecycle.annual_offer.proration_behavior", "is always_invoice, create_prorations or none"));
    }
    let template = &f.template;
    if template.is_empty() || !template.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(l.fail("lifecycle.annual_offer.template", "names a template: letters, digits, _ and -"));
    }
    Ok(AnnualOffer {
        enabled: f.enabled,
        after_months: f.after_months,
        prices: f.prices.clone(),
        proration_behavior: f.proration_behavior.clone(),
        template: template.clone(),
    })
}

fn experiments(l: &Loader<'_>, list: &[FileExperiment]) -> Result<Experiments, ConfigError> {
    let fail = |what: String| l.fail("experiments", what);
    let mut out = Experiments::default();
    for e in list {
        let name = e.name.trim().to_owned();
        if name.is_empty() || name.len() > 64 {
            return Err(fail("name must be 1–64 characters".into()));
        }
        let percent_b = e.percent_b.unwrap_or(50);
        let percent_b = u8::try_from(percent_b)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| fail(format!("experiment {name:?}: percent_b must be 0–100")))?;
        let mut offers_by_reason = BTreeMap::new();
        for (reason, names) in e.offers_by_reason.iter().flatten() {
            let r = Reason::parse(reason).ok_or_else(|| fail(format!("experiment {name:?}: unknown reason {reason:?}")))?;
            offers_by_reason.insert(r, offers(names).map_err(|p| fail(format!("experiment {name:?}: {p}")))?);
        }
        let templates = e.templates.clone().unwrap_or_default();
        let (kind, slot) = match e.kind.as_str() {
            "save_offer" if !offers_by_reason.is_empty() => (ExperimentKind::SaveOffer, &mut out.save_offer),
            "email" if !templates.is_empty() => (ExperimentKind::Email, &mut out.email),
            "save_offer" => return Err(fail(format!("experiment {name:?}: needs [experiments.offers_by_reason]"))),
            "email" => return Err(fail(format!("experiment {name:?}: needs [experiments.templates]"))),
            other => return Err(fail(format!("experiment {name:?}: kind {other:?} (save_offer or email)"))),
        };
        if slot.is_some() {
            return Err(fail(format!("experiment {name:?}: only one {} experiment at a time", kind.as_str())));
        }
        let holdout_percent = u8::try_from(e.holdout_percent.unwrap_or(0))
            .ok()
            .filter(|p| *p <= 50)
            .ok_or_else(|| fail(format!("experiment {name:?}: holdout_percent must be 0–50")))?;
        // An email experiment is measured on dunning recovery: its holdout withholds payment
        // reminders, which costs money, so it must be asked for explicitly.
        if kind == ExperimentKind::Email && holdout_percent > 0 && e.withhold_dunning != Some(true) {
            return Err(fail(format!(
                "experiment {name:?}: a holdout withholds dunning emails; set withhold_dunning = true to opt in"
            )));
        }
        *slot = Some(Experiment { name, kind, percent_b, offers_by_reason, templates, holdout_percent });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!((x.percent_b, x.offers_by_reason[&Reason::TooExpensive].clone()), (30, vec![OfferKind::Pause]));
        assert_eq!(x.holdout_percent, 10);
        assert_eq!(e.email.map(|x| x.holdout_percent), Some(5));
    }

    #[test]
    fn the_example_file_is_valid() {
        let (s, e) =
            load(&[("HOLDFAST_CONFIG_FILE", concat!(env!("CARGO_MANIFEST_DIR"), "/holdfast.example.toml"))]).expect("valid");
        assert_eq!(s.winback_coupon.as_deref(), Some("COMEBACK20"));
        assert_eq!(s.reengagement.days, vec![0, 3, 7, 10, 14]);
        assert_eq!(e.save_offer.map(|x| x.name), Some("pause-for-price".to_owned()));
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
