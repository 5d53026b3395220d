//! Where the reactions meet the projector's transaction. The store knows them only through
//! this trait (no import of the features): the projector calls the hook for the events it
//! projects, on the transaction's connection, right after their projection is applied.

use futures::future::BoxFuture;

use super::StoreError;
use super::conn::Conn;
use crate::domain::event::Event;

/// What the projector runs after applying a batch (dunning, lifecycle emails).
pub trait ReactionHook: Send + Sync + std::fmt::Debug {
    /// React to `events` (in log order) inside the caller's transaction; returns the emails
    /// enqueued. With `notify` false (imported history) state is recorded but nothing is sent.
    fn react<'a, 'c: 'a>(
        &'a self,
        conn: &'a mut Conn<'c>,
        events: &'a [&'a Event],
        now: i64,
        notify: bool,
    ) -> BoxFuture<'a, Result<usize, StoreError>>;

    /// Emails were enqueued and are durable: wake the outbox worker.
    fn notify_outbox(&self);
}

/// The installed hook, shared by the store's clones.
pub type Hook = std::sync::Arc<dyn ReactionHook>;

/// Run the hook, if one is installed; returns the emails it enqueued.
pub(crate) async fn react(
    conn: &mut Conn<'_>,
    events: &[&Event],
    now: i64,
    notify: bool,
    reactor: Option<&dyn ReactionHook>,
) -> Result<usize, StoreError> {
    let Some(reactor) = reactor else { return Ok(0) };
    if events.is_empty() {
        return Ok(0);
    }
    reactor.react(conn, events, now, notify).await
}
