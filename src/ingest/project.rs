//! The projector's transaction. The projector (`ingest::projector`) reads the log after its
//! cursor, in log order, and in one transaction per batch writes the projection, the
//! subscription history, the metrics generation, the reactions (dunning, lifecycle, outbox
//! rows) and the new cursor. The cursor moves by compare-and-set, so a batch is projected at
//! most once even when two projectors (replicas, an import command) race; a crash anywhere
//! leaves the cursor and the projected state together, so the next projector resumes exactly
//! there.
//!
//! Failure isolation: an event whose projection fails is parked with its error (in
//! `parked_events`) instead of stopping the log; later events of the same customer are
//! parked behind it, in order, and every other customer goes on (`ingest::parking`).

use crate::domain::event::Event;
use crate::figures::storage::Recompute;
use crate::figures::storage::refresh_stale;
use crate::ingest::parking;
use crate::ingest::plan_writes::react;
use crate::ingest::read_ahead::ReadAhead;
use crate::store::batch::Writes;
use crate::store::conn::{Conn, execute};
use crate::store::log::{self, Logged, customer_key, is_outage};
use crate::store::reactions::ReactionHook;
use crate::store::{Store, StoreError};

/// Most events a projector transaction takes. Past a few hundred, a bigger batch gains
/// nothing (a pass's fixed part is already small) and costs memory: at 1,000 the server's
/// RSS reached ~190 MiB draining a 100k-event backlog, against ~70-90 MiB at 250, which
/// drained as fast or faster (README, "Benchmarks"). SQLite's webhooks never wait for a pass:
/// they are appended to the inbox (`store::sqlite::inbox`).
pub const PROJECT_BATCH: i64 = 250;

/// Customers whose figures a pass may recompute, per event it may take: an event touches a
/// customer and its subscription at most, so the stale ones never outgrow the passes.
const STALE_PER_EVENT: i64 = 2;

/// What one projector transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Projected {
    /// Events read from the log (projected or parked).
    pub events: usize,
    /// Of those, parked (failed, or behind a parked event of the same customer).
    pub parked: usize,
    /// The cursor after the batch.
    pub position: i64,
    /// Emails the reactions enqueued.
    pub enqueued: usize,
    /// Of the events read, quarantined (never projected).
    pub quarantined: usize,
    /// Some customers' figures are still behind their projected history after this pass
    /// (marked stale and not recomputed yet): the projector goes on at once, and waiters
    /// are not told of this position.
    pub figures_pending: bool,
}

/// Apply `events` (in log order) and run their reactions, inside the caller's transaction.
/// Events of the other Stripe mode than `acts_on` are passed over: they stay in the log only.
/// `figures`: when the maintained figures of the customers the events touch are recomputed
/// (`Recompute`). `record_ties`: note same-second
/// ties for a fetch from Stripe (live projection with a Stripe key only, never a reprojection).
pub(super) async fn project_events(
    conn: &mut Conn<'_>,
    events: &[Logged],
    reactor: Option<&dyn ReactionHook>,
    acts_on: Option<bool>,
    figures: Recompute,
    record_ties: bool,
) -> Result<usize, StoreError> {
    project_planned(conn, events, None, reactor, acts_on, figures, record_ties).await
}

/// [`project_events`], with `planned`: these events' writes when they were planned already
/// (`Writes::from_events` of those in the `acts_on` mode, by `ingest::read_ahead`).
async fn project_planned(
    conn: &mut Conn<'_>,
    events: &[Logged],
    planned: Option<Writes>,
    reactor: Option<&dyn ReactionHook>,
    acts_on: Option<bool>,
    figures: Recompute,
    record_ties: bool,
) -> Result<usize, StoreError> {
    let events: Vec<&Logged> = events.iter().filter(|l| acts_on.is_none_or(|live| l.event.livemode == live)).collect();
    if events.is_empty() {
        return Ok(0);
    }
    let writes = planned.unwrap_or_else(|| Writes::from_events(events.iter().map(|l| &l.event)));
    if record_ties {
        let received = events.iter().map(|l| l.received_at).max().unwrap_or_default();
        crate::store::refetch::record_ties(conn, &writes, received).await?;
    }
    match conn {
        Conn::Sqlite(c) => crate::store::sqlite::ingest::apply(c, &writes).await?,
        Conn::Postgres(c) => crate::store::postgres::ingest::apply(c, &writes).await?,
    }
    let all: Vec<&Event> = events.iter().map(|l| &l.event).collect();
    crate::store::catalog::apply(conn, &all).await?;
    crate::store::pricing::apply(conn, &all).await?;
    crate::store::refunds::apply(conn, &all).await?;
    crate::store::metrics::record_invoice_failures(conn, &all).await?;
    crate::store::coupons::apply(conn, &all).await?;
    // Reactions see the batch in runs of one kind (webhook or import: imports never email),
    // each run at the time its last event was received, as the ingest transaction did.
    let mut enqueued = 0;
    for run in events.chunk_by(|a, b| a.notify == b.notify) {
        let refs: Vec<&Event> = run.iter().map(|l| &l.event).collect();
        let now = run.iter().map(|l| l.received_at).max().unwrap_or_default();
        enqueued += react(conn, &refs, now, run[0].notify, reactor).await?;
    }
    // Seen as of the batch's latest receipt: a later instant only makes the figures exact
    // further ahead; the scheduler recomputes them once the clock passes their due time.
    let seen_at = events.iter().map(|l| l.received_at).max().unwrap_or_default();
    crate::figures::storage::apply(conn, &all, figures, seen_at).await?;
    // Cached metrics are stale from this commit on.
    execute!(conn, crate::store::metrics::BUMP_GENERATION)?;
    Ok(enqueued)
}

/// The batch a pass projects: its events parsed (the quarantined left out), how many rows it
/// read and the last one's position, how many of them it quarantined, and its writes when they
/// were planned ahead.
struct Read {
    events: Vec<Logged>,
    rows: usize,
    last: Option<i64>,
    quarantined: usize,
    planned: Option<Writes>,
}

/// Read, screen and parse up to `limit` events after `position`, or take them from `ahead`
/// when it read exactly those (`ingest::read_ahead`).
async fn read_batch(conn: &mut Conn<'_>, position: i64, limit: i64, ahead: Option<&mut ReadAhead>) -> Result<Read, StoreError> {
    if let Some(ahead) = ahead
        && let Some(batch) = ahead.take(conn, position, limit).await?
    {
        let (rows, last) = (batch.events.len(), batch.events.last().map(|l| l.seq));
        return Ok(Read { events: batch.events, rows, last, quarantined: 0, planned: Some(batch.writes) });
    }
    let rows = log::read_after(conn, position, limit).await?;
    let (read, last) = (rows.len(), rows.last().map(|r| r.0));
    let (rows, quarantined) = log::screen(conn, rows).await?;
    let events =
        rows.into_iter().map(|row| log::parse(row).map_err(|(_, e)| StoreError::Projection(e))).collect::<Result<_, _>>()?;
    Ok(Read { events, rows: read, last, quarantined, planned: None })
}

/// One projector transaction's work on `conn` (inside a transaction): up to `limit` events
/// after the cursor. `more_waiting`: events wait to join the log (SQLite's inbox had more
/// than one copy takes), so the log's end is not the end of the backlog. `ahead`: the
/// projector's read-ahead, which may hold this batch, and is set reading the next one.
#[allow(clippy::too_many_arguments)]
async fn project_next(
    conn: &mut Conn<'_>,
    store: &Store,
    limit: i64,
    reactor: Option<&dyn ReactionHook>,
    acts_on: Option<bool>,
    now: i64,
    record_ties: bool,
    more_waiting: bool,
    mut ahead: Option<&mut ReadAhead>,
) -> Result<Projected, StoreError> {
    let position = log::lock_cursor(conn).await?;
    let Read { events: batch, rows, last, quarantined, planned } =
        read_batch(conn, position, limit, ahead.as_deref_mut()).await?;
    let stale_limit = limit.saturating_mul(STALE_PER_EVENT);
    let Some(last) = last else {
        // At the end of the log: the figures left behind catch up.
        let figures_pending = refresh_stale(conn, now, stale_limit, true).await?;
        return Ok(Projected { position, figures_pending, ..Projected::default() });
    };
    // Only behind a backlog: at the log's end the next pass reads what arrives meanwhile.
    if let Some(ahead) = ahead
        && rows as i64 >= limit
    {
        ahead.start(store, last, limit);
    }
    let parked = parking::parked_keys(conn).await?;
    let mut project = Vec::with_capacity(batch.len());
    let mut wait = Vec::new();
    for logged in batch {
        let key = customer_key(&logged.event);
        if parked.contains(&key) {
            wait.push((logged.seq, logged.event.id, key));
        } else {
            project.push(logged);
        }
    }
    // The planned writes are of every event read: not when some wait behind a parked one.
    let planned = planned.filter(|_| wait.is_empty());
    // A pass that read fewer events than it could took the end of the log: its customers are
    // recomputed in it, as seen at the batch's receipt. A full pass is probably behind the log:
    // its customers' figures wait (up to `STALE_AT_MOST_SECS`) for the passes after it, and
    // are recomputed once for all of them.
    let behind = rows as i64 >= limit;
    let figures = if behind { Recompute::Mark(now) } else { Recompute::Now };
    let enqueued = project_planned(conn, &project, planned, reactor, acts_on, figures, record_ties).await?;
    for (seq, event_id, key) in &wait {
        parking::park_behind(conn, *seq, event_id, key, now).await?;
    }
    log::advance_cursor(conn, position, last).await?;
    // Behind a backlog (in the log, or still in the inbox), the stale figures wait for the
    // pass that reaches its end: recomputing them at every pass's end cost more than the
    // projection itself while the inbox fed the log one pass at a time.
    let at_end = !behind || (!more_waiting && !log::has_after(conn, last).await?);
    let figures_pending = refresh_stale(conn, now, stale_limit, at_end).await?;
    Ok(Projected { events: rows, parked: wait.len(), position: last, enqueued, quarantined, figures_pending })
}

/// Run `f` in a write transaction of the projector's connection; on SQLite, wait until the
/// commit is durable (or, with `durable = false`, return once committed: the caller asks for
/// the WAL's sync itself, `Store::project_pass`).
macro_rules! in_transaction {
    ($store:expr, |$conn:ident| $body:expr) => {
        $crate::ingest::project::in_transaction!($store, durable = true, |$conn| $body)
    };
    ($store:expr, durable = $durable:expr, |$conn:ident| $body:expr) => {{
        match $store {
            $crate::store::Store::Sqlite(s) => {
                s.make_way_for_checkpoint().await;
                let mut tx = $crate::store::sqlite::lock::begin_immediate(s.project_pool()).await?;
                let result = {
                    let $conn = &mut $crate::store::conn::Conn::Sqlite(&mut *tx);
                    $body
                };
                match result {
                    Ok(v) => {
                        tx.commit().await?;
                        if $durable {
                            s.durable().await?;
                        }
                        Ok(v)
                    }
                    Err(e) => Err(e),
                }
            }
            $crate::store::Store::Postgres(s) => {
                let mut tx = s.pool().begin().await?;
                let result = {
                    let $conn = &mut $crate::store::conn::Conn::Postgres(&mut *tx);
                    $body
                };
                match result {
                    Ok(v) => {
                        tx.commit().await?;
                        Ok(v)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }};
}
pub(crate) use in_transaction;

/// A committed projector pass whose durability was asked for (SQLite's WAL sync) and not yet
/// confirmed. Nothing of it is published (waiters, the outbox, the inbox's copied rows) before
/// [`Pass::finish`] has seen it durable; meanwhile the projector can already run the next pass,
/// so the disk syncs one pass while the next is built (`ingest::projector`).
#[derive(Debug)]
pub(crate) struct Pass {
    done: Projected,
    /// The WAL sync to wait for (`None` on Postgres, whose commit is durable).
    ticket: Option<u64>,
    /// The last inbox row copied into the log before this pass (SQLite).
    copied: Option<i64>,
}

impl Pass {
    /// What the pass did (not yet durable).
    pub(crate) fn projected(&self) -> &Projected {
        &self.done
    }

    /// Wait until the pass is durable, then publish it: the inbox may delete the rows copied
    /// (the copy committed before the pass), the outbox and waiters are told.
    pub(crate) async fn finish(self, store: &Store) -> Result<Projected, StoreError> {
        if let Store::Sqlite(s) = store {
            s.wait_durable(self.ticket).await?;
            if let (Some(copied), Some(inbox)) = (self.copied, s.inbox()) {
                inbox.mark_durable(copied);
            }
        }
        store.after_projection(&self.done);
        Ok(self.done)
    }
}

impl Store {
    /// Project the next batch of the log (up to `limit` events). One transaction; on a
    /// projection failure, the batch's events are retried one per transaction and the one
    /// that fails is parked, so the log moves on. Returns once the batch is durable.
    pub async fn project_batch(&self, limit: i64, now: i64) -> Result<Projected, StoreError> {
        self.project_pass(limit, now, None).await?.finish(self).await
    }

    /// [`Self::project_batch`] as the projector runs it, with its read-ahead: the pass may take
    /// the batch `ahead` read, and sets it reading the next (`ingest::read_ahead`).
    pub async fn project_batch_reading_ahead(
        &self,
        limit: i64,
        now: i64,
        ahead: &mut ReadAhead,
    ) -> Result<Projected, StoreError> {
        self.project_pass(limit, now, Some(ahead)).await?.finish(self).await
    }

    /// [`Self::project_batch`], returning once the pass is committed: its WAL sync is asked
    /// for, and [`Pass::finish`] waits for it and publishes the pass. `ahead`: the projector's
    /// read-ahead (`ingest::read_ahead`), which may hold this batch and is set reading the next.
    pub(crate) async fn project_pass(&self, limit: i64, now: i64, mut ahead: Option<&mut ReadAhead>) -> Result<Pass, StoreError> {
        // SQLite: webhooks wait in the inbox; its next rows join the log first.
        let (copied, more_waiting) = self.drain_inbox().await?;
        // The batch being read ahead, waited for before the transaction: the pass then takes it
        // or reads for itself without waiting under the cursor's (and SQLite's write) lock.
        if let Some(ahead) = ahead.as_deref_mut() {
            ahead.ready().await;
        }
        let reactor = self.reactor();
        let first: Result<Projected, StoreError> = in_transaction!(self, durable = false, |conn| project_next(
            conn,
            self,
            limit,
            reactor.as_deref(),
            self.acts_on(),
            now,
            self.refetches_ties(),
            more_waiting,
            ahead.as_deref_mut()
        )
        .await);
        if first.is_err()
            && let Some(ahead) = ahead
        {
            ahead.discard();
        }
        let done = match first {
            Err(e) if e.is_projection_failure() && !is_outage(&e) => self.project_one_by_one(limit, now, more_waiting).await?,
            other => other?,
        };
        let ticket = match self {
            Store::Sqlite(s) => s.request_durable(),
            Store::Postgres(_) => None,
        };
        Ok(Pass { done, ticket, copied })
    }

    /// Copy the inbox's next rows into the log (SQLite): the last inbox row copied so far, and
    /// whether more wait (the copy took as many as it could).
    async fn drain_inbox(&self) -> Result<(Option<i64>, bool), StoreError> {
        match self {
            Store::Sqlite(s) => {
                let copied = s.drain_inbox(PROJECT_BATCH).await?;
                Ok((s.inbox().map(|inbox| inbox.moved()), copied as i64 >= PROJECT_BATCH))
            }
            Store::Postgres(_) => Ok((None, false)),
        }
    }

    /// After a failed batch: each event in its own transaction, parking the ones that fail.
    async fn project_one_by_one(&self, limit: i64, now: i64, more_waiting: bool) -> Result<Projected, StoreError> {
        let reactor = self.reactor();
        let mut total = Projected::default();
        for _ in 0..limit {
            let one: Result<Projected, StoreError> = in_transaction!(self, |conn| project_next(
                conn,
                self,
                1,
                reactor.as_deref(),
                self.acts_on(),
                now,
                self.refetches_ties(),
                more_waiting,
                None
            )
            .await);
            let one = match one {
                Err(e) if e.is_projection_failure() && !is_outage(&e) => {
                    let error = e.to_string();
                    tracing::error!(error = ?e, "event projection failed; its customer is parked");
                    in_transaction!(self, |conn| parking::park_next(conn, &error, now).await)?
                }
                other => other?,
            };
            total.position = one.position;
            total.figures_pending = one.figures_pending;
            if one.events == 0 {
                break;
            }
            total.events += one.events;
            total.parked += one.parked;
            total.enqueued += one.enqueued;
            total.quarantined += one.quarantined;
        }
        Ok(total)
    }

    /// Publish a committed projection: wake the outbox if mail was enqueued, and waiters. A
    /// pass that left figures to recompute is not published to waiters: what they read after
    /// their wait must include the figures (a later pass, at once, recomputes the rest).
    pub(super) fn after_projection(&self, done: &Projected) {
        if done.enqueued > 0
            && let Some(r) = self.reactor()
        {
            r.notify_outbox();
        }
        if done.position > 0 && !done.figures_pending {
            self.log_signals().projected.send_if_modified(|p| {
                let moved = done.position > *p;
                *p = (*p).max(done.position);
                moved
            });
        }
    }

    /// Project until the cursor reaches `target` (imports and tests without a running
    /// projector). Concurrent projectors are fine: the cursor only moves by compare-and-set.
    pub async fn project_through(&self, target: i64, now: i64) -> Result<(), StoreError> {
        loop {
            match self.project_batch(PROJECT_BATCH, now).await {
                // Nothing left after the cursor: `target` is passed (by us or another projector),
                // and the figures caught up with it.
                Ok(done) if (done.position >= target || done.events == 0) && !done.figures_pending => return Ok(()),
                Ok(_) | Err(StoreError::CursorMoved) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
