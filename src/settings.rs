//! The service's one `Settings`: every shared layer's and every feature's settings, loaded
//! once through [`config::Loader`](crate::config::Loader) (defaults, then `holdfast.toml`,
//! then the environment and an optional `.env`) and checked at start, with errors that name
//! the variable or the file's key. This is wiring, like `startup`: the one place that names
//! every feature's settings. Each feature reads and checks its own part (`cancel::config`,
//! `lifecycle::config`, …); the shared layers' parts are in `config`.

use secrecy::SecretString;

use crate::cancel::config::CancelFlowSettings;
use crate::config::mail::mail_from;
use crate::config::server::{owner_token, public_url};
use crate::config::stripe_settings::{DEFAULT_MAX_BODY_BYTES, DEFAULT_TOLERANCE_SECS, webhook_secrets};
use crate::config::{
    Brand, ConfigError, DatabaseUrl, Env, LimitSettings, Loader, MailSettings, Source, StripeMode, WebhookSettings, bind,
    database_url, on_off, parsed, problem, stripe_mode, stripe_secret_key,
};
use crate::dunning::config::{DunningSettings, dunning_settings};
use crate::lifecycle::config::{Experiments, LifecycleSettings};
use crate::lifecycle::recap::config::{NpsSettings, RecapSettings};

/// Everything the service needs, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `DATABASE_URL` (default `sqlite://holdfast.db`; `postgres://…` selects Postgres).
    pub database_url: DatabaseUrl,
    /// `HOLDFAST_BIND` (default `127.0.0.1:8080`; `0.0.0.0:$PORT` when only `PORT` is set).
    pub bind: String,
    pub webhook: WebhookSettings,
    /// `HOLDFAST_PUBLIC_URL` (default `http://<bind>`): the base of links in emails and pages.
    pub public_url: String,
    /// `HOLDFAST_OWNER_TOKEN`: bearer token for the owner API and dashboard (unset: closed).
    pub owner_token: Option<SecretString>,
    /// `STRIPE_SECRET_KEY` (`sk_…` or a restricted `rk_…`): enables calls to Stripe's API.
    pub stripe_secret_key: Option<SecretString>,
    /// `STRIPE_API_BASE`: another base URL for Stripe's API (tests, stripe-mock).
    pub stripe_api_base: Option<String>,
    /// The one Stripe mode whose events this instance acts on: the mode of
    /// `STRIPE_SECRET_KEY`, else `HOLDFAST_STRIPE_MODE` (required then).
    pub stripe_mode: StripeMode,
    /// The cancel flow: `holdfast.toml` `[cancel_flow]` (and the `[brand]` its pages show) and `HOLDFAST_CANCEL_*`.
    pub cancel_flow: CancelFlowSettings,
    /// Lifecycle campaigns and the at-risk rule: `holdfast.toml` `[lifecycle.*]`.
    pub lifecycle: LifecycleSettings,
    /// A/B experiments: `holdfast.toml` `[[experiments]]`.
    pub experiments: Experiments,
    /// Outgoing mail: transport, sender, brand, templates.
    pub mail: MailSettings,
    /// Failed-payment recovery cadence.
    pub dunning: DunningSettings,
    /// `HOLDFAST_MODE` (default `live`): `observe` ingests and figures everything but sends no
    /// email and makes no Stripe call that changes anything; both are recorded for the owner
    /// instead (`GET /api/observed`).
    pub observe: bool,
    /// `HOLDFAST_WORKERS` (default `on`): `off` runs no background workers in this process
    /// (tests drive them by hand; a web-only replica).
    pub run_workers: bool,
    /// Connection, timeout and buffer bounds, and the trusted proxy (`HOLDFAST_MAX_CONNECTIONS`…).
    pub limits: LimitSettings,
    /// The owner's figures: `HOLDFAST_MIN_SAMPLE`, `HOLDFAST_CHANNEL_METADATA_KEY`.
    pub figures: crate::figures::FigureSettings,
    /// The weekly digest and the alerts: `HOLDFAST_OWNER_EMAIL`, `HOLDFAST_DIGEST_*`, `HOLDFAST_ALERT_*`.
    pub owner: crate::owner::config::OwnerSettings,
    /// `[recap]`: the monthly value recap (off by default).
    pub recap: RecapSettings,
    /// `[nps]`: the NPS survey (off by default).
    pub nps: NpsSettings,
}

impl Settings {
    /// Load `.env` (if any) and read the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is not silently ignored.
        if let Err(e) = dotenvy::dotenv()
            && !e.not_found()
        {
            return Err(problem(".env", format!("could not be read: {e}")));
        }
        Self::from_source(&Env)
    }

    /// Read and validate settings from `src`, through the one loader.
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        Self::from_loader(&Loader::new(src)?)
    }

    /// Settings from environment-style pairs (tests, the demo): the same loader and checks.
    pub fn from_pairs(pairs: &[(&'static str, &str)]) -> Result<Self, ConfigError> {
        pairs.iter().fold(Self::builder(), |b, (var, value)| b.var(var, *value)).build()
    }

    /// Settings assembled in code: variables, and typed values set by their file key.
    pub fn builder() -> SettingsBuilder {
        SettingsBuilder { vars: std::collections::HashMap::new(), typed: figment::Figment::new() }
    }

    /// Every part validated once, from the loader's merged values.
    pub fn from_loader(l: &Loader<'_>) -> Result<Self, ConfigError> {
        let bind = bind(l)?;
        let brand = Brand::from_loader(l)?;
        let (lifecycle, experiments) = LifecycleSettings::from_loader(l)?;
        let (recap, nps) = crate::lifecycle::recap::config::from_loader(l)?;
        Ok(Self {
            recap,
            nps,
            lifecycle,
            experiments,
            database_url: database_url(l)?,
            public_url: public_url(l, &bind)?,
            owner_token: owner_token(l)?,
            stripe_secret_key: stripe_secret_key(l)?,
            stripe_mode: stripe_mode(l)?,
            stripe_api_base: l.get("STRIPE_API_BASE").map(|b| b.trim_end_matches('/').to_owned()),
            cancel_flow: CancelFlowSettings::from_loader(l, brand.clone())?,
            mail: mail_from(l, brand)?,
            dunning: dunning_settings(l)?,
            run_workers: on_off(l, "HOLDFAST_WORKERS", true)?,
            observe: match l.get("HOLDFAST_MODE").map(|m| m.trim().to_ascii_lowercase()).as_deref() {
                None | Some("live") => false,
                Some("observe") => true,
                Some(_) => return Err(problem("HOLDFAST_MODE", "must be live or observe")),
            },
            limits: LimitSettings::from_source(l)?,
            figures: crate::figures::FigureSettings::from_source(l)?,
            owner: crate::owner::config::OwnerSettings::from_source(l)?,
            bind,
            webhook: WebhookSettings {
                secrets: webhook_secrets(l)?,
                tolerance_secs: parsed(l, "STRIPE_WEBHOOK_TOLERANCE_SECS")?.unwrap_or(DEFAULT_TOLERANCE_SECS),
                max_body_bytes: parsed(l, "HOLDFAST_WEBHOOK_MAX_BYTES")?.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            },
        })
    }
}

/// Settings assembled in code (tests): environment variables by name, and typed values by
/// their `holdfast.toml` key (`.set("cancel_flow.pause_months", [1, 3])`), which win over both
/// the file and the environment. Built through the same loader and checks as the service's.
pub struct SettingsBuilder {
    vars: std::collections::HashMap<&'static str, String>,
    typed: figment::Figment,
}

impl SettingsBuilder {
    /// An environment variable, as the process would have it.
    #[must_use]
    pub fn var(mut self, var: &'static str, value: impl Into<String>) -> Self {
        self.vars.insert(var, value.into());
        self
    }

    /// The owner's `holdfast.toml` at `path`, as `HOLDFAST_CONFIG_FILE` names it.
    #[must_use]
    pub fn file(self, path: &std::path::Path) -> Self {
        self.var(crate::config::loader::FILE_VAR, path.display().to_string())
    }

    /// A typed value at a `holdfast.toml` key (`"brand.name"`, `"lifecycle.winback.days"`).
    #[must_use]
    pub fn set(mut self, key: &str, value: impl serde::Serialize) -> Self {
        self.typed = self.typed.merge(figment::providers::Serialized::global(key, value));
        self
    }

    /// Load and check.
    pub fn build(&self) -> Result<Settings, ConfigError> {
        Settings::from_loader(&Loader::with(&self.vars, self.typed.clone())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_DATABASE_URL;
    use std::collections::HashMap;

    /// Built typed, through the loader, with the test mode unless the key names one.
    fn settings(vars: &[(&'static str, &str)]) -> Result<Settings, ConfigError> {
        let keyed = vars.iter().any(|(k, v)| *k == "STRIPE_SECRET_KEY" && StripeMode::of_key(v).is_some());
        let builder = if keyed { Settings::builder() } else { Settings::builder().var("HOLDFAST_STRIPE_MODE", "test") };
        vars.iter().fold(builder, |b, (k, v)| b.var(k, *v)).build()
    }

    fn mode(vars: &[(&'static str, &str)]) -> Result<StripeMode, ConfigError> {
        let map: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        stripe_mode(&map)
    }

    #[test]
    fn the_mode_comes_from_the_key_else_from_the_required_setting() {
        assert_eq!(mode(&[("STRIPE_SECRET_KEY", "sk_live_abc")]).ok(), Some(StripeMode::Live));
        assert_eq!(mode(&[("STRIPE_SECRET_KEY", "rk_live_abc")]).ok(), Some(StripeMode::Live));
        assert_eq!(mode(&[("STRIPE_SECRET_KEY", "sk_test_abc")]).ok(), Some(StripeMode::Test));
        assert_eq!(mode(&[("STRIPE_SECRET_KEY", "rk_test_abc")]).ok(), Some(StripeMode::Test));
        assert_eq!(mode(&[("HOLDFAST_STRIPE_MODE", "live")]).ok(), Some(StripeMode::Live));
        assert_eq!(mode(&[("HOLDFAST_STRIPE_MODE", " Test ")]).ok(), Some(StripeMode::Test));
        // A key that names no mode (a stand-in's) needs the setting.
        assert_eq!(mode(&[("STRIPE_SECRET_KEY", "sk_x"), ("HOLDFAST_STRIPE_MODE", "live")]).ok(), Some(StripeMode::Live));
        assert_eq!(mode(&[("STRIPE_SECRET_KEY", "sk_live_a"), ("HOLDFAST_STRIPE_MODE", "live")]).ok(), Some(StripeMode::Live));

        let missing = mode(&[]).expect_err("neither").to_string();
        assert!(missing.contains("HOLDFAST_STRIPE_MODE") && missing.contains("STRIPE_SECRET_KEY"), "{missing}");
        let missing = mode(&[("STRIPE_SECRET_KEY", "sk_x")]).expect_err("no mode in the key").to_string();
        assert!(missing.contains("HOLDFAST_STRIPE_MODE"), "{missing}");
        let bad = mode(&[("HOLDFAST_STRIPE_MODE", "prod")]).expect_err("not a mode").to_string();
        assert!(bad.contains("HOLDFAST_STRIPE_MODE") && bad.contains("live or test"), "{bad}");
        let clash = mode(&[("STRIPE_SECRET_KEY", "sk_live_secret123"), ("HOLDFAST_STRIPE_MODE", "test")])
            .expect_err("disagree")
            .to_string();
        assert!(clash.contains("HOLDFAST_STRIPE_MODE") && !clash.contains("secret123"), "{clash}");
    }

    #[test]
    fn defaults_apply_when_only_the_secret_is_set() {
        let s = settings(&[("STRIPE_WEBHOOK_SECRET", "whsec_a")]).expect("valid");
        assert_eq!(s.database_url.0, DEFAULT_DATABASE_URL);
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert_eq!(s.webhook.tolerance_secs, 300);
        assert_eq!(s.webhook.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn several_secrets_and_port_are_honoured() {
        let s = settings(&[("STRIPE_WEBHOOK_SECRET", "whsec_a, whsec_b"), ("PORT", "9000")]).expect("valid");
        assert_eq!(s.webhook.secrets.len(), 2);
        assert_eq!(s.bind, "0.0.0.0:9000");
    }

    #[test]
    fn errors_name_the_variable_but_never_the_secret() {
        let missing = settings(&[]).expect_err("secret required");
        assert_eq!(missing.var, "STRIPE_WEBHOOK_SECRET");
        let bad = settings(&[("STRIPE_WEBHOOK_SECRET", "sk_live_oops")]).expect_err("not whsec");
        assert!(!bad.to_string().contains("sk_live_oops"));
        let url = settings(&[("STRIPE_WEBHOOK_SECRET", "whsec_a"), ("DATABASE_URL", "mysql://x")]).expect_err("scheme");
        assert_eq!(url.var, "DATABASE_URL");
        let tol =
            settings(&[("STRIPE_WEBHOOK_SECRET", "whsec_a"), ("STRIPE_WEBHOOK_TOLERANCE_SECS", "soon")]).expect_err("number");
        assert_eq!(tol.var, "STRIPE_WEBHOOK_TOLERANCE_SECS");
    }

    #[test]
    fn mail_defaults_and_smtp_passwords_stay_hidden() {
        let s = settings(&[("STRIPE_WEBHOOK_SECRET", "whsec_a"), ("SMTP_URL", "smtps://me:hunter2@mail.test:465")]).expect("ok");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.dunning.cadence_days, vec![0, 3, 7]);
        assert_eq!(s.mail.from, "Holdfast <billing@localhost>");
        let bad = settings(&[("STRIPE_WEBHOOK_SECRET", "whsec_a"), ("DUNNING_CADENCE_DAYS", "0,x")]).expect_err("days");
        assert_eq!(bad.var, "DUNNING_CADENCE_DAYS");
        let bad = settings(&[("STRIPE_WEBHOOK_SECRET", "whsec_a"), ("EMAIL_FROM", "not an address")]).expect_err("from");
        assert_eq!(bad.var, "EMAIL_FROM");
    }

    #[test]
    fn database_passwords_are_hidden_from_debug_output() {
        let url = DatabaseUrl("postgres://holdfast:hunter2@db:5432/holdfast".into());
        assert_eq!(format!("{url:?}"), "postgres://[redacted]@db:5432/holdfast");
    }
}
