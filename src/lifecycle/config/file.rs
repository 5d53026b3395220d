//! The `[lifecycle]` tables as the loader merges them (defaults, file, environment).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lifecycle::config::AnnualOffer;
use crate::lifecycle::rules::AtRiskRule;

/// `[lifecycle.<campaign>]`, merged (defaults, file, the campaign's on/off variable).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCampaign {
    pub(super) enabled: bool,
    pub(super) days: Vec<i64>,
    pub(super) templates: Option<Vec<String>>,
    pub(super) template: Option<String>,
    pub(super) coupon: Option<String>,
    pub(super) offer_text: Option<String>,
    pub(super) holdout_percent: Option<i64>,
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

/// `[lifecycle.at_risk]`, merged.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAtRisk {
    pub(super) inactive_days: i64,
    pub(super) drop_percent: i64,
    pub(super) baseline_weeks: i64,
    pub(super) min_baseline_per_week: i64,
}

/// `[lifecycle.annual_offer]`, merged.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAnnualOffer {
    pub(super) enabled: bool,
    pub(super) after_months: i64,
    #[serde(default)]
    pub(super) prices: BTreeMap<String, String>,
    pub(super) proration_behavior: String,
    pub(super) template: String,
}

/// `[lifecycle]`, merged.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLifecycle {
    pub(super) product_url: Option<String>,
    pub(super) horizon_days: i64,
    pub(super) onboarding: FileCampaign,
    pub(super) trial_onboarding: FileCampaign,
    pub(super) trial_ending: FileCampaign,
    pub(super) winback: FileCampaign,
    pub(super) reengagement: FileCampaign,
    pub(super) at_risk: FileAtRisk,
    pub(super) annual_offer: FileAnnualOffer,
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
