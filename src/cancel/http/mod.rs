//! The cancel flow's pages (public) and the owner's link-minting endpoint.
//!
//! ```text
//! GET  /cancel?customer=cus_…&sig=…   signed link  ─┐ create/start a session,
//! GET  /cancel?token=…                one-time link ─┘ 303 → /cancel/s/{id}
//! GET  /cancel/s/{id}                 survey (one button per reason)       click 1
//! POST /cancel/s/{id}/reason          record reason + offers → 303 offer
//! GET  /cancel/s/{id}/offer           offers + "cancel anyway"             click 2
//! POST /cancel/s/{id}/choose          Stripe call, then record → 303 done
//! GET  /cancel/s/{id}/done            result (or "one moment" while Stripe answers)
//! GET  /pause?token=…                 re-engagement pause link: a session whose only offer
//!                                     is the pause → 303 /cancel/s/{id}/offer
//! GET  /billing/updated               where the billing portal returns without a product URL
//! POST /api/cancel-sessions           owner: mint a one-time link
//! ```
//! The session id in the path is an unguessable capability; every form also carries the
//! session's CSRF token. The outcome is recorded only after Stripe accepted the change.

pub mod error;
pub mod pages;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use minijinja::context;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use self::error::PageError;
use self::pages::{Pages, see_other};
use crate::cancel::email::confirmation_email;
use crate::cancel::links;
use crate::cancel::links::plausible_customer_id;
use crate::cancel::links::random_token;
use crate::cancel::links::token_hash;
use crate::cancel::offers::Target;
use crate::cancel::offers::offers_for;
use crate::cancel::rules::Choice;
use crate::cancel::rules::OfferKind;
use crate::cancel::rules::PauseMethod;
use crate::cancel::rules::Reason;
use crate::cancel::storage::CancelSessionRow;
use crate::cancel::storage::NewCancelSession;
use crate::cancel::storage::SurveyAnswer;
use crate::cancel::stripe_actions::Action;
use crate::cancel::stripe_actions::ActionError;
use crate::cancel::stripe_actions::Done;
use crate::cancel::stripe_actions::carry_out;
use crate::clock::Clock;
use crate::config::CancelFlowSettings;
use crate::config::Experiment;
use crate::dunning::update_payment::BillingPortal;
use crate::mail::links::LINK_TTL_SECS;
use crate::mail::templates::Templates;
use crate::mail::{Category, NewEmail};
use crate::store::Store;
use crate::stripe_api::StripeApi;
use crate::telemetry::capability_ref;
use crate::web::auth::Owner;
use crate::web::error::ApiError;
use crate::web::rate_limit::RateLimiter;

/// Form bodies are a token, a reason and a comment of at most `COMMENT_MAX` characters.
const FORM_LIMIT_BYTES: usize = 4 * 1024;
const COMMENT_MAX_CHARS: usize = 1000;
/// How long one request may hold a session while it talks to Stripe (longer than the
/// client's own timeout, so a lease never expires under a live call).
const ACTION_LEASE_SECS: i64 = 60;
/// `return_url` longer than this is refused at minting.
const RETURN_URL_MAX: usize = 2000;

/// What the cancel-flow handlers share.
#[derive(Debug)]
pub struct CancelState {
    /// The mail layer's email templates, for the confirmation email.
    pub mail_templates: Templates,
    pub settings: CancelFlowSettings,
    /// The save-offer experiment in force, if any: its variant b sees other offers.
    pub experiment: Option<Experiment>,
    pub public_url: String,
    pub stripe: Option<StripeApi>,
    pub pages: Pages,
    pub limiter: RateLimiter,
    pub clock: Clock,
}

/// Register the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/cancel", web::get().to(enter))
        .route("/cancel/s/{id}", web::get().to(survey_page))
        .route("/cancel/s/{id}/reason", web::post().to(post_reason))
        .route("/cancel/s/{id}/offer", web::get().to(offer_page))
        .route("/cancel/s/{id}/choose", web::post().to(choose))
        .route("/cancel/s/{id}/done", web::get().to(done_page))
        .route("/pause", web::get().to(pause_entry))
        .route("/billing/updated", web::get().to(crate::dunning::update_payment::updated_page))
        .route("/api/cancel-sessions", web::post().to(mint));
}

impl CancelState {
    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn log_failure(&self, e: &PageError) {
        match e {
            PageError::Store(err) => tracing::error!(error = ?err, "cancel flow: storage failed"),
            PageError::Stripe(_) | PageError::StripeNotConfigured => {}
            other => tracing::info!(refused = %other, "cancel flow: request refused"),
        }
    }

    fn fail(&self, e: &PageError, return_url: Option<&str>) -> HttpResponse {
        self.log_failure(e);
        let (title, message) = e.words();
        let return_url = return_url.or(self.settings.return_url.as_deref());
        self.pages.error(e.status(), title, message, return_url)
    }

    fn limit(&self, req: &HttpRequest) -> Result<(), PageError> {
        if self.limiter.allow_request(req) { Ok(()) } else { Err(PageError::RateLimited) }
    }

    /// The same per-address limit for the other public pages (unsubscribe, come-back): the
    /// friendly `429` page when over it.
    pub fn rate_limited(&self, req: &HttpRequest) -> Option<HttpResponse> {
        self.limit(req).err().map(|e| self.fail(&e, None))
    }

    fn return_url<'a>(&'a self, s: &'a CancelSessionRow) -> Option<&'a str> {
        s.return_url.as_deref().or(self.settings.return_url.as_deref())
    }
}

/// Answer `result`, rendering any error as the friendly page.
fn respond(state: &CancelState, result: Result<HttpResponse, PageError>) -> HttpResponse {
    result.unwrap_or_else(|e| state.fail(&e, None))
}

#[derive(Debug, Deserialize)]
pub struct EntryQuery {
    customer: Option<String>,
    sig: Option<String>,
    token: Option<String>,
}

/// `GET /cancel`: a signed link or a one-time link starts a session.
async fn enter(
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
async fn pause_entry(
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
        let claims = match portal.signer.verify(&token, now) {
            Ok(c) if c.invoice == crate::ingest::react::PAUSE_LINK_MARK && plausible_customer_id(&c.customer) => c,
            Err(crate::mail::links::LinkError::Expired) => return Err(PageError::Expired),
            _ => return Err(PageError::BadLink),
        };
        store.mark_abandoned_cancel_sessions(now).await?;
        let Some((subscription, _)) = store.live_subscription_of(&claims.customer, None).await? else {
            return ended_page(&state, &store, Some(portal), &claims.customer, None).await;
        };
        let session = NewCancelSession {
            id: random_token(),
            link_token_hash: None,
            csrf_token: random_token(),
            customer: claims.customer.clone(),
            subscription: Some(subscription.id),
            return_url: None,
            source: "pause_link",
            created_at: now,
            link_expires_at: now + state.settings.session_timeout_secs,
            started_at: Some(now),
            deadline_at: Some(now + state.settings.session_timeout_secs),
            // Not part of a save-offer experiment: nothing is withheld from this link.
            experiment: None,
            variant: None,
        };
        store.insert_cancel_session(&session).await?;
        let row = store.cancel_session(&session.id).await?.ok_or(PageError::BadLink)?;
        let t = target(&store, &row).await?;
        if t.scheduled_end(now).is_some() {
            // Already ending: the session page shows the date and "Keep my subscription".
            return Ok(see_other(&base(&row)));
        }
        let reason = Reason::Unused;
        // The pause whatever the reasons' offer lists say (the email promised it), when pauses
        // are switched on and this subscription can be paused.
        let facts = crate::cancel::offers::facts(&store, &state.settings, &row.customer, &t, now).await?;
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
        Ok(see_other(&format!("{}/offer", base(&row))))
    }
    .await;
    respond(&state, result)
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
        experiment: state.experiment.as_ref().map(|x| x.name.clone()),
        variant: state.experiment.as_ref().map(|x| x.variant(customer).to_owned()),
    };
    store.insert_cancel_session(&session).await?;
    Ok(Some(session.id))
}

/// A session that may still be acted on: started, unfinished, before its deadline.
async fn open_session(store: &Store, id: &str, now: i64) -> Result<CancelSessionRow, PageError> {
    // Ids are ours (hex); anything else is not looked up.
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PageError::BadLink);
    }
    let session = store.cancel_session(id).await?.ok_or(PageError::BadLink)?;
    if session.started_at.is_none() {
        return Err(PageError::BadLink);
    }
    if session.outcome.is_none() && session.deadline_at.is_none_or(|d| d <= now) {
        return Err(PageError::Expired);
    }
    Ok(session)
}

/// The session's subscription, read from the store and scoped to the session's customer.
async fn target(store: &Store, s: &CancelSessionRow) -> Result<Target, PageError> {
    let (subscription, items) =
        store.live_subscription_of(&s.customer, s.subscription.as_deref()).await?.ok_or(PageError::NoSubscription)?;
    let pausable = store.event_object(&subscription.src_event_id).await?.as_ref().is_some_and(crate::cancel::offers::pausable);
    Ok(Target { subscription, items, pausable })
}

fn base(s: &CancelSessionRow) -> String {
    format!("/cancel/s/{}", s.id)
}

fn finished(s: &CancelSessionRow) -> bool {
    s.outcome.as_deref().is_some_and(|o| o != "abandoned")
}

/// A date as customers read it: `27 February 2027` (UTC).
pub fn long_date(t: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(t, 0).map(|t| t.format("%-d %B %Y").to_string())
}

/// The signed update-payment link (`/billing/update`), when Stripe is configured.
fn update_card_url(state: &CancelState, portal: Option<&BillingPortal>, customer: &str) -> Option<String> {
    let portal = portal?;
    let token = portal.signer.sign(customer, None, state.now() + LINK_TTL_SECS);
    Some(format!("{}/billing/update?token={token}", state.public_url))
}

/// The page for a customer whose subscription has already ended: nothing to cancel, and the
/// way back is the come-back checkout (or the product when there is no invoice to copy).
async fn ended_page(
    state: &CancelState,
    store: &Store,
    portal: Option<&BillingPortal>,
    customer: &str,
    return_url: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let Some((_, invoice)) = store.ended_subscription_of(customer).await? else { return Err(PageError::NoSubscription) };
    let comeback_url = match (portal, invoice) {
        (Some(portal), Some(invoice)) => {
            let token = portal.signer.sign(customer, Some(&invoice), state.now() + LINK_TTL_SECS);
            Some(format!("{}/comeback?token={token}", state.public_url))
        }
        _ => None,
    };
    let return_url = return_url.or(state.settings.return_url.as_deref());
    Ok(state.pages.render(StatusCode::OK, "ended.html", context! { comeback_url, return_url }))
}

/// `GET /cancel/s/{id}`: the exit survey — or, when Stripe already has a cancellation
/// scheduled, its date and "Keep my subscription"; when the subscription ended, the way back.
async fn survey_page(
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

/// Read a small urlencoded form, refusing bodies over the limit before parsing.
async fn read_form<T: serde::de::DeserializeOwned>(mut payload: web::Payload) -> Result<T, PageError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| PageError::BadForm("body"))?;
        if body.len() + chunk.len() > FORM_LIMIT_BYTES {
            return Err(PageError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    serde_urlencoded::from_bytes(&body).map_err(|_| PageError::BadForm("form"))
}

fn check_csrf(s: &CancelSessionRow, presented: &str) -> Result<(), PageError> {
    if !presented.is_empty() && bool::from(s.csrf_token.as_bytes().ct_eq(presented.as_bytes())) {
        Ok(())
    } else {
        Err(PageError::Csrf)
    }
}

/// A form posted by a cancel page: it carries the session's CSRF token.
trait PostedForm: serde::de::DeserializeOwned {
    fn csrf(&self) -> &str;
}

/// The start of every POST: rate limit, the form (size-limited), the live session and its
/// CSRF token.
async fn posted<F: PostedForm>(
    req: &HttpRequest,
    id: &str,
    payload: web::Payload,
    state: &CancelState,
    store: &Store,
    now: i64,
) -> Result<(CancelSessionRow, F), PageError> {
    state.limit(req)?;
    let form: F = read_form(payload).await?;
    let s = open_session(store, id, now).await?;
    check_csrf(&s, form.csrf())?;
    Ok((s, form))
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
async fn post_reason(
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
            Some(crate::figures::lift::HOLDOUT) => Vec::new(),
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

fn shown_offers(s: &CancelSessionRow) -> Vec<OfferKind> {
    serde_json::from_str(&s.offers_shown).unwrap_or_default()
}

/// What a price is called and costs, as the customer reads it: `Basic — $9.00 / month`.
async fn plan_text(store: &Store, price: &str) -> Result<Option<String>, PageError> {
    Ok(store.plan(price).await?.map(|p| p.describe()))
}

/// `GET /cancel/s/{id}/offer`: the offers for the reason, and "cancel anyway".
async fn offer_page(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<CancelState>,
    store: web::Data<Store>,
) -> HttpResponse {
    let result = async {
        state.limit(&req)?;
        let now = state.now();
        let s = open_session(&store, &id, now).await?;
        if finished(&s) {
            return Ok(see_other(&format!("{}/done", base(&s))));
        }
        if s.reason.is_none() {
            return Ok(see_other(&base(&s)));
        }
        let t = target(&store, &s).await?;
        if t.scheduled_end(now).is_some() {
            return Ok(see_other(&base(&s)));
        }
        let offers: Vec<&str> = shown_offers(&s).into_iter().map(OfferKind::as_str).collect();
        let cfg = &state.settings;
        let pauses: Vec<_> = t
            .pauses(cfg, now)
            .into_iter()
            .map(|p| context! { months => p.months, resumes_on => long_date(p.resumes_on), now => p.method == PauseMethod::Schedule })
            .collect();
        let period_end = t.subscription.current_period_end.and_then(long_date);
        let current_plan = match t.single_item().and_then(|i| i.price_id.clone()) {
            Some(price) => plan_text(&store, &price).await?,
            None => None,
        };
        let cheaper_plan = match t.downgrade_to(cfg) {
            Some(price) => plan_text(&store, price).await?,
            None => None,
        };
        Ok(state.pages.render(
            StatusCode::OK,
            "offer.html",
            context! {
                base => base(&s), csrf => s.csrf_token, offers, pauses, period_end, current_plan, cheaper_plan,
                comment => s.comment,
                proration_none => cfg.downgrade_proration == "none",
                discount_text => t.discount(cfg).map(|d| d.text.clone()),
                past_due => t.past_due(),
                return_url => state.return_url(&s),
            },
        ))
    }
    .await;
    respond(&state, result)
}

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
async fn choose(
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
        let choice = Choice::parse(&form.choice).ok_or(PageError::BadForm("choice"))?;
        let late_comment = form.comment.trim();
        if late_comment.chars().count() > COMMENT_MAX_CHARS {
            return Err(PageError::TooLarge);
        }
        if let Some(offer) = choice.offer()
            && !shown_offers(&s).contains(&offer)
        {
            return Err(PageError::BadForm("offer not shown"));
        }
        if let Choice::Pause { months } = choice
            && !state.settings.pause_months.contains(&months)
        {
            return Err(PageError::BadForm("pause length"));
        }
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
        let pause = match choice {
            Choice::Pause { months } => Some(
                t.pauses(&state.settings, now)
                    .into_iter()
                    .find(|p| p.months == months)
                    .ok_or(PageError::BadForm("pause length does not fit"))?,
            ),
            _ => None,
        };
        let stripe = state.stripe.as_ref().ok_or(PageError::StripeNotConfigured)?;
        // Cancelling without a survey answer is allowed (it is never more than one click
        // away); Stripe then gets `other`.
        let reason = s.reason.as_deref().and_then(Reason::parse).unwrap_or(Reason::Other);
        let Some(attempt) = store.claim_cancel_action(&s.id, now, ACTION_LEASE_SECS).await? else {
            // A second click while the first is with Stripe: wait for its result, then show it.
            return Ok(await_first_click(&state, &store, &s).await);
        };
        // A comment written on the offer page replaces the survey's (it was written later,
        // often as an answer to the offers); it is kept with the session and sent to Stripe.
        let comment = if late_comment.is_empty() {
            s.comment.clone()
        } else {
            store.record_cancel_comment(&s.id, late_comment).await?;
            Some(late_comment.to_owned())
        };
        let item = t.single_item();
        let discount = t.discount(&state.settings);
        let action = Action {
            subscription: t.subscription.id.clone(),
            choice,
            item_id: item.map(|i| i.item_id.clone()),
            from_price: item.and_then(|i| i.price_id.clone()),
            downgrade_to: t.downgrade_to(&state.settings).cloned(),
            proration: state.settings.downgrade_proration.clone(),
            pause,
            coupon: discount.map(|d| d.coupon.clone()),
            keep_discounts: t.discount_ids(),
            reason,
            comment,
            period_end: scheduled_end.or(t.subscription.current_period_end),
            now,
            idempotency_key: format!("holdfast-cancel-{}-{}-{attempt}", capability_ref(&s.id), choice.key()),
        };
        let done = match carry_out(stripe, &action).await {
            Ok(done) => done,
            Err(e) => {
                // Nothing is recorded: the session stays open and the customer may retry.
                store.release_cancel_action(&s.id).await?;
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
                return Err(PageError::Stripe(e));
            }
        };
        let detail = done.detail.to_string();
        // The exact request Stripe accepted is kept with the outcome, in one transaction, for
        // the owner's record of what Holdfast changed and who caused it.
        let change = crate::owner::views::NewStripeChange {
            customer: &s.customer,
            subscription: Some(&action.subscription),
            sent: &done.sent,
            purpose: "cancel_flow",
            triggered_by: crate::owner::views::cancel_flow_trigger(&s.source),
            idempotency_key: Some(&action.idempotency_key),
            at: now,
        };
        store.record_cancel_outcome_and_change(&s.id, done.outcome, &detail, done.paused_until, &change).await?;
        tracing::info!(session = %capability_ref(&s.id), outcome = done.outcome.as_str(), "cancel flow: outcome recorded");
        // ── CONFIRMATION EMAIL CALL SITE ──
        queue_confirmation(&state, &store, &s, &done).await;
        Ok(see_other(&format!("{}/done", base(&s))))
    }
    .await;
    respond_with_retry(&state, &id, result)
}

/// How long a second click waits for the first one's Stripe call before it is sent to the
/// session's result page (which says "still working" and reloads itself).
const SECOND_CLICK_WAIT: std::time::Duration = std::time::Duration::from_secs(25);

/// A second submit while the first holds the session: poll the session until the first has
/// an outcome or gave up, then redirect (GET) to the page that shows it — never a `409` at
/// the POST address.
async fn await_first_click(state: &CancelState, store: &Store, s: &CancelSessionRow) -> HttpResponse {
    let started = std::time::Instant::now();
    while started.elapsed() < SECOND_CLICK_WAIT {
        match store.cancel_session(&s.id).await {
            Ok(Some(row)) if row.outcome.is_some() => return see_other(&format!("{}/done", base(s))),
            Ok(Some(row)) if row.acting_until.is_none_or(|until| until < state.now()) => {
                // The first call failed and gave the session back: the offers again.
                return see_other(&format!("{}/offer", base(s)));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    see_other(&format!("{}/done", base(s)))
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

/// Queue the outcome's confirmation email in the outbox, rendered now. A failure to queue is
/// logged, never shown: Stripe already made the change and the session is recorded.
async fn queue_confirmation(state: &CancelState, store: &Store, s: &CancelSessionRow, done: &Done) {
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

/// `GET /cancel/s/{id}/done`: what happened.
async fn done_page(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<CancelState>,
    store: web::Data<Store>,
) -> HttpResponse {
    let result = async {
        state.limit(&req)?;
        let s = open_session(&store, &id, state.now()).await?;
        let Some(outcome) = s.outcome.clone() else {
            if s.acting_until.is_some_and(|until| until >= state.now()) {
                // The choice is still with Stripe: say so, and look again in a moment.
                return Ok(state.pages.render(StatusCode::OK, "working.html", context! { return_url => state.return_url(&s) }));
            }
            return Ok(see_other(&base(&s)));
        };
        let detail: serde_json::Value =
            s.outcome_detail.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
        let date = |field: &str| detail[field].as_i64().and_then(long_date);
        let discount_text = detail["coupon"]
            .as_str()
            .and_then(|c| state.settings.discounts.iter().find(|d| d.coupon == c))
            .map(|d| d.text.clone());
        let new_plan = match detail["to_price"].as_str() {
            Some(price) => plan_text(&store, price).await?,
            None => None,
        };
        Ok(state.pages.render(
            StatusCode::OK,
            "done.html",
            context! {
                outcome, discount_text, new_plan,
                resumes_on => date("resumes_on").or_else(|| date("resumes_at")),
                ends_on => date("ends_at"),
                proration_none => detail["proration_behavior"] == "none",
                paused_now => detail["method"] == "pause_schedule",
                return_url => state.return_url(&s),
            },
        ))
    }
    .await;
    respond(&state, result)
}

#[derive(Debug, Deserialize)]
pub struct MintRequest {
    customer: String,
    subscription: Option<String>,
    return_url: Option<String>,
}

#[derive(Debug, Serialize)]
struct MintResponse {
    url: String,
    expires_at: i64,
}

/// `POST /api/cancel-sessions` (owner): mint a one-time link for a customer's live
/// subscription.
async fn mint(
    _owner: Owner,
    body: web::Json<MintRequest>,
    state: web::Data<CancelState>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if !plausible_customer_id(&body.customer) {
        return Err(ApiError::unprocessable("invalid_customer", "customer must be a Stripe customer id (cus_…)"));
    }
    if let Some(url) = &body.return_url
        && (url.len() > RETURN_URL_MAX || !(url.starts_with("https://") || url.starts_with("http://")))
    {
        return Err(ApiError::unprocessable("invalid_return_url", "return_url must be an http(s) URL"));
    }
    let now = state.now();
    let (live, _) = store
        .live_subscription_of(&body.customer, body.subscription.as_deref())
        .await
        .map_err(ApiError::store("minting a cancel link"))?
        .ok_or_else(|| ApiError::not_found("no_live_subscription", "the customer has no such live subscription"))?;
    let subscription = live.id;
    let token = random_token();
    let expires_at = now + state.settings.link_ttl_secs;
    let experiment = state.experiment.as_ref();
    let session = NewCancelSession {
        experiment: experiment.map(|x| x.name.clone()),
        variant: experiment.map(|x| x.variant(&body.customer).to_owned()),
        id: random_token(),
        link_token_hash: Some(token_hash(&token)),
        csrf_token: random_token(),
        customer: body.customer,
        subscription: Some(subscription),
        return_url: body.return_url,
        source: "minted",
        created_at: now,
        link_expires_at: expires_at,
        started_at: None,
        deadline_at: None,
    };
    store.insert_cancel_session(&session).await.map_err(ApiError::store("minting a cancel link"))?;
    Ok(HttpResponse::Created().json(MintResponse { url: format!("{}/cancel?token={token}", state.public_url), expires_at }))
}
