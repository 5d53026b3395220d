//! The offers: `GET /cancel/s/{id}/offer`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;

use crate::cancel::http::error::PageError;
use crate::cancel::http::session::{base, finished, open_session, target};
use crate::cancel::http::{CancelState, long_date, respond};
use crate::cancel::rules::{OfferKind, PauseMethod};
use crate::cancel::storage::CancelSessionRow;
use crate::store::Store;
use crate::web::pages::see_other;

pub(super) fn shown_offers(s: &CancelSessionRow) -> Vec<OfferKind> {
    serde_json::from_str(&s.offers_shown).unwrap_or_default()
}

/// What a price is called and costs, as the customer reads it: `Basic — $9.00 / month`.
pub(super) async fn plan_text(store: &Store, price: &str) -> Result<Option<String>, PageError> {
    Ok(store.plan(price).await?.map(|p| p.describe()))
}

/// `GET /cancel/s/{id}/offer`: the offers for the reason, and "cancel anyway".
pub(super) async fn offer_page(
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
