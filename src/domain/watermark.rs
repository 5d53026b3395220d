//! Which of two snapshots of one object is the newer. Stripe delivers in any order and
//! several events can share a second, so "newer" is a total order on
//! `(rank, created, tie, event id)`: a terminal state outranks a live one (a canceled
//! subscription or a paid invoice never regresses), then the later event, then — for two
//! snapshots of the same second — the tie key read from the objects themselves (see
//! [`subscription_tie`], [`invoice_tie`]), and only for identical objects the greater event
//! id. Applying the greatest is a max, so any permutation of a stream converges to one state.

use sha2::{Digest, Sha256};

use crate::domain::snapshots::{InvoiceSnapshot, SubscriptionSnapshot};

/// Watermark of the event that wrote a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watermark {
    pub rank: i64,
    pub created: i64,
    /// Same-second order from the object (empty for objects without a tie rule).
    pub tie: String,
    pub event_id: String,
}

/// A timestamp as a fixed-width field of a tie key (absent and negative sort first).
fn at(t: Option<i64>) -> String {
    format!("{:020}", t.unwrap_or(0).max(0))
}

/// The object's content, as the last resort of a tie: equal objects have equal keys.
fn content(object: &serde_json::Value) -> String {
    hex::encode(&Sha256::digest(object.to_string().as_bytes())[..8])
}

/// Where a subscription status stands in a subscription's life, for same-second ties.
fn subscription_step(status: &str) -> u8 {
    match status {
        "incomplete" => 1,
        "trialing" => 2,
        "active" => 3,
        "past_due" => 4,
        "unpaid" => 5,
        "paused" => 6,
        "incomplete_expired" => 7,
        "canceled" => 8,
        _ => 0,
    }
}

/// Same-second order of two subscription snapshots: the later billing period first (a
/// renewal is newer than the period it ends), then the later step of the subscription's life
/// (incomplete < trialing < active < past_due < unpaid < paused < ended), then the later
/// `canceled_at`, then the later `ended_at`, then the content.
pub fn subscription_tie(s: &SubscriptionSnapshot, object: &serde_json::Value) -> String {
    format!(
        "{}.{}.{:02}.{}.{}.{}",
        at(s.current_period_end),
        at(s.current_period_start),
        subscription_step(&s.status),
        at(s.canceled_at),
        at(s.ended_at),
        content(object)
    )
}

/// Same-second order of two invoice snapshots: the later status (draft < open <
/// uncollectible < paid, void), then more payment attempts, then more paid, then the later
/// `paid_at`, then the content.
pub fn invoice_tie(i: &InvoiceSnapshot, object: &serde_json::Value) -> String {
    let step = match i.status.as_deref() {
        Some("draft") => 1,
        Some("open") => 2,
        Some("uncollectible") => 3,
        Some("paid") => 4,
        Some("void") => 5,
        _ => 0,
    };
    format!("{step:02}.{}.{}.{}.{}", at(Some(i.attempt_count)), at(Some(i.amount_paid)), at(i.paid_at), content(object))
}

/// Rank of a stub written from a related object (e.g. a customer seen only in a checkout
/// session): any real snapshot replaces it.
pub const STUB: i64 = -1;
/// Rank of a live snapshot.
pub const LIVE: i64 = 0;
/// Rank of a settled-but-reversible state (an uncollectible invoice can still be paid).
pub const SETTLED: i64 = 1;
/// Rank of a state Stripe never leaves (deleted customer, canceled subscription, paid or
/// void invoice).
pub const TERMINAL: i64 = 2;

/// Rank of a subscription status.
pub fn subscription_rank(status: &str) -> i64 {
    match status {
        "canceled" | "incomplete_expired" => TERMINAL,
        _ => LIVE,
    }
}

/// Rank of an invoice status.
pub fn invoice_rank(status: Option<&str>) -> i64 {
    match status {
        Some("paid" | "void") => TERMINAL,
        Some("uncollectible") => SETTLED,
        _ => LIVE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wm(rank: i64, created: i64, id: &str) -> Watermark {
        Watermark { rank, created, tie: String::new(), event_id: id.into() }
    }

    #[test]
    fn terminal_states_win_over_later_live_snapshots() {
        assert!(wm(TERMINAL, 10, "evt_a") > wm(LIVE, 20, "evt_b"));
        assert!(wm(LIVE, 20, "evt_a") > wm(LIVE, 10, "evt_b"));
        assert!(wm(LIVE, 10, "evt_b") > wm(LIVE, 10, "evt_a"));
        assert!(wm(LIVE, 0, "evt_a") > wm(STUB, 99, "evt_z"));
    }

    #[test]
    fn statuses_map_to_ranks() {
        assert_eq!(subscription_rank("canceled"), TERMINAL);
        assert_eq!(subscription_rank("past_due"), LIVE);
        assert_eq!(invoice_rank(Some("paid")), TERMINAL);
        assert_eq!(invoice_rank(Some("uncollectible")), SETTLED);
        assert_eq!(invoice_rank(Some("open")), LIVE);
        assert_eq!(invoice_rank(None), LIVE);
    }
}
