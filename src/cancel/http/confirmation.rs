//! The outcome's confirmation email, queued once Stripe made the change.

use crate::cancel::email::confirmation_email;
use crate::cancel::http::CancelState;
use crate::cancel::storage::CancelSessionRow;
use crate::cancel::stripe_actions::Done;
use crate::mail::{Category, NewEmail};
use crate::store::Store;
use crate::telemetry::capability_ref;

/// Queue the outcome's confirmation email in the outbox, rendered now. A failure to queue is
/// logged, never shown: Stripe already made the change and the session is recorded.
pub(super) async fn queue_confirmation(state: &CancelState, store: &Store, s: &CancelSessionRow, done: &Done) {
    let to = match store.customer_email(&s.customer).await {
        Ok(to) => to,
        Err(e) => {
            tracing::warn!(session = %capability_ref(&s.id), error = %e, "cancel flow: customer email unreadable; no confirmation");
            return;
        }
    };
    let Some(mut email) = confirmation_email(s, done.outcome, &done.detail, to.as_deref(), &state.settings.discount_text) else {
        return;
    };
    // Greet the customer by name where Stripe knows it (an unreadable name is no reason to
    // skip the confirmation).
    if let Ok(Some(name)) = store.customer_name(&s.customer).await {
        email.context["customer"]["name"] = serde_json::Value::from(name);
    }
    let content = match state.mail_templates.render(&email.template, minijinja::Value::from_serialize(&email.context)) {
        Ok(content) => content,
        Err(e) => {
            tracing::error!(session = %capability_ref(&s.id), template = %email.template, error = %e, "cancel flow: confirmation email failed to render");
            return;
        }
    };
    let queued = NewEmail {
        dedupe_key: email.dedupe_key,
        case_key: None,
        category: Category::Transactional,
        customer: Some(s.customer.clone()),
        recipient: email.to,
        template: email.template,
        content,
        send_at: state.now(),
        unsubscribe_url: None,
    };
    if let Err(e) = store.enqueue_emails(&[queued], state.now()).await {
        tracing::error!(session = %capability_ref(&s.id), error = %e, "cancel flow: confirmation email not queued");
    }
}
