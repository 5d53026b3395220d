//! The annual-plan offer (`[lifecycle.annual_offer]`), checked.

use std::collections::BTreeMap;

use crate::config::ConfigError;
use crate::config::loader::Loader;
use crate::lifecycle::config::file::FileAnnualOffer;

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

/// The annual-plan offer, checked.
pub(super) fn annual_offer(l: &Loader<'_>, f: &FileAnnualOffer) -> Result<AnnualOffer, ConfigError> {
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
