//! How a test configures the server it starts: typed values, never environment strings.
//!
//! A `Config` holds three kinds of change, applied in this order over the test defaults:
//! - an owner's `holdfast.toml` ([`Config::file`]), for tests about what the file says;
//! - typed values at a `holdfast.toml` key ([`Config::key`]), which go through the service's
//!   own loader, so whatever it derives from them (the brand every page and email shows, the
//!   offers each reason gets) is derived as in production;
//! - changes to the built [`Settings`] ([`Config::with`]), for everything else.
//!
//! Tests that start the real binary configure it as an operator does, through its
//! environment; those live in `processes/` and `support/serve_child.rs`.

use std::path::{Path, PathBuf};

use holdfast::config::StripeMode;
use holdfast::settings::{Settings, SettingsBuilder};
use secrecy::SecretString;

type Change = Box<dyn FnOnce(&mut Settings) + Send>;

/// The test's changes to the server's settings.
#[derive(Default)]
#[must_use]
pub struct Config {
    file: Option<PathBuf>,
    keys: Vec<(String, serde_json::Value)>,
    changes: Vec<Change>,
}

impl Config {
    /// No change: the test defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The owner's `holdfast.toml`, read and checked by the service's loader.
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        self.file = Some(path.as_ref().to_path_buf());
        self
    }

    /// A typed value at a `holdfast.toml` key (`"cancel_flow.pause_months", [1, 3]`); it wins
    /// over the file, as the owner's environment would.
    pub fn key(mut self, key: &str, value: impl serde::Serialize) -> Self {
        let value = serde_json::to_value(value).expect("a test's setting serialises");
        self.keys.push((key.to_owned(), value));
        self
    }

    /// A change to the built settings (`|s| s.dunning.stripe_tries = 4`).
    pub fn with(mut self, change: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.changes.push(Box::new(change));
        self
    }

    /// The owner API and dashboard open to `token`.
    pub fn owner_token(self, token: &str) -> Self {
        let token = SecretString::from(token.to_owned());
        self.with(move |s| s.owner_token = Some(token))
    }

    /// A Stripe secret key; a key that names its mode (`sk_live_…`) sets the mode, as it does
    /// when the service reads it.
    pub fn stripe_key(self, key: &str) -> Self {
        let key = key.to_owned();
        self.with(move |s| {
            if let Some(mode) = StripeMode::of_key(&key) {
                s.stripe_mode = mode;
            }
            s.stripe_secret_key = Some(SecretString::from(key));
        })
    }

    /// Stripe's API answered by a stand-in at `base`, with a test-mode key.
    pub fn stripe_at(self, base: &str) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        self.stripe_key("sk_test_holdfast").with(move |s| s.stripe_api_base = Some(base))
    }

    /// The lifecycle campaign `name` (`"onboarding"`, `"winback"`, …) switched on.
    pub fn campaign_on(self, name: &str) -> Self {
        self.key(&format!("lifecycle.{name}.enabled"), true)
    }

    /// `other`'s changes after this one's: a helper's defaults, then the test's own.
    pub fn then(mut self, other: Config) -> Self {
        self.file = other.file.or(self.file);
        self.keys.extend(other.keys);
        self.changes.extend(other.changes);
        self
    }

    /// The settings: `base` (the test defaults) with these changes, checked by the loader.
    pub(super) fn build(self, base: SettingsBuilder) -> Settings {
        let mut builder = match &self.file {
            Some(path) => base.file(path),
            None => base,
        };
        for (key, value) in &self.keys {
            builder = builder.set(key, value);
        }
        let mut settings = builder.build().expect("test settings are valid");
        for change in self.changes {
            change(&mut settings);
        }
        settings
    }
}
