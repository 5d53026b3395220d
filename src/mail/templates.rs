//! Email templates: `templates/email/<name>/{subject.txt, body.txt, body.html}`, embedded in
//! the binary and overridable file by file from `HOLDFAST_TEMPLATES`. minijinja escapes
//! `.html` files automatically, so customer names and URLs can't inject markup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, Value, context};

use super::EmailContent;
use crate::config::MailSettings;

/// The built-in templates, by loader name.
const EMBEDDED: &[(&str, &str)] = &[
    ("_layout.html", include_str!("../../templates/email/_layout.html")),
    ("cancel_confirmation_paused/subject.txt", include_str!("../../templates/email/cancel_confirmation_paused/subject.txt")),
    ("cancel_confirmation_paused/body.txt", include_str!("../../templates/email/cancel_confirmation_paused/body.txt")),
    ("cancel_confirmation_paused/body.html", include_str!("../../templates/email/cancel_confirmation_paused/body.html")),
    (
        "cancel_confirmation_downgraded/subject.txt",
        include_str!("../../templates/email/cancel_confirmation_downgraded/subject.txt"),
    ),
    ("cancel_confirmation_downgraded/body.txt", include_str!("../../templates/email/cancel_confirmation_downgraded/body.txt")),
    ("cancel_confirmation_downgraded/body.html", include_str!("../../templates/email/cancel_confirmation_downgraded/body.html")),
    (
        "cancel_confirmation_discounted/subject.txt",
        include_str!("../../templates/email/cancel_confirmation_discounted/subject.txt"),
    ),
    ("cancel_confirmation_discounted/body.txt", include_str!("../../templates/email/cancel_confirmation_discounted/body.txt")),
    ("cancel_confirmation_discounted/body.html", include_str!("../../templates/email/cancel_confirmation_discounted/body.html")),
    ("cancel_confirmation_canceled/subject.txt", include_str!("../../templates/email/cancel_confirmation_canceled/subject.txt")),
    ("cancel_confirmation_canceled/body.txt", include_str!("../../templates/email/cancel_confirmation_canceled/body.txt")),
    ("cancel_confirmation_canceled/body.html", include_str!("../../templates/email/cancel_confirmation_canceled/body.html")),
    ("payment_failed/subject.txt", include_str!("../../templates/email/payment_failed/subject.txt")),
    ("payment_failed/body.txt", include_str!("../../templates/email/payment_failed/body.txt")),
    ("payment_failed/body.html", include_str!("../../templates/email/payment_failed/body.html")),
    ("payment_reminder/subject.txt", include_str!("../../templates/email/payment_reminder/subject.txt")),
    ("payment_reminder/body.txt", include_str!("../../templates/email/payment_reminder/body.txt")),
    ("payment_reminder/body.html", include_str!("../../templates/email/payment_reminder/body.html")),
    ("payment_final_notice/subject.txt", include_str!("../../templates/email/payment_final_notice/subject.txt")),
    ("payment_final_notice/body.txt", include_str!("../../templates/email/payment_final_notice/body.txt")),
    ("payment_final_notice/body.html", include_str!("../../templates/email/payment_final_notice/body.html")),
    ("payment_action_required/subject.txt", include_str!("../../templates/email/payment_action_required/subject.txt")),
    ("payment_action_required/body.txt", include_str!("../../templates/email/payment_action_required/body.txt")),
    ("payment_action_required/body.html", include_str!("../../templates/email/payment_action_required/body.html")),
    ("card_expiring/subject.txt", include_str!("../../templates/email/card_expiring/subject.txt")),
    ("card_expiring/body.txt", include_str!("../../templates/email/card_expiring/body.txt")),
    ("card_expiring/body.html", include_str!("../../templates/email/card_expiring/body.html")),
];

/// Why an email could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("unknown email template {0:?}")]
    Unknown(String),
    #[error("template {name}: {source}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
}

/// The template set plus the brand every email shows.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    brand: Value,
}

impl Templates {
    /// Built-ins, each file replaced by `<dir>/<name>/<file>` when that exists.
    pub fn new(settings: &MailSettings) -> Self {
        let mut env = Environment::new();
        let overrides = settings.templates_dir.clone();
        let embedded: HashMap<&'static str, &'static str> = EMBEDDED.iter().copied().collect();
        env.set_loader(move |name| load(overrides.as_deref(), &embedded, name));
        env.set_keep_trailing_newline(false);
        let brand = context! { name => settings.brand_name.clone(), color => settings.brand_color.clone() };
        Self { env, brand }
    }

    /// The names of the built-in templates (for `holdfast email preview`).
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<_> = EMBEDDED.iter().filter_map(|(n, _)| n.split_once('/').map(|(t, _)| t)).collect();
        names.dedup();
        names
    }

    /// Render every built-in name with sample data: run at start, so a broken override in
    /// `HOLDFAST_TEMPLATES` stops the service instead of failing webhooks later.
    pub fn check(&self) -> Result<(), RenderError> {
        Self::names().into_iter().try_for_each(|name| self.render(name, sample_context()).map(|_| ()))
    }

    /// Render `<name>/{subject.txt, body.txt, body.html}` with `ctx` plus `brand`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<EmailContent, RenderError> {
        if !Self::names().contains(&name) && self.env.get_template(&format!("{name}/subject.txt")).is_err() {
            return Err(RenderError::Unknown(name.to_owned()));
        }
        let ctx = context! { brand => self.brand.clone(), ..ctx };
        let part = |file: &str| -> Result<String, RenderError> {
            let full = format!("{name}/{file}");
            let err = |source| RenderError::Template { name: full.clone(), source };
            self.env.get_template(&full).and_then(|t| t.render(&ctx)).map_err(err)
        };
        Ok(EmailContent { subject: one_line(&part("subject.txt")?), text: part("body.txt")?, html: part("body.html")? })
    }
}

/// A subject is one line whatever the template's whitespace.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn load(
    dir: Option<&Path>,
    embedded: &HashMap<&'static str, &'static str>,
    name: &str,
) -> Result<Option<String>, minijinja::Error> {
    if let Some(dir) = dir
        && !name.contains("..")
    {
        let path: PathBuf = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "template override unreadable").with_source(e)
                );
            }
        }
    }
    Ok(embedded.get(name).map(|t| (*t).to_owned()))
}

/// Sample data for a preview: every variable any built-in template uses.
pub fn sample_context() -> Value {
    context! {
        customer => context! { name => "Ada Lovelace", email => "ada@example.com" },
        invoice => context! {
            id => "in_sample", amount => "$20.00", failed_on => "2 March 2026", last_attempt_on => "16 March 2026",
            hosted_invoice_url => "https://invoice.stripe.com/i/sample",
        },
        card => context! { brand => "Visa", last4 => "4242", expires => "March 2026" },
        action_url => "https://billing.example.com/billing/update?token=sample",
        action_label => "Update payment method",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn settings() -> MailSettings {
        let vars: HashMap<&str, String> = [("STRIPE_WEBHOOK_SECRET", "whsec_a".to_owned())].into_iter().collect();
        Settings::from_source(&vars).expect("valid").mail
    }

    #[test]
    fn every_built_in_template_renders_all_three_parts() {
        let t = Templates::new(&settings());
        for name in Templates::names() {
            let email = t.render(name, sample_context()).expect(name);
            assert!(!email.subject.is_empty() && !email.subject.contains('\n'), "{name}");
            assert!(email.text.contains("Holdfast"), "{name}");
            assert!(email.html.contains("<html"), "{name}");
        }
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let t = Templates::new(&settings());
        let ctx = context! { customer => context! { name => "<b>Eve</b> & co" }, invoice => context! { amount => "$1.00" } };
        let email = t.render("payment_failed", ctx).expect("renders");
        assert!(email.html.contains("&lt;b&gt;Eve&lt;") && email.html.contains("&amp; co") && !email.html.contains("<b>Eve"));
        assert!(email.text.contains("<b>Eve</b> & co"));
    }

    #[test]
    fn a_file_in_the_override_directory_replaces_only_that_file() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("payment_failed")).expect("mkdir");
        std::fs::write(dir.path().join("payment_failed/subject.txt"), "Custom {{ brand.name }}").expect("write");
        let mut s = settings();
        s.templates_dir = Some(dir.path().to_owned());
        let email = Templates::new(&s).render("payment_failed", sample_context()).expect("renders");
        assert_eq!(email.subject, "Custom Holdfast");
        assert!(email.text.contains("didn't go through"));
    }

    #[test]
    fn a_broken_override_fails_the_start_up_check() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("payment_reminder")).expect("mkdir");
        std::fs::write(dir.path().join("payment_reminder/body.html"), "{{ unclosed").expect("write");
        let mut s = settings();
        s.templates_dir = Some(dir.path().to_owned());
        assert!(Templates::new(&s).check().is_err());
        assert!(Templates::new(&settings()).check().is_ok());
    }

    #[test]
    fn unknown_templates_are_refused() {
        assert!(matches!(Templates::new(&settings()).render("nope", sample_context()), Err(RenderError::Unknown(_))));
    }
}
