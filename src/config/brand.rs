//! The one brand the customer sees: on every page, in every email and its subject, and as the
//! sender. Read from the `[brand]` table of `holdfast.toml`, then overridden by the
//! `HOLDFAST_BRAND_*` environment variables. Pages and emails take it from here, so a name set
//! in one place reaches both.

use serde::{Deserialize, Serialize};

use crate::config::loader::Loader;
use crate::config::{ConfigError, Source};

const DEFAULT_NAME: &str = "Holdfast";

const DEFAULT_COLOR: &str = "#0f766e";

/// What the customer sees.
#[derive(Clone, Debug)]
pub struct Brand {
    /// `HOLDFAST_BRAND_NAME` / `[brand] name` (default `Holdfast`): in pages, subjects, greetings
    /// and signatures.
    pub name: String,
    /// `HOLDFAST_BRAND_COLOR` / `[brand] color` (default `#0f766e`): `#rrggbb`, used for buttons
    /// and accents; text on it is black or white, whichever contrasts more.
    pub color: String,
    /// `HOLDFAST_BRAND_LOGO_URL` / `[brand] logo_url`: an `https://` image shown above the name
    /// in emails (at most 48 px high, never wider than the screen).
    pub logo_url: Option<String>,
    /// `EMAIL_FROM` / `[brand] sender` (default `<name> <billing@localhost>`): the From mailbox,
    /// e.g. `Acme Billing <billing@acme.test>`.
    pub sender: String,
    /// `HOLDFAST_POWERED_BY` / `[brand] powered_by` (default `on`): a small "Powered by
    /// Holdfast" line at the foot of HTML emails. `off` leaves only the owner's brand.
    pub powered_by: bool,
}

/// `[brand]`, merged (defaults, file, `HOLDFAST_BRAND_*`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileBrand {
    name: String,
    color: String,
    logo_url: Option<String>,
    sender: Option<String>,
    powered_by: bool,
}

impl Default for FileBrand {
    fn default() -> Self {
        Self { name: DEFAULT_NAME.into(), color: DEFAULT_COLOR.into(), logo_url: None, sender: None, powered_by: true }
    }
}

impl Brand {
    /// Read through the one loader (see `config::loader`).
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        Self::from_loader(&Loader::new(src)?)
    }

    /// Every value checked.
    pub(crate) fn from_loader(l: &Loader<'_>) -> Result<Self, ConfigError> {
        let f = &l.table::<FileBrand>("brand")?;
        let name = f.name.trim().to_owned();
        let name = if name.is_empty() { DEFAULT_NAME.to_owned() } else { name };
        let color = f.color.clone();
        // Checked strictly: it is written into style attributes, where HTML escaping doesn't help.
        if !(color.len() == 7 && color.starts_with('#') && color[1..].chars().all(|c| c.is_ascii_hexdigit())) {
            return Err(l.fail("brand.color", "must be #rrggbb"));
        }
        let logo_url = f.logo_url.clone().filter(|u| !u.trim().is_empty());
        if let Some(u) = &logo_url
            && (!u.starts_with("https://") || u.chars().any(|c| c.is_whitespace() || c == '"' || c == '\''))
        {
            return Err(l.fail("brand.logo_url", "must be an https:// URL of an image"));
        }
        let sender = match &f.sender {
            Some(from) => from.clone(),
            None => {
                let address = "billing@localhost".parse().map_err(|_| l.fail("brand.sender", "default address invalid"))?;
                lettre::message::Mailbox::new(Some(name.clone()), address).to_string()
            }
        };
        sender
            .parse::<lettre::message::Mailbox>()
            .map_err(|_| l.fail("brand.sender", "must be an address like `Acme <billing@acme.test>`"))?;
        Ok(Self { name, color, logo_url, sender, powered_by: f.powered_by })
    }

    /// Black or white, whichever has the higher WCAG contrast against `color`.
    pub fn text_on_color(&self) -> &'static str {
        let channel = |i: usize| {
            let v = f64::from(u8::from_str_radix(&self.color[i..i + 2], 16).unwrap_or(0)) / 255.0;
            if v <= 0.03928 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
        };
        let luminance = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
        if (1.05) / (luminance + 0.05) >= (luminance + 0.05) / 0.05 { "#ffffff" } else { "#000000" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&'static str, &str)]) -> Result<Brand, ConfigError> {
        let map: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        Brand::from_source(&map)
    }

    #[test]
    fn the_file_sets_every_part_and_the_environment_wins() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("holdfast.toml");
        std::fs::write(
            &path,
            "[brand]\nname = \"Acme Notes\"\ncolor = \"#ffcc00\"\nlogo_url = \"https://acme.test/logo.png\"\n\
             sender = \"Acme Billing <billing@acme.test>\"\npowered_by = false\n",
        )
        .expect("write");
        let p = path.to_string_lossy().to_string();
        let b = load(&[("HOLDFAST_CONFIG_FILE", &p)]).expect("valid");
        assert_eq!(b.name, "Acme Notes");
        assert_eq!(b.logo_url.as_deref(), Some("https://acme.test/logo.png"));
        assert_eq!(b.sender, "Acme Billing <billing@acme.test>");
        assert!(!b.powered_by);
        assert_eq!(b.text_on_color(), "#000000");
        let b = load(&[("HOLDFAST_CONFIG_FILE", &p), ("HOLDFAST_BRAND_NAME", "Env Name"), ("HOLDFAST_POWERED_BY", "on")])
            .expect("valid");
        assert_eq!((b.name.as_str(), b.powered_by), ("Env Name", true));
    }

    #[test]
    fn defaults_and_bad_values() {
        let b = load(&[]).expect("defaults");
        assert_eq!((b.name.as_str(), b.color.as_str(), b.powered_by), ("Holdfast", "#0f766e", true));
        assert_eq!(b.sender, "Holdfast <billing@localhost>");
        assert_eq!(b.text_on_color(), "#ffffff");
        let named = load(&[("HOLDFAST_BRAND_NAME", "Acme")]).expect("valid");
        assert_eq!(named.sender, "Acme <billing@localhost>");
        assert_eq!(load(&[("HOLDFAST_BRAND_COLOR", "red;}")]).expect_err("color").var, "HOLDFAST_BRAND_COLOR");
        assert_eq!(load(&[("HOLDFAST_BRAND_LOGO_URL", "javascript:x")]).expect_err("logo").var, "HOLDFAST_BRAND_LOGO_URL");
        assert_eq!(load(&[("EMAIL_FROM", "not an address")]).expect_err("from").var, "EMAIL_FROM");
        assert_eq!(load(&[("HOLDFAST_POWERED_BY", "maybe")]).expect_err("on/off").var, "HOLDFAST_POWERED_BY");
    }
}
