//! Where the reaction hook meets the ingest transaction (both backends call this right after
//! applying the projection, for the batch's new events only).

use super::StoreError;
use super::conn::Conn;
use crate::domain::event::Event;
use crate::reactions::{ReactError, Reactor};

/// Run the hook, if one is installed; returns the emails it enqueued.
pub(crate) async fn react(
    conn: &mut Conn<'_>,
    events: &[&Event],
    now: i64,
    reactor: Option<&Reactor>,
) -> Result<usize, StoreError> {
    let Some(reactor) = reactor else { return Ok(0) };
    if events.is_empty() {
        return Ok(0);
    }
    reactor.react(conn, events, now).await.map_err(|e| match e {
        ReactError::Database(e) => StoreError::from(e),
        ReactError::Render(e) => StoreError::Reaction(e.to_string()),
    })
}
