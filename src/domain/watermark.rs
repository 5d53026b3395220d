//! Which of two snapshots of one object is the newer. Stripe delivers in any order and
//! several events can share a second, so "newer" is a total order on
//! `(rank, created, event id)`: a terminal state outranks a live one (a canceled subscription
//! or a paid invoice never regresses), then the later event, then the greater id on a tie.
//! Applying the greatest is a max, so any permutation of a stream converges to one state.

/// Watermark of the event that wrote a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watermark {
    pub rank: i64,
    pub created: i64,
    pub event_id: String,
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
        Watermark { rank, created, event_id: id.into() }
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
