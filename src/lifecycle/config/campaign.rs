//! One email series (`[lifecycle.<campaign>]`), checked.

use crate::config::ConfigError;
use crate::config::loader::Loader;
use crate::lifecycle::config::file::FileCampaign;

/// One email series: on/off, the day of each step, the template of each step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Campaign {
    pub enabled: bool,
    /// Days after the trigger at which each email goes (`0` = at once).
    pub days: Vec<i64>,
    /// Template of each step; a shorter list repeats its last template for the extra steps.
    pub templates: Vec<String>,
    /// `holdout_percent` (0–50, default 0): share of customers whose series is recorded but
    /// sends nothing, assigned stably (`lifecycle::rules::series_arm`), so the series'
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

/// Checks a campaign's merged table; `default_templates` when it names none.
pub(super) fn campaign(
    l: &Loader<'_>,
    what: &str,
    f: &FileCampaign,
    default_templates: &[&str],
) -> Result<Campaign, ConfigError> {
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
