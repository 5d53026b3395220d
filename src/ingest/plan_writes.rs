//! The projector's side of the reactions: load the facts a [`ReactionHook`] asks for and
//! write the plan it returns, on the projection transaction's connection (the writes call
//! into each feature's storage).

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::domain::event::Event;
use crate::lifecycle::storage as series;
use crate::mail::NewEmail;
use crate::store::StoreError;
use crate::store::conn::{Conn, execute};
use crate::store::outbox::{self, IfQueued};
use crate::store::plan::{Contact, DunningCase, NewSeries};
use crate::store::reactions::{Facts, FactsQuery, ReactionHook, ReactionPlan, StoredCard, Write};

/// Run the hook, if one is installed: load its facts, let it decide, write its plan.
/// Returns the emails enqueued.
pub(crate) async fn react(
    conn: &mut Conn<'_>,
    events: &[&Event],
    now: i64,
    notify: bool,
    reactor: Option<&dyn ReactionHook>,
) -> Result<usize, StoreError> {
    let Some(reactor) = reactor else { return Ok(0) };
    if events.is_empty() {
        return Ok(0);
    }
    let wants = reactor.wants(events, notify);
    let mut facts = load(conn, &wants).await?;
    facts.customer_mrr = customer_mrr(conn, &wants.customer_mrr).await?;
    let plan = reactor.decide(facts, events, now, notify).map_err(StoreError::Reaction)?;
    Ok(write(conn, &plan, now).await?)
}

/// Each customer's MRR by currency just before each instant, from their own history read the
/// way the maintained figures read it (this run's snapshots included: the state in force
/// before the instant is the one before the event).
async fn customer_mrr(
    conn: &mut Conn<'_>,
    wanted: &BTreeSet<(String, i64)>,
) -> Result<HashMap<(String, i64), HashMap<String, f64>>, StoreError> {
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let keys: Vec<&str> = wanted.iter().map(|(c, _)| c.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    let owns = crate::figures::storage::own_timelines(conn, &keys).await?;
    let by_key: HashMap<&str, &crate::domain::timeline::Timeline> = keys.iter().copied().zip(owns.iter()).collect();
    for (customer, at) in wanted {
        let Some(own) = by_key.get(customer.as_str()) else { continue };
        let mut mrr: HashMap<String, f64> = HashMap::new();
        for sub in &own.subscriptions {
            if let Some(s) = sub.states_at(&[*at])[0].filter(|s| s.is_active()) {
                *mrr.entry(sub.currency.to_ascii_lowercase()).or_default() += own.mrr_of(sub, s, *at);
            }
        }
        out.insert((customer.clone(), *at), mrr);
    }
    Ok(out)
}

/// Subscription statuses that mean "still a customer".
macro_rules! live {
    () => {
        "('active', 'trialing', 'past_due', 'unpaid')"
    };
}

/// A statement reading rows whose key is among a list: `$1` is a JSON array on SQLite
/// (`json_each`) and a text array on Postgres.
struct Among {
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! among {
    ($head:literal, $tail:literal) => {
        Among {
            sqlite: concat!($head, "(SELECT value FROM json_each($1))", $tail),
            postgres: concat!($head, "(SELECT unnest($1::text[]))", $tail),
        }
    };
}

const CASES_OF_INVOICES: Among = among!(
    "SELECT invoice_id, customer, subscription, kind, status, silent, currency, amount_due, opened_at, \
     next_payment_attempt, closed_at, close_reason, recovered_amount, recovered_after_secs, emails_before_close, last_failure_at, \
     experiment, variant, attempt_count FROM dunning_cases WHERE invoice_id IN ",
    ""
);
const OPEN_CASES_OF_SUBSCRIPTIONS: Among = among!(
    "SELECT invoice_id, customer, subscription, kind, status, silent, currency, amount_due, opened_at, \
     next_payment_attempt, closed_at, close_reason, recovered_amount, recovered_after_secs, emails_before_close, last_failure_at, \
     experiment, variant, attempt_count FROM dunning_cases WHERE status = 'open' AND subscription IN ",
    ""
);
const INVOICE_STATUSES: Among = among!("SELECT id, status FROM invoices WHERE status IS NOT NULL AND id IN ", "");
const SUBSCRIPTION_STATUSES: Among = among!("SELECT id, status FROM subscriptions WHERE id IN ", "");
const CONTACTS: Among = among!("SELECT id, email, name, deleted FROM customers WHERE id IN ", "");
const CARDS_OF: Among = among!("SELECT id, customer, src_created FROM payment_methods WHERE customer IN ", "");
const CARDS: Among = among!("SELECT id, customer, src_created FROM payment_methods WHERE id IN ", "");
const LIVE_SUBSCRIPTIONS: Among = Among {
    sqlite: concat!(
        "SELECT customer, id FROM subscriptions WHERE status IN ",
        live!(),
        " AND customer IN (SELECT value FROM json_each($1)) ORDER BY id"
    ),
    postgres: concat!(
        "SELECT customer, id FROM subscriptions WHERE status IN ",
        live!(),
        " AND customer IN (SELECT unnest($1::text[])) ORDER BY id"
    ),
};
const AT_RISK: Among = among!("SELECT customer, since FROM at_risk WHERE status = 'at_risk' AND customer IN ", "");
const WINBACKS: Among = among!(
    "SELECT DISTINCT customer FROM lifecycle_series WHERE campaign = 'winback' AND status = 'active' AND customer IN ",
    ""
);
/// Each customer's first paid invoice: the first entry of the `invoices_first_paid` index
/// per customer (a lookup each, not a ranking of every paid invoice they have).
const FIRST_PAID: Among = Among {
    sqlite: "SELECT i.customer, i.id, COALESCE(i.paid_at, i.created, 0) FROM (SELECT value AS customer FROM json_each($1)) AS k \
             JOIN invoices AS i ON i.id = (SELECT f.id FROM invoices AS f WHERE f.customer = k.customer AND f.status = 'paid' \
             AND f.amount_paid > 0 ORDER BY COALESCE(f.paid_at, f.created, 0), f.id LIMIT 1)",
    postgres: "SELECT f.customer, f.id, f.t FROM unnest($1::text[]) AS k(customer) CROSS JOIN LATERAL \
               (SELECT customer, id, COALESCE(paid_at, created, 0) AS t FROM invoices WHERE customer = k.customer \
               AND status = 'paid' AND amount_paid > 0 ORDER BY COALESCE(paid_at, created, 0), id LIMIT 1) AS f",
};
const SERIES: Among = among!("SELECT case_key FROM lifecycle_series WHERE case_key IN ", "");

/// Read the rows of `stmt` for `keys` (none when `keys` is empty).
async fn among<T>(conn: &mut Conn<'_>, stmt: &Among, keys: &BTreeSet<String>) -> Result<Vec<T>, sqlx::Error>
where
    T: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    match conn {
        Conn::Sqlite(c) => sqlx::query_as(stmt.sqlite).bind(Value::from(keys).to_string()).fetch_all(&mut **c).await,
        Conn::Postgres(c) => sqlx::query_as(stmt.postgres).bind(keys).fetch_all(&mut **c).await,
    }
}

/// Read what `q` asks for: one statement per kind of fact, whatever the run holds.
async fn load(conn: &mut Conn<'_>, q: &FactsQuery) -> Result<Facts, sqlx::Error> {
    let mut facts = Facts::default();
    let cases: Vec<DunningCase> = among(conn, &CASES_OF_INVOICES, &q.invoices).await?;
    let open: Vec<DunningCase> = among(conn, &OPEN_CASES_OF_SUBSCRIPTIONS, &q.ended_subscriptions).await?;
    facts.cases = cases.into_iter().chain(open).map(|c| (c.invoice_id.clone(), c)).collect();
    let rows: Vec<(String, String)> = among(conn, &INVOICE_STATUSES, &q.invoices).await?;
    facts.invoice_status = rows.into_iter().collect();
    let rows: Vec<(String, String)> = among(conn, &SUBSCRIPTION_STATUSES, &q.subscriptions).await?;
    facts.subscription_status = rows.into_iter().collect();
    let rows: Vec<(String, Option<String>, Option<String>, bool)> = among(conn, &CONTACTS, &q.customers).await?;
    facts.contacts = rows.into_iter().map(|(id, email, name, deleted)| (id, Contact { email, name, deleted })).collect();
    let of: Vec<(String, Option<String>, i64)> = among(conn, &CARDS_OF, &q.customers).await?;
    let by_id: Vec<(String, Option<String>, i64)> = among(conn, &CARDS, &q.cards).await?;
    facts.cards =
        of.into_iter().chain(by_id).map(|(id, customer, src_created)| (id, StoredCard { customer, src_created })).collect();
    let rows: Vec<(String, String)> = among(conn, &LIVE_SUBSCRIPTIONS, &q.customers).await?;
    for (customer, id) in rows {
        facts.live_subscriptions.entry(customer).or_default().push(id);
    }
    let rows: Vec<(String, i64)> = among(conn, &AT_RISK, &q.customers).await?;
    facts.at_risk = rows.into_iter().collect();
    let rows: Vec<(String,)> = among(conn, &WINBACKS, &q.customers).await?;
    facts.winbacks = rows.into_iter().map(|(c,)| c).collect();
    let rows: Vec<(String, String, i64)> = among(conn, &FIRST_PAID, &q.first_paid_of).await?;
    facts.first_paid = rows.into_iter().map(|(customer, id, t)| (customer, (id, t))).collect();
    let rows: Vec<(String,)> = among(conn, &SERIES, &q.series).await?;
    facts.series = rows.into_iter().map(|(k,)| k).collect();
    Ok(facts)
}

/// A plan's new dunning cases, new lifecycle series, and its emails to enqueue and to cancel,
/// gathered to be written together (a statement or a few each): a failed payment opens a
/// case, queues or moves each step of its cadence and withdraws others, a new customer starts
/// a series, and a round trip per row was most of a pass. Every key (invoice, email) is
/// gathered once and the four touch different tables, so the writes commute; a write on a key
/// already gathered first writes what is gathered. A series key gathered twice is inserted
/// twice, in order, so the first stays as it would one statement at a time.
#[derive(Default)]
struct Gathered<'p> {
    open_cases: Vec<&'p DunningCase>,
    enqueue: Vec<(&'p NewEmail, IfQueued)>,
    cancel: Vec<&'p str>,
    /// Series to start (only `lifecycle_series`; the writes that read or stop series flush).
    start_series: Vec<NewSeries<'p>>,
}

impl<'p> Gathered<'p> {
    fn holds_email(&self, key: &str) -> bool {
        self.cancel.contains(&key) || self.enqueue.iter().any(|(e, _)| e.dedupe_key == key)
    }

    fn holds_case(&self, invoice: &str) -> bool {
        self.open_cases.iter().any(|c| c.invoice_id == invoice)
    }

    /// Whether `w` must wait until what is gathered is written.
    fn must_flush_before(&self, w: &Write) -> bool {
        match w {
            Write::OpenCase(c) | Write::RecordFailure(c) => self.holds_case(&c.invoice_id),
            Write::CloseCase { invoice, .. } => self.holds_case(invoice),
            Write::Enqueue(email) | Write::EnqueueOrReschedule(email) => self.holds_email(&email.dedupe_key),
            Write::CancelEmail(key) => self.holds_email(key),
            Write::UpsertCard { .. } | Write::StartSeries(_) => false,
            _ => true,
        }
    }

    /// Write what is gathered; returns the emails newly enqueued.
    async fn flush(&mut self, conn: &mut Conn<'_>, now: i64) -> Result<usize, sqlx::Error> {
        if !self.open_cases.is_empty() {
            crate::dunning::storage::insert_cases(conn, &self.open_cases).await?;
            self.open_cases.clear();
        }
        if !self.cancel.is_empty() {
            outbox::cancel_keys(conn, &self.cancel, now).await?;
            self.cancel.clear();
        }
        if !self.start_series.is_empty() {
            series::start_many(conn, &self.start_series).await?;
            self.start_series.clear();
        }
        let enqueued = outbox::enqueue_many(conn, &self.enqueue, now).await?;
        self.enqueue.clear();
        Ok(enqueued)
    }
}

/// Apply `plan` in order at `now`; returns the emails newly enqueued.
///
/// New cases, enqueues and single cancellations are gathered (`Gathered`) and written just
/// before the next write that reads or changes them otherwise, and at the end. The writes let
/// through without that touch only their own tables.
async fn write(conn: &mut Conn<'_>, plan: &ReactionPlan, now: i64) -> Result<usize, sqlx::Error> {
    use crate::dunning::storage as cases;
    let mut enqueued = 0;
    let mut gathered = Gathered::default();
    for w in &plan.writes {
        if gathered.must_flush_before(w) {
            enqueued += gathered.flush(conn, now).await?;
        }
        match w {
            Write::OpenCase(c) => gathered.open_cases.push(c),
            Write::RecordFailure(c) => cases::update_failure(conn, c).await?,
            Write::CloseCase { invoice, case_key, closing } => {
                cases::close_case(conn, invoice, case_key, closing).await?;
            }
            Write::UpsertCard { card, created, event_id } => cases::upsert_card(conn, card, *created, event_id).await?,
            Write::Enqueue(email) => gathered.enqueue.push((email, IfQueued::Leave)),
            Write::EnqueueOrReschedule(email) => gathered.enqueue.push((email, IfQueued::Reschedule)),
            Write::CancelEmail(key) => gathered.cancel.push(key),
            Write::CancelCase(key) => {
                outbox::cancel_case(conn, key, now).await?;
            }
            Write::CancelCaseExcept { case_key, keep } => {
                outbox::cancel_case_except(conn, case_key, keep, now).await?;
            }
            Write::StartSeries(s) => gathered.start_series.push(NewSeries {
                case_key: &s.case_key,
                campaign: s.campaign,
                customer: &s.customer,
                subscription: s.subscription.as_deref(),
                started_at: s.started_at,
                arm: s.arm,
            }),
            Write::StopSeries { customer, campaign, except, reason } => {
                series::stop_series(conn, customer, campaign, except.as_deref(), reason, now).await?;
            }
            Write::StopOne { case_key, reason } => series::stop_one(conn, case_key, reason, now).await?,
            Write::EndRisk { customer, at } => {
                execute!(conn, END_RISK, customer.as_str(), *at)?;
            }
            Write::Deliver(d) => {
                crate::owner::alerts::storage::enqueue(conn, d, now).await?;
            }
        }
    }
    enqueued += gathered.flush(conn, now).await?;
    Ok(enqueued)
}

const END_RISK: &str = "UPDATE at_risk SET status = 'ended', resolved_at = $2 WHERE customer = $1 AND status = 'at_risk'";
