//! Configuration's shared layer: the one loader ([`loader::Loader`]: defaults, then
//! `holdfast.toml`, then the environment), the error that names a variable or a file's key,
//! and the settings of the shared layers: `server` (database, bind address, public URL, owner
//! token), `stripe_settings` (keys, mode, webhook secrets), `mail`, `brand` and `limits`.
//! Each feature's settings, and their checks, live with the feature (`cancel::config`,
//! `lifecycle::config`, `dunning::config`, …); `crate::settings` composes them all. Nothing
//! here names a feature.

pub mod brand;
pub mod limits;
pub mod loader;
pub(crate) mod mail;
pub(crate) mod server;
pub(crate) mod stripe_settings;

pub use brand::Brand;
pub use limits::{LimitSettings, TrustedProxy};
pub use loader::Loader;
pub use mail::{MailSettings, SmtpUrl, mail_settings};
pub use server::{DEFAULT_DATABASE_URL, DatabaseUrl, bind, database_url};
pub use stripe_settings::{StripeMode, WebhookSettings, stripe_mode, stripe_secret_key};

/// A configuration problem, naming the variable (never its value: it may be a secret).
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

pub(crate) fn problem(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { var, problem: problem.into() }
}

/// Where settings come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, var: &str) -> Option<String>;
}

/// The process environment (after loading `.env`, if present).
pub struct Env;

impl Source for Env {
    fn get(&self, var: &str) -> Option<String> {
        std::env::var(var).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<S: std::hash::BuildHasher> Source for std::collections::HashMap<&str, String, S> {
    fn get(&self, var: &str) -> Option<String> {
        std::collections::HashMap::get(self, var).cloned()
    }
}

pub(crate) fn on_off(src: &impl Source, var: &'static str, default: bool) -> Result<bool, ConfigError> {
    src.get(var).map_or(Ok(default), |v| loader::switch(var, &v))
}

/// Parse an optional variable, naming it when it doesn't parse.
pub fn parsed<T: std::str::FromStr>(src: &impl Source, var: &'static str) -> Result<Option<T>, ConfigError> {
    src.get(var).map(|v| v.trim().parse::<T>().map_err(|_| problem(var, format!("could not parse {:?}", short(&v))))).transpose()
}

/// Values of non-secret variables may be echoed, but not at length.
fn short(v: &str) -> String {
    v.chars().take(40).collect()
}
