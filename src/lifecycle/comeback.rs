//! `GET /comeback?token=…`: the one-click way back in win-back emails. The signed token names
//! the customer and the subscription that ended; following it opens a Stripe Checkout session
//! for the same prices (with the win-back coupon when configured) and redirects there with
//! 303. Created at click time, like the billing-portal link: Checkout sessions expire, emails
//! are read weeks later. A customer who is already back goes to the product instead.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::dunning::BillingPortal;
use crate::lifecycle::context::Lifecycle;
use crate::store::StoreError;
use crate::stripe_api::IntendedCall;
use crate::web::error::storage_status;
use crate::web::pages::{CustomerPages, see_other};

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// `POST /v1/checkout/sessions`, encoded the way Stripe reads nested forms
/// (`line_items[0][price]=…`), like async-stripe's own parameters.
#[derive(Debug, Serialize)]
struct CheckoutForm<'a> {
    mode: &'static str,
    customer: &'a str,
    success_url: &'a str,
    cancel_url: &'a str,
    line_items: Vec<LineItem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    discounts: Option<Vec<Discount<'a>>>,
}

#[derive(Debug, Serialize)]
struct LineItem<'a> {
    price: &'a str,
    quantity: i64,
}

#[derive(Debug, Serialize)]
struct Discount<'a> {
    coupon: &'a str,
}

/// Why a win-back link could not open checkout; [`ComebackError::page`] is its answer.
#[derive(Debug, thiserror::Error)]
enum ComebackError {
    /// No token, a forged or expired one, or one not naming an invoice.
    #[error("invalid or expired win-back link")]
    BadLink,
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// Stripe refused or could not be reached (`None`: it answered without a session URL).
    #[error("checkout session not created")]
    Checkout(#[source] Option<stripe::StripeError>),
}

impl ComebackError {
    fn page(&self, pages: &CustomerPages) -> HttpResponse {
        let (status, message) = match self {
            Self::BadLink => {
                (StatusCode::BAD_REQUEST, "This link is not valid or has expired. Reply to our email and we'll help.")
            }
            Self::Store(e) => {
                tracing::error!(error = ?e, "comeback link: storage failed");
                (storage_status(e), "We couldn't open checkout just now. Please try again in a minute.")
            }
            Self::Checkout(e) => {
                if let Some(e) = e {
                    tracing::warn!(error = %e, "comeback link: checkout session not created");
                }
                (StatusCode::BAD_GATEWAY, "We couldn't open checkout just now. Please try again in a few minutes.")
            }
        };
        pages.error(status, "Come back", message, pages.return_url())
    }
}

/// Follow a win-back link.
#[tracing::instrument(name = "comeback_link", skip_all)]
pub async fn come_back(
    req: HttpRequest,
    q: web::Query<TokenQuery>,
    portal: web::Data<BillingPortal>,
    lifecycle: web::Data<Lifecycle>,
    pages: web::Data<CustomerPages>,
) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    checkout(&q, &portal, &lifecycle).await.unwrap_or_else(|e| e.page(&pages))
}

/// The redirect to a new Checkout session for the link's prices (or to the product).
async fn checkout(q: &TokenQuery, portal: &BillingPortal, lifecycle: &Lifecycle) -> Result<HttpResponse, ComebackError> {
    let now = portal.clock.now();
    let claims = match q.token.as_deref().map(|t| portal.signer.verify(t, now)) {
        Some(Ok(c)) if c.invoice != "-" => c,
        _ => return Err(ComebackError::BadLink),
    };
    let product = lifecycle.campaigns.product_url.clone().unwrap_or_else(|| portal.return_url.clone());
    let back = portal.store.has_live_subscription(&claims.customer).await?;
    let prices = portal.store.prices_of(&claims.customer, &claims.invoice).await?;
    if back || prices.is_empty() {
        // Already subscribed again (or nothing to offer): the product is the way back.
        return Ok(see_other(&product));
    }
    let form = CheckoutForm {
        mode: "subscription",
        customer: &claims.customer,
        success_url: &product,
        cancel_url: &product,
        line_items: prices.iter().map(|(price, quantity)| LineItem { price, quantity: (*quantity).max(1) }).collect(),
        discounts: lifecycle.campaigns.winback_coupon.as_deref().map(|coupon| vec![Discount { coupon }]),
    };
    let request = RequestBuilder::new(StripeMethod::Post, "/checkout/sessions").form(&form).customize::<miniserde::json::Value>();
    let intended = IntendedCall {
        method: "POST",
        path: "/v1/checkout/sessions".into(),
        params: serde_json::to_value(&form).unwrap_or_default(),
        purpose: "comeback",
        customer: Some(&claims.customer),
    };
    if portal.stripe.recorded_instead(intended).await {
        // Observe-only mode: no checkout is opened; the product is the way back.
        return Ok(see_other(&product));
    }
    match request.send(portal.stripe.client()).await.map_err(|e| ComebackError::Checkout(Some(e)))? {
        miniserde::json::Value::Object(session) => match session.get("url") {
            Some(miniserde::json::Value::String(url)) => Ok(see_other(url)),
            _ => Err(ComebackError::Checkout(None)),
        },
        _ => Err(ComebackError::Checkout(None)),
    }
}
