//! The tables of money given back after a payment (`charges`, `charge_refund_marks`,
//! `disputes`, `credit_notes`) and of the payments that tie a charge to its invoice
//! (`invoice_payment_intents`): written in the projector's transaction from the events that
//! carry them (webhooks and `holdfast sync` alike), read back by the metrics. A snapshot
//! replaces the stored one unless the stored one came from a later event.

use std::collections::HashMap;

use crate::domain::event::Event;
use crate::domain::refunds::{
    self, ChargeSnapshot, CreditNoteSnapshot, DisputeSnapshot, MoneyBack, RefundMark, Stored, StoredCreditNote, StoredDispute,
};
use crate::store::conn::{Conn, execute};
use crate::store::{Store, StoreError};

const UPSERT_CHARGE: &str = "INSERT INTO charges (id, customer, invoice, payment_intent, currency, amount_refunded, src_created) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET customer = COALESCE(excluded.customer, charges.customer), \
     invoice = COALESCE(excluded.invoice, charges.invoice), payment_intent = COALESCE(excluded.payment_intent, charges.payment_intent), \
     currency = COALESCE(excluded.currency, charges.currency), amount_refunded = excluded.amount_refunded, \
     src_created = excluded.src_created WHERE excluded.src_created >= charges.src_created";
const INSERT_MARK: &str = "INSERT INTO charge_refund_marks (event_id, charge, amount_refunded, at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (event_id) DO NOTHING";
/// A dispute's decision is dated by the first event that reported it won or lost.
const UPSERT_DISPUTE: &str = "INSERT INTO disputes (id, charge, payment_intent, currency, amount, status, created, decided_at, \
     src_created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO UPDATE SET charge = excluded.charge, \
     payment_intent = excluded.payment_intent, currency = excluded.currency, amount = excluded.amount, status = excluded.status, \
     created = excluded.created, decided_at = COALESCE(disputes.decided_at, excluded.decided_at), \
     src_created = excluded.src_created WHERE excluded.src_created >= disputes.src_created";
/// A voided note stays voided (voiding is final in Stripe).
const UPSERT_CREDIT_NOTE: &str = "INSERT INTO credit_notes (id, invoice, customer, currency, credited, voided, created, \
     src_created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET invoice = excluded.invoice, \
     customer = excluded.customer, currency = excluded.currency, credited = excluded.credited, \
     voided = (credit_notes.voided OR excluded.voided), created = excluded.created, src_created = excluded.src_created \
     WHERE excluded.src_created >= credit_notes.src_created OR excluded.voided";
const INSERT_PAID: &str = "INSERT INTO invoice_payment_intents (payment_intent, invoice) VALUES ($1, $2) \
     ON CONFLICT (payment_intent) DO NOTHING";

/// Only the charges something was given back on (a refund mark or a dispute): every paid
/// charge is stored, and the metrics must not read them all.
const SELECT_CHARGES: &str = "SELECT id, customer, invoice, payment_intent, currency, amount_refunded FROM charges \
     WHERE id IN (SELECT charge FROM charge_refund_marks) OR id IN (SELECT charge FROM disputes WHERE charge IS NOT NULL)";
const SELECT_MARKS: &str = "SELECT charge, amount_refunded, at FROM charge_refund_marks";
const SELECT_DISPUTES: &str = "SELECT id, charge, payment_intent, currency, amount, status, created, decided_at FROM disputes";
const SELECT_CREDIT_NOTES: &str = "SELECT id, invoice, customer, currency, credited, voided, created FROM credit_notes";
/// Only the payments of those charges and disputes (every paid invoice has one).
const SELECT_PAID: &str = "SELECT payment_intent, invoice FROM invoice_payment_intents WHERE payment_intent IN \
     (SELECT c.payment_intent FROM charges c WHERE c.id IN (SELECT charge FROM charge_refund_marks) \
     OR c.id IN (SELECT charge FROM disputes WHERE charge IS NOT NULL)) \
     OR payment_intent IN (SELECT payment_intent FROM disputes WHERE payment_intent IS NOT NULL)";

/// The tables `holdfast reproject` empties before applying the log again.
pub(crate) const CLEAR: [&str; 5] = [
    "DELETE FROM charges",
    "DELETE FROM charge_refund_marks",
    "DELETE FROM disputes",
    "DELETE FROM credit_notes",
    "DELETE FROM invoice_payment_intents",
];

/// Apply what `events` say about refunds, disputes, credit notes and invoice payments.
pub async fn apply(conn: &mut Conn<'_>, events: &[&Event]) -> Result<(), sqlx::Error> {
    for event in events {
        for item in refunds::read(event) {
            apply_one(conn, event, item).await?;
        }
    }
    Ok(())
}

/// Store one thing `event` says: a charge's refunded total (and the refund's mark), a
/// dispute, a credit note, or which invoice a payment intent paid.
async fn apply_one(conn: &mut Conn<'_>, event: &Event, item: MoneyBack) -> Result<(), sqlx::Error> {
    match item {
        MoneyBack::Charge(c) => {
            let at = event.created;
            execute!(conn, UPSERT_CHARGE, &c.id, &c.customer, &c.invoice, &c.payment_intent, &c.currency, c.amount_refunded, at)?;
            if c.amount_refunded > 0 {
                execute!(conn, INSERT_MARK, &event.id, &c.id, c.amount_refunded, at)?;
            }
        }
        MoneyBack::Dispute(d) => {
            let decided_at = matches!(d.status.as_str(), "won" | "lost").then_some(event.created);
            let created = event.object.get("created").and_then(serde_json::Value::as_i64).unwrap_or(event.created);
            execute!(
                conn,
                UPSERT_DISPUTE,
                &d.id,
                &d.charge,
                &d.payment_intent,
                &d.currency,
                d.amount,
                &d.status,
                created,
                decided_at,
                event.created
            )?;
        }
        MoneyBack::CreditNote(n) => {
            let created = event.object.get("created").and_then(serde_json::Value::as_i64).unwrap_or(event.created);
            execute!(
                conn,
                UPSERT_CREDIT_NOTE,
                &n.id,
                &n.invoice,
                &n.customer,
                &n.currency,
                n.credited,
                n.voided,
                created,
                event.created
            )?;
        }
        MoneyBack::Paid { payment_intent, invoice } => {
            execute!(conn, INSERT_PAID, &payment_intent, &invoice)?;
        }
    }
    Ok(())
}

type ChargeRow = (String, Option<String>, Option<String>, Option<String>, Option<String>, i64);
type DisputeRow = (String, Option<String>, Option<String>, Option<String>, i64, String, i64, Option<i64>);
type CreditNoteRow = (String, Option<String>, Option<String>, Option<String>, i64, bool, i64);

macro_rules! load_from {
    ($pool:expr) => {{
        let pool = $pool;
        let charges: Vec<ChargeRow> = sqlx::query_as(SELECT_CHARGES).fetch_all(pool).await?;
        let marks: Vec<(String, i64, i64)> = sqlx::query_as(SELECT_MARKS).fetch_all(pool).await?;
        let disputes: Vec<DisputeRow> = sqlx::query_as(SELECT_DISPUTES).fetch_all(pool).await?;
        let notes: Vec<CreditNoteRow> = sqlx::query_as(SELECT_CREDIT_NOTES).fetch_all(pool).await?;
        let paid: Vec<(String, String)> = sqlx::query_as(SELECT_PAID).fetch_all(pool).await?;
        (charges, marks, disputes, notes, paid)
    }};
}

impl Store {
    /// Everything given back after a payment, as the metrics read it.
    pub async fn load_given_back(&self) -> Result<Vec<crate::domain::timeline::GivenBack>, StoreError> {
        let (charges, marks, disputes, notes, paid) = match self {
            Store::Sqlite(s) => load_from!(s.pool()),
            Store::Postgres(s) => load_from!(s.pool()),
        };
        let stored = Stored {
            charges: charges
                .into_iter()
                .map(|(id, customer, invoice, payment_intent, currency, amount_refunded)| ChargeSnapshot {
                    id,
                    customer,
                    invoice,
                    payment_intent,
                    currency,
                    amount_refunded,
                })
                .collect(),
            marks: marks.into_iter().map(|(charge, amount_refunded, at)| RefundMark { charge, amount_refunded, at }).collect(),
            disputes: disputes
                .into_iter()
                .map(|(id, charge, payment_intent, currency, amount, status, created, decided_at)| StoredDispute {
                    dispute: DisputeSnapshot { id, charge, payment_intent, currency, amount, status },
                    created,
                    decided_at,
                })
                .collect(),
            credit_notes: notes
                .into_iter()
                .map(|(id, invoice, customer, currency, credited, voided, created)| StoredCreditNote {
                    note: CreditNoteSnapshot { id, invoice, customer, currency, credited, voided },
                    created,
                })
                .collect(),
            paid: paid.into_iter().collect::<HashMap<_, _>>(),
        };
        Ok(refunds::given_back(&stored))
    }
}
