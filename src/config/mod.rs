//! One typed `Settings`, loaded once by [`loader::Loader`] (defaults, then `holdfast.toml`, then
//! the environment and an optional `.env`), checked at start with errors that name the variable
//! or the file's key. Every field is documented in the README's table.

use secrecy::{ExposeSecret, SecretString};

pub mod brand;
pub mod limits;
pub mod loader;

pub use crate::cancel::config::CancelFlowSettings;
pub use crate::lifecycle::config::{AnnualOffer, Campaign, Experiment, ExperimentKind, Experiments, LifecycleSettings};
pub use crate::lifecycle::recap::config::{NpsSettings, RecapSettings};
pub use brand::Brand;
pub use limits::{LimitSettings, TrustedProxy};
pub use loader::Loader;

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

/// A database URL; `Debug` hides any password it carries.
#[derive(Clone)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}://[redacted]@{}", &self.0[..scheme_end], &self.0[at + 1..])
            }
            _ => self.0.clone(),
        };
        f.write_str(&shown)
    }
}

/// Webhook verification settings.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// `STRIPE_WEBHOOK_SECRET`: one or more `whsec_…`, comma-separated (a secret roll).
    pub secrets: Vec<SecretString>,
    /// `STRIPE_WEBHOOK_TOLERANCE_SECS` (default 300): accepted clock skew, both ways.
    pub tolerance_secs: i64,
    /// `HOLDFAST_WEBHOOK_MAX_BYTES` (default 1 MiB): larger bodies get 413.
    pub max_body_bytes: usize,
}

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
    pub figures: crate::figures::config::FigureSettings,
    /// The weekly digest and the alerts: `HOLDFAST_OWNER_EMAIL`, `HOLDFAST_DIGEST_*`, `HOLDFAST_ALERT_*`.
    pub owner: crate::owner::config::OwnerSettings,
    /// `[recap]`: the monthly value recap (off by default).
    pub recap: RecapSettings,
    /// `[nps]`: the NPS survey (off by default).
    pub nps: NpsSettings,
}

/// An SMTP URL; `Debug` hides the password it carries.
#[derive(Clone)]
pub struct SmtpUrl(pub SecretString);

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        DatabaseUrl(self.0.expose_secret().to_owned()).fmt(f)
    }
}

/// Outgoing mail.
#[derive(Clone, Debug)]
pub struct MailSettings {
    /// `SMTP_URL`: `smtps://user:pass@host:465` (TLS), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtp://host:25` (plain, local relays). Unset: `.eml` files instead.
    pub smtp_url: Option<SmtpUrl>,
    /// `HOLDFAST_MAIL_DIR` (default `./mail`): where `.eml` files go without `SMTP_URL`.
    pub mail_dir: std::path::PathBuf,
    /// `EMAIL_FROM` / `[brand] sender` (default `<brand> <billing@localhost>`): the From mailbox.
    pub from: String,
    /// `EMAIL_REPLY_TO`: optional Reply-To mailbox.
    pub reply_to: Option<String>,
    /// The brand (`[brand]` / `HOLDFAST_BRAND_*`), the same the pages show.
    pub brand: Brand,
    /// `HOLDFAST_TEMPLATES`: a directory whose `<name>/{subject.txt,body.txt,body.html}` files
    /// replace the built-in ones, file by file.
    pub templates_dir: Option<std::path::PathBuf>,
    /// `OUTBOX_MAX_ATTEMPTS` (default 8): sends tried before a row is marked failed.
    pub max_attempts: i64,
}

/// Dunning cadence.
#[derive(Clone, Debug)]
pub struct DunningSettings {
    /// `DUNNING_CADENCE_DAYS` (default `0,3,7`): days after the failure at which emails go.
    pub cadence_days: Vec<i64>,
    /// `DUNNING_FINAL_NOTICE_HOURS` (default 48): the final notice goes this long before
    /// Stripe's last try; `0` disables it.
    pub final_notice_hours: i64,
    /// `DUNNING_STRIPE_TRIES` (default 8, Stripe's recommended Smart Retries policy): the
    /// number of tries in the owner's Stripe retry settings, the first charge included. The
    /// final notice goes only when a failure's `attempt_count` is this minus one.
    pub stripe_tries: i64,
    /// `DUNNING_AFTER_RETRIES` (default `canceled`): what the owner's Stripe settings do to a
    /// subscription once every try failed — `canceled`, `unpaid`, `paused` or `past_due` (left
    /// as it is). The "payments have stopped" email tells the customer this.
    pub after_retries: crate::dunning::rules::AfterRetries,
    /// `DUNNING_HORIZON_DAYS` (default 3): a failure older than this when it arrives records
    /// state but sends nothing.
    pub horizon_days: i64,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://holdfast.db";
const DEFAULT_TOLERANCE_SECS: i64 = 300;
const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

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
            figures: crate::figures::config::FigureSettings::from_source(l)?,
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

/// The database URL alone (for `holdfast migrate`, which needs nothing else).
pub fn database_url(src: &impl Source) -> Result<DatabaseUrl, ConfigError> {
    let url = src.get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if !known.iter().any(|k| url.starts_with(k)) {
        return Err(problem("DATABASE_URL", "must start with sqlite:// or postgres://"));
    }
    Ok(DatabaseUrl(url))
}

/// `HOLDFAST_BIND`, or `0.0.0.0:$PORT`, or `127.0.0.1:8080`.
pub fn bind(src: &impl Source) -> Result<String, ConfigError> {
    if let Some(bind) = src.get("HOLDFAST_BIND") {
        bind.parse::<std::net::SocketAddr>().map_err(|_| problem("HOLDFAST_BIND", "must be host:port, e.g. 127.0.0.1:8080"))?;
        return Ok(bind);
    }
    match parsed::<u16>(src, "PORT")? {
        Some(port) => Ok(format!("0.0.0.0:{port}")),
        None => Ok("127.0.0.1:8080".into()),
    }
}

fn public_url(src: &impl Source, bind: &str) -> Result<String, ConfigError> {
    let url = src.get("HOLDFAST_PUBLIC_URL").unwrap_or_else(|| format!("http://{bind}"));
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(problem("HOLDFAST_PUBLIC_URL", "must start with http:// or https://"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn owner_token(src: &impl Source) -> Result<Option<SecretString>, ConfigError> {
    const VAR: &str = "HOLDFAST_OWNER_TOKEN";
    match src.get(VAR) {
        Some(t) if t.trim().len() < 16 => Err(problem(VAR, "must be at least 16 characters (e.g. `openssl rand -hex 32`)")),
        Some(t) => Ok(Some(SecretString::from(t.trim().to_owned()))),
        None => Ok(None),
    }
}

/// `STRIPE_SECRET_KEY`, checked (sk_/rk_).
pub fn stripe_secret_key(src: &impl Source) -> Result<Option<SecretString>, ConfigError> {
    const VAR: &str = "STRIPE_SECRET_KEY";
    match src.get(VAR) {
        Some(k) if !(k.starts_with("sk_") || k.starts_with("rk_")) => Err(problem(VAR, "must start with sk_ or rk_")),
        Some(k) => Ok(Some(SecretString::from(k))),
        None => Ok(None),
    }
}

/// Live or test: which of Stripe's two worlds an event, a key or an instance belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StripeMode {
    Live,
    Test,
}

impl StripeMode {
    /// The `livemode` of the events this mode acts on.
    pub fn livemode(self) -> bool {
        self == Self::Live
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }

    /// The mode a secret or restricted key belongs to (`sk_live_…`, `rk_test_…`).
    pub fn of_key(key: &str) -> Option<Self> {
        match key.get(..8) {
            Some("sk_live_" | "rk_live_") => Some(Self::Live),
            Some("sk_test_" | "rk_test_") => Some(Self::Test),
            _ => None,
        }
    }
}

/// The instance's mode: the key's when it names one, else `HOLDFAST_STRIPE_MODE`. Deciding by
/// whichever events arrive first would make a rebuild from the log disagree with the live
/// path, so without a key it is a required setting.
pub fn stripe_mode(src: &impl Source) -> Result<StripeMode, ConfigError> {
    const VAR: &str = "HOLDFAST_STRIPE_MODE";
    let setting = match src.get(VAR).map(|m| m.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => None,
        Some("live") => Some(StripeMode::Live),
        Some("test") => Some(StripeMode::Test),
        Some(_) => return Err(problem(VAR, "must be live or test")),
    };
    let of_key = src.get("STRIPE_SECRET_KEY").and_then(|k| StripeMode::of_key(k.trim()));
    match (of_key, setting) {
        (Some(k), Some(s)) if k != s => Err(problem(
            VAR,
            format!("is {} but STRIPE_SECRET_KEY is a {} key: set them to the same mode", s.as_str(), k.as_str()),
        )),
        (Some(mode), _) | (None, Some(mode)) => Ok(mode),
        (None, None) => Err(problem(
            VAR,
            "is required without a STRIPE_SECRET_KEY: live or test, the mode of the Stripe events this instance acts on \
             (events of the other mode are stored and counted, never acted on)",
        )),
    }
}

fn webhook_secrets(src: &impl Source) -> Result<Vec<SecretString>, ConfigError> {
    const VAR: &str = "STRIPE_WEBHOOK_SECRET";
    let raw = src.get(VAR).ok_or_else(|| {
        problem(VAR, "is required: the endpoint's signing secret (whsec_…), from the Stripe dashboard or `stripe listen`")
    })?;
    let secrets: Vec<SecretString> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(SecretString::from).collect();
    if secrets.is_empty() {
        return Err(problem(VAR, "is empty"));
    }
    if secrets.iter().any(|s| !s.expose_secret().starts_with("whsec_")) {
        return Err(problem(VAR, "every secret must start with whsec_"));
    }
    Ok(secrets)
}

/// The mail settings alone (for `holdfast email preview`).
pub fn mail_settings(src: &impl Source) -> Result<MailSettings, ConfigError> {
    let l = Loader::new(src)?;
    mail_from(&l, Brand::from_loader(&l)?)
}

fn mail_from(src: &Loader<'_>, brand: Brand) -> Result<MailSettings, ConfigError> {
    let from = brand.sender.clone();
    let reply_to = src.get("EMAIL_REPLY_TO");
    if let Some(r) = &reply_to {
        mailbox(r, "EMAIL_REPLY_TO")?;
    }
    let smtp_url = match src.get("SMTP_URL") {
        Some(u) if !(u.starts_with("smtp://") || u.starts_with("smtps://")) => {
            return Err(problem("SMTP_URL", "must start with smtp:// or smtps://"));
        }
        Some(u) => Some(SmtpUrl(SecretString::from(u))),
        None => None,
    };
    let max_attempts = parsed(src, "OUTBOX_MAX_ATTEMPTS")?.unwrap_or(8);
    if max_attempts < 1 {
        return Err(problem("OUTBOX_MAX_ATTEMPTS", "must be at least 1"));
    }
    Ok(MailSettings {
        smtp_url,
        mail_dir: src.get("HOLDFAST_MAIL_DIR").unwrap_or_else(|| "./mail".into()).into(),
        from,
        reply_to,
        brand,
        templates_dir: src.get("HOLDFAST_TEMPLATES").map(Into::into),
        max_attempts,
    })
}

fn mailbox(value: &str, var: &'static str) -> Result<(), ConfigError> {
    value
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|_| problem(var, "must be an address like `Acme <billing@acme.test>`"))
}

fn dunning_settings(src: &impl Source) -> Result<DunningSettings, ConfigError> {
    const VAR: &str = "DUNNING_CADENCE_DAYS";
    let cadence_days = match src.get(VAR) {
        Some(list) => {
            let days: Result<Vec<i64>, _> = list.split(',').map(|d| d.trim().parse::<i64>()).collect();
            let mut days = days.map_err(|_| problem(VAR, "must be comma-separated whole days, e.g. 0,3,7"))?;
            days.sort_unstable();
            days.dedup();
            if days.is_empty() || days[0] < 0 {
                return Err(problem(VAR, "needs at least one day, none negative"));
            }
            days
        }
        None => vec![0, 3, 7],
    };
    let stripe_tries = parsed(src, "DUNNING_STRIPE_TRIES")?.unwrap_or(8);
    if !(1..=25).contains(&stripe_tries) {
        return Err(problem("DUNNING_STRIPE_TRIES", "must be 1 to 25, as in your Stripe retry settings"));
    }
    let after_retries = match src.get("DUNNING_AFTER_RETRIES") {
        Some(v) => crate::dunning::rules::AfterRetries::parse(&v)
            .ok_or_else(|| problem("DUNNING_AFTER_RETRIES", "must be canceled, unpaid, paused or past_due"))?,
        None => crate::dunning::rules::AfterRetries::Canceled,
    };
    Ok(DunningSettings {
        cadence_days,
        final_notice_hours: parsed(src, "DUNNING_FINAL_NOTICE_HOURS")?.unwrap_or(48),
        horizon_days: parsed(src, "DUNNING_HORIZON_DAYS")?.unwrap_or(3),
        stripe_tries,
        after_retries,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
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
