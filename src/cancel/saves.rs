//! Saves checked against billing: whether a cancel-flow save kept the customer paying.
//!
//! A click on an offer is only a promise. A save stays `pending` until billing proves it:
//! `confirmed` once an invoice of the subscription is paid after the offer's effect ended (the
//! pause is over; for a discount, downgrade or undone cancellation, the next renewal) or the
//! customer is still paying `confirm_secs` after that; `reversed` when the subscription ended
//! or was set to cancel first. Whichever happened first wins, so a late check decides the same
//! as a timely one.

use crate::cancel::rules::{Outcome, RESUME_MARGIN_SECS};

/// Where a save stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveState {
    Pending,
    Confirmed,
    Reversed,
}

impl SaveState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Reversed => "reversed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Confirmed, Self::Reversed].into_iter().find(|x| x.as_str() == s)
    }
}

/// What decided a save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// An invoice was paid after the offer's effect ended.
    PaidInvoice,
    /// Still on a live, paying subscription `confirm_secs` after the effect ended.
    StillPaying,
    /// The subscription ended.
    Ended,
    /// The subscription was set to cancel (at period end, or at a date).
    SetToCancel,
}

impl Evidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaidInvoice => "paid_invoice",
            Self::StillPaying => "still_paying",
            Self::Ended => "ended",
            Self::SetToCancel => "set_to_cancel",
        }
    }
}

/// A decided save: its state, when the deciding fact happened, and which fact it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub state: SaveState,
    pub at: i64,
    pub evidence: Evidence,
}

/// The subscription as projected now.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionFacts {
    pub status: String,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
}

/// A paid invoice of the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaidInvoice {
    /// When the invoice was created (the renewal it bills).
    pub created: i64,
    /// When it was paid (`created` when Stripe did not say).
    pub paid_at: i64,
    pub amount_paid: i64,
}

/// The save to decide.
#[derive(Debug, Clone, Copy)]
pub struct Save {
    pub outcome: Outcome,
    /// When the save was made (the session's `completed_at`).
    pub saved_at: i64,
    /// For a pause: the day billing restarts.
    pub paused_until: Option<i64>,
}

impl Save {
    /// When the offer's effect ends: billing restarts after a pause; a discount, downgrade or
    /// undone cancellation takes effect at once (the next renewal shows whether it held).
    pub fn effect_ends(&self) -> i64 {
        match self.outcome {
            Outcome::Paused => self.paused_until.unwrap_or(self.saved_at).max(self.saved_at),
            _ => self.saved_at,
        }
    }
}

/// Statuses of a subscription that is billing normally.
const PAYING: [&str; 2] = ["active", "trialing"];
/// Statuses of a subscription that is over.
const ENDED: [&str; 2] = ["canceled", "incomplete_expired"];

/// Decide `save` at `now` from its subscription (`None`: not projected yet) and the
/// subscription's paid invoices; `None` while it is still pending.
///
/// - Proof of payment: an invoice paying more than zero, created once the effect ended (a
///   collection pause resumes `RESUME_MARGIN_SECS` before its renewal, so that renewal's
///   invoice counts). For a discount, downgrade or undone cancellation: created after the save.
/// - Reversal: the subscription ended or is set to cancel. Its time is `ended_at`, else
///   `canceled_at` (when the cancellation was requested), never earlier than the save: a
///   reversal whose time is unknown counts as right after the save.
/// - The earlier of proof and reversal decides. Without either, the save is confirmed at
///   `effect_ends + confirm_secs` if the subscription is then active or trialing and not set
///   to cancel; a past-due or paused subscription stays pending (it is not paying).
pub fn decide(
    save: &Save,
    sub: Option<&SubscriptionFacts>,
    invoices: &[PaidInvoice],
    confirm_secs: i64,
    now: i64,
) -> Option<Decision> {
    let sub = sub?;
    let effect_ends = save.effect_ends();
    let counts_from = match save.outcome {
        Outcome::Paused => effect_ends - RESUME_MARGIN_SECS,
        _ => save.saved_at,
    };
    let proof = invoices.iter().filter(|i| i.amount_paid > 0 && i.created >= counts_from).map(|i| i.paid_at.max(i.created)).min();

    let ended = ENDED.contains(&sub.status.as_str()) || sub.ended_at.is_some();
    let set_to_cancel = sub.cancel_at_period_end || sub.cancel_at.is_some();
    let reversal = if ended {
        Some((sub.ended_at.or(sub.canceled_at).unwrap_or(save.saved_at).max(save.saved_at), Evidence::Ended))
    } else if set_to_cancel {
        Some((sub.canceled_at.unwrap_or(save.saved_at).max(save.saved_at), Evidence::SetToCancel))
    } else {
        None
    };

    match (proof, reversal) {
        (Some(p), Some((r, _))) if p <= r => {
            Some(Decision { state: SaveState::Confirmed, at: p, evidence: Evidence::PaidInvoice })
        }
        (_, Some((r, evidence))) => Some(Decision { state: SaveState::Reversed, at: r, evidence }),
        (Some(p), None) => Some(Decision { state: SaveState::Confirmed, at: p, evidence: Evidence::PaidInvoice }),
        (None, None) => {
            let due = effect_ends.saturating_add(confirm_secs);
            (now >= due && PAYING.contains(&sub.status.as_str())).then_some(Decision {
                state: SaveState::Confirmed,
                at: due,
                evidence: Evidence::StillPaying,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const T0: i64 = 1_800_000_000;

    fn live() -> SubscriptionFacts {
        SubscriptionFacts { status: "active".into(), ..Default::default() }
    }

    fn paid(created: i64) -> PaidInvoice {
        PaidInvoice { created, paid_at: created, amount_paid: 2000 }
    }

    fn discount() -> Save {
        Save { outcome: Outcome::Discounted, saved_at: T0, paused_until: None }
    }

    #[test]
    fn a_paid_renewal_confirms_a_discount_and_an_earlier_invoice_does_not() {
        let d = decide(&discount(), Some(&live()), &[paid(T0 - DAY)], 30 * DAY, T0 + DAY);
        assert_eq!(d, None);
        let d = decide(&discount(), Some(&live()), &[paid(T0 + 20 * DAY)], 30 * DAY, T0 + 21 * DAY).expect("decided");
        assert_eq!((d.state, d.at, d.evidence), (SaveState::Confirmed, T0 + 20 * DAY, Evidence::PaidInvoice));
        // A zero invoice (a 100 % coupon) proves nothing.
        let free = PaidInvoice { amount_paid: 0, ..paid(T0 + 20 * DAY) };
        assert_eq!(decide(&discount(), Some(&live()), &[free], 30 * DAY, T0 + 21 * DAY), None);
    }

    #[test]
    fn still_paying_after_the_window_confirms_but_past_due_waits() {
        assert_eq!(decide(&discount(), Some(&live()), &[], 30 * DAY, T0 + 30 * DAY - 1), None);
        let d = decide(&discount(), Some(&live()), &[], 30 * DAY, T0 + 31 * DAY).expect("decided");
        assert_eq!((d.state, d.at, d.evidence), (SaveState::Confirmed, T0 + 30 * DAY, Evidence::StillPaying));
        let past_due = SubscriptionFacts { status: "past_due".into(), ..Default::default() };
        assert_eq!(decide(&discount(), Some(&past_due), &[], 30 * DAY, T0 + 40 * DAY), None);
    }

    #[test]
    fn a_pause_is_proven_only_after_billing_restarts() {
        let pause = Save { outcome: Outcome::Paused, saved_at: T0, paused_until: Some(T0 + 60 * DAY) };
        // Paid during the paid-up month before the pause: not proof.
        assert_eq!(decide(&pause, Some(&live()), &[paid(T0 + 5 * DAY)], 30 * DAY, T0 + 40 * DAY), None);
        // 30 days after the save the customer is still paused: not confirmed by time either.
        assert_eq!(decide(&pause, Some(&live()), &[], 30 * DAY, T0 + 70 * DAY), None);
        let renewal = T0 + 60 * DAY - RESUME_MARGIN_SECS + 60;
        let d = decide(&pause, Some(&live()), &[paid(renewal)], 30 * DAY, renewal + 1).expect("decided");
        assert_eq!((d.state, d.evidence), (SaveState::Confirmed, Evidence::PaidInvoice));
        let d = decide(&pause, Some(&live()), &[], 30 * DAY, T0 + 91 * DAY).expect("decided");
        assert_eq!((d.state, d.at), (SaveState::Confirmed, T0 + 90 * DAY));
    }

    #[test]
    fn ending_or_scheduling_a_cancel_first_reverses_and_the_earlier_fact_wins() {
        let set = SubscriptionFacts { cancel_at_period_end: true, canceled_at: Some(T0 + 3 * DAY), ..live() };
        let d = decide(&discount(), Some(&set), &[], 30 * DAY, T0 + 4 * DAY).expect("decided");
        assert_eq!((d.state, d.at, d.evidence), (SaveState::Reversed, T0 + 3 * DAY, Evidence::SetToCancel));
        // Paid a renewal, then set to cancel: the payment came first.
        let d = decide(&discount(), Some(&set), &[paid(T0 + DAY)], 30 * DAY, T0 + 4 * DAY).expect("decided");
        assert_eq!(d.state, SaveState::Confirmed);
        let ended = SubscriptionFacts { status: "canceled".into(), ended_at: Some(T0 + 2 * DAY), ..Default::default() };
        let d = decide(&discount(), Some(&ended), &[paid(T0 + 5 * DAY)], 30 * DAY, T0 + 6 * DAY).expect("decided");
        assert_eq!((d.state, d.evidence), (SaveState::Reversed, Evidence::Ended));
        // A cancellation dated before the save (stale) counts as right after it.
        let stale = SubscriptionFacts { cancel_at: Some(T0 + 9 * DAY), canceled_at: Some(T0 - DAY), ..live() };
        let d = decide(&discount(), Some(&stale), &[], 30 * DAY, T0 + DAY).expect("decided");
        assert_eq!((d.state, d.at), (SaveState::Reversed, T0));
        // Unknown subscription: wait.
        assert_eq!(decide(&discount(), None, &[], 30 * DAY, T0 + 90 * DAY), None);
    }
}
