//! The layers figment merges over the defaults: the file's tables (parsed and checked first,
//! so its errors name the file) and each environment variable that overrides a file key,
//! converted to its key's shape.

use std::collections::BTreeMap;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider};
use serde::Serialize;

use crate::config::loader::FILE_VAR;
use crate::config::{ConfigError, Source, problem};

/// The file's tables. Any other top-level key is refused: a misspelt table would otherwise be
/// ignored without a word.
const TABLES: [&str; 6] = ["brand", "cancel_flow", "lifecycle", "experiments", "recap", "nps"];
/// How an overriding variable's text becomes the value its file key holds.
#[derive(Clone, Copy)]
pub(super) enum Shape {
    Text,
    /// `on`/`off` (`true`, `1`, `yes` / `false`, `0`, `no`): a boolean.
    Switch,
    /// A whole number.
    Number,
    /// Comma-separated words: a list.
    List,
    /// Comma-separated whole numbers; the problem when one isn't.
    Numbers(&'static str),
    /// `a=b,c=d`: a table; the problem when a pair is malformed.
    Pairs(&'static str),
}

/// Every environment variable that overrides a file key: the variable, the key, its shape.
pub(super) const OVERRIDES: &[(&str, &str, Shape)] = &[
    ("HOLDFAST_BRAND_NAME", "brand.name", Shape::Text),
    ("HOLDFAST_BRAND_COLOR", "brand.color", Shape::Text),
    ("HOLDFAST_BRAND_LOGO_URL", "brand.logo_url", Shape::Text),
    ("EMAIL_FROM", "brand.sender", Shape::Text),
    ("HOLDFAST_POWERED_BY", "brand.powered_by", Shape::Switch),
    ("HOLDFAST_CANCEL_OFFERS", "cancel_flow.offers", Shape::List),
    ("HOLDFAST_CANCEL_PAUSE_MONTHS", "cancel_flow.pause_months", Shape::Numbers("must be numbers, e.g. 1,2,3")),
    (
        "HOLDFAST_CANCEL_DOWNGRADE_MAP",
        "cancel_flow.downgrade",
        Shape::Pairs("must be price=cheaper_price pairs, comma-separated"),
    ),
    ("HOLDFAST_CANCEL_DOWNGRADE_PRORATION", "cancel_flow.downgrade_proration", Shape::Text),
    ("HOLDFAST_CANCEL_COUPON", "cancel_flow.coupon", Shape::Text),
    ("HOLDFAST_CANCEL_DISCOUNT_TEXT", "cancel_flow.discount_text", Shape::Text),
    ("HOLDFAST_CANCEL_DISCOUNT_COOLDOWN_MONTHS", "cancel_flow.discount_cooldown_months", Shape::Number),
    ("HOLDFAST_CANCEL_RETURN_URL", "cancel_flow.return_url", Shape::Text),
    ("HOLDFAST_CANCEL_LINK_TTL_SECS", "cancel_flow.link_ttl_secs", Shape::Number),
    ("HOLDFAST_CANCEL_SESSION_TIMEOUT_SECS", "cancel_flow.session_timeout_secs", Shape::Number),
    ("HOLDFAST_CANCEL_RATE_LIMIT", "cancel_flow.rate_limit_per_minute", Shape::Number),
    ("HOLDFAST_SAVE_CONFIRM_DAYS", "cancel_flow.save_confirm_days", Shape::Number),
    ("HOLDFAST_PRODUCT_URL", "lifecycle.product_url", Shape::Text),
    ("HOLDFAST_ONBOARDING", "lifecycle.onboarding.enabled", Shape::Switch),
    ("HOLDFAST_TRIAL_ONBOARDING", "lifecycle.trial_onboarding.enabled", Shape::Switch),
    ("HOLDFAST_TRIAL_ENDING", "lifecycle.trial_ending.enabled", Shape::Switch),
    ("HOLDFAST_WINBACK", "lifecycle.winback.enabled", Shape::Switch),
    ("HOLDFAST_REENGAGEMENT", "lifecycle.reengagement.enabled", Shape::Switch),
    ("HOLDFAST_ANNUAL_OFFER", "lifecycle.annual_offer.enabled", Shape::Switch),
    ("HOLDFAST_RECAP", "recap.enabled", Shape::Switch),
    ("HOLDFAST_NPS", "nps.enabled", Shape::Switch),
];

/// The variable that overrides `key`, if any.
pub(crate) fn variable_of(key: &str) -> Option<&'static str> {
    OVERRIDES.iter().find(|(_, k, _)| *k == key).map(|(var, _, _)| *var)
}
/// An overriding variable's value, in its key's shape.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Converted {
    Text(String),
    Switch(bool),
    Number(i64),
    List(Vec<String>),
    Numbers(Vec<i64>),
    Pairs(BTreeMap<String, String>),
}

/// One environment variable as a figment layer: its metadata names the variable, so an
/// invalid value's error can.
pub(super) struct Variable {
    pub(super) var: &'static str,
    pub(super) key: &'static str,
    pub(super) value: Converted,
}

pub(super) const FROM_ENV: &str = "environment variable";

impl Provider for Variable {
    fn metadata(&self) -> Metadata {
        Metadata::from(FROM_ENV, figment::Source::Custom(self.var.to_owned()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::global(self.key, &self.value).data()
    }
}

/// The file's tables, parsed and checked before merging (so its errors name the file).
pub(super) struct FileLayer {
    pub(super) path: String,
    pub(super) tables: Dict,
}

pub(super) const FROM_FILE: &str = "configuration file";

impl Provider for FileLayer {
    fn metadata(&self) -> Metadata {
        Metadata::from(FROM_FILE, std::path::Path::new(&self.path))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.tables.clone()))
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

pub(super) fn convert(src: &dyn Source, var: &'static str, shape: Shape) -> Result<Option<Converted>, ConfigError> {
    let Some(v) = src.get(var) else { return Ok(None) };
    let converted = match shape {
        Shape::Text => Converted::Text(v),
        Shape::Switch => Converted::Switch(switch(var, &v)?),
        Shape::Number => Converted::Number(
            v.trim().parse().map_err(|_| problem(var, format!("could not parse {:?}", crate::config::short(&v))))?,
        ),
        Shape::List => Converted::List(list(&v)),
        Shape::Numbers(bad) => Converted::Numbers(
            list(&v).iter().map(|n| n.parse::<i64>().map_err(|_| problem(var, bad))).collect::<Result<_, _>>()?,
        ),
        Shape::Pairs(bad) => Converted::Pairs(
            list(&v)
                .iter()
                .map(|pair| {
                    pair.split_once('=')
                        .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
                        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                        .ok_or_else(|| problem(var, bad))
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Some(converted))
}

/// An on/off value.
pub(crate) fn switch(var: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(problem(var, "must be on or off")),
    }
}

/// The path and parsed tables of `holdfast.toml` (or `HOLDFAST_CONFIG_FILE`); `None` when
/// the default file is absent.
pub(super) fn read_file(src: &dyn Source) -> Result<Option<FileLayer>, ConfigError> {
    let (path, required) = match src.get(FILE_VAR) {
        Some(p) => (p, true),
        None => ("holdfast.toml".to_owned(), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(problem(FILE_VAR, format!("cannot read {path}: {e}"))),
    };
    let tables: Dict = Toml::from_str(&text).map_err(|e| problem(FILE_VAR, format!("{path}: {}", e.message())))?;
    if let Some(other) = tables.keys().find(|k| !TABLES.contains(&k.as_str())) {
        return Err(problem(FILE_VAR, format!("{path}: unknown table {other:?} (expected one of {})", TABLES.join(", "))));
    }
    Ok(Some(FileLayer { path, tables }))
}
/// Removes the dotted `key` from `tables`.
pub(super) fn remove(tables: &mut Dict, key: &str) {
    match key.split_once('.') {
        Some((table, rest)) => {
            if let Some(figment::value::Value::Dict(_, inner)) = tables.get_mut(table) {
                remove(inner, rest);
            }
        }
        None => {
            tables.remove(key);
        }
    }
}

/// The `&'static` name of an overriding variable.
pub(super) fn variable_of_var(var: &str) -> Option<&'static str> {
    OVERRIDES.iter().find(|(v, _, _)| *v == var).map(|(v, _, _)| *v)
}
