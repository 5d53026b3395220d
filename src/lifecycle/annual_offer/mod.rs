//! The annual-plan offer's confirm page. The offer email links here with a signed token
//! naming the customer and the subscription; opening the link changes nothing:
//!
//! ```text
//! GET  /annual?token=…   the yearly plan, the saving, and today's charge from Stripe's
//!                        invoice preview (POST /v1/invoices/create_preview), with a button
//! POST /annual           the subscription update (POST /v1/subscriptions/{id}: items[0][id],
//!                        items[0][price], proration_behavior, proration_date) with an
//!                        Idempotency-Key; then 303 back to the page, which says it is done
//! ```
//! Never a Checkout session: that would start a second subscription and bill twice. A
//! repeated POST does not update twice: the offer's lease admits one request at a time and an
//! accepted offer is never updated again.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use stripe::{IdempotencyKey, RequestStrategy};
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::cancel::{NewStripeChange, Sent};
use crate::domain::money::format_minor;
use crate::dunning::BillingPortal;
use crate::lifecycle::config::AnnualOffer;
use crate::lifecycle::context::Lifecycle;
use crate::lifecycle::storage::AnnualOfferRow;
use crate::mail::links::{ANNUAL_LINK_PREFIX, LinkClaims};
use crate::store::Store;
use crate::store::rows::ItemRow;
use crate::web::pages::{CustomerPages, see_other};

/// How long one confirm request may hold the offer while Stripe answers (longer than the
/// client's timeout, so the lease never lapses under a live call).
const LEASE_SECS: i64 = 60;
/// A confirm page older than this shows its figure again before anything is charged: the
/// proration Stripe charges is computed for the moment the page was shown.
const PAGE_FRESH_SECS: i64 = 3600;
/// What the owner's record says caused the change.
const TRIGGERED_BY: &str = "the customer, accepting the annual-plan offer email";

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    token: String,
    /// When the page's preview was computed: the update prorates as of the same moment.
    #[serde(default)]
    proration_date: String,
}

/// Why the page can't go on.
#[derive(Debug, thiserror::Error)]
enum AnnualError {
    #[error("the link is not valid")]
    BadLink,
    #[error("the offer no longer applies")]
    Gone,
    #[error("Stripe did not answer as expected")]
    Stripe,
    #[error("observe-only mode")]
    Observed,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl AnnualError {
    fn page(&self, pages: &CustomerPages) -> HttpResponse {
        let (status, message) = match self {
            Self::BadLink => (StatusCode::FORBIDDEN, "This link is not valid or has expired. Reply to our email and we'll help."),
            Self::Gone => (
                StatusCode::OK,
                "This offer no longer applies to your subscription (it changed since we wrote). Reply to our email and we'll help.",
            ),
            Self::Stripe => (
                StatusCode::BAD_GATEWAY,
                "We couldn't reach our billing provider just now. Nothing was changed; please try again in a few minutes.",
            ),
            Self::Observed => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Plan changes are switched off for now. Nothing was changed; reply to our email and we'll help.",
            ),
            Self::Store(e) => {
                tracing::error!(error = %e, "annual offer: storage failed");
                (
                    crate::web::error::storage_status(e),
                    "Something went wrong on our side. Nothing was changed; please try again in a minute.",
                )
            }
        };
        pages.error(status, "Yearly plan", message, pages.return_url())
    }
}

/// Everything a page or a POST reads before it acts.
struct Offer {
    claims: LinkClaims,
    row: AnnualOfferRow,
    item: ItemRow,
}

/// Verify the token and find its offer, still applicable: the subscription live, its one
/// item still on the offered monthly price.
async fn offer(
    portal: &BillingPortal,
    store: &Store,
    token: &str,
    now: i64,
) -> Result<(LinkClaims, AnnualOfferRow, Option<ItemRow>), AnnualError> {
    let claims = portal.signer.verify(token, now).map_err(|_| AnnualError::BadLink)?;
    let subscription = claims.invoice.strip_prefix(ANNUAL_LINK_PREFIX).ok_or(AnnualError::BadLink)?.to_owned();
    let row = store.annual_offer(&subscription).await?.ok_or(AnnualError::BadLink)?;
    if row.customer != claims.customer {
        return Err(AnnualError::BadLink);
    }
    let item = match store.live_subscription_of(&row.customer, Some(&row.subscription)).await? {
        Some((_, items)) if items.len() == 1 => {
            items.into_iter().find(|i| i.item_id == row.item_id && i.price_id.as_deref() == Some(row.from_price.as_str()))
        }
        _ => None,
    };
    Ok((claims, row, item))
}

/// `subscription_details[…]` of the preview and the update's own parameters, as sent.
fn update_params(o: &Offer, cfg: &AnnualOffer, proration_date: i64) -> serde_json::Value {
    json!({
        "items[0][id]": o.item.item_id,
        "items[0][price]": o.row.to_price,
        "proration_behavior": cfg.proration_behavior,
        "proration_date": proration_date.to_string(),
    })
}

#[derive(Debug, Serialize)]
struct PreviewItem<'a> {
    id: &'a str,
    price: &'a str,
}

#[derive(Debug, Serialize)]
struct PreviewDetails<'a> {
    items: Vec<PreviewItem<'a>>,
    proration_behavior: &'a str,
    proration_date: i64,
}

#[derive(Debug, Serialize)]
struct PreviewForm<'a> {
    subscription: &'a str,
    subscription_details: PreviewDetails<'a>,
}

/// Stripe's preview of the invoice the change makes: `(amount_due, currency)`.
async fn preview(portal: &BillingPortal, o: &Offer, cfg: &AnnualOffer, at: i64) -> Result<(i64, String), AnnualError> {
    let form = PreviewForm {
        subscription: &o.row.subscription,
        subscription_details: PreviewDetails {
            items: vec![PreviewItem { id: &o.item.item_id, price: &o.row.to_price }],
            proration_behavior: &cfg.proration_behavior,
            proration_date: at,
        },
    };
    let answer = RequestBuilder::new(StripeMethod::Post, "/invoices/create_preview")
        .form(&form)
        .customize::<miniserde::json::Value>()
        .send(portal.stripe.client())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "annual offer: invoice preview failed");
            AnnualError::Stripe
        })?;
    let miniserde::json::Value::Object(invoice) = answer else { return Err(AnnualError::Stripe) };
    let amount = match invoice.get("amount_due") {
        Some(miniserde::json::Value::Number(n)) => match n {
            miniserde::json::Number::U64(v) => i64::try_from(*v).ok(),
            miniserde::json::Number::I64(v) => Some(*v),
            miniserde::json::Number::F64(_) => None,
        },
        _ => None,
    };
    let currency = match invoice.get("currency") {
        Some(miniserde::json::Value::String(c)) => Some(c.clone()),
        _ => None,
    };
    amount.zip(currency).ok_or(AnnualError::Stripe)
}

/// `GET /annual?token=…`: the offer, or what became of it.
pub async fn confirm_page(
    req: HttpRequest,
    q: web::Query<TokenQuery>,
    portal: web::Data<BillingPortal>,
    lifecycle: web::Data<Lifecycle>,
    pages: web::Data<CustomerPages>,
) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    let now = portal.clock.now();
    let token = q.token.clone().unwrap_or_default();
    let result = async {
        let cfg = &lifecycle.campaigns.annual_offer;
        let (claims, row, item) = offer(&portal, &portal.store, &token, now).await?;
        if row.accepted_at.is_some() {
            return Ok(done_page(&pages, &portal.store, &row).await);
        }
        if row.acting_until.is_some_and(|until| until >= now) {
            return Ok(pages.error(
                StatusCode::OK,
                "One moment",
                "We're making the change now. Reload this page in a moment.",
                None,
            ));
        }
        let o = Offer { claims, row, item: item.ok_or(AnnualError::Gone)? };
        let (due, currency) = preview(&portal, &o, cfg, now).await?;
        let quantity = o.item.quantity.max(1);
        let monthly = o.item.unit_amount.map(|a| format_minor(a * quantity, &currency));
        let yearly_plan = portal.store.plan(&o.row.to_price).await?;
        let yearly_unit = yearly_plan.as_ref().and_then(|p| p.unit_amount);
        let saving = o
            .item
            .unit_amount
            .zip(yearly_unit)
            .and_then(|(m, y)| crate::lifecycle::rules::annual_saving(m, y, quantity))
            .map(|s| format_minor(s, &currency));
        let charged_now = cfg.proration_behavior == "always_invoice";
        Ok(pages.render(
            StatusCode::OK,
            "annual.html",
            context! {
                token => token.clone(),
                proration_date => now,
                yearly_name => yearly_plan.as_ref().map(|p| p.describe()),
                yearly => yearly_unit.map(|y| format_minor(y * quantity, &currency)),
                monthly, saving, charged_now,
                today => format_minor(if charged_now { due } else { 0 }, &currency),
                next_invoice => (!charged_now).then(|| format_minor(due, &currency)),
                return_url => pages.return_url(),
            },
        ))
    }
    .await;
    result.unwrap_or_else(|e: AnnualError| e.page(&pages))
}

async fn done_page(pages: &CustomerPages, store: &Store, row: &AnnualOfferRow) -> HttpResponse {
    let yearly = store.plan(&row.to_price).await.ok().flatten().map(|p| p.describe());
    pages.render(StatusCode::OK, "annual_done.html", context! { yearly, return_url => pages.return_url() })
}

/// `POST /annual`: make the change in Stripe, then record it.
pub async fn confirm(
    req: HttpRequest,
    form: web::Form<ConfirmForm>,
    portal: web::Data<BillingPortal>,
    lifecycle: web::Data<Lifecycle>,
    pages: web::Data<CustomerPages>,
) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    let now = portal.clock.now();
    let form = form.into_inner();
    let page_url = format!("/annual?token={}", form.token);
    let result = async {
        let cfg = &lifecycle.campaigns.annual_offer;
        let (claims, row, item) = offer(&portal, &portal.store, &form.token, now).await?;
        if row.accepted_at.is_some() {
            return Ok(see_other(&page_url));
        }
        let o = Offer { claims, row, item: item.ok_or(AnnualError::Gone)? };
        // The charge shown was computed for this moment; a stale or forged one is shown again.
        let Some(at) = form.proration_date.parse::<i64>().ok().filter(|t| (now - PAGE_FRESH_SECS..=now).contains(t)) else {
            return Ok(see_other(&page_url));
        };
        let Some(attempt) = portal.store.claim_annual_offer(&o.row.subscription, now, LEASE_SECS).await? else {
            // Accepted meanwhile, or another click is with Stripe: the page says which.
            return Ok(see_other(&page_url));
        };
        switch_to_yearly(&portal, cfg, &o, at, attempt, now).await?;
        tracing::info!(subscription = %o.row.subscription, to_price = %o.row.to_price, "annual offer accepted");
        Ok(see_other(&page_url))
    }
    .await;
    result.unwrap_or_else(|e: AnnualError| e.page(&pages))
}

/// Switch the subscription to the yearly price in Stripe (observe-only: record the call
/// instead), then record the change and the offer as accepted; the claim is released when
/// Stripe was not called or refused.
async fn switch_to_yearly(
    portal: &BillingPortal,
    cfg: &AnnualOffer,
    o: &Offer,
    at: i64,
    attempt: i64,
    now: i64,
) -> Result<(), AnnualError> {
    let path = format!("/v1/subscriptions/{}", o.row.subscription);
    let params = update_params(o, cfg, at);
    let intended = crate::stripe_api::IntendedCall {
        method: "POST",
        path: path.clone(),
        params: params.clone(),
        purpose: "annual_offer",
        customer: Some(&o.claims.customer),
    };
    if portal.stripe.recorded_instead(intended).await {
        portal.store.release_annual_offer(&o.row.subscription).await?;
        return Err(AnnualError::Observed);
    }
    let idempotency_key = format!("holdfast-annual-{}-{attempt}", o.row.subscription);
    match update(portal, o, cfg, at, &idempotency_key).await {
        Ok(()) => {}
        Err(e) => {
            portal.store.release_annual_offer(&o.row.subscription).await?;
            return Err(e);
        }
    }
    let sent = Sent { method: "POST", path, params };
    let change = NewStripeChange {
        customer: &o.claims.customer,
        subscription: Some(&o.row.subscription),
        sent: &sent,
        purpose: "annual_offer",
        triggered_by: TRIGGERED_BY,
        idempotency_key: Some(&idempotency_key),
        at: now,
    };
    portal.store.accept_annual_offer(&o.row.subscription, &change).await?;
    Ok(())
}

#[derive(Debug, Serialize)]
struct UpdateItem<'a> {
    id: &'a str,
    price: &'a str,
}

#[derive(Debug, Serialize)]
struct UpdateForm<'a> {
    items: Vec<UpdateItem<'a>>,
    proration_behavior: &'a str,
    proration_date: i64,
}

/// The subscription update, with its Idempotency-Key. The answer is read as plain JSON: a
/// field the typed model doesn't know must not turn a change Stripe made into a failure.
async fn update(portal: &BillingPortal, o: &Offer, cfg: &AnnualOffer, at: i64, key: &str) -> Result<(), AnnualError> {
    let key = IdempotencyKey::new(key).map_err(|_| AnnualError::Stripe)?;
    let form = UpdateForm {
        items: vec![UpdateItem { id: &o.item.item_id, price: &o.row.to_price }],
        proration_behavior: &cfg.proration_behavior,
        proration_date: at,
    };
    RequestBuilder::new(StripeMethod::Post, format!("/subscriptions/{}", o.row.subscription))
        .form(&form)
        .customize::<miniserde::json::Value>()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(portal.stripe.client())
        .await
        .map_err(|e| {
            tracing::error!(subscription = %o.row.subscription, error = %e, "annual offer: the subscription update failed");
            AnnualError::Stripe
        })?;
    Ok(())
}
