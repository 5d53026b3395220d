//! Why a dashboard page was not shown: one enum, one place deciding the status and the page
//! that says so (the login form or the search form, with the reason in words).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use minijinja::context;

use crate::owner::dashboard::page;
use crate::store::StoreError;
use crate::web::error::{Message, storage_status};

/// A dashboard page that was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// No live session: the login form, answered `200` because it is the page to use next.
    #[error("no live session")]
    NoSession { configured: bool },
    /// The token posted to the login form is not the owner's.
    #[error("wrong owner token")]
    WrongToken { configured: bool },
    /// A query parameter is malformed; the message names it.
    #[error("{0}")]
    BadQuery(Message),
    /// A search text or customer id is malformed; the message says what is expected.
    #[error("{0}")]
    BadSearch(&'static str),
    /// No customer with the id asked for has been seen (the id is shown back in the form).
    #[error("no such customer")]
    NoSuchCustomer(String),
    /// Storage failed while `doing` something: the page says the dashboard is unavailable.
    #[error("storage failed while {doing}")]
    Store {
        #[source]
        source: StoreError,
        doing: &'static str,
    },
    /// The month's metrics could not be read.
    #[error("metrics are unavailable right now")]
    Metrics(#[source] StoreError),
}

impl DashboardError {
    /// A storage failure while `doing` something: `.map_err(DashboardError::store("…"))`.
    pub fn store(doing: &'static str) -> impl FnOnce(StoreError) -> Self {
        move |source| Self::Store { source, doing }
    }
}

impl ResponseError for DashboardError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NoSession { .. } => StatusCode::OK,
            Self::WrongToken { .. } => StatusCode::UNAUTHORIZED,
            Self::BadQuery(_) | Self::BadSearch(_) => StatusCode::BAD_REQUEST,
            Self::NoSuchCustomer(_) => StatusCode::NOT_FOUND,
            Self::Store { source, .. } | Self::Metrics(source) => storage_status(source),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let login = |configured: bool, error: Option<&str>| page(status, "dashboard_login.html", context! { configured, error });
        match self {
            Self::NoSession { configured } => login(*configured, None),
            Self::WrongToken { configured } => login(*configured, Some("That token is not right.")),
            Self::BadQuery(message) => login(true, Some(message)),
            Self::BadSearch(message) => page(status, "dashboard_search.html", context! { error => message, query => "" }),
            Self::NoSuchCustomer(id) => page(
                status,
                "dashboard_search.html",
                context! { error => "No customer with that id has been seen.", query => id },
            ),
            // The cause is logged here once; the page only says the dashboard is unavailable.
            Self::Store { source, doing } => {
                tracing::error!(error = ?source, doing, "dashboard: storage failed");
                login(true, Some("the dashboard is unavailable right now"))
            }
            Self::Metrics(source) => {
                tracing::error!(error = ?source, "dashboard metrics failed");
                login(true, Some("metrics are unavailable right now"))
            }
        }
    }
}
