//! A/B experiments (`[[experiments]]`): at most one per kind, checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::cancel::{OfferKind, Reason, parse_offers as offers};
use crate::config::ConfigError;
use crate::config::loader::Loader;
use crate::mail::composer::TemplateVariants;

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
        if crate::domain::lift::held_out(&self.name, customer, self.holdout_percent) {
            return crate::domain::lift::HOLDOUT;
        }
        crate::lifecycle::rules::variant(&self.name, customer, self.percent_b)
    }

    /// An email experiment's templates for the composer: variant b's customers get them.
    pub fn template_variants(&self) -> TemplateVariants {
        let x = self.clone();
        TemplateVariants { templates: self.templates.clone(), in_b: Arc::new(move |c| x.variant(c) == "b") }
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

/// `[[experiments]]`, as written.
#[derive(Debug, Deserialize, Serialize)]
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

/// The experiments, checked: at most one per kind.
pub(super) fn experiments(l: &Loader<'_>, list: &[FileExperiment]) -> Result<Experiments, ConfigError> {
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
