//! Stripe: the secret key, the instance's mode (live or test) and the webhook's secrets.

use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConfigError, Source, problem};

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

pub(crate) const DEFAULT_TOLERANCE_SECS: i64 = 300;
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

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

/// `STRIPE_WEBHOOK_SECRET`: one or more signing secrets, comma-separated.
pub(crate) fn webhook_secrets(src: &impl Source) -> Result<Vec<SecretString>, ConfigError> {
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
