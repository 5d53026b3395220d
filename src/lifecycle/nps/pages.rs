//! The NPS survey's pages (public; the signed token in the path is the capability):
//!
//! ```text
//! GET  /nps/{token}?score=N      the question with N preselected and one button  (records nothing)
//! POST /nps/{token}              score=N: stored once (the first answer wins)   → 303 comment page
//! GET  /nps/{token}/comment      the optional comment form
//! POST /nps/{token}/comment      comment=…: stored once
//! ```
//! A GET never records: mail scanners and link previews follow every link in an email. A low
//! score (0–6) from a paying customer opens an at-risk episode (reason `low_nps`) and starts
//! its re-engagement series, in the answer's transaction.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use minijinja::context;
use serde::Deserialize;

use crate::clock::Clock;
use crate::lifecycle::context::Lifecycle;
use crate::lifecycle::nps::storage::{Answered, NewAnswer, RiskStart};
use crate::lifecycle::nps::{Survey, parse_score};
use crate::lifecycle::reengagement::reengagement_emails;
use crate::lifecycle::rules::reengage_case;
use crate::lifecycle::storage::NewEpisode;
use crate::store::plan::NewSeries;
use crate::store::reactions::ReactError;
use crate::store::{Store, StoreError};
use crate::web::pages::{CustomerPages, see_other};

/// A score form or a comment of at most `COMMENT_MAX_CHARS` characters.
const FORM_LIMIT_BYTES: usize = 8 * 1024;
const COMMENT_MAX_CHARS: usize = 2000;

/// Register the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/nps/{token}", web::get().to(score_page))
        .route("/nps/{token}", web::post().to(post_score))
        .route("/nps/{token}/comment", web::get().to(comment_page))
        .route("/nps/{token}/comment", web::post().to(post_comment));
}

#[derive(Debug, Deserialize)]
pub struct ScoreQuery {
    score: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ScoreForm {
    #[serde(default)]
    score: String,
}

#[derive(Debug, Deserialize)]
struct CommentForm {
    #[serde(default)]
    comment: String,
}

/// Why a request was refused (never naming the token); [`fail`] is its answer.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("invalid survey link")]
    Invalid,
    /// The message is shown to the customer.
    #[error("{0}")]
    BadForm(&'static str),
    /// The re-engagement emails a low score starts could not be prepared.
    #[error("re-engagement emails not prepared")]
    Emails(#[source] ReactError),
    #[error("storage failed")]
    Store(#[source] StoreError),
}

fn fail(pages: &CustomerPages, e: Refused) -> HttpResponse {
    let again = "We couldn't record that just now. Please try again in a minute.";
    match e {
        Refused::Invalid => pages.render(StatusCode::BAD_REQUEST, "nps_invalid.html", context! {}),
        Refused::BadForm(what) => pages.error(StatusCode::BAD_REQUEST, "Please try again", what, None),
        Refused::Emails(err) => {
            tracing::error!(error = ?err, "nps: re-engagement emails not prepared");
            pages.error(StatusCode::INTERNAL_SERVER_ERROR, "Please try again", again, None)
        }
        Refused::Store(err) => {
            tracing::error!(error = ?err, "nps: storage failed");
            pages.error(crate::web::error::storage_status(&err), "Please try again", again, None)
        }
    }
}

fn survey_of(lifecycle: &Lifecycle, token: &str) -> Result<Survey, Refused> {
    lifecycle.nps_links.verify(token).map_err(|_| Refused::Invalid)
}

async fn read_form<T: serde::de::DeserializeOwned>(mut payload: web::Payload) -> Result<T, Refused> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| Refused::BadForm("The form could not be read."))?;
        if body.len() + chunk.len() > FORM_LIMIT_BYTES {
            return Err(Refused::BadForm("That was too long."));
        }
        body.extend_from_slice(&chunk);
    }
    serde_urlencoded::from_bytes(&body).map_err(|_| Refused::BadForm("The form could not be read."))
}

/// `GET /nps/{token}`: the question, the link's score preselected; records nothing.
async fn score_page(
    req: HttpRequest,
    token: web::Path<String>,
    q: web::Query<ScoreQuery>,
    lifecycle: web::Data<Lifecycle>,
    pages: web::Data<CustomerPages>,
    store: web::Data<Store>,
) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    let result = async {
        let survey = survey_of(&lifecycle, &token)?;
        let answer = store.nps_answer(&survey.key()).await.map_err(Refused::Store)?;
        let selected = q.score.as_deref().and_then(parse_score);
        Ok(pages.render(
            StatusCode::OK,
            "nps_score.html",
            context! {
                product => lifecycle.nps_product.clone(),
                selected => selected,
                answered => answer.as_ref().map(|a| a.0),
                has_comment => answer.as_ref().is_some_and(|a| a.1.is_some()),
                post_url => req.path(),
                comment_url => format!("{}/comment", req.path()),
            },
        ))
    };
    result.await.unwrap_or_else(|e| fail(&pages, e))
}

/// `POST /nps/{token}`: store the score once, then the comment page.
async fn post_score(
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
    lifecycle: web::Data<Lifecycle>,
    pages: web::Data<CustomerPages>,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    let result = async {
        let survey = survey_of(&lifecycle, &token)?;
        let form: ScoreForm = read_form(payload).await?;
        let score = parse_score(&form.score).ok_or(Refused::BadForm("Pick a score from 0 to 10."))?;
        let now = clock.now();
        let customer = survey.customer.as_str();
        let paying = store.is_paying(customer).await.map_err(Refused::Store)?;
        let key = survey.key();
        let answer = NewAnswer { survey: &key, customer, score: i64::from(score), paying, at: now };
        let case_key = reengage_case(customer, now);
        // Only a paying customer's low score starts an episode, and only on the first answer.
        let risk =
            if score <= 6 && paying { low_score_risk(&lifecycle, &store, customer, &key, &case_key, now).await? } else { None };
        match store.record_nps_answer(&answer, risk.as_ref()).await.map_err(Refused::Store)? {
            Answered::Stored { at_risk } => {
                tracing::info!(score, at_risk, "nps answer recorded");
                if at_risk {
                    lifecycle.outbox.notify();
                }
            }
            Answered::Already { .. } => tracing::info!("nps survey answered before; unchanged"),
        }
        Ok(see_other(&format!("{}/comment", req.path())))
    };
    result.await.unwrap_or_else(|e| fail(&pages, e))
}

/// The at-risk episode and re-engagement series a low score starts, unless the survey was
/// answered before.
async fn low_score_risk<'a>(
    lifecycle: &Lifecycle,
    store: &Store,
    customer: &'a str,
    key: &str,
    case_key: &'a str,
    now: i64,
) -> Result<Option<RiskStart<'a>>, Refused> {
    if store.nps_answer(key).await.map_err(Refused::Store)?.is_some() {
        return Ok(None);
    }
    let contact = store.contact(customer).await.map_err(Refused::Store)?;
    let last_at = store.last_activity_at(customer).await.map_err(Refused::Store)?;
    let emails =
        reengagement_emails(lifecycle, customer, contact.as_ref(), last_at.unwrap_or(now), now).map_err(Refused::Emails)?;
    Ok(Some(RiskStart {
        episode: NewEpisode {
            customer,
            reason: "low_nps",
            since: now,
            last_activity_at: last_at.unwrap_or(now),
            recent_week: 0,
            baseline_week: 0,
        },
        series: NewSeries {
            case_key,
            campaign: "reengagement",
            customer,
            subscription: None,
            started_at: now,
            arm: crate::lifecycle::reengagement::reengagement_arm(lifecycle, customer),
        },
        emails,
    }))
}

/// `GET /nps/{token}/comment`: the optional comment (the question again if not answered).
async fn comment_page(
    req: HttpRequest,
    token: web::Path<String>,
    lifecycle: web::Data<Lifecycle>,
    pages: web::Data<CustomerPages>,
    store: web::Data<Store>,
) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    let result = async {
        let survey = survey_of(&lifecycle, &token)?;
        let Some((score, comment)) = store.nps_answer(&survey.key()).await.map_err(Refused::Store)? else {
            return Ok(see_other(req.path().trim_end_matches("/comment")));
        };
        Ok(comment_response(&pages, &lifecycle, req.path(), score, comment.is_some()))
    };
    result.await.unwrap_or_else(|e| fail(&pages, e))
}

fn comment_response(pages: &CustomerPages, lifecycle: &Lifecycle, path: &str, score: i64, has_comment: bool) -> HttpResponse {
    pages.render(
        StatusCode::OK,
        "nps_comment.html",
        context! { score, has_comment, post_url => path, return_url => lifecycle.campaigns.product_url.clone() },
    )
}

/// `POST /nps/{token}/comment`: store the comment once.
async fn post_comment(
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
    lifecycle: web::Data<Lifecycle>,
    pages: web::Data<CustomerPages>,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
) -> HttpResponse {
    if let Some(r) = pages.rate_limited(&req) {
        return r;
    }
    let result = async {
        let survey = survey_of(&lifecycle, &token)?;
        let form: CommentForm = read_form(payload).await?;
        let comment = form.comment.trim();
        if comment.chars().count() > COMMENT_MAX_CHARS {
            return Err(Refused::BadForm("That comment is too long (2000 characters at most)."));
        }
        let key = survey.key();
        let Some((score, _)) = store.nps_answer(&key).await.map_err(Refused::Store)? else {
            return Ok(see_other(req.path().trim_end_matches("/comment")));
        };
        if !comment.is_empty() && store.add_nps_comment(&key, comment, clock.now()).await.map_err(Refused::Store)? {
            tracing::info!("nps comment recorded");
        }
        let has_comment = store.nps_answer(&key).await.map_err(Refused::Store)?.is_some_and(|a| a.1.is_some());
        Ok(comment_response(&pages, &lifecycle, req.path(), score, has_comment))
    };
    result.await.unwrap_or_else(|e| fail(&pages, e))
}
