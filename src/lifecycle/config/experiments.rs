//! A/B experiments (`[[experiments]]`): at most one per kind, checked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cancel::{Reason, SaveOfferExperiment, parse_offers as offers};
use crate::config::ConfigError;
use crate::config::loader::Loader;
use crate::domain::lift::Split;
use crate::dunning::EmailExperiment;

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

/// The experiments in force: at most one per kind. Each kind's type belongs to the feature it
/// varies (`cancel::SaveOfferExperiment`, `dunning::EmailExperiment`); the split is shared.
#[derive(Clone, Debug, Default)]
pub struct Experiments {
    pub save_offer: Option<SaveOfferExperiment>,
    pub email: Option<EmailExperiment>,
    /// Lifecycle campaigns with a holdout (`[lifecycle.<campaign>] holdout_percent`), by
    /// campaign name: the summary reports each one's outcome per arm.
    pub lifecycle_holdouts: Vec<(String, u8)>,
}

impl Experiments {
    /// Each experiment in force: its kind and its split.
    pub fn all(&self) -> impl Iterator<Item = (ExperimentKind, &Split)> {
        let save = self.save_offer.iter().map(|x| (ExperimentKind::SaveOffer, &x.split));
        save.chain(self.email.iter().map(|x| (ExperimentKind::Email, &x.split)))
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
        let (kind, taken) = match e.kind.as_str() {
            "save_offer" if !offers_by_reason.is_empty() => (ExperimentKind::SaveOffer, out.save_offer.is_some()),
            "email" if !templates.is_empty() => (ExperimentKind::Email, out.email.is_some()),
            "save_offer" => return Err(fail(format!("experiment {name:?}: needs [experiments.offers_by_reason]"))),
            "email" => return Err(fail(format!("experiment {name:?}: needs [experiments.templates]"))),
            other => return Err(fail(format!("experiment {name:?}: kind {other:?} (save_offer or email)"))),
        };
        if taken {
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
        let split = Split { name, percent_b, holdout_percent };
        match kind {
            ExperimentKind::SaveOffer => out.save_offer = Some(SaveOfferExperiment { split, offers_by_reason }),
            ExperimentKind::Email => out.email = Some(EmailExperiment { split, templates }),
        }
    }
    Ok(out)
}
