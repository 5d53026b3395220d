//! What reaches the owner without opening the dashboard: the weekly digest and the alerts.
//! `HOLDFAST_OWNER_EMAIL` turns the digest and emailed alerts on; Slack and a signed webhook
//! are further destinations of the alerts. The destination URLs and the signing secret are
//! secrets (a Slack incoming-webhook URL carries its token): `Debug` never shows them.

use std::collections::BTreeMap;

use secrecy::SecretString;

use crate::config::{ConfigError, Source, on_off, parsed, problem};

/// The owner's notices.
#[derive(Debug, Clone, Default)]
pub struct OwnerSettings {
    /// `HOLDFAST_OWNER_EMAIL`: where the digest and alert emails go (unset: neither is emailed).
    pub email: Option<String>,
    pub digest: DigestSettings,
    pub alerts: AlertSettings,
}

/// When the weekly digest goes: `HOLDFAST_DIGEST` (on/off), `HOLDFAST_DIGEST_DAY`
/// (`mon`…`sun`, default `mon`), `HOLDFAST_DIGEST_HOUR` (0–23, default 8), in UTC (Holdfast has
/// no owner time zone setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestSettings {
    pub on: bool,
    /// ISO weekday: 1 = Monday … 7 = Sunday.
    pub weekday: u32,
    pub hour: u32,
}

impl Default for DigestSettings {
    fn default() -> Self {
        Self { on: true, weekday: 1, hour: 8 }
    }
}

/// Which alerts are on, and where they go.
#[derive(Debug, Clone, Default)]
pub struct AlertSettings {
    /// `HOLDFAST_ALERT_CHURN_MRR` (`usd:500,eur:450`, major units): a customer at or above this
    /// MRR sets a subscription to cancel or churns. A currency not listed: no alert.
    pub churn_mrr: Thresholds,
    /// `HOLDFAST_ALERT_PAYMENT_FAILED` (`usd:1000`, major units): a payment of at least this fails.
    pub payment_failed: Thresholds,
    /// `HOLDFAST_ALERT_DISPUTE` (default on): a dispute is opened.
    pub dispute: bool,
    /// `HOLDFAST_ALERT_SAVE_REVERSED` (default on): a cancel-flow save turns out reversed.
    pub save_reversed: bool,
    /// `HOLDFAST_ALERT_EMAIL` (default on): alerts are emailed to `HOLDFAST_OWNER_EMAIL`.
    pub email: bool,
    /// `HOLDFAST_ALERT_SLACK_URL`: a Slack incoming-webhook URL.
    pub slack_url: Option<SecretUrl>,
    /// `HOLDFAST_ALERT_WEBHOOK_URL` and `HOLDFAST_ALERT_WEBHOOK_SECRET` (both or neither).
    pub webhook: Option<SignedWebhook>,
}

/// Amount thresholds per currency (lower-case code → minor units).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thresholds(pub BTreeMap<String, i64>);

impl Thresholds {
    /// Whether `amount` (minor units) of `currency` reaches the threshold.
    pub fn reached(&self, amount: f64, currency: &str) -> bool {
        self.0.get(&currency.to_ascii_lowercase()).is_some_and(|t| amount >= *t as f64)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A URL that is a secret: shown as `<redacted>` in `Debug`.
#[derive(Clone)]
pub struct SecretUrl(pub SecretString);

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted url>")
    }
}

/// The generic webhook: its URL and the secret its requests are signed with.
#[derive(Clone, Debug)]
pub struct SignedWebhook {
    pub url: SecretUrl,
    pub secret: SecretString,
}

impl OwnerSettings {
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        let email = match src.get("HOLDFAST_OWNER_EMAIL").map(|e| e.trim().to_owned()) {
            Some(e) if e.contains('@') && !e.contains(['\r', '\n', ',', ' ']) && e.len() <= 254 => Some(e),
            Some(_) => return Err(problem("HOLDFAST_OWNER_EMAIL", "must be one email address")),
            None => None,
        };
        Ok(Self { email, digest: digest(src)?, alerts: alerts(src)? })
    }
}

fn digest(src: &impl Source) -> Result<DigestSettings, ConfigError> {
    let weekday = match src.get("HOLDFAST_DIGEST_DAY").map(|d| d.trim().to_ascii_lowercase()) {
        None => 1,
        Some(d) => match ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().position(|w| d.starts_with(w)) {
            Some(i) => i as u32 + 1,
            None => return Err(problem("HOLDFAST_DIGEST_DAY", "must be a weekday: mon, tue, wed, thu, fri, sat or sun")),
        },
    };
    let hour = parsed::<u32>(src, "HOLDFAST_DIGEST_HOUR")?.unwrap_or(8);
    if hour > 23 {
        return Err(problem("HOLDFAST_DIGEST_HOUR", "must be an hour from 0 to 23"));
    }
    Ok(DigestSettings { on: on_off(src, "HOLDFAST_DIGEST", true)?, weekday, hour })
}

fn alerts(src: &impl Source) -> Result<AlertSettings, ConfigError> {
    let slack_url = secret_url(src, "HOLDFAST_ALERT_SLACK_URL")?;
    let webhook = match (secret_url(src, "HOLDFAST_ALERT_WEBHOOK_URL")?, src.get("HOLDFAST_ALERT_WEBHOOK_SECRET")) {
        (Some(url), Some(secret)) if secret.trim().len() >= 16 => {
            Some(SignedWebhook { url, secret: SecretString::from(secret.trim().to_owned()) })
        }
        (Some(_), Some(_)) => return Err(problem("HOLDFAST_ALERT_WEBHOOK_SECRET", "must be at least 16 characters")),
        (Some(_), None) => {
            return Err(problem(
                "HOLDFAST_ALERT_WEBHOOK_SECRET",
                "is required with HOLDFAST_ALERT_WEBHOOK_URL (requests are signed)",
            ));
        }
        (None, Some(_)) => return Err(problem("HOLDFAST_ALERT_WEBHOOK_URL", "is required with HOLDFAST_ALERT_WEBHOOK_SECRET")),
        (None, None) => None,
    };
    Ok(AlertSettings {
        churn_mrr: thresholds(src, "HOLDFAST_ALERT_CHURN_MRR")?,
        payment_failed: thresholds(src, "HOLDFAST_ALERT_PAYMENT_FAILED")?,
        dispute: on_off(src, "HOLDFAST_ALERT_DISPUTE", true)?,
        save_reversed: on_off(src, "HOLDFAST_ALERT_SAVE_REVERSED", true)?,
        email: on_off(src, "HOLDFAST_ALERT_EMAIL", true)?,
        slack_url,
        webhook,
    })
}

/// A URL variable; its value is never echoed in an error (it is a secret).
fn secret_url(src: &impl Source, var: &'static str) -> Result<Option<SecretUrl>, ConfigError> {
    match src.get(var).map(|u| u.trim().to_owned()) {
        None => Ok(None),
        Some(u) if (u.starts_with("https://") || u.starts_with("http://")) && reqwest::Url::parse(&u).is_ok() => {
            Ok(Some(SecretUrl(SecretString::from(u))))
        }
        Some(_) => Err(problem(var, "must be an http(s) URL")),
    }
}

/// `usd:500,eur:450` (major units) → minor units per currency; `off` or unset: none.
fn thresholds(src: &impl Source, var: &'static str) -> Result<Thresholds, ConfigError> {
    let Some(raw) = src.get(var) else { return Ok(Thresholds::default()) };
    if raw.trim().eq_ignore_ascii_case("off") {
        return Ok(Thresholds::default());
    }
    let mut out = BTreeMap::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || problem(var, "expected currency:amount pairs in major units, e.g. usd:500,eur:450");
        let (currency, amount) = part.split_once(':').ok_or_else(bad)?;
        let currency = currency.trim().to_ascii_lowercase();
        let amount: f64 = amount.trim().parse().map_err(|_| bad())?;
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_lowercase()) || !(0.0..1e12).contains(&amount) {
            return Err(bad());
        }
        let unit = 10f64.powi(crate::domain::money::exponent(&currency) as i32);
        out.insert(currency, (amount * unit).round() as i64);
    }
    Ok(Thresholds(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&'static str, &str)]) -> Result<OwnerSettings, ConfigError> {
        let map: HashMap<&str, String> = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        OwnerSettings::from_source(&map)
    }

    #[test]
    fn thresholds_are_major_units_per_currency() {
        let s = from(&[("HOLDFAST_ALERT_CHURN_MRR", "USD:500, jpy:50000")]).expect("valid");
        assert_eq!(s.alerts.churn_mrr.0.get("usd"), Some(&50_000));
        assert_eq!(s.alerts.churn_mrr.0.get("jpy"), Some(&50_000));
        assert!(s.alerts.churn_mrr.reached(50_000.0, "USD") && !s.alerts.churn_mrr.reached(49_999.0, "usd"));
        assert!(!s.alerts.churn_mrr.reached(1e9, "eur"), "an unlisted currency never alerts");
        assert!(from(&[("HOLDFAST_ALERT_CHURN_MRR", "usd=500")]).is_err());
        assert!(from(&[("HOLDFAST_ALERT_PAYMENT_FAILED", "off")]).expect("off").alerts.payment_failed.is_empty());
    }

    #[test]
    fn the_webhook_needs_its_secret_and_urls_never_show() {
        let e = from(&[("HOLDFAST_ALERT_WEBHOOK_URL", "https://hooks.example.com/x?token=abc")]).expect_err("no secret");
        assert_eq!(e.var, "HOLDFAST_ALERT_WEBHOOK_SECRET");
        let s = from(&[
            ("HOLDFAST_ALERT_WEBHOOK_URL", "https://hooks.example.com/x?token=abc"),
            ("HOLDFAST_ALERT_WEBHOOK_SECRET", "0123456789abcdef0123"),
            ("HOLDFAST_ALERT_SLACK_URL", "https://hooks.slack.com/services/T0/B0/secrettoken"),
        ])
        .expect("valid");
        let shown = format!("{s:?}");
        assert!(!shown.contains("token") && !shown.contains("0123456789abcdef"), "{shown}");
        let e = from(&[("HOLDFAST_ALERT_SLACK_URL", "hooks.slack.com/services/T0/B0/secrettoken")]).expect_err("not a URL");
        assert!(!e.to_string().contains("secrettoken"));
    }

    #[test]
    fn the_digest_day_and_hour() {
        let s = from(&[("HOLDFAST_DIGEST_DAY", "Friday"), ("HOLDFAST_DIGEST_HOUR", "17")]).expect("valid");
        assert_eq!((s.digest.weekday, s.digest.hour), (5, 17));
        assert_eq!(from(&[]).expect("defaults").digest, DigestSettings::default());
        assert!(from(&[("HOLDFAST_DIGEST_HOUR", "24")]).is_err());
        assert!(from(&[("HOLDFAST_DIGEST_DAY", "someday")]).is_err());
        assert!(from(&[("HOLDFAST_OWNER_EMAIL", "a@b.c, d@e.f")]).is_err());
    }
}
