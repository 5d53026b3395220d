//! Money given back after a payment: refunds (`charge.refunded` and any charge event carrying
//! `amount_refunded`), disputes (`charge.dispute.*`) and credit notes (`credit_note.*`), and
//! the links that tie a payment to its invoice (an invoice's `payment_intent`, its
//! `payments`, an `invoice_payment`). Pure; `store::refunds` writes them and the metrics read
//! them back as [`GivenBack`] amounts.

use std::collections::HashMap;

use serde_json::Value;

use crate::domain::backfill::Synthetic;
use crate::domain::event::Event;
use crate::domain::fields::{id_at, int_at, path, str_at};
use crate::domain::timeline::{GivenBack, GivenBackKind};

/// A charge as last seen: what was refunded of it so far (Stripe's `amount_refunded` only grows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeSnapshot {
    pub id: String,
    pub customer: Option<String>,
    /// Before 2025-03-31.basil a charge names its invoice; later ones only their payment intent.
    pub invoice: Option<String>,
    pub payment_intent: Option<String>,
    pub currency: Option<String>,
    pub amount_refunded: i64,
}

/// A dispute as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeSnapshot {
    pub id: String,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    pub currency: Option<String>,
    pub amount: i64,
    pub status: String,
}

impl DisputeSnapshot {
    /// Lost: the disputed amount is gone for good (a won dispute returns it).
    pub fn lost(&self) -> bool {
        self.status == "lost"
    }
}

/// A credit note as last seen. `credited` is the part given back other than by a refund to the
/// payment method (credit to the customer's balance, money returned outside Stripe): the
/// refunded part arrives as the charge's own refund and must not count twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNoteSnapshot {
    pub id: String,
    pub invoice: Option<String>,
    pub customer: Option<String>,
    pub currency: Option<String>,
    pub credited: i64,
    pub voided: bool,
}

/// What one event says about money given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyBack {
    Charge(ChargeSnapshot),
    Dispute(DisputeSnapshot),
    CreditNote(CreditNoteSnapshot),
    /// A payment intent that paid (part of) an invoice.
    Paid {
        payment_intent: String,
        invoice: String,
    },
}

/// Read what `event` carries about refunds, disputes, credit notes and invoice payments.
pub fn read(event: &Event) -> Vec<MoneyBack> {
    let obj = &event.object;
    match str_at(obj, "object").as_deref() {
        Some("charge") => charge(obj).into_iter().collect(),
        Some("dispute") => dispute(obj).into_iter().collect(),
        Some("credit_note") => credit_note(event).into_iter().collect(),
        Some("invoice") => invoice_payments(obj),
        Some("invoice_payment") => {
            let intent = obj.get("payment").and_then(|p| id_at(p, "payment_intent"));
            match (intent, id_at(obj, "invoice")) {
                (Some(payment_intent), Some(invoice)) => vec![MoneyBack::Paid { payment_intent, invoice }],
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// A charge's refunded total.
fn charge(obj: &Value) -> Option<MoneyBack> {
    Some(MoneyBack::Charge(ChargeSnapshot {
        id: str_at(obj, "id")?,
        customer: id_at(obj, "customer"),
        invoice: id_at(obj, "invoice"),
        payment_intent: id_at(obj, "payment_intent"),
        currency: str_at(obj, "currency").map(|c| c.to_ascii_lowercase()),
        amount_refunded: int_at(obj, "amount_refunded").unwrap_or(0).max(0),
    }))
}

fn dispute(obj: &Value) -> Option<MoneyBack> {
    Some(MoneyBack::Dispute(DisputeSnapshot {
        id: str_at(obj, "id")?,
        charge: id_at(obj, "charge"),
        payment_intent: id_at(obj, "payment_intent"),
        currency: str_at(obj, "currency").map(|c| c.to_ascii_lowercase()),
        amount: int_at(obj, "amount").unwrap_or(0).max(0),
        status: str_at(obj, "status").unwrap_or_default(),
    }))
}

/// A credit note: voided by its `credit_note.voided` event or its status.
fn credit_note(event: &Event) -> Option<MoneyBack> {
    let obj = &event.object;
    Some(MoneyBack::CreditNote(CreditNoteSnapshot {
        id: str_at(obj, "id")?,
        invoice: id_at(obj, "invoice"),
        customer: id_at(obj, "customer"),
        currency: str_at(obj, "currency").map(|c| c.to_ascii_lowercase()),
        credited: credited(obj),
        voided: event.kind == "credit_note.voided" || str_at(obj, "status").as_deref() == Some("void"),
    }))
}

/// The payment intents that paid an invoice: its own `payment_intent`, then its `payments`.
fn invoice_payments(obj: &Value) -> Vec<MoneyBack> {
    let Some(invoice) = str_at(obj, "id") else { return Vec::new() };
    let mut intents: Vec<String> = id_at(obj, "payment_intent").into_iter().collect();
    if let Some(payments) = path(obj, &["payments", "data"]).and_then(Value::as_array) {
        intents.extend(payments.iter().filter_map(|p| p.get("payment").and_then(|p| id_at(p, "payment_intent"))));
    }
    intents.into_iter().map(|payment_intent| MoneyBack::Paid { payment_intent, invoice: invoice.clone() }).collect()
}

/// A credit note's amount given back after payment, less what it refunded to the payment method.
fn credited(obj: &Value) -> i64 {
    let after_payment = int_at(obj, "post_payment_amount").or_else(|| {
        // Older versions: a post-payment note's whole total.
        (str_at(obj, "type").as_deref() == Some("post_payment"))
            .then(|| int_at(obj, "total").or_else(|| int_at(obj, "amount")))?
    });
    let after_payment = after_payment.unwrap_or(0).max(0);
    let refunded = match obj.get("refunds").and_then(Value::as_array) {
        Some(refunds) => refunds.iter().filter_map(|r| int_at(r, "amount_refunded")).sum(),
        // Older versions name one refund without its amount: the whole note was refunded.
        None if id_at(obj, "refund").is_some() => after_payment,
        None => 0,
    };
    (after_payment - refunded).max(0)
}

/// A charge's cumulative `amount_refunded` as an event dated `at` reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundMark {
    pub charge: String,
    pub amount_refunded: i64,
    pub at: i64,
}

/// A stored dispute, with when it was decided (`None` while open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDispute {
    pub dispute: DisputeSnapshot,
    pub created: i64,
    pub decided_at: Option<i64>,
}

/// A stored credit note, with its date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCreditNote {
    pub note: CreditNoteSnapshot,
    pub created: i64,
}

/// The stored rows, as the metrics read them.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub charges: Vec<ChargeSnapshot>,
    pub marks: Vec<RefundMark>,
    pub disputes: Vec<StoredDispute>,
    pub credit_notes: Vec<StoredCreditNote>,
    /// payment intent → invoice.
    pub paid: HashMap<String, String>,
}

/// Every amount given back, dated and tied to its invoice where known:
/// - a refund is dated by the event that first reported it: each rise of a charge's
///   cumulative `amount_refunded`, in time order, is the amount refunded then;
/// - a lost dispute, by the event that reported it lost, for the disputed amount;
/// - a credit note not voided, by its creation, for its `credited` part.
pub fn given_back(stored: &Stored) -> Vec<GivenBack> {
    let charges: HashMap<&str, &ChargeSnapshot> = stored.charges.iter().map(|c| (c.id.as_str(), c)).collect();
    let invoice_of_charge =
        |c: &ChargeSnapshot| c.invoice.clone().or_else(|| c.payment_intent.as_ref().and_then(|pi| stored.paid.get(pi)).cloned());
    let mut out = Vec::new();
    let mut marks: Vec<&RefundMark> = stored.marks.iter().collect();
    marks.sort_by(|a, b| (a.charge.as_str(), a.at, a.amount_refunded).cmp(&(b.charge.as_str(), b.at, b.amount_refunded)));
    let mut seen: HashMap<&str, i64> = HashMap::new();
    for m in marks {
        let before = seen.entry(m.charge.as_str()).or_insert(0);
        if m.amount_refunded <= *before {
            continue;
        }
        let amount = m.amount_refunded - *before;
        *before = m.amount_refunded;
        let charge = charges.get(m.charge.as_str()).copied();
        out.push(GivenBack {
            at: m.at,
            currency: charge.and_then(|c| c.currency.clone()).unwrap_or_else(|| "usd".into()),
            amount,
            invoice: charge.and_then(invoice_of_charge),
            kind: GivenBackKind::Refund,
        });
    }
    for d in stored.disputes.iter().filter(|d| d.dispute.lost()) {
        let charge = d.dispute.charge.as_deref().and_then(|c| charges.get(c)).copied();
        let invoice = charge
            .and_then(invoice_of_charge)
            .or_else(|| d.dispute.payment_intent.as_ref().and_then(|pi| stored.paid.get(pi)).cloned());
        out.push(GivenBack {
            at: d.decided_at.unwrap_or(d.created),
            currency: d.dispute.currency.clone().unwrap_or_else(|| "usd".into()),
            amount: d.dispute.amount,
            invoice,
            kind: GivenBackKind::LostDispute,
        });
    }
    for n in stored.credit_notes.iter().filter(|n| !n.note.voided && n.note.credited > 0) {
        out.push(GivenBack {
            at: n.created,
            currency: n.note.currency.clone().unwrap_or_else(|| "usd".into()),
            amount: n.note.credited,
            invoice: n.note.invoice.clone(),
            kind: GivenBackKind::CreditNote,
        });
    }
    out
}

/// `holdfast sync`'s charges: a `charge.refunded` for each charge with refunds, dated by its
/// latest refund when the list carries them (else by the charge).
pub fn charge_events(obj: &Value) -> Vec<Synthetic> {
    let (Some(id), Some(created)) = (str_at(obj, "id"), int_at(obj, "created")) else { return Vec::new() };
    if int_at(obj, "amount_refunded").unwrap_or(0) <= 0 {
        return Vec::new();
    }
    let refunds = path(obj, &["refunds", "data"]).and_then(Value::as_array);
    let at = refunds.and_then(|r| r.iter().filter_map(|r| int_at(r, "created")).max()).unwrap_or(created);
    vec![Synthetic { id: format!("evt_sync_{id}_{at}"), kind: "charge.refunded", created: at, object: obj.clone() }]
}

/// `holdfast sync`'s disputes: `charge.dispute.created`, and `charge.dispute.closed` once won
/// or lost (dated by its latest balance transaction, else its creation).
pub fn dispute_events(obj: &Value) -> Vec<Synthetic> {
    let (Some(id), Some(created)) = (str_at(obj, "id"), int_at(obj, "created")) else { return Vec::new() };
    let mut out =
        vec![Synthetic { id: format!("evt_sync_{id}_{created}"), kind: "charge.dispute.created", created, object: obj.clone() }];
    if matches!(str_at(obj, "status").as_deref(), Some("won" | "lost")) {
        let txns = obj.get("balance_transactions").and_then(Value::as_array);
        let at = txns.and_then(|t| t.iter().filter_map(|t| int_at(t, "created")).max()).unwrap_or(created).max(created);
        let at = if at == created { created + 1 } else { at };
        out.push(Synthetic {
            id: format!("evt_sync_{id}_{at}"),
            kind: "charge.dispute.closed",
            created: at,
            object: obj.clone(),
        });
    }
    out
}

/// `holdfast sync`'s credit notes: `credit_note.created`, and `credit_note.voided` at `voided_at`.
pub fn credit_note_events(obj: &Value) -> Vec<Synthetic> {
    let (Some(id), Some(created)) = (str_at(obj, "id"), int_at(obj, "created")) else { return Vec::new() };
    let voided_at = int_at(obj, "voided_at").filter(|_| str_at(obj, "status").as_deref() == Some("void"));
    let mut created_view = obj.clone();
    if voided_at.is_some() {
        created_view["status"] = Value::String("issued".into());
    }
    let mut out =
        vec![Synthetic { id: format!("evt_sync_{id}_{created}"), kind: "credit_note.created", created, object: created_view }];
    if let Some(at) = voided_at {
        let at = at.max(created + 1);
        out.push(Synthetic { id: format!("evt_sync_{id}_{at}"), kind: "credit_note.voided", created: at, object: obj.clone() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: Value) -> Event {
        Event {
            id: "evt_1".into(),
            kind: kind.into(),
            created: 100,
            livemode: false,
            api_version: None,
            account: None,
            object,
            raw: String::new(),
        }
    }

    fn credit_note(object: Value) -> CreditNoteSnapshot {
        match read(&event("credit_note.created", object)).as_slice() {
            [MoneyBack::CreditNote(n)] => n.clone(),
            other => panic!("one credit note, got {other:?}"),
        }
    }

    #[test]
    fn a_credit_note_counts_only_what_it_did_not_refund_to_the_card() {
        let note = json!({"object": "credit_note", "id": "cn_1", "invoice": "in_1", "currency": "usd", "status": "issued",
            "type": "post_payment", "total": 1500, "post_payment_amount": 1500,
            "refunds": [{"amount_refunded": 1000, "refund": "re_1"}]});
        let n = credit_note(note);
        assert_eq!((n.credited, n.voided), (500, false));
        let pre = json!({"object": "credit_note", "id": "cn_2", "type": "pre_payment", "total": 900, "post_payment_amount": 0,
            "pre_payment_amount": 900, "refunds": [], "status": "issued"});
        let n = credit_note(pre);
        assert_eq!(n.credited, 0, "a note before payment gives nothing back");
    }

    #[test]
    fn refunds_are_dated_by_each_rise_of_the_cumulative_amount_in_any_order() {
        let charge = ChargeSnapshot {
            id: "ch_1".into(),
            customer: None,
            invoice: None,
            payment_intent: Some("pi_1".into()),
            currency: Some("jpy".into()),
            amount_refunded: 700,
        };
        let mark = |amount_refunded, at| RefundMark { charge: "ch_1".into(), amount_refunded, at };
        let stored = Stored {
            charges: vec![charge],
            // Delivered out of order, one of them twice.
            marks: vec![mark(700, 300), mark(200, 100), mark(700, 300), mark(200, 100)],
            paid: HashMap::from([("pi_1".to_owned(), "in_1".to_owned())]),
            ..Stored::default()
        };
        let back = given_back(&stored);
        let got: Vec<(i64, i64, Option<&str>)> = back.iter().map(|g| (g.at, g.amount, g.invoice.as_deref())).collect();
        assert_eq!(got, [(100, 200, Some("in_1")), (300, 500, Some("in_1"))]);
        assert!(back.iter().all(|g| g.currency == "jpy" && g.kind == GivenBackKind::Refund));
    }

    #[test]
    fn only_lost_disputes_give_money_back() {
        let dispute = |id: &str, status: &str| StoredDispute {
            dispute: DisputeSnapshot {
                id: id.into(),
                charge: None,
                payment_intent: Some("pi_9".into()),
                currency: Some("eur".into()),
                amount: 900,
                status: status.into(),
            },
            created: 10,
            decided_at: Some(50),
        };
        let stored = Stored {
            disputes: vec![dispute("dp_won", "won"), dispute("dp_lost", "lost"), dispute("dp_open", "needs_response")],
            paid: HashMap::from([("pi_9".to_owned(), "in_9".to_owned())]),
            ..Stored::default()
        };
        let back = given_back(&stored);
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].at, back[0].amount, back[0].invoice.as_deref()), (50, 900, Some("in_9")));
    }

    #[test]
    fn sync_synthesizes_dated_events() {
        let charge = json!({"object": "charge", "id": "ch_1", "created": 10, "amount_refunded": 500,
            "refunds": {"data": [{"created": 40}, {"created": 30}]}});
        assert_eq!(charge_events(&charge)[0].created, 40);
        assert!(charge_events(&json!({"object": "charge", "id": "ch_2", "created": 10, "amount_refunded": 0})).is_empty());
        let lost = json!({"object": "dispute", "id": "dp_1", "created": 10, "status": "lost",
            "balance_transactions": [{"created": 10}, {"created": 90}]});
        let kinds: Vec<(&str, i64)> = dispute_events(&lost).iter().map(|s| (s.kind, s.created)).collect();
        assert_eq!(kinds, [("charge.dispute.created", 10), ("charge.dispute.closed", 90)]);
        let void = json!({"object": "credit_note", "id": "cn_1", "created": 10, "status": "void", "voided_at": 20});
        let kinds: Vec<(&str, i64)> = credit_note_events(&void).iter().map(|s| (s.kind, s.created)).collect();
        assert_eq!(kinds, [("credit_note.created", 10), ("credit_note.voided", 20)]);
    }
}
