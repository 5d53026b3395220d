//! The confirmation email for a session's outcome. It is built here as (template, context) and
//! handed to the mail outbox at the one call site in `cancel::http::choose`, right after
//! the outcome is recorded. Templates: `templates/email/cancel_confirmation_<outcome>/`.

use serde_json::{Value, json};

use crate::cancel::rules::Outcome;
use crate::cancel::storage::CancelSessionRow;

/// One email to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfirmationEmail {
    /// `cancel_confirmation_paused`, `…_downgraded`, `…_discounted` or `…_canceled`.
    pub template: String,
    /// The recipient (the customer's email from the store).
    pub to: String,
    /// Template variables: `customer` (`id`, `email`), `subscription`, `outcome`, `detail`
    /// (the outcome's JSON), `resumes_on` (a pause's end, e.g. `27 February 2027`), `ends_on`
    /// (a cancellation's end date),
    /// `discount_text`, `proration_none` (a downgrade billed from the next renewal), `return_url`. The mail layer adds `brand`.
    pub context: Value,
    /// One email per session, whatever retries happen.
    pub dedupe_key: String,
}

/// A timestamp field as customers read dates: `27 February 2027`.
fn date(v: &Value) -> Option<String> {
    v.as_i64().and_then(|t| chrono::DateTime::from_timestamp(t, 0)).map(|t| t.format("%-d %B %Y").to_string())
}

/// The email confirming `outcome` for `session`; `None` when there is nothing to confirm
/// (abandoned) or no address.
pub fn confirmation_email(
    session: &CancelSessionRow,
    outcome: Outcome,
    detail: &Value,
    to: Option<&str>,
    discount_text: &str,
) -> Option<ConfirmationEmail> {
    // Nothing to confirm for an abandoned session; an undone cancellation is confirmed on
    // its page (the subscription simply carries on as before).
    if matches!(outcome, Outcome::Abandoned | Outcome::Resumed) {
        return None;
    }
    let to = to?.trim();
    if to.is_empty() {
        return None;
    }
    Some(ConfirmationEmail {
        template: format!("cancel_confirmation_{}", outcome.as_str()),
        to: to.to_owned(),
        context: json!({
            "customer": {"id": session.customer, "email": to, "name": Value::Null},
            "resumes_on": date(&detail["resumes_on"]).or_else(|| date(&detail["resumes_at"])),
            "ends_on": date(&detail["ends_at"]),
            "discount_text": discount_text,
            "proration_none": detail["proration_behavior"] == "none",
            "subscription": session.subscription,
            "outcome": outcome.as_str(),
            "detail": detail,
            "return_url": session.return_url,
        }),
        dedupe_key: format!("cancel_session:{}:confirmation", session.id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> CancelSessionRow {
        CancelSessionRow {
            id: "s1".into(),
            csrf_token: "c".into(),
            customer: "cus_1".into(),
            subscription: Some("sub_1".into()),
            return_url: Some("https://app.example.com".into()),
            source: "signed_link".into(),
            created_at: 0,
            link_expires_at: 0,
            started_at: Some(0),
            deadline_at: Some(0),
            reason: Some("unused".into()),
            feedback: Some("unused".into()),
            comment: None,
            reason_at: None,
            offers_shown: "[]".into(),
            acting_until: None,
            attempts: 1,
            outcome: None,
            outcome_detail: None,
            paused_until: None,
            completed_at: None,
            variant: None,
        }
    }

    const OUTCOMES: [(Outcome, &str, &str, &str); 4] = [
        (
            Outcome::Paused,
            include_str!("../../templates/email/cancel_confirmation_paused/subject.txt"),
            include_str!("../../templates/email/cancel_confirmation_paused/body.txt"),
            include_str!("../../templates/email/cancel_confirmation_paused/body.html"),
        ),
        (
            Outcome::Downgraded,
            include_str!("../../templates/email/cancel_confirmation_downgraded/subject.txt"),
            include_str!("../../templates/email/cancel_confirmation_downgraded/body.txt"),
            include_str!("../../templates/email/cancel_confirmation_downgraded/body.html"),
        ),
        (
            Outcome::Discounted,
            include_str!("../../templates/email/cancel_confirmation_discounted/subject.txt"),
            include_str!("../../templates/email/cancel_confirmation_discounted/body.txt"),
            include_str!("../../templates/email/cancel_confirmation_discounted/body.html"),
        ),
        (
            Outcome::Canceled,
            include_str!("../../templates/email/cancel_confirmation_canceled/subject.txt"),
            include_str!("../../templates/email/cancel_confirmation_canceled/body.txt"),
            include_str!("../../templates/email/cancel_confirmation_canceled/body.html"),
        ),
    ];

    #[test]
    fn every_outcome_has_templates_that_render_with_the_context() {
        for (outcome, subject, text, html) in OUTCOMES {
            let detail = json!({"resumes_at": 1_772_280_000, "proration_behavior": "none", "ends_at": 1_772_280_000});
            let email = confirmation_email(&session(), outcome, &detail, Some("a@example.com"), "30 % off for 3 months.")
                .expect("an email");
            assert_eq!(email.template, format!("cancel_confirmation_{}", outcome.as_str()));
            assert_eq!(email.dedupe_key, "cancel_session:s1:confirmation");
            let mut env = minijinja::Environment::new();
            env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
            env.add_template("_layout.html", "{% block content %}{% endblock %}").expect("layout");
            env.add_template("body.html", html).expect("html");
            let mut ctx = email.context.clone();
            ctx["brand"] = json!({"name": "Acme", "color": "#1d4ed8"});
            let subject = env.render_str(subject, &ctx).expect("subject renders");
            let body = env.render_str(text, &ctx).expect("text renders");
            let body_html = env.get_template("body.html").and_then(|t| t.render(&ctx)).expect("html renders");
            assert!(subject.contains("Acme") && body.contains("Acme") && body_html.contains("Acme"));
            if outcome == Outcome::Paused {
                assert!(subject.contains("28 February 2026"), "{subject}");
            }
            if outcome == Outcome::Canceled {
                assert!(body.contains("It ends on 28 February 2026.") && body_html.contains("28 February 2026"), "{body}");
            }
        }
        assert_eq!(confirmation_email(&session(), Outcome::Abandoned, &json!({}), Some("a@example.com"), ""), None);
        assert_eq!(confirmation_email(&session(), Outcome::Canceled, &json!({}), None, ""), None);
    }
}
