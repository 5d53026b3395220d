//! The exit survey: `GET /cancel/s/{id}` and `POST /cancel/s/{id}/reason`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::Deserialize;

use crate::cancel::http::error::PageError;
use crate::cancel::http::forms::{PostedForm, posted};
use crate::cancel::http::session::{await_first_click, base, finished, open_session, target};
use crate::cancel::http::{COMMENT_MAX_CHARS, CancelState, ended_page, long_date, respond, update_card_url};
use crate::cancel::offers::offers_for;
use crate::cancel::rules::Reason;
use crate::cancel::storage::SurveyAnswer;
use crate::dunning::BillingPortal;
use crate::store::Store;
use crate::web::pages::see_other;

/// `GET /cancel/s/{id}`: the exit survey — or, when Stripe already has a cancellation
/// scheduled, its date and "Keep my subscription"; when the subscription ended, the way back.
pub(super) async fn survey_page(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<CancelState>,
    store: web::Data<Store>,
    portal: Option<web::Data<BillingPortal>>,
) -> HttpResponse {
    let result = async {
        state.limit(&req)?;
        let now = state.now();
        let s = open_session(&store, &id, now).await?;
        if finished(&s) {
            return Ok(see_other(&format!("{}/done", base(&s))));
        }
        if s.outcome.is_some() {
            return Err(PageError::Expired);
        }
        let t = match target(&store, &s).await {
            Err(PageError::NoSubscription) => {
                return ended_page(&state, &store, portal.as_deref().map(|p| &**p), &s.customer, state.return_url(&s)).await;
            }
            other => other?,
        };
        if let Some(end) = t.scheduled_end(now) {
            return Ok(state.pages.render(
                StatusCode::OK,
                "scheduled.html",
                context! {
                    base => base(&s), csrf => s.csrf_token, ends_on => long_date(end),
                    past_due => t.past_due(),
                    update_card_url => t.past_due().then(|| update_card_url(&state, portal.as_deref().map(|p| &**p), &s.customer)).flatten(),
                    return_url => state.return_url(&s),
                },
            ));
        }
        let reasons: Vec<_> = Reason::ALL.iter().map(|r| context! { value => r.as_str(), label => r.label() }).collect();
        Ok(state.pages.render(
            StatusCode::OK,
            "survey.html",
            context! {
                base => base(&s), csrf => s.csrf_token, reasons, return_url => state.return_url(&s),
                past_due => t.past_due(),
                update_card_url => t.past_due().then(|| update_card_url(&state, portal.as_deref().map(|p| &**p), &s.customer)).flatten(),
            },
        ))
    }
    .await;
    respond(&state, result)
}

#[derive(Debug, Deserialize)]
struct ReasonForm {
    /// Absent is treated like forged: `403`, not a form error.
    #[serde(default)]
    csrf: String,
    reason: String,
    #[serde(default)]
    comment: String,
}

impl PostedForm for ReasonForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /cancel/s/{id}/reason`: record the answer and the offers that apply.
pub(super) async fn post_reason(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<CancelState>,
    store: web::Data<Store>,
) -> HttpResponse {
    let result = async {
        let now = state.now();
        let (s, form) = posted::<ReasonForm>(&req, &id, payload, &state, &store, now).await?;
        if s.outcome.is_some() {
            return Ok(see_other(&format!("{}/done", base(&s))));
        }
        let reason = Reason::parse(&form.reason).ok_or(PageError::BadForm("reason"))?;
        let comment = form.comment.trim();
        if comment.chars().count() > COMMENT_MAX_CHARS {
            return Err(PageError::TooLarge);
        }
        let t = target(&store, &s).await?;
        if t.scheduled_end(now).is_some() {
            // Already ending: the session page offers the undo, not the survey.
            return Ok(see_other(&base(&s)));
        }
        let experiment = state.experiment.as_ref().filter(|_| s.variant.as_deref() == Some("b"));
        // The experiment's holdout sees no offer: "cancel anyway" only.
        let offers = match s.variant.as_deref() {
            Some(crate::domain::lift::HOLDOUT) => Vec::new(),
            _ => offers_for(&store, &state.settings, experiment, &s.customer, &t, reason, now).await?,
        };
        let offers_json = serde_json::to_string(&offers).unwrap_or_else(|_| "[]".into());
        let answer = SurveyAnswer {
            reason: reason.as_str(),
            feedback: reason.stripe_feedback(),
            comment: (!comment.is_empty()).then_some(comment),
            offers_shown_json: &offers_json,
            at: now,
        };
        if !store.record_cancel_survey(&s.id, &answer).await? {
            // A choice is with Stripe (or just finished): show its result, not an error.
            return Ok(await_first_click(&state, &store, &s).await);
        }
        Ok(see_other(&format!("{}/offer", base(&s))))
    }
    .await;
    respond(&state, result)
}
