//! Failed-payment recovery, the pure part: which events matter, when a case opens, and when
//! each email of the series is due. No I/O; the reaction hook applies the decisions.

use super::event::Event;
use super::fields::{id_at, int_at, str_at};
use super::snapshots::InvoiceSnapshot;

const DAY: i64 = 86_400;

/// The series' timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cadence {
    /// Days after the failure at which an email goes (`0` = at the failure).
    pub days: Vec<i64>,
    /// The final notice goes this long before Stripe's last retry; `0` disables it.
    pub final_notice_secs: i64,
    /// A failure older than this when it arrives sends nothing.
    pub horizon_secs: i64,
}

/// One email of the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Day(i64),
    Final,
}

impl Step {
    /// The step's part of the dedupe key (`day0`, `day3`, `final`).
    pub fn key(self) -> String {
        match self {
            Self::Day(d) => format!("day{d}"),
            Self::Final => "final".into(),
        }
    }

    /// The template for this step of a case of `kind`.
    pub fn template(self, action_required: bool) -> &'static str {
        match self {
            Self::Day(0) if action_required => "payment_action_required",
            Self::Day(0) => "payment_failed",
            Self::Day(_) => "payment_reminder",
            Self::Final => "payment_final_notice",
        }
    }
}

impl Cadence {
    /// The emails of a case opened at `opened_at`, with their due times. The final notice
    /// exists only while Stripe has a retry planned, and only after the failure.
    pub fn plan(&self, opened_at: i64, next_payment_attempt: Option<i64>) -> Vec<(Step, i64)> {
        let mut steps: Vec<(Step, i64)> = self.days.iter().map(|&d| (Step::Day(d), opened_at + d * DAY)).collect();
        if self.final_notice_secs > 0
            && let Some(last_retry) = next_payment_attempt
        {
            let due = last_retry - self.final_notice_secs;
            if due > opened_at {
                steps.push((Step::Final, due));
            }
        }
        steps
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

/// `$20.00`, `€9.50`, `¥2000`, `12.00 CHF`: money as a customer reads it.
pub fn format_amount(cents: i64, currency: Option<&str>) -> String {
    let code = currency.unwrap_or("usd").to_ascii_lowercase();
    let zero_decimal = matches!(code.as_str(), "jpy" | "krw" | "vnd" | "clp" | "isk" | "ugx" | "xaf" | "xof" | "pyg" | "rwf");
    let number = if zero_decimal { cents.to_string() } else { format!("{}.{:02}", cents / 100, (cents % 100).abs()) };
    match code.as_str() {
        "usd" | "cad" | "aud" | "nzd" | "sgd" | "hkd" => format!("${number}"),
        "eur" => format!("€{number}"),
        "gbp" => format!("£{number}"),
        "jpy" => format!("¥{number}"),
        other => format!("{number} {}", other.to_ascii_uppercase()),
    }
}

/// `2 March 2026` (UTC).
pub fn format_date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map(|d| d.format("%-d %B %Y").to_string()).unwrap_or_default()
}

/// `March 2026` and the (year, month) of an instant, UTC.
pub fn year_month(unix: i64) -> (i64, i64, String) {
    use chrono::Datelike;
    let d = chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default();
    (i64::from(d.year()), i64::from(d.month()), d.format("%B %Y").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cadence() -> Cadence {
        Cadence { days: vec![0, 3, 7], final_notice_secs: 2 * DAY, horizon_secs: 3 * DAY }
    }

    #[test]
    fn the_default_series_runs_from_the_failure_time() {
        let plan = cadence().plan(1_000, Some(1_000 + 14 * DAY));
        assert_eq!(
            plan,
            vec![
                (Step::Day(0), 1_000),
                (Step::Day(3), 1_000 + 3 * DAY),
                (Step::Day(7), 1_000 + 7 * DAY),
                (Step::Final, 1_000 + 12 * DAY)
            ]
        );
    }

    #[test]
    fn no_final_notice_without_a_planned_retry() {
        assert_eq!(cadence().plan(0, None).len(), 3);
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

    #[test]
    fn amounts_read_as_money() {
        assert_eq!(format_amount(2000, Some("usd")), "$20.00");
        assert_eq!(format_amount(950, Some("EUR")), "€9.50");
        assert_eq!(format_amount(2000, Some("jpy")), "¥2000");
        assert_eq!(format_amount(1200, Some("chf")), "12.00 CHF");
    }
}
