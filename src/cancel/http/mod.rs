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
//!
//! Each page lives in its own file: `entry` (the links that open a session), `survey`,
//! `offer`, `choose` (the Stripe call and its record), `done`, `confirmation` (the email),
//! `mint` (the owner's endpoint); `session` and `forms` hold what they share.

mod choose;
mod confirmation;
mod done;
mod entry;
pub mod error;
mod forms;
mod mint;
mod offer;
mod session;
mod survey;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;

use self::error::PageError;
use crate::cancel::config::CancelFlowSettings;
use crate::cancel::offers::SaveOfferExperiment;
use crate::cancel::storage::CancelSessionRow;
use crate::clock::Clock;
use crate::dunning::BillingPortal;
use crate::mail::links::LINK_TTL_SECS;
use crate::mail::templates::Templates;
use crate::store::Store;
use crate::stripe_api::StripeApi;
use crate::web::pages::CustomerPages;

pub use self::entry::{EntryQuery, PauseQuery};
pub use self::mint::MintRequest;

/// The longest comment a form may carry (survey or offer page).
const COMMENT_MAX_CHARS: usize = 1000;

/// What the cancel-flow handlers share.
#[derive(Debug)]
pub struct CancelState {
    /// The mail layer's email templates, for the confirmation email.
    pub mail_templates: Templates,
    pub settings: CancelFlowSettings,
    /// The save-offer experiment in force, if any: its variant b sees other offers.
    pub experiment: Option<SaveOfferExperiment>,
    pub public_url: String,
    pub stripe: Option<StripeApi>,
    /// The customer pages in the owner's brand and the per-address limit, shared with the
    /// other features' public pages.
    pub pages: web::Data<CustomerPages>,
    pub clock: Clock,
}

/// Register the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/cancel", web::get().to(entry::enter))
        .route("/cancel/s/{id}", web::get().to(survey::survey_page))
        .route("/cancel/s/{id}/reason", web::post().to(survey::post_reason))
        .route("/cancel/s/{id}/offer", web::get().to(offer::offer_page))
        .route("/cancel/s/{id}/choose", web::post().to(choose::choose))
        .route("/cancel/s/{id}/done", web::get().to(done::done_page))
        .route("/pause", web::get().to(entry::pause_entry))
        .route("/api/cancel-sessions", web::post().to(mint::mint));
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
        if self.pages.allows(req) { Ok(()) } else { Err(PageError::RateLimited) }
    }

    fn return_url<'a>(&'a self, s: &'a CancelSessionRow) -> Option<&'a str> {
        s.return_url.as_deref().or(self.settings.return_url.as_deref())
    }
}

/// Answer `result`, rendering any error as the friendly page.
fn respond(state: &CancelState, result: Result<HttpResponse, PageError>) -> HttpResponse {
    result.unwrap_or_else(|e| state.fail(&e, None))
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
