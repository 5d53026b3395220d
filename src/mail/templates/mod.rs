//! Email templates: `templates/email/<name>/{subject.txt, body.txt, body.html}`, embedded in
//! the binary and overridable file by file from `HOLDFAST_TEMPLATES`. minijinja escapes
//! `.html` files automatically, so customer names and URLs can't inject markup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use minijinja::{Environment, Value, context};

use crate::config::MailSettings;
use crate::mail::EmailContent;

mod embedded;

use embedded::EMBEDDED;

/// The built-in templates' names, listed once: every render checks the name against them.
static BUILT_IN: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut names: Vec<_> = EMBEDDED.iter().filter_map(|(n, _)| n.split_once('/').map(|(t, _)| t)).collect();
    names.dedup();
    names
});

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
        let b = &settings.brand;
        let brand = context! {
            name => b.name.clone(), color => b.color.clone(), on_color => b.text_on_color(),
            logo_url => b.logo_url.clone(), powered_by => b.powered_by,
        };
        Self { env, brand }
    }

    /// The names of the built-in templates (for `holdfast email preview`).
    pub fn names() -> Vec<&'static str> {
        BUILT_IN.clone()
    }

    fn is_built_in(name: &str) -> bool {
        BUILT_IN.contains(&name)
    }

    /// Render every built-in name with sample data: run at start, so a broken override in
    /// `HOLDFAST_TEMPLATES` stops the service instead of failing webhooks later.
    pub fn check(&self) -> Result<(), RenderError> {
        Self::names().into_iter().try_for_each(|name| self.render(name, sample_context()).map(|_| ()))
    }

    /// Render `<name>/{subject.txt, body.txt, body.html}` with `ctx` plus `brand`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<EmailContent, RenderError> {
        if !Self::is_built_in(name) && self.env.get_template(&format!("{name}/subject.txt")).is_err() {
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
        after_retries => "canceled",
        product_url => "https://app.example.com/",
        unsubscribe_url => "https://billing.example.com/unsubscribe?token=sample",
        plan => context! { name => "Pro", amount => "$20.00 / month" },
        day => 7,
        trial_end => "3 March 2026",
        has_payment_method => false,
        comeback_url => "https://billing.example.com/comeback?token=sample",
        offer_text => "30 % off your first 3 months",
        canceled_on => "2 March 2026",
        last_active_on => "14 February 2026",
        pause_url => "https://billing.example.com/pause?token=sample",
        period => context! { from => "2 February 2026", to => "1 March 2026" },
        usage => vec![
            context! { label => "reports created", count => 12, change => "+4 (+50 %) on the month before" },
            context! { label => "other activity", count => 3, change => "new this month" },
        ],
        question => "What should we build next?",
        product => "Acme Notes",
        scores => (0..=10).map(|s| context! { score => s, url => format!("https://billing.example.com/nps/sample?score={s}") }).collect::<Vec<_>>(),
        yearly => context! { name => "Pro yearly", amount => "$200.00 / year" },
        saving => "$40.00",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn settings() -> MailSettings {
        let vars: HashMap<&str, String> =
            [("STRIPE_WEBHOOK_SECRET", "whsec_a".to_owned()), ("HOLDFAST_STRIPE_MODE", "test".to_owned())].into_iter().collect();
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
    fn a_configured_brand_reaches_every_template_and_holdfast_appears_nowhere() {
        let vars: HashMap<&str, String> = [
            ("STRIPE_WEBHOOK_SECRET", "whsec_a".to_owned()),
            ("HOLDFAST_STRIPE_MODE", "test".to_owned()),
            ("HOLDFAST_BRAND_NAME", "Acme Notes".to_owned()),
            ("HOLDFAST_BRAND_COLOR", "#ffcc00".to_owned()),
            ("HOLDFAST_BRAND_LOGO_URL", "https://acme.test/logo.png".to_owned()),
            ("HOLDFAST_POWERED_BY", "off".to_owned()),
        ]
        .into_iter()
        .collect();
        let t = Templates::new(&Settings::from_source(&vars).expect("valid").mail);
        for name in Templates::names() {
            let email = t.render(name, sample_context()).expect(name);
            for (part, text) in [("subject", &email.subject), ("text", &email.text), ("html", &email.html)] {
                assert!(!text.to_lowercase().contains("holdfast"), "{name} {part}: {text}");
            }
            if name.starts_with("payment_") || name.starts_with("cancel_confirmation_") {
                assert!(email.subject.contains("Acme Notes"), "{name}: {}", email.subject);
            }
            assert!(email.text.contains("Acme Notes") && email.html.contains("Acme Notes"), "{name}");
            assert!(email.html.contains("#ffcc00") && email.html.contains("logo.png\" alt=\"Acme Notes\""), "{name}");
            // The customer is greeted by name, in both parts.
            assert!(email.text.starts_with("Hi Ada Lovelace,") && email.html.contains("Hi Ada Lovelace,"), "{name}");
        }
        // Dark text on a light brand colour.
        assert!(t.render("payment_failed", sample_context()).expect("renders").html.contains("color:#000000"));
        // The default keeps a small "powered by" line, in HTML only.
        let email = Templates::new(&settings()).render("payment_failed", sample_context()).expect("renders");
        assert!(email.html.contains("Powered by Holdfast"));
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

    fn is_marketing(name: &str) -> bool {
        ["onboarding_", "winback_", "reengage_", "recap_", "nps_"].iter().any(|p| name.starts_with(p))
    }

    #[test]
    fn marketing_templates_show_the_unsubscribe_link_only_when_there_is_one() {
        let t = Templates::new(&settings());
        let marketing: Vec<_> = Templates::names().into_iter().filter(|n| is_marketing(n)).collect();
        assert_eq!(marketing.len(), 14, "{marketing:?}");
        let url = "https://billing.example.com/unsubscribe?token=sample";
        for name in marketing {
            let email = t.render(name, sample_context()).expect(name);
            assert!(email.text.contains(&format!("Unsubscribe: {url}")), "{name}: {}", email.text);
            // minijinja escapes `/` in HTML, so look for the part of the URL without one.
            assert!(email.html.contains("unsubscribe?token=sample") && email.html.contains(">Unsubscribe</a>"), "{name}");
            let ctx = context! { customer => context! { name => "Ada" }, product_url => "https://app.example.com/" };
            let email = t.render(name, ctx).expect(name);
            assert!(!email.text.contains("Unsubscribe") && !email.text.contains("unsubscribe"), "{name}: {}", email.text);
            assert!(!email.html.contains("Unsubscribe") && !email.html.contains("unsubscribe"), "{name}");
            assert!(email.text.trim_end().ends_with("— Holdfast"), "{name}: {}", email.text);
        }
    }

    #[test]
    fn transactional_templates_never_carry_an_unsubscribe_link_of_their_own() {
        let t = Templates::new(&settings());
        let ctx = context! { unsubscribe_url => Value::from(()), ..sample_context() };
        for name in Templates::names().into_iter().filter(|n| !is_marketing(n)) {
            let email = t.render(name, ctx.clone()).expect(name);
            assert!(!email.text.contains("nsubscribe") && !email.html.contains("nsubscribe"), "{name}");
        }
    }

    #[test]
    fn trial_ending_asks_for_a_payment_method_only_when_there_is_none() {
        let t = Templates::new(&settings());
        let ctx = |has: bool| {
            context! {
                customer => context! { name => "Ada" }, plan => context! { name => "Pro", amount => "$20.00 / month" },
                trial_end => "3 March 2026", has_payment_method => has,
                action_url => "https://billing.example.com/billing/update?token=t", action_label => "Add a payment method",
            }
        };
        let without = t.render("trial_ending", ctx(false)).expect("renders");
        assert!(without.text.to_lowercase().contains("add a payment method"), "{}", without.text);
        assert!(without.html.to_lowercase().contains("add a payment method"));
        assert!(without.text.contains("https://billing.example.com/billing/update?token=t"));
        assert!(without.subject.contains("3 March 2026") && without.text.contains("Pro plan at $20.00 / month"));
        let with = t.render("trial_ending", ctx(true)).expect("renders");
        let no_button = context! { has_payment_method => true, trial_end => "3 March 2026" };
        let bare = t.render("trial_ending", no_button).expect("renders");
        for email in [&with, &bare] {
            assert!(!email.text.to_lowercase().contains("add a payment method"), "{}", email.text);
            assert!(email.text.contains("nothing you need to do") && email.text.contains("charge the card on file"));
        }
        assert!(!bare.html.to_lowercase().contains("add a payment method"));
    }

    #[test]
    fn new_templates_render_without_any_of_their_variables() {
        let t = Templates::new(&settings());
        let empty = context! {};
        let nones = context! {
            customer => Value::from(()), plan => Value::from(()), day => Value::from(()), trial_end => Value::from(()),
            offer_text => Value::from(()), comeback_url => Value::from(()), canceled_on => Value::from(()),
        };
        for name in Templates::names() {
            if !is_marketing(name) && name != "trial_ending" {
                continue;
            }
            for ctx in [empty.clone(), nones.clone()] {
                let email = t.render(name, ctx).expect(name);
                assert!(email.text.starts_with("Hi there,"), "{name}: {}", email.text);
                assert!(!email.subject.is_empty() && email.html.contains("Hi there,"), "{name}");
                assert!(!email.text.contains("  ") && !email.text.contains("\n\n\n"), "{name}: {:?}", email.text);
            }
        }
    }
}
