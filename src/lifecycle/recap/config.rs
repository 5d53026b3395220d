//! The monthly value recap and the NPS survey: both marketing mail, both off until the owner
//! turns them on (`[recap]` / `[nps]` in `holdfast.toml`, or `HOLDFAST_RECAP` / `HOLDFAST_NPS`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::loader::Loader;
use crate::config::{ConfigError, Source};

/// `[recap]`: one email per customer per month on their billing anniversary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecapSettings {
    /// `HOLDFAST_RECAP` / `[recap] enabled` (default off).
    pub enabled: bool,
    /// `[recap.labels]`: what each event name means to a customer (`report_created =
    /// "reports created"`); a name without a label is shown as reported.
    pub labels: BTreeMap<String, String>,
    /// `[recap] question`: the question the recap ends with (replies go to `EMAIL_REPLY_TO`).
    pub question: Option<String>,
}

/// `[nps]`: a one-question survey at day 30 of a paying customer's life and every six months.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpsSettings {
    /// `HOLDFAST_NPS` / `[nps] enabled` (default off).
    pub enabled: bool,
    /// `[nps] product`: the name in "How likely are you to recommend …?" (default: the brand).
    pub product: Option<String>,
    /// `[nps] first_day` (default 30): the first survey this many days into the customer's life.
    pub first_day: i64,
    /// `[nps] every_days` (default 182): the next ones this often after the first.
    pub every_days: i64,
    /// `[nps] min_sample` (default 30): fewer answers than this are reported as too few.
    pub min_sample: i64,
}

impl Default for NpsSettings {
    fn default() -> Self {
        Self { enabled: false, product: None, first_day: 30, every_days: 182, min_sample: 30 }
    }
}

/// `[recap]`, merged (defaults, file, `HOLDFAST_RECAP`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRecap {
    enabled: bool,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    question: Option<String>,
}

/// `[nps]`, merged (defaults, file, `HOLDFAST_NPS`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileNps {
    enabled: bool,
    product: Option<String>,
    first_day: i64,
    every_days: i64,
    min_sample: i64,
}

impl Default for FileNps {
    fn default() -> Self {
        let d = NpsSettings::default();
        Self { enabled: d.enabled, product: None, first_day: d.first_day, every_days: d.every_days, min_sample: d.min_sample }
    }
}

/// Both features' settings, read through the one loader (see `config::loader`).
pub fn from_source(src: &impl Source) -> Result<(RecapSettings, NpsSettings), ConfigError> {
    from_loader(&Loader::new(src)?)
}

/// Both features' settings, checked.
pub(crate) fn from_loader(l: &Loader<'_>) -> Result<(RecapSettings, NpsSettings), ConfigError> {
    let r = &l.table::<FileRecap>("recap")?;
    if r.labels.iter().any(|(k, v)| k.is_empty() || k.len() > 200 || v.trim().is_empty() || v.len() > 200) {
        return Err(l.fail("recap.labels", "names and labels are 1–200 characters"));
    }
    let recap = RecapSettings {
        enabled: r.enabled,
        labels: r.labels.clone(),
        question: r.question.as_ref().map(|q| q.trim().to_owned()).filter(|q| !q.is_empty()),
    };
    let n = &l.table::<FileNps>("nps")?;
    let nps = NpsSettings {
        enabled: n.enabled,
        product: n.product.as_ref().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()),
        first_day: n.first_day,
        every_days: n.every_days,
        min_sample: n.min_sample,
    };
    if !(1..=365).contains(&nps.first_day) {
        return Err(l.fail("nps.first_day", "must be 1–365"));
    }
    if !(30..=730).contains(&nps.every_days) {
        return Err(l.fail("nps.every_days", "must be 30–730"));
    }
    if !(1..=100_000).contains(&nps.min_sample) {
        return Err(l.fail("nps.min_sample", "must be 1–100000"));
    }
    Ok((recap, nps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::loader::FILE_VAR;
    use std::collections::HashMap;

    #[test]
    fn both_are_off_by_default_and_the_file_configures_them() {
        let none: HashMap<&str, String> = HashMap::new();
        let (recap, nps) = from_source(&none).expect("defaults");
        assert!(!recap.enabled && !nps.enabled && nps.min_sample == 30 && nps.first_day == 30);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("holdfast.toml");
        std::fs::write(
            &path,
            "[recap]\nenabled = true\nquestion = \"What should we build next?\"\n[recap.labels]\nreport_created = \"reports created\"\n\
             [nps]\nproduct = \"Acme Notes\"\nmin_sample = 5\n",
        )
        .expect("write");
        let vars: HashMap<&str, String> =
            HashMap::from([(FILE_VAR, path.display().to_string()), ("HOLDFAST_NPS", "on".to_owned())]);
        let (recap, nps) = from_source(&vars).expect("valid");
        assert!(recap.enabled && nps.enabled);
        assert_eq!(recap.labels.get("report_created").map(String::as_str), Some("reports created"));
        assert_eq!((nps.product.as_deref(), nps.min_sample), (Some("Acme Notes"), 5));
        std::fs::write(&path, "[nps]\nevery_days = 1\n").expect("write");
        assert!(from_source(&vars).is_err());
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/holdfast.example.toml").to_owned();
        let (recap, nps) = from_source(&HashMap::from([(FILE_VAR, example)])).expect("the example is valid");
        assert!(!recap.enabled && !nps.enabled && recap.labels.contains_key("report_created"));
    }
}
