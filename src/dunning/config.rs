//! The dunning cadence, and the email experiment on its templates.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{ConfigError, Source, parsed, problem};
use crate::domain::lift::Split;
use crate::mail::composer::TemplateVariants;

/// An email experiment (`[[experiments]]` of kind `email`): variant b's customers get these
/// templates in place of the ones named; its holdout, which the owner must opt into with
/// `withhold_dunning = true`, gets no dunning email. The summary reports dunning recovery per
/// variant.
#[derive(Clone, Debug)]
pub struct EmailExperiment {
    pub split: Split,
    /// Variant b's template for each template listed.
    pub templates: BTreeMap<String, String>,
}

impl EmailExperiment {
    /// The templates for the composer: variant b's customers get them.
    pub fn template_variants(&self) -> TemplateVariants {
        let split = self.split.clone();
        TemplateVariants { templates: self.templates.clone(), in_b: Arc::new(move |c| split.variant(c) == "b") }
    }
}

/// Dunning cadence.
#[derive(Clone, Debug)]
pub struct DunningSettings {
    /// `DUNNING_CADENCE_DAYS` (default `0,3,7`): days after the failure at which emails go.
    pub cadence_days: Vec<i64>,
    /// `DUNNING_FINAL_NOTICE_HOURS` (default 48): the final notice goes this long before
    /// Stripe's last try; `0` disables it.
    pub final_notice_hours: i64,
    /// `DUNNING_STRIPE_TRIES` (default 8, Stripe's recommended Smart Retries policy): the
    /// number of tries in the owner's Stripe retry settings, the first charge included. The
    /// final notice goes only when a failure's `attempt_count` is this minus one.
    pub stripe_tries: i64,
    /// `DUNNING_AFTER_RETRIES` (default `canceled`): what the owner's Stripe settings do to a
    /// subscription once every try failed — `canceled`, `unpaid`, `paused` or `past_due` (left
    /// as it is). The "payments have stopped" email tells the customer this.
    pub after_retries: crate::dunning::rules::AfterRetries,
    /// `DUNNING_HORIZON_DAYS` (default 3): a failure older than this when it arrives records
    /// state but sends nothing.
    pub horizon_days: i64,
}

/// `DUNNING_*`, checked.
pub(crate) fn dunning_settings(src: &impl Source) -> Result<DunningSettings, ConfigError> {
    const VAR: &str = "DUNNING_CADENCE_DAYS";
    let cadence_days = match src.get(VAR) {
        Some(list) => {
            let days: Result<Vec<i64>, _> = list.split(',').map(|d| d.trim().parse::<i64>()).collect();
            let mut days = days.map_err(|_| problem(VAR, "must be comma-separated whole days, e.g. 0,3,7"))?;
            days.sort_unstable();
            days.dedup();
            if days.is_empty() || days[0] < 0 {
                return Err(problem(VAR, "needs at least one day, none negative"));
            }
            days
        }
        None => vec![0, 3, 7],
    };
    let stripe_tries = parsed(src, "DUNNING_STRIPE_TRIES")?.unwrap_or(8);
    if !(1..=25).contains(&stripe_tries) {
        return Err(problem("DUNNING_STRIPE_TRIES", "must be 1 to 25, as in your Stripe retry settings"));
    }
    let after_retries = match src.get("DUNNING_AFTER_RETRIES") {
        Some(v) => crate::dunning::rules::AfterRetries::parse(&v)
            .ok_or_else(|| problem("DUNNING_AFTER_RETRIES", "must be canceled, unpaid, paused or past_due"))?,
        None => crate::dunning::rules::AfterRetries::Canceled,
    };
    Ok(DunningSettings {
        cadence_days,
        final_notice_hours: parsed(src, "DUNNING_FINAL_NOTICE_HOURS")?.unwrap_or(48),
        horizon_days: parsed(src, "DUNNING_HORIZON_DAYS")?.unwrap_or(3),
        stripe_tries,
        after_retries,
    })
}
