//! The owner's figures: below how many cases a rate is "too few to judge", and which customer
//! metadata key names the acquisition channel.

use crate::config::{ConfigError, Source, parsed, problem};

/// `HOLDFAST_MIN_SAMPLE` and `HOLDFAST_CHANNEL_METADATA_KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigureSettings {
    /// A rate over fewer cases than this says "too few to judge" instead of a band (default 20).
    pub min_sample: u64,
    /// The customer metadata key whose value is the acquisition channel (default `utm_source`).
    pub channel_key: String,
}

impl Default for FigureSettings {
    fn default() -> Self {
        Self { min_sample: 20, channel_key: "utm_source".into() }
    }
}

impl FigureSettings {
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        let min_sample = parsed::<u64>(src, "HOLDFAST_MIN_SAMPLE")?.unwrap_or(20);
        if min_sample == 0 {
            return Err(problem("HOLDFAST_MIN_SAMPLE", "must be 1 or more"));
        }
        let channel_key =
            src.get("HOLDFAST_CHANNEL_METADATA_KEY").map_or_else(|| "utm_source".to_owned(), |k| k.trim().to_owned());
        if channel_key.len() > 40 || !channel_key.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
            return Err(problem("HOLDFAST_CHANNEL_METADATA_KEY", "must be a metadata key: letters, digits, _ - . (at most 40)"));
        }
        Ok(Self { min_sample, channel_key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_and_checks() {
        let none: HashMap<&str, String> = HashMap::new();
        assert_eq!(FigureSettings::from_source(&none).ok(), Some(FigureSettings::default()));
        let set = HashMap::from([("HOLDFAST_MIN_SAMPLE", "5".to_owned()), ("HOLDFAST_CHANNEL_METADATA_KEY", "ref".to_owned())]);
        assert_eq!(FigureSettings::from_source(&set).ok(), Some(FigureSettings { min_sample: 5, channel_key: "ref".into() }));
        assert!(FigureSettings::from_source(&HashMap::from([("HOLDFAST_MIN_SAMPLE", "0".to_owned())])).is_err());
        assert!(FigureSettings::from_source(&HashMap::from([("HOLDFAST_CHANNEL_METADATA_KEY", "a b".to_owned())])).is_err());
    }
}
