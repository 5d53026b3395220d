//! Outgoing mail: SMTP or `.eml` files, sender, reply-to, templates, retries.

use secrecy::{ExposeSecret, SecretString};

use crate::config::{Brand, ConfigError, DatabaseUrl, Loader, Source, parsed, problem};

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

/// The mail settings alone (for `holdfast email preview`).
pub fn mail_settings(src: &impl Source) -> Result<MailSettings, ConfigError> {
    let l = Loader::new(src)?;
    mail_from(&l, Brand::from_loader(&l)?)
}

/// The mail settings from the loader's values, sent as `brand`.
pub(crate) fn mail_from(src: &Loader<'_>, brand: Brand) -> Result<MailSettings, ConfigError> {
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
