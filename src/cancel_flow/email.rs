//! The confirmation email for a session's outcome. It is built here as (template, context) and
//! handed to the outbox (issue 3) at the one call site in `web::cancel::choose`, right after
//! the outcome is recorded. Templates: `templates/email/cancel_confirmation_<outcome>/`.

use serde_json::{Value, json};

use crate::domain::cancel::Outcome;
use crate::store::cancel::CancelSessionRow;

/// One email to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfirmationEmail {
    /// `cancel_confirmation_paused`, `…_downgraded`, `…_discounted` or `…_canceled`.
    pub template: String,
    /// The recipient (the customer's email from the store).
    pub to: String,
    /// Template variables: `brand`, `customer`, `subscription`, `outcome`, `detail`,
    /// `return_url`.
    pub context: Value,
    /// One email per session, whatever retries happen.
    pub dedupe_key: String,
}

/// The email confirming `outcome` for `session`; `None` when there is nothing to confirm
/// (abandoned) or no address.
pub fn confirmation_email(
    session: &CancelSessionRow,
    outcome: Outcome,
    detail: &Value,
    to: Option<&str>,
    brand: &str,
) -> Option<ConfirmationEmail> {
    if outcome == Outcome::Abandoned {
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
            "brand": brand,
            "customer": session.customer,
            "subscription": session.subscription,
            "outcome": outcome.as_str(),
            "detail": detail,
            "return_url": session.return_url,
        }),
        dedupe_key: format!("cancel_session:{}:confirmation", session.id),
    })
}
