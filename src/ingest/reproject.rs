//! `holdfast reproject` and the maintained figures' rebuilds: transactions that hold the
//! projector's cursor, so the live projector waits for them.

use std::collections::HashSet;

use crate::ingest::project::{PROJECT_BATCH, in_transaction, project_events};
use crate::store::conn::{Conn, execute, fetch};
use crate::store::log::{self, LogRow};
use crate::store::{Store, StoreError};

/// The tables the projection writes, children first (`holdfast reproject` empties them).
const CLEAR_PROJECTED: [&str; 11] = [
    "DELETE FROM invoice_failures",
    "DELETE FROM subscription_item_lines",
    "DELETE FROM coupons",
    "DELETE FROM prices",
    "DELETE FROM products",
    "DELETE FROM subscription_items",
    "DELETE FROM subscription_history",
    "DELETE FROM subscriptions",
    "DELETE FROM invoices",
    "DELETE FROM discounts",
    "DELETE FROM customers",
];
const PARKED_SEQS: &str = "SELECT seq FROM parked_events";

/// Empty the projected tables and apply the log again up to the cursor, without reactions
/// (no dunning, no email), holding the cursor so the live projector waits. Parked events
/// stay parked. Returns the events applied.
async fn reproject_in(conn: &mut Conn<'_>, acts_on: Option<bool>, now: i64) -> Result<u64, StoreError> {
    let position = log::lock_cursor(conn).await?;
    for sql in CLEAR_PROJECTED.iter().chain(&crate::store::refunds::CLEAR) {
        execute!(conn, *sql)?;
    }
    let parked: Vec<(i64,)> = fetch!(conn, fetch_all, (i64,), PARKED_SEQS)?;
    let parked: HashSet<i64> = parked.into_iter().map(|(s,)| s).collect();
    let (mut after, mut applied) = (0_i64, 0_u64);
    while after < position {
        let rows = log::read_after(conn, after, PROJECT_BATCH).await?;
        let Some(last) = rows.last().map(|r| r.0) else { break };
        after = last;
        let rows: Vec<LogRow> = rows.into_iter().filter(|r| r.0 <= position && !parked.contains(&r.0)).collect();
        let (rows, _) = log::screen(conn, rows).await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            events.push(log::parse(row).map_err(|(_, e)| StoreError::Projection(e))?);
        }
        applied += events.iter().filter(|l| acts_on.is_none_or(|live| l.event.livemode == live)).count() as u64;
        project_events(conn, &events, None, acts_on, crate::figures::storage::Recompute::Never, false).await?;
    }
    crate::figures::storage::rebuild(conn, now).await?;
    Ok(applied)
}

impl Store {
    /// Rebuild the maintained figures from the projected history, in one transaction that
    /// holds the cursor (the projector waits). Returns the customers recomputed.
    pub async fn rebuild_figures(&self) -> Result<u64, StoreError> {
        let now = crate::clock::Clock::system().now();
        in_transaction!(self, |conn| {
            log::lock_cursor(conn).await?;
            crate::figures::storage::rebuild(conn, now).await
        })
    }

    /// Recompute, in one transaction that holds the cursor (the projector waits), up to
    /// `batch` of the customers whose maintained figures stopped being exact by `now` (a pause
    /// resumed, a discount ended). Returns how many were recomputed: fewer than `batch` when
    /// none is left.
    pub async fn refresh_due_figures(&self, now: i64, batch: i64) -> Result<usize, StoreError> {
        in_transaction!(self, |conn| {
            log::lock_cursor(conn).await?;
            crate::figures::storage::refresh_due(conn, now, batch).await
        })
    }

    /// `holdfast reproject`: rebuild every projected table from the log, then the maintained
    /// figures from it, in one transaction (readers see the old state until it commits). No
    /// reactions run: no email, no case.
    pub async fn reproject(&self) -> Result<u64, StoreError> {
        // Figures as seen now by the system clock: a later instant than a test's only makes
        // them exact further ahead.
        let now = crate::clock::Clock::system().now();
        in_transaction!(self, |conn| reproject_in(conn, self.acts_on(), now).await)
    }
}
