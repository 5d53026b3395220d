//! The owner's numbers, maintained: in the projector's transaction, every customer a batch
//! touches is recomputed from its own history (`figures::maintained`), its stored
//! contribution replaced, and the per-month, tail and cohort totals moved by the difference.
//! Reads assemble a [`Report`] from those totals: a few dozen rows, whatever the history's
//! size.
//!
//! - `refresh`: which customers an event touches, their recompute and the totals' deltas,
//!   the rebuild and the due recomputes;
//! - `timelines`: a batch of customers' own histories, read with one statement per table;
//! - `batch_sql`: those batch statements, per backend;
//! - `reads`: the report and the other reads of the maintained totals.

mod batch_sql;
mod reads;
mod refresh;
mod timelines;

pub use self::reads::Unresolved;
pub(crate) use self::refresh::{Recompute, apply, rebuild, refresh_due, refresh_stale};
pub(crate) use self::timelines::own_timelines;
