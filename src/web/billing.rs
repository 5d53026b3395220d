//! `GET /billing/update?token=…`: the update-payment link in dunning and card emails. A valid
//! token opens a Stripe Billing Portal session on the payment-method-update flow, created now
//! (sessions expire within minutes, emails are read days later), and redirects to it with
//! 303. If Stripe can't be reached the customer goes to the invoice's hosted page instead.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use stripe_billing::billing_portal_session::{
    CreateBillingPortalSession, CreateBillingPortalSessionFlowData, CreateBillingPortalSessionFlowDataType,
};

use crate::mail::links::{LinkError, LinkSigner};
use crate::store::Store;
use crate::stripe_api::{IntendedCall, StripeApi};
use crate::web::cancel::CancelState;

/// What the link handler needs (present only when `STRIPE_SECRET_KEY` is set).
#[derive(Debug, Clone)]
pub struct BillingPortal {
    pub signer: LinkSigner,
    pub stripe: StripeApi,
    /// Where the portal's "return" button goes.
    pub return_url: String,
    pub store: Store,
    pub clock: crate::clock::Clock,
}

#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    token: Option<String>,
}

/// Why the link could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum BillingLinkError {
    #[error("invalid link")]
    BadLink(#[from] LinkError),
    #[error("billing portal unavailable")]
    PortalUnavailable,
}

impl ResponseError for BillingLinkError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadLink(LinkError::Expired) => StatusCode::GONE,
            Self::BadLink(_) => StatusCode::BAD_REQUEST,
            Self::PortalUnavailable => StatusCode::BAD_GATEWAY,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            Self::BadLink(LinkError::Expired) => "This link has expired. Please use the link in our most recent email.",
            Self::BadLink(_) => "This link is not valid. Please use the link exactly as it appears in our email.",
            Self::PortalUnavailable => "We couldn't open the billing page just now. Please try again in a few minutes.",
        };
        HttpResponse::build(self.status_code()).insert_header((CONTENT_TYPE, "text/html; charset=utf-8")).body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Billing</title></head>\
             <body style=\"font-family:sans-serif;max-width:32rem;margin:4rem auto\"><p>{message}</p></body></html>"
        ))
    }
}

/// Follow an update-payment link.
#[tracing::instrument(name = "billing_update_link", skip_all)]
pub async fn update_payment(
    req: HttpRequest,
    query: web::Query<LinkQuery>,
    portal: web::Data<BillingPortal>,
    pages: web::Data<CancelState>,
) -> Result<HttpResponse, BillingLinkError> {
    // Each click costs a Stripe call: the same per-address limit as the other public pages.
    if let Some(r) = pages.rate_limited(&req) {
        return Ok(r);
    }
    let token = query.token.as_deref().ok_or(LinkError::Malformed)?;
    let claims = portal.signer.verify(token, portal.clock.now())?;
    let request = CreateBillingPortalSession::new()
        .customer(claims.customer.clone())
        .return_url(portal.return_url.clone())
        .flow_data(CreateBillingPortalSessionFlowData::new(CreateBillingPortalSessionFlowDataType::PaymentMethodUpdate));
    let intended = IntendedCall {
        method: "POST",
        path: "/v1/billing_portal/sessions".into(),
        params: serde_json::json!({"customer": claims.customer, "flow_data[type]": "payment_method_update"}),
        purpose: "billing_portal",
        customer: Some(&claims.customer),
    };
    // Observe-only mode: no portal session; the hosted invoice (below) is the way to pay.
    let sent = match portal.stripe.recorded_instead(intended).await {
        true => Err(stripe::StripeError::ClientError("observe-only mode".into())),
        false => request.send(portal.stripe.client()).await,
    };
    match sent {
        Ok(session) => Ok(see_other(&session.url)),
        Err(e) => {
            tracing::warn!(error = %e, "billing portal session not created; falling back to the hosted invoice");
            let fallback = match claims.invoice.as_str() {
                "-" => None,
                invoice => portal.store.invoice_hosted_url(invoice).await.ok().flatten(),
            };
            fallback.map(|url| see_other(&url)).ok_or(BillingLinkError::PortalUnavailable)
        }
    }
}

fn see_other(url: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((LOCATION, url)).finish()
}
