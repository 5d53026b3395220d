//! The customer's choice: `POST /cancel/s/{id}/choose` carries it out in Stripe, then records it.

use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::Deserialize;

use crate::cancel::http::confirmation::queue_confirmation;
use crate::cancel::http::error::PageError;
use crate::cancel::http::forms::{PostedForm, posted};
use crate::cancel::http::offer::shown_offers;
use crate::cancel::http::session::{await_first_click, base, target};
use crate::cancel::http::{COMMENT_MAX_CHARS, CancelState};
use crate::cancel::offers::Target;
use crate::cancel::rules::{Choice, PausePlan, Reason};
use crate::cancel::storage::CancelSessionRow;
use crate::cancel::stripe_actions::{Action, ActionError, Done, carry_out};
use crate::store::Store;
use crate::stripe_api::StripeApi;
use crate::telemetry::capability_ref;
use crate::web::pages::see_other;

/// How long one request may hold a session while it talks to Stripe (longer than the
/// client's own timeout, so a lease never expires under a live call).
const ACTION_LEASE_SECS: i64 = 60;

#[derive(Debug, Deserialize)]
struct ChoiceForm {
    #[serde(default)]
    csrf: String,
    choice: String,
    /// The offer page's optional comment (added after the reason was chosen).
    #[serde(default)]
    comment: String,
}

impl PostedForm for ChoiceForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /cancel/s/{id}/choose`: carry out the choice in Stripe, then record it.
pub(super) async fn choose(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<CancelState>,
    store: web::Data<Store>,
) -> HttpResponse {
    let result = async {
        let now = state.now();
        let (s, form) = posted::<ChoiceForm>(&req, &id, payload, &state, &store, now).await?;
        if s.outcome.is_some() {
            return Ok(see_other(&format!("{}/done", base(&s))));
        }
        let choice = checked_choice(&state, &s, &form)?;
        let t = target(&store, &s).await?;
        let scheduled_end = t.scheduled_end(now);
        match (choice, scheduled_end) {
            // Undo is only for a cancellation Stripe has scheduled; everything else only for one
            // it hasn't (a second cancel, or a pause that would not stop the end, is refused).
            (Choice::Keep, None) => return Err(PageError::BadForm("nothing to keep")),
            (Choice::Keep, Some(_)) => {}
            (_, Some(_)) => return Ok(see_other(&base(&s))),
            (_, None) => {}
        }
        let pause = chosen_pause(&state, &t, choice, now)?;
        let stripe = state.stripe.as_ref().ok_or(PageError::StripeNotConfigured)?;
        // Cancelling without a survey answer is allowed (it is never more than one click
        // away); Stripe then gets `other`.
        let reason = s.reason.as_deref().and_then(Reason::parse).unwrap_or(Reason::Other);
        let Some(attempt) = store.claim_cancel_action(&s.id, now, ACTION_LEASE_SECS).await? else {
            // A second click while the first is with Stripe: wait for its result, then show it.
            return Ok(await_first_click(&state, &store, &s).await);
        };
        let comment = comment_to_send(&store, &s, form.comment.trim()).await?;
        let item = t.single_item();
        let action = Action {
            subscription: t.subscription.id.clone(),
            choice,
            item_id: item.map(|i| i.item_id.clone()),
            from_price: item.and_then(|i| i.price_id.clone()),
            downgrade_to: t.downgrade_to(&state.settings).cloned(),
            proration: state.settings.downgrade_proration.clone(),
            pause,
            coupon: t.discount(&state.settings).map(|d| d.coupon.clone()),
            keep_discounts: t.discount_ids(),
            reason,
            comment,
            period_end: scheduled_end.or(t.subscription.current_period_end),
            now,
            idempotency_key: format!("holdfast-cancel-{}-{}-{attempt}", capability_ref(&s.id), choice.key()),
        };
        let done = carry_out_or_release(stripe, &store, &s, &action).await?;
        record_outcome(&store, &s, &action, &done, now).await?;
        // ── CONFIRMATION EMAIL CALL SITE ──
        queue_confirmation(&state, &store, &s, &done).await;
        Ok(see_other(&format!("{}/done", base(&s))))
    }
    .await;
    respond_with_retry(&state, &id, result)
}

/// The posted choice, checked against the form's limits, the offers the session showed and
/// the configured pause lengths.
fn checked_choice(state: &CancelState, s: &CancelSessionRow, form: &ChoiceForm) -> Result<Choice, PageError> {
    let choice = Choice::parse(&form.choice).ok_or(PageError::BadForm("choice"))?;
    if form.comment.trim().chars().count() > COMMENT_MAX_CHARS {
        return Err(PageError::TooLarge);
    }
    if let Some(offer) = choice.offer()
        && !shown_offers(s).contains(&offer)
    {
        return Err(PageError::BadForm("offer not shown"));
    }
    if let Choice::Pause { months } = choice
        && !state.settings.pause_months.contains(&months)
    {
        return Err(PageError::BadForm("pause length"));
    }
    Ok(choice)
}

/// The pause plan a pause choice stands for (`None` for other choices).
fn chosen_pause(state: &CancelState, t: &Target, choice: Choice, now: i64) -> Result<Option<PausePlan>, PageError> {
    match choice {
        Choice::Pause { months } => Ok(Some(
            t.pauses(&state.settings, now)
                .into_iter()
                .find(|p| p.months == months)
                .ok_or(PageError::BadForm("pause length does not fit"))?,
        )),
        _ => Ok(None),
    }
}

/// The comment sent to Stripe. One written on the offer page replaces the survey's (it was
/// written later, often as an answer to the offers); it is kept with the session.
async fn comment_to_send(store: &Store, s: &CancelSessionRow, late_comment: &str) -> Result<Option<String>, PageError> {
    if late_comment.is_empty() {
        return Ok(s.comment.clone());
    }
    store.record_cancel_comment(&s.id, late_comment).await?;
    Ok(Some(late_comment.to_owned()))
}

/// Carry the action out in Stripe. On failure nothing is recorded: the session is given
/// back (stays open) and the customer may retry.
async fn carry_out_or_release(
    stripe: &StripeApi,
    store: &Store,
    s: &CancelSessionRow,
    action: &Action,
) -> Result<Done, PageError> {
    let e = match carry_out(stripe, action).await {
        Ok(done) => return Ok(done),
        Err(e) => e,
    };
    store.release_cancel_action(&s.id).await?;
    let choice = action.choice;
    match &e {
        ActionError::Stripe(err) => {
            tracing::error!(session = %capability_ref(&s.id), choice = %choice.key(), error = %stripe_error_summary(err), "cancel flow: Stripe call failed")
        }
        ActionError::Observed => {
            tracing::info!(session = %capability_ref(&s.id), choice = %choice.key(), "cancel flow: observe-only mode, change recorded not made");
            return Err(PageError::Observed);
        }
        other => tracing::error!(session = %capability_ref(&s.id), error = %other, "cancel flow: action not possible"),
    }
    Err(PageError::Stripe(e))
}

/// Record the outcome with the exact request Stripe accepted, in one transaction, for the
/// owner's record of what Holdfast changed and who caused it.
async fn record_outcome(store: &Store, s: &CancelSessionRow, action: &Action, done: &Done, now: i64) -> Result<(), PageError> {
    let detail = done.detail.to_string();
    let change = crate::cancel::changes::NewStripeChange {
        customer: &s.customer,
        subscription: Some(&action.subscription),
        sent: &done.sent,
        purpose: "cancel_flow",
        triggered_by: crate::cancel::changes::cancel_flow_trigger(&s.source),
        idempotency_key: Some(&action.idempotency_key),
        at: now,
    };
    store.record_cancel_outcome_and_change(&s.id, done.outcome, &detail, done.paused_until, &change).await?;
    tracing::info!(session = %capability_ref(&s.id), outcome = done.outcome.as_str(), "cancel flow: outcome recorded");
    Ok(())
}

/// Like `respond`, but a failed Stripe call's page offers "Try again" (back to the offers).
fn respond_with_retry(state: &CancelState, id: &str, result: Result<HttpResponse, PageError>) -> HttpResponse {
    match result {
        Ok(r) => r,
        Err(e @ (PageError::Stripe(_) | PageError::StripeNotConfigured | PageError::Store(_))) => {
            state.log_failure(&e);
            let (title, message) = e.words();
            let retry_url =
                (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("/cancel/s/{id}/offer"));
            state.pages.render(
                e.status(),
                "error.html",
                context! { title, message, retry_url, return_url => state.settings.return_url.as_deref() },
            )
        }
        Err(e) => state.fail(&e, None),
    }
}

/// Stripe's error, summarised for the log: type, code and message from Stripe, or the
/// transport error. Never the request (it carries no key, but keep logs small) nor the key.
fn stripe_error_summary(e: &stripe::StripeError) -> String {
    match e {
        stripe::StripeError::Stripe(api, status) => {
            format!("status {status}: {:?} {:?} {:?}", api.type_, api.code, api.message)
        }
        other => other.to_string(),
    }
}
