//! The one configuration loader. figment merges three layers, each later one winning: the
//! documented defaults, the tables of `holdfast.toml` (or `HOLDFAST_CONFIG_FILE`), and the
//! environment variables that override a file key (each one's value converted to the key's
//! shape first: `1,2,3` becomes a list, `on` a boolean). Each settings module reads its own
//! table with [`Loader::table`], beneath the type's documented defaults, and validates it, and an invalid value's
//! error names its key and where it came from (the variable, or the file), never a secret's
//! value. Variables without a file key are read from the same source by the loader.

use figment::Figment;
use figment::providers::Serialized;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{ConfigError, Source, problem};

mod layers;

use layers::{FROM_ENV, FROM_FILE, OVERRIDES, Shape, Variable, convert, read_file, remove, variable_of_var};
pub(crate) use layers::{switch, variable_of};

pub(crate) const FILE_VAR: &str = "HOLDFAST_CONFIG_FILE";

/// Every setting's source, merged; see the module's documentation.
pub struct Loader<'a> {
    src: &'a dyn Source,
    figment: Figment,
    file: Option<String>,
}

impl Source for Loader<'_> {
    fn get(&self, var: &str) -> Option<String> {
        self.src.get(var)
    }
}

impl<'a> Loader<'a> {
    /// Defaults, then the file, then the environment (`src`).
    pub fn new(src: &'a dyn Source) -> Result<Self, ConfigError> {
        Self::with(src, Figment::new())
    }

    /// As [`Loader::new`], then `typed`: values set by key in code (tests), which win.
    pub fn with(src: &'a dyn Source, typed: Figment) -> Result<Self, ConfigError> {
        let mut file = read_file(src)?;
        let mut variables = Vec::new();
        for (var, key, shape) in OVERRIDES {
            if let Some(value) = convert(src, var, *shape)? {
                // A table given by a variable replaces the file's: merging would keep the
                // file's other entries.
                if let (Shape::Pairs(_), Some(file)) = (shape, file.as_mut()) {
                    remove(&mut file.tables, key);
                }
                variables.push(Variable { var, key, value });
            }
        }
        let path = file.as_ref().map(|f| f.path.clone());
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(file);
        }
        for variable in variables {
            figment = figment.merge(variable);
        }
        Ok(Self { src, figment: figment.merge(typed), file: path })
    }

    /// The file's table at `key` (`"cancel_flow"`), read as its settings module's type: the
    /// type's documented defaults, then the file, then the environment, then values set in
    /// code. A value that doesn't fit, or a key the table doesn't know, is an error naming
    /// where it came from. Each settings module reads its own table, so the loader names none.
    pub fn table<T: Default + Serialize + DeserializeOwned>(&self, key: &str) -> Result<T, ConfigError> {
        Figment::from(Serialized::default(key, T::default())).merge(self.figment.clone()).extract_inner(key).map_err(|mut e| {
            // figment appends the table's name to the error's path: put it first.
            if e.path.last().is_some_and(|last| last == key) {
                e.path.pop();
                e.path.insert(0, key.to_owned());
            }
            extraction_error(self.file.as_deref(), &e)
        })
    }

    /// An error about `key`'s value, naming where the value came from: its variable, or the
    /// file and the key. A value the defaults gave is valid on its own, so a check that
    /// fails on it involves the file's other values: the file is named then.
    pub(crate) fn fail(&self, key: &str, what: impl Into<String>) -> ConfigError {
        let what = what.into();
        let metadata = self.figment.find_metadata(key);
        if let Some(var) = metadata.filter(|m| m.name == FROM_ENV).and_then(|m| m.source.as_ref()?.custom()) {
            let var = variable_of_var(var).unwrap_or(FILE_VAR);
            return problem(var, what);
        }
        if metadata.is_some_and(|m| matches!(m.source, Some(figment::Source::Code(_)))) {
            return problem(variable_of(key).unwrap_or(FILE_VAR), format!("`{key}`: {what}"));
        }
        let from_file = metadata.is_some_and(|m| m.name == FROM_FILE);
        match (&self.file, from_file, variable_of(key)) {
            (Some(path), true, _) | (Some(path), false, None) => problem(FILE_VAR, format!("{path}: `{key}`: {what}")),
            (_, _, Some(var)) => problem(var, what),
            (None, _, None) => problem(FILE_VAR, format!("`{key}`: {what}")),
        }
    }
}

/// A value that doesn't fit its key's type (or a key the file's table doesn't know).
fn extraction_error(file: Option<&str>, e: &figment::Error) -> ConfigError {
    let key = e.path.join(".");
    match e.metadata.as_ref() {
        Some(m) if matches!(m.source, Some(figment::Source::Code(_))) => {
            problem(variable_of(&key).unwrap_or(FILE_VAR), format!("`{key}`: {}", e.kind))
        }
        Some(m) if m.name == FROM_ENV => {
            let var = m.source.as_ref().and_then(|s| s.custom()).and_then(variable_of_var).unwrap_or(FILE_VAR);
            problem(var, e.kind.to_string())
        }
        _ => match file {
            Some(path) => problem(FILE_VAR, format!("{path}: `{key}`: {}", e.kind)),
            None => problem(FILE_VAR, format!("`{key}`: {}", e.kind)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StripeMode;
    use crate::settings::Settings;
    use std::collections::HashMap;

    /// A configuration file in a fresh directory (kept alive by the returned guard).
    fn file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("holdfast.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path.display().to_string())
    }

    fn base() -> crate::settings::SettingsBuilder {
        Settings::builder().var("STRIPE_WEBHOOK_SECRET", "whsec_a").var("HOLDFAST_STRIPE_MODE", "test")
    }

    #[test]
    fn defaults_then_the_file_then_the_environment() {
        let (_dir, path) = file(
            "[cancel_flow]\ncoupon = \"FILE\"\npause_months = [1, 3]\nlink_ttl_secs = 60\n\
             [cancel_flow.downgrade]\nprice_a = \"price_b\"\nprice_c = \"price_d\"\n[nps]\nenabled = true\n",
        );
        let s = base()
            .var("HOLDFAST_CONFIG_FILE", path.clone())
            .var("HOLDFAST_CANCEL_COUPON", "ENV")
            .var("HOLDFAST_NPS", "off")
            .var("HOLDFAST_CANCEL_DOWNGRADE_MAP", "price_x=price_y")
            .build()
            .expect("valid");
        // The environment wins over the file, which wins over the defaults.
        assert_eq!(s.cancel_flow.coupon.as_deref(), Some("ENV"));
        assert!(!s.nps.enabled);
        assert_eq!((s.cancel_flow.pause_months.as_slice(), s.cancel_flow.link_ttl_secs), (&[1, 3][..], 60));
        assert_eq!(s.cancel_flow.session_timeout_secs, 3_600);
        assert_eq!(s.nps.every_days, 182);
        // A table given by a variable replaces the file's whole table.
        assert_eq!(s.cancel_flow.downgrade_map.into_iter().collect::<Vec<_>>(), vec![("price_x".into(), "price_y".into())]);
        // Without the variables, the file's values stand.
        let s = base().var("HOLDFAST_CONFIG_FILE", path).build().expect("valid");
        assert_eq!((s.cancel_flow.coupon.as_deref(), s.nps.enabled), (Some("FILE"), true));
        assert_eq!(s.cancel_flow.downgrade_map.len(), 2);
    }

    #[test]
    fn an_invalid_value_names_its_key_and_where_it_came_from() {
        let (_dir, path) = file("[cancel_flow]\npause_months = [13]\n");
        let e = base().var("HOLDFAST_CONFIG_FILE", path.clone()).build().expect_err("13 months");
        assert_eq!(e.var, FILE_VAR);
        assert!(e.problem.contains(&path) && e.problem.contains("cancel_flow.pause_months"), "{e}");
        let e = base().var("HOLDFAST_CANCEL_PAUSE_MONTHS", "13").build().expect_err("13 months");
        assert_eq!(e.var, "HOLDFAST_CANCEL_PAUSE_MONTHS");
        // A value of the wrong type: in the file, and in a variable.
        let (_dir, path) = file("[cancel_flow]\nlink_ttl_secs = \"a week\"\n");
        let e = base().var("HOLDFAST_CONFIG_FILE", path.clone()).build().expect_err("not a number");
        assert!(e.var == FILE_VAR && e.problem.contains("cancel_flow.link_ttl_secs"), "{e}");
        let e = base().var("HOLDFAST_CANCEL_RATE_LIMIT", "-5").build().expect_err("negative");
        assert_eq!(e.var, "HOLDFAST_CANCEL_RATE_LIMIT", "{e}");
        let e = base().var("HOLDFAST_CANCEL_LINK_TTL_SECS", "soon").build().expect_err("not a number");
        assert_eq!(e.var, "HOLDFAST_CANCEL_LINK_TTL_SECS", "{e}");
        // Unknown keys and misspelt tables are refused, not ignored.
        let (_dir, path) = file("[cancel_flow]\ncoupons = \"X\"\n");
        let e = base().var("HOLDFAST_CONFIG_FILE", path).build().expect_err("unknown key");
        assert!(e.var == FILE_VAR && e.problem.contains("coupons"), "{e}");
        let (_dir, path) = file("[cancel-flow]\ncoupon = \"X\"\n");
        let e = base().var("HOLDFAST_CONFIG_FILE", path).build().expect_err("unknown table");
        assert!(e.var == FILE_VAR && e.problem.contains("cancel-flow"), "{e}");
        let (_dir, path) = file("[brand\n");
        assert_eq!(base().var("HOLDFAST_CONFIG_FILE", path).build().expect_err("not TOML").var, FILE_VAR);
    }

    #[test]
    fn a_secret_is_never_in_an_error() {
        for (var, value) in [
            ("HOLDFAST_LINK_SECRET", "hunter2"),
            ("HOLDFAST_OWNER_TOKEN", "hunter2"),
            ("STRIPE_SECRET_KEY", "hunter2"),
            ("HOLDFAST_ALERT_SLACK_URL", "hooks.slack.test/hunter2"),
        ] {
            let e = base().var(var, value).build().expect_err(var);
            assert_eq!(e.var, var);
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn typed_settings_go_through_the_same_checks_and_win() {
        let s = base()
            .var("HOLDFAST_CANCEL_PAUSE_MONTHS", "1")
            .set("cancel_flow.pause_months", [2, 4])
            .set("brand.name", "Typed")
            .set("lifecycle.winback.days", [10, 20])
            .set("nps.enabled", true)
            .build()
            .expect("valid");
        assert_eq!(s.cancel_flow.pause_months, vec![2, 4]);
        assert_eq!((s.mail.brand.name.as_str(), s.cancel_flow.brand.name.as_str()), ("Typed", "Typed"));
        assert_eq!(s.mail.from, "Typed <billing@localhost>");
        assert_eq!(s.lifecycle.winback.days, vec![10, 20]);
        assert!(s.nps.enabled && s.stripe_mode == StripeMode::Test);
        let e = base().set("cancel_flow.pause_months", [13]).build().expect_err("13 months");
        assert!(e.var == "HOLDFAST_CANCEL_PAUSE_MONTHS" && e.problem.contains("cancel_flow.pause_months"), "{e}");
        let e = base().set("cancel_flow.pause_months", "many").build().expect_err("not a list");
        assert_eq!(e.var, "HOLDFAST_CANCEL_PAUSE_MONTHS", "{e}");
        let s = Settings::from_pairs(&[("STRIPE_WEBHOOK_SECRET", "whsec_a"), ("HOLDFAST_STRIPE_MODE", "live")]).expect("valid");
        assert_eq!(s.stripe_mode, StripeMode::Live);
    }

    #[test]
    fn the_default_file_is_optional_and_a_named_one_required() {
        let none: HashMap<&str, String> = HashMap::from([(FILE_VAR, "/nonexistent/holdfast.toml".to_owned())]);
        assert_eq!(Loader::new(&none).err().map(|e| e.var), Some(FILE_VAR));
        let (_dir, path) = file("");
        let named: HashMap<&str, String> = HashMap::from([(FILE_VAR, path)]);
        let l = Loader::new(&named).expect("an empty file is valid");
        let brand = crate::config::Brand::from_loader(&l).expect("default brand");
        let cancel = crate::cancel::config::CancelFlowSettings::from_loader(&l, brand).expect("default cancel flow");
        assert_eq!(cancel.pause_months, vec![1, 2, 3]);
    }
}
