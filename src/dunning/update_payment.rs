//! `GET /billing/update?token=…`: the update-payment link in dunning and card emails. A valid
//! token opens a Stripe Billing Portal session on the payment-method-update flow, created now
//! (sessions expire within minutes, emails are read days later), and redirects to it with
//! 303. If Stripe can't be reached the customer goes to the invoice's hosted page instead.
//! The portal's "return" button leads to the owner's product (`HOLDFAST_CANCEL_RETURN_URL`,
//! else the lifecycle product URL) or, when neither is set, to `/billing/updated`, a Holdfast
//! page. Refusals are the cancel flow's styled pages (their CSP allows their own styles).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::Deserialize;
use stripe_billing::billing_portal_session::{
    CreateBillingPortalSession, CreateBillingPortalSessionFlowData, CreateBillingPortalSessionFlowDataType,
};

use crate::mail::links::{LinkError, LinkSigner, parse_email_ref};
use crate::store::Store;
use crate::stripe_api::{IntendedCall, StripeApi};
use crate::web::pages::{CustomerPages, see_other};

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
    /// The per-email token of a dunning email's link (`mail::links::email_ref`).
    m: Option<String>,
}

/// Why the link could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum BillingLinkError {
    #[error("invalid link")]
    BadLink(#[from] LinkError),
    #[error("billing portal unavailable")]
    PortalUnavailable,
}

impl BillingLinkError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadLink(LinkError::Expired) => StatusCode::GONE,
            Self::BadLink(_) => StatusCode::BAD_REQUEST,
            Self::PortalUnavailable => StatusCode::BAD_GATEWAY,
        }
    }

    fn words(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadLink(LinkError::Expired) => ("This link has expired", "Please use the link in our most recent email."),
            Self::BadLink(_) => {
                ("This link doesn't work", "This link is not valid. Please use the link exactly as it appears in our email.")
            }
            Self::PortalUnavailable => {
                ("We couldn't open the billing page", "Nothing was changed. Please try again in a few minutes.")
            }
        }
    }
}

/// Where the billing portal's "return" button goes: the owner's account page, else the
/// product, else our own "payment method updated" page.
pub fn portal_return_url(return_url: Option<&str>, product_url: Option<&str>, public_url: &str) -> String {
    return_url.or(product_url).map_or_else(|| format!("{}/billing/updated", public_url.trim_end_matches('/')), str::to_owned)
}

/// Follow an update-payment link.
#[tracing::instrument(name = "billing_update_link", skip_all)]
pub async fn update_payment(
    req: HttpRequest,
    query: web::Query<LinkQuery>,
    portal: web::Data<BillingPortal>,
    pages: web::Data<CustomerPages>,
) -> HttpResponse {
    // Each click costs a Stripe call: the same per-address limit as the other public pages.
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    match open_portal(&query, &portal).await {
        Ok(url) => see_other(&url),
        Err(e) => {
            tracing::info!(refused = %e, "billing link refused");
            let (title, message) = e.words();
            pages.error(e.status(), title, message, pages.return_url())
        }
    }
}

async fn open_portal(query: &LinkQuery, portal: &BillingPortal) -> Result<String, BillingLinkError> {
    let token = query.token.as_deref().ok_or(LinkError::Malformed)?;
    let now = portal.clock.now();
    let claims = portal.signer.verify(token, now)?;
    // The click counts for recovery attribution; failing to record it must not keep the
    // customer from updating the card.
    if claims.invoice != "-" {
        let email = query.m.as_deref().and_then(parse_email_ref).unwrap_or("-");
        if let Err(e) = portal.store.record_payment_link_click(&claims.invoice, email, now).await {
            tracing::warn!(error = %e, "update-payment click not recorded");
        }
    }
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
        Ok(session) => Ok(session.url),
        Err(e) => {
            tracing::warn!(error = %e, "billing portal session not created; falling back to the hosted invoice");
            let fallback = match claims.invoice.as_str() {
                "-" => None,
                invoice => portal.store.invoice_hosted_url(invoice).await.ok().flatten(),
            };
            fallback.ok_or(BillingLinkError::PortalUnavailable)
        }
    }
}

/// `GET /billing/updated`: where the portal returns when the owner set no product URL.
pub async fn updated_page(req: HttpRequest, pages: web::Data<CustomerPages>) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    pages.render(StatusCode::OK, "billing_updated.html", context! { return_url => pages.return_url() })
}
