//! The result: `GET /cancel/s/{id}/done`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;

use crate::cancel::http::offer::plan_text;
use crate::cancel::http::session::{base, open_session};
use crate::cancel::http::{CancelState, long_date, respond};
use crate::store::Store;
use crate::web::pages::see_other;

/// `GET /cancel/s/{id}/done`: what happened.
pub(super) async fn done_page(
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
