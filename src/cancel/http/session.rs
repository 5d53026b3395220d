//! The session a page acts on: looked up by its capability id, with its subscription.

use actix_web::HttpResponse;

use crate::cancel::http::CancelState;
use crate::cancel::http::error::PageError;
use crate::cancel::offers::Target;
use crate::cancel::storage::CancelSessionRow;
use crate::store::Store;
use crate::web::pages::see_other;

/// A session that may still be acted on: started, unfinished, before its deadline.
pub(super) async fn open_session(store: &Store, id: &str, now: i64) -> Result<CancelSessionRow, PageError> {
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
pub(super) async fn target(store: &Store, s: &CancelSessionRow) -> Result<Target, PageError> {
    let (subscription, items) =
        store.live_subscription_of(&s.customer, s.subscription.as_deref()).await?.ok_or(PageError::NoSubscription)?;
    let pausable = store.event_object(&subscription.src_event_id).await?.as_ref().is_some_and(crate::cancel::offers::pausable);
    Ok(Target { subscription, items, pausable })
}

pub(super) fn base(s: &CancelSessionRow) -> String {
    format!("/cancel/s/{}", s.id)
}

pub(super) fn finished(s: &CancelSessionRow) -> bool {
    s.outcome.as_deref().is_some_and(|o| o != "abandoned")
}

/// How long a second click waits for the first one's Stripe call before it is sent to the
/// session's result page (which says "still working" and reloads itself).
const SECOND_CLICK_WAIT: std::time::Duration = std::time::Duration::from_secs(25);

/// A second submit while the first holds the session: poll the session until the first has
/// an outcome or gave up, then redirect (GET) to the page that shows it — never a `409` at
/// the POST address.
pub(super) async fn await_first_click(state: &CancelState, store: &Store, s: &CancelSessionRow) -> HttpResponse {
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
