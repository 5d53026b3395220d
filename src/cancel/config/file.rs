//! `[cancel_flow]` as merged from its layers (defaults, file, `HOLDFAST_CANCEL_*`), before
//! it is checked, and its documented defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cancel::config::DEFAULT_PRORATION;

const DEFAULT_LINK_TTL_SECS: i64 = 7 * 86_400;
const DEFAULT_SESSION_TIMEOUT_SECS: i64 = 3_600;
const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 60;
const DEFAULT_COOLDOWN_MONTHS: u32 = 12;
const DEFAULT_SAVE_CONFIRM_DAYS: i64 = 30;

/// `[cancel_flow]`, merged (defaults, file, `HOLDFAST_CANCEL_*`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCancelFlow {
    pub(super) offers: Vec<String>,
    pub(super) offers_by_reason: Option<BTreeMap<String, Vec<String>>>,
    pub(super) pause_months: Vec<u32>,
    pub(super) downgrade: BTreeMap<String, String>,
    pub(super) downgrade_proration: String,
    pub(super) coupon: Option<String>,
    pub(super) discount_text: String,
    pub(super) discount_cooldown_months: u32,
    pub(super) return_url: Option<String>,
    pub(super) link_ttl_secs: i64,
    pub(super) session_timeout_secs: i64,
    pub(super) rate_limit_per_minute: u32,
    pub(super) save_confirm_days: i64,
    pub(super) discounts: Option<Vec<FileDiscount>>,
    pub(super) segments: Option<Vec<FileSegment>>,
}

impl Default for FileCancelFlow {
    fn default() -> Self {
        Self {
            offers: vec!["pause".into(), "downgrade".into(), "discount".into()],
            offers_by_reason: None,
            pause_months: vec![1, 2, 3],
            downgrade: BTreeMap::new(),
            downgrade_proration: DEFAULT_PRORATION.into(),
            coupon: None,
            discount_text: "A discount on your next payments.".into(),
            discount_cooldown_months: DEFAULT_COOLDOWN_MONTHS,
            return_url: None,
            link_ttl_secs: DEFAULT_LINK_TTL_SECS,
            session_timeout_secs: DEFAULT_SESSION_TIMEOUT_SECS,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            save_confirm_days: DEFAULT_SAVE_CONFIRM_DAYS,
            discounts: None,
            segments: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDiscount {
    pub(super) interval: String,
    pub(super) interval_count: Option<i64>,
    pub(super) coupon: String,
    pub(super) text: String,
    pub(super) currency: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSegment {
    pub(super) interval: Option<String>,
    pub(super) interval_count: Option<i64>,
    pub(super) min_tenure_months: Option<u32>,
    pub(super) max_tenure_months: Option<u32>,
    pub(super) offers_by_reason: BTreeMap<String, Vec<String>>,
}
