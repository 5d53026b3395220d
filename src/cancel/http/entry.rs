//! The links that open a session: `GET /cancel` (signed or one-time link) and `GET /pause`
//! (the re-engagement series' pause link).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::cancel::http::error::PageError;
use crate::cancel::http::session::{base, target};
use crate::cancel::http::{CancelState, ended_page, respond};
use crate::cancel::links;
use crate::cancel::links::{plausible_customer_id, random_token, token_hash};
use crate::cancel::offers::Target;
use crate::cancel::rules::{OfferKind, Reason};
use crate::cancel::storage::{CancelSessionRow, NewCancelSession, SurveyAnswer};
use crate::dunning::BillingPortal;
use crate::mail::links::LinkClaims;
use crate::store::Store;
use crate::telemetry::capability_ref;
use crate::web::pages::see_other;

#[derive(Debug, Deserialize)]
pub struct EntryQuery {
    customer: Option<String>,
    sig: Option<String>,
    token: Option<String>,
}

/// `GET /cancel`: a signed link or a one-time link starts a session.
pub(super) async fn enter(
    req: HttpRequest,
    state: web::Data<CancelState>,
    store: web::Data<Store>,
    portal: Option<web::Data<BillingPortal>>,
) -> HttpResponse {
    let query = web::Query::<EntryQuery>::from_query(req.query_string()).map(web::Query::into_inner);
    let result = async {
        state.limit(&req)?;
        let query = query.map_err(|_| PageError::BadLink)?;
        let now = state.now();
        // Housekeeping that keeps the recorded outcomes true: old unfinished sessions end.
        store.mark_abandoned_cancel_sessions(now).await?;
        let session_id = match (query.token, query.customer, query.sig) {
            (Some(token), _, _) => {
                let session = store
                    .start_minted_cancel_session(&token_hash(&token), now, state.settings.session_timeout_secs)
                    .await?
                    .ok_or(PageError::BadLink)?;
                session.id
            }
            (None, Some(customer), Some(sig)) => match start_signed(&state, &store, &customer, &sig, now).await? {
                Some(id) => id,
                // A genuine link of a customer whose subscription has ended.
                None => return ended_page(&state, &store, portal.as_deref().map(|p| &**p), &customer, None).await,
            },
            _ => return Err(PageError::BadLink),
        };
        Ok(see_other(&format!("/cancel/s/{session_id}")))
    }
    .await;
    respond(&state, result)
}

#[derive(Debug, Deserialize)]
pub struct PauseQuery {
    token: Option<String>,
}

/// `GET /pause?token=…`: the pause link of the re-engagement series. The signed token (the
/// update-payment links' signer, marked for this page) names the customer; following it
/// opens a cancel-flow session already past the survey (reason `unused`, the series' premise)
/// whose offer is the pause alone, and sends the customer to its offer page. Opening the link
/// changes nothing in Stripe: the page's button does (the cancel flow's own POST).
pub(super) async fn pause_entry(
    req: HttpRequest,
    state: web::Data<CancelState>,
    store: web::Data<Store>,
    portal: Option<web::Data<BillingPortal>>,
) -> HttpResponse {
    let query = web::Query::<PauseQuery>::from_query(req.query_string()).map(web::Query::into_inner);
    let result = async {
        state.limit(&req)?;
        let now = state.now();
        let portal = portal.as_deref().map(|p| &**p).ok_or(PageError::BadLink)?;
        let token = query.ok().and_then(|q| q.token).ok_or(PageError::BadLink)?;
        let claims = pause_claims(portal, &token, now)?;
        store.mark_abandoned_cancel_sessions(now).await?;
        let Some((subscription, _)) = store.live_subscription_of(&claims.customer, None).await? else {
            return ended_page(&state, &store, Some(portal), &claims.customer, None).await;
        };
        let session = pause_session(&state, claims.customer, subscription.id, now);
        store.insert_cancel_session(&session).await?;
        let row = store.cancel_session(&session.id).await?.ok_or(PageError::BadLink)?;
        let t = target(&store, &row).await?;
        if t.scheduled_end(now).is_some() {
            // Already ending: the session page shows the date and "Keep my subscription".
            return Ok(see_other(&base(&row)));
        }
        open_at_pause_offer(&state, &store, &row, &t, now).await
    }
    .await;
    respond(&state, result)
}

/// The pause link's claims: a live token marked for this page, naming a customer.
fn pause_claims(portal: &BillingPortal, token: &str, now: i64) -> Result<LinkClaims, PageError> {
    match portal.signer.verify(token, now) {
        Ok(c) if c.invoice == crate::mail::links::PAUSE_LINK_MARK && plausible_customer_id(&c.customer) => Ok(c),
        Err(crate::mail::links::LinkError::Expired) => Err(PageError::Expired),
        _ => Err(PageError::BadLink),
    }
}

/// A session opened by the pause link, started now.
fn pause_session(state: &CancelState, customer: String, subscription: String, now: i64) -> NewCancelSession {
    NewCancelSession {
        id: random_token(),
        link_token_hash: None,
        csrf_token: random_token(),
        customer,
        subscription: Some(subscription),
        return_url: None,
        source: "pause_link",
        created_at: now,
        link_expires_at: now + state.settings.session_timeout_secs,
        started_at: Some(now),
        deadline_at: Some(now + state.settings.session_timeout_secs),
        // Not part of a save-offer experiment: nothing is withheld from this link.
        experiment: None,
        variant: None,
    }
}

/// Record the survey as answered (reason `unused`, the pause the only offer) and send the
/// customer to the offer page; or say the subscription can't be paused.
async fn open_at_pause_offer(
    state: &CancelState,
    store: &Store,
    row: &CancelSessionRow,
    t: &Target,
    now: i64,
) -> Result<HttpResponse, PageError> {
    let reason = Reason::Unused;
    // The pause whatever the reasons' offer lists say (the email promised it), when pauses
    // are switched on and this subscription can be paused.
    let facts = crate::cancel::offers::facts(store, &state.settings, &row.customer, t, now).await?;
    let offers = crate::cancel::rules::applicable_offers(&[OfferKind::Pause], &state.settings.offers_enabled, &facts);
    if offers.is_empty() {
        // Not pausable (already paused, a plan or billing mode Stripe can't pause, pauses
        // switched off): say so rather than show a cancel page the link did not promise.
        return Ok(state.pages.error(
            StatusCode::OK,
            "Pause",
            "This subscription can't be paused from here. Reply to our email and we'll sort it out with you.",
            state.settings.return_url.as_deref(),
        ));
    }
    let offers_json = serde_json::to_string(&offers).unwrap_or_else(|_| "[]".into());
    let answer = SurveyAnswer {
        reason: reason.as_str(),
        feedback: reason.stripe_feedback(),
        comment: None,
        offers_shown_json: &offers_json,
        at: now,
    };
    store.record_cancel_survey(&row.id, &answer).await?;
    tracing::info!(session = %capability_ref(&row.id), "pause link: session opened at the pause offer");
    Ok(see_other(&format!("{}/offer", base(row))))
}

/// Start a session for a verified signed link; `None` when the customer has no live
/// subscription.
async fn start_signed(
    state: &CancelState,
    store: &Store,
    customer: &str,
    sig: &str,
    now: i64,
) -> Result<Option<String>, PageError> {
    let secret = state.settings.link_secret.as_ref().ok_or(PageError::BadLink)?;
    if !plausible_customer_id(customer) || !links::verify(customer, sig, secret) {
        return Err(PageError::BadLink);
    }
    let Some((subscription, _)) = store.live_subscription_of(customer, None).await? else { return Ok(None) };
    let session = NewCancelSession {
        id: random_token(),
        link_token_hash: None,
        csrf_token: random_token(),
        customer: customer.to_owned(),
        subscription: Some(subscription.id),
        return_url: None,
        source: "signed_link",
        created_at: now,
        link_expires_at: now + state.settings.session_timeout_secs,
        started_at: Some(now),
        deadline_at: Some(now + state.settings.session_timeout_secs),
        experiment: state.experiment.as_ref().map(|x| x.split.name.clone()),
        variant: state.experiment.as_ref().map(|x| x.split.variant(customer).to_owned()),
    };
    store.insert_cancel_session(&session).await?;
    Ok(Some(session.id))
}
