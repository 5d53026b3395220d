//! Failed-payment recovery, the pure part: which events matter, when a case opens, and when
//! each email of the series is due. No I/O; the reaction hook applies the decisions.

use crate::domain::event::Event;
use crate::domain::fields::{id_at, int_at, str_at};
use crate::domain::snapshots::InvoiceSnapshot;

const DAY: i64 = 86_400;

/// The series' timing, and what the owner's Stripe retry settings say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cadence {
    /// Days after the failure at which an email goes (`0` = at the failure).
    pub days: Vec<i64>,
    /// The final notice goes this long before Stripe's last try; `0` disables it.
    pub final_notice_secs: i64,
    /// A failure older than this when it arrives sends nothing.
    pub horizon_secs: i64,
    /// The number of tries in the owner's Stripe retry settings (the first charge included).
    /// Smart Retries fix how many tries there are, not when: `next_payment_attempt` is the
    /// last try only when the failure's `attempt_count` is `tries - 1`.
    pub tries: i64,
    /// What Stripe does to the subscription once it stops trying.
    pub after_retries: AfterRetries,
}

/// The owner's Stripe setting for a subscription whose retries are exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRetries {
    Canceled,
    Unpaid,
    Paused,
    /// Left `past_due`: the invoice stays open and the subscription runs on.
    PastDue,
}

impl AfterRetries {
    /// The configured name (`canceled`, `unpaid`, `paused`, `past_due`), also the templates' value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canceled => "canceled",
            Self::Unpaid => "unpaid",
            Self::Paused => "paused",
            Self::PastDue => "past_due",
        }
    }

    /// Parse a configured name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "canceled" | "cancelled" | "cancel" => Some(Self::Canceled),
            "unpaid" => Some(Self::Unpaid),
            "paused" | "pause" => Some(Self::Paused),
            "past_due" => Some(Self::PastDue),
            _ => None,
        }
    }
}

/// One email of the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Day(i64),
    /// Before the last try.
    Final,
    /// Stripe will not try again.
    Stopped,
}

impl Step {
    /// The step's part of the dedupe key (`day0`, `day3`, `final`, `stopped`).
    pub fn key(self) -> String {
        match self {
            Self::Day(d) => format!("day{d}"),
            Self::Final => "final".into(),
            Self::Stopped => "stopped".into(),
        }
    }

    /// The template for this step of a case of `kind`.
    pub fn template(self, action_required: bool) -> &'static str {
        match self {
            Self::Day(0) if action_required => "payment_action_required",
            Self::Day(0) => "payment_failed",
            Self::Day(_) => "payment_reminder",
            Self::Final => "payment_final_notice",
            Self::Stopped => "payment_stopped",
        }
    }
}

/// Where a case stands after its newest failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseState {
    /// The earliest failure's time: the ordinary reminders count from here.
    pub opened_at: i64,
    /// The newest failure's time, `attempt_count` and `next_payment_attempt`.
    pub last_failure_at: i64,
    pub attempt_count: i64,
    pub next_payment_attempt: Option<i64>,
    /// The customer must authenticate (3-D Secure): Stripe waits for them, not for a retry.
    pub action_required: bool,
}

/// What the series should hold now: emails to queue (or move) and steps to withdraw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub send: Vec<(Step, i64)>,
    /// Steps that must not go (any not yet sent is cancelled).
    pub withdraw: Vec<Step>,
}

impl Cadence {
    /// The emails of a case in `state`, with their due times.
    ///
    /// - No further try (`next_payment_attempt` null: after the last retry, or a hard decline
    ///   at the first attempt): one "payments have stopped" email now, and every reminder
    ///   that still speaks of retries is withdrawn.
    /// - Otherwise the reminders run from the first failure; the final notice exists only when
    ///   the next try is the owner's last one, goes `final_notice_secs` before it (never
    ///   before the failure that revealed it), and replaces any reminder due after it, so it
    ///   is never followed by an ordinary reminder.
    pub fn plan(&self, state: &CaseState) -> Plan {
        let days = || self.days.iter().map(|&d| (Step::Day(d), state.opened_at + d * DAY));
        let Some(next_try) = state.next_payment_attempt.filter(|_| !state.action_required) else {
            if state.action_required {
                return Plan { send: days().collect(), withdraw: vec![] };
            }
            let mut withdraw: Vec<Step> = days().map(|(s, _)| s).collect();
            withdraw.push(Step::Final);
            return Plan { send: vec![(Step::Stopped, state.last_failure_at)], withdraw };
        };
        let last_try_next = self.tries > 1 && state.attempt_count == self.tries - 1;
        if self.final_notice_secs <= 0 || !last_try_next {
            return Plan { send: days().collect(), withdraw: vec![Step::Final] };
        }
        let final_due = (next_try - self.final_notice_secs).max(state.last_failure_at);
        let (send, late): (Vec<_>, Vec<_>) = days().partition(|(_, due)| *due < final_due);
        let mut plan = Plan { send, withdraw: late.into_iter().map(|(s, _)| s).collect() };
        plan.send.push((Step::Final, final_due));
        plan
    }

    /// Whether a failure created at `failed_at` is too old to mail about at `now`.
    pub fn beyond_horizon(&self, failed_at: i64, now: i64) -> bool {
        now - failed_at > self.horizon_secs
    }
}

/// What an event means for dunning.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A payment failed (or needs the customer's authentication).
    Failed { invoice: InvoiceSnapshot, action_required: bool, customer_email: Option<String>, customer_name: Option<String> },
    /// The invoice was paid.
    Paid { invoice: InvoiceSnapshot },
    /// The invoice will never be paid (`voided`, `uncollectible`).
    InvoiceLost { invoice_id: String, reason: &'static str },
    /// The subscription ended; its open cases are lost.
    SubscriptionEnded { subscription: String },
    /// A card's details (attach, update, expiring source).
    Card(CardFacts),
}

/// A card as an event shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFacts {
    pub id: String,
    pub customer: Option<String>,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

/// Read the dunning meaning of an event, if it has one.
pub fn trigger(event: &Event) -> Option<Trigger> {
    let obj = &event.object;
    match str_at(obj, "object").as_deref()? {
        "invoice" => invoice_trigger(event),
        "subscription" => {
            let status = str_at(obj, "status")?;
            (status == "canceled" || status == "incomplete_expired")
                .then(|| Trigger::SubscriptionEnded { subscription: str_at(obj, "id").unwrap_or_default() })
        }
        "payment_method" => {
            let card = obj.get("card")?;
            Some(Trigger::Card(CardFacts {
                id: str_at(obj, "id")?,
                customer: id_at(obj, "customer"),
                brand: str_at(card, "brand"),
                last4: str_at(card, "last4"),
                exp_month: int_at(card, "exp_month"),
                exp_year: int_at(card, "exp_year"),
            }))
        }
        "card" => Some(Trigger::Card(CardFacts {
            id: str_at(obj, "id")?,
            customer: id_at(obj, "customer"),
            brand: str_at(obj, "brand"),
            last4: str_at(obj, "last4"),
            exp_month: int_at(obj, "exp_month"),
            exp_year: int_at(obj, "exp_year"),
        })),
        _ => None,
    }
}

fn invoice_trigger(event: &Event) -> Option<Trigger> {
    let invoice = InvoiceSnapshot::read(&event.object)?;
    match (event.kind.as_str(), invoice.status.as_deref()) {
        ("invoice.payment_failed" | "invoice.payment_action_required", _) => Some(Trigger::Failed {
            action_required: event.kind == "invoice.payment_action_required",
            customer_email: str_at(&event.object, "customer_email"),
            customer_name: str_at(&event.object, "customer_name"),
            invoice,
        }),
        ("invoice.paid" | "invoice.payment_succeeded", _) | (_, Some("paid")) => Some(Trigger::Paid { invoice }),
        ("invoice.voided", _) | (_, Some("void")) => Some(Trigger::InvoiceLost { invoice_id: invoice.id, reason: "voided" }),
        ("invoice.marked_uncollectible", _) | (_, Some("uncollectible")) => {
            Some(Trigger::InvoiceLost { invoice_id: invoice.id, reason: "uncollectible" })
        }
        _ => None,
    }
}

/// Why a failure opens no case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCase {
    NotASubscriptionInvoice,
    ZeroAmount,
    /// The subscription's first invoice while it is `incomplete`: the customer is still at checkout.
    FirstInvoiceOfIncomplete,
}

/// Whether a failed invoice opens a case, given its subscription's stored status.
pub fn opens_case(invoice: &InvoiceSnapshot, subscription_status: Option<&str>) -> Result<(), NoCase> {
    if invoice.subscription.is_none() {
        return Err(NoCase::NotASubscriptionInvoice);
    }
    if invoice.amount_due <= 0 {
        return Err(NoCase::ZeroAmount);
    }
    let first = invoice.billing_reason.as_deref() == Some("subscription_create");
    if first && matches!(subscription_status, None | Some("incomplete" | "incomplete_expired")) {
        return Err(NoCase::FirstInvoiceOfIncomplete);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cadence() -> Cadence {
        Cadence {
            days: vec![0, 3, 7],
            final_notice_secs: 2 * DAY,
            horizon_secs: 3 * DAY,
            tries: 4,
            after_retries: AfterRetries::Canceled,
        }
    }

    fn state(attempt_count: i64, last_failure_at: i64, next_payment_attempt: Option<i64>) -> CaseState {
        CaseState { opened_at: 1_000, last_failure_at, attempt_count, next_payment_attempt, action_required: false }
    }

    #[test]
    fn early_failures_get_the_reminders_and_no_final_notice() {
        for attempt in [1, 2] {
            let plan = cadence().plan(&state(attempt, 1_000 + (attempt - 1) * 3 * DAY, Some(1_000 + 9 * DAY)));
            assert_eq!(plan.send, vec![(Step::Day(0), 1_000), (Step::Day(3), 1_000 + 3 * DAY), (Step::Day(7), 1_000 + 7 * DAY)]);
            assert_eq!(plan.withdraw, vec![Step::Final]);
        }
    }

    #[test]
    fn the_final_notice_goes_before_the_last_try_only() {
        // attempt_count 3 of 4: the next try is the last.
        let plan = cadence().plan(&state(3, 1_000 + 8 * DAY, Some(1_000 + 15 * DAY)));
        assert_eq!(plan.send.last(), Some(&(Step::Final, 1_000 + 13 * DAY)));
        assert_eq!(plan.send.len(), 4);
        assert!(plan.withdraw.is_empty());
    }

    #[test]
    fn a_final_notice_is_never_followed_by_an_ordinary_reminder() {
        // An owner with 2 tries: the first failure already announces the last try, 4 days out.
        let c = Cadence { tries: 2, ..cadence() };
        let plan = c.plan(&state(1, 1_000, Some(1_000 + 4 * DAY)));
        assert_eq!(plan.send, vec![(Step::Day(0), 1_000), (Step::Final, 1_000 + 2 * DAY)]);
        assert_eq!(plan.withdraw, vec![Step::Day(3), Step::Day(7)]);
        // A last try sooner than the notice period: the notice goes at the failure itself, in
        // place of the first email (it says all the first one would).
        let plan = c.plan(&state(1, 1_000, Some(1_000 + DAY)));
        assert_eq!(plan.send, vec![(Step::Final, 1_000)]);
        assert_eq!(plan.withdraw, vec![Step::Day(0), Step::Day(3), Step::Day(7)]);
    }

    #[test]
    fn no_further_try_means_payments_have_stopped() {
        for attempt in [1, 4] {
            let plan = cadence().plan(&state(attempt, 1_000 + 15 * DAY, None));
            assert_eq!(plan.send, vec![(Step::Stopped, 1_000 + 15 * DAY)]);
            assert_eq!(plan.withdraw, vec![Step::Day(0), Step::Day(3), Step::Day(7), Step::Final]);
        }
    }

    #[test]
    fn an_authentication_request_keeps_its_reminders() {
        let plan = cadence().plan(&CaseState { action_required: true, ..state(1, 1_000, None) });
        assert_eq!(plan.send.len(), 3);
        assert!(plan.withdraw.is_empty());
    }

    #[test]
    fn first_invoices_of_incomplete_subscriptions_and_zero_amounts_open_nothing() {
        let mut inv = InvoiceSnapshot {
            id: "in_1".into(),
            customer: Some("cus_1".into()),
            subscription: Some("sub_1".into()),
            status: Some("open".into()),
            billing_reason: Some("subscription_create".into()),
            currency: Some("usd".into()),
            amount_due: 100,
            amount_paid: 0,
            amount_remaining: 100,
            attempt_count: 1,
            next_payment_attempt: None,
            hosted_invoice_url: None,
            created: Some(0),
            paid_at: None,
        };
        assert_eq!(opens_case(&inv, Some("incomplete")), Err(NoCase::FirstInvoiceOfIncomplete));
        assert_eq!(opens_case(&inv, Some("active")), Ok(()));
        inv.billing_reason = Some("subscription_cycle".into());
        inv.amount_due = 0;
        assert_eq!(opens_case(&inv, Some("active")), Err(NoCase::ZeroAmount));
    }
}
