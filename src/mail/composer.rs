//! Email composition: a template rendered with its context into a `NewEmail` for the outbox,
//! marketing mail carrying its one-click unsubscribe link, and the email experiment's choice
//! of template. Shared by every feature that sends mail.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::Value;

use crate::mail::templates::{RenderError, Templates};
use crate::mail::unsubscribe::UnsubscribeLinks;
use crate::mail::{Category, EmailContent, NewEmail};

/// Addressing of one email.
#[derive(Debug, Clone)]
pub struct EmailTo<'a> {
    pub dedupe_key: String,
    pub case_key: Option<String>,
    pub customer: Option<&'a str>,
    pub recipient: &'a str,
    pub send_at: i64,
}

/// The email experiment's other templates: a customer in variant b gets `templates[t]` in
/// place of template `t`. Built by the wiring from the experiment settings, so mail does not
/// know how customers are split.
#[derive(Clone)]
pub struct TemplateVariants {
    pub templates: BTreeMap<String, String>,
    /// Whether the customer is in variant b.
    pub in_b: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

impl std::fmt::Debug for TemplateVariants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateVariants").field("templates", &self.templates).finish_non_exhaustive()
    }
}

/// Renders emails: the templates, the unsubscribe links of marketing mail and the email
/// experiment's template variants.
#[derive(Debug)]
pub struct Composer {
    pub templates: Templates,
    /// One-click unsubscribe links of marketing mail.
    pub unsubscribe: UnsubscribeLinks,
    variants: Option<TemplateVariants>,
}

impl Composer {
    pub fn new(templates: Templates, unsubscribe: UnsubscribeLinks, variants: Option<TemplateVariants>) -> Self {
        Self { templates, unsubscribe, variants }
    }

    /// Render a transactional email (dunning, receipts, trial notices).
    pub fn email(&self, template: &str, ctx: Value, to: EmailTo<'_>) -> Result<NewEmail, RenderError> {
        self.build(template, ctx, to, Category::Transactional)
    }

    /// Render a marketing email: it carries the recipient's one-click unsubscribe link (in
    /// the body as `unsubscribe_url`, and later as the List-Unsubscribe header).
    pub fn marketing_email(&self, template: &str, ctx: Value, to: EmailTo<'_>) -> Result<NewEmail, RenderError> {
        self.build(template, ctx, to, Category::Marketing)
    }

    /// The template `customer` gets in place of `template` under the email experiment.
    pub fn template_for<'a>(&'a self, template: &'a str, customer: Option<&str>) -> &'a str {
        match (&self.variants, customer) {
            (Some(x), Some(c)) if (x.in_b)(c) => x.templates.get(template).map_or(template, String::as_str),
            _ => template,
        }
    }

    /// Render `template` (or its variant) as an email of `category`.
    pub fn build(&self, template: &str, ctx: Value, to: EmailTo<'_>, category: Category) -> Result<NewEmail, RenderError> {
        let template = self.template_for(template, to.customer);
        let unsubscribe_url = (category == Category::Marketing).then(|| self.unsubscribe.url(to.recipient));
        let ctx = minijinja::context! { unsubscribe_url => unsubscribe_url.clone(), ..ctx };
        let content: EmailContent = self.templates.render(template, ctx)?;
        Ok(NewEmail {
            dedupe_key: to.dedupe_key,
            case_key: to.case_key,
            category,
            customer: to.customer.map(str::to_owned),
            recipient: to.recipient.to_owned(),
            template: template.to_owned(),
            content,
            send_at: to.send_at,
            unsubscribe_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::SecretString;

    use super::*;
    use crate::mail::templates::sample_context;
    use crate::settings::Settings;

    fn composer(variants: Option<TemplateVariants>) -> Composer {
        let vars: HashMap<&str, String> =
            HashMap::from([("STRIPE_WEBHOOK_SECRET", "whsec_a".to_owned()), ("HOLDFAST_STRIPE_MODE", "test".to_owned())]);
        let settings = Settings::from_source(&vars).expect("valid");
        let secret = [SecretString::from("whsec_a")];
        Composer::new(Templates::new(&settings.mail), UnsubscribeLinks::new("https://h.example", None, &secret), variants)
    }

    fn to(customer: &str) -> EmailTo<'_> {
        EmailTo { dedupe_key: "k".into(), case_key: None, customer: Some(customer), recipient: "ada@example.com", send_at: 0 }
    }

    #[test]
    fn variant_b_customers_get_the_experiments_template_and_others_the_named_one() {
        let variants = TemplateVariants {
            templates: BTreeMap::from([("payment_failed".to_owned(), "payment_failed_final".to_owned())]),
            in_b: Arc::new(|c| c == "cus_b"),
        };
        let c = composer(Some(variants));
        assert_eq!(c.template_for("payment_failed", Some("cus_b")), "payment_failed_final");
        assert_eq!(c.template_for("payment_failed", Some("cus_a")), "payment_failed");
        assert_eq!(c.template_for("card_expiring", Some("cus_b")), "card_expiring");
        assert_eq!(c.template_for("payment_failed", None), "payment_failed");
    }

    #[test]
    fn only_marketing_mail_carries_an_unsubscribe_link() {
        let c = composer(None);
        let receipt = c.email("payment_failed", sample_context(), to("cus_a")).expect("renders");
        assert_eq!((receipt.category, receipt.unsubscribe_url.as_deref()), (Category::Transactional, None));
        let campaign = c.marketing_email("payment_failed", sample_context(), to("cus_a")).expect("renders");
        let url = campaign.unsubscribe_url.expect("an unsubscribe link");
        assert!(url.starts_with("https://h.example/"), "{url}");
        assert_eq!(
            (campaign.category, campaign.recipient.as_str(), campaign.dedupe_key.as_str()),
            (Category::Marketing, "ada@example.com", "k")
        );
    }
}
