//! The SQLite write path: prepared per-row statements inside one `BEGIN IMMEDIATE`
//! transaction (in-process, so a statement costs microseconds, not a round trip).

use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::domain::event::Event;
use crate::domain::snapshots::SubscriptionSnapshot;
use crate::domain::watermark::Watermark;
use crate::reactions::Reactor;
use crate::store::StoreError;
use crate::store::batch::{Writes, first_occurrences};
use crate::store::conn::Conn;
use crate::store::reactions::react;
use crate::store::{IngestOptions, Ingested, clean};

const INSERT_EVENT: &str = "INSERT INTO stripe_events (id, type, created, livemode, api_version, account, payload, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING";

/// The watermark guard of every upsert: applies when the incoming watermark is greater than
/// the stored one.
macro_rules! newer {
    () => {
        "(excluded.src_rank, excluded.src_created, excluded.src_event_id) > (t.src_rank, t.src_created, t.src_event_id)"
    };
}

const UPSERT_CUSTOMER: &str = concat!(
    "INSERT INTO customers AS t (id, email, name, created, deleted, src_rank, src_created, src_event_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name, \
     created = excluded.created, deleted = excluded.deleted, src_rank = excluded.src_rank, src_created = excluded.src_created, \
     src_event_id = excluded.src_event_id WHERE ",
    newer!()
);

const UPSERT_SUBSCRIPTION: &str = concat!(
    "INSERT INTO subscriptions AS t (id, customer, status, currency, created, start_date, trial_start, \
     trial_end, current_period_start, current_period_end, cancel_at_period_end, cancel_at, canceled_at, ended_at, cancel_reason, \
     cancel_feedback, cancel_comment, pause_behavior, pause_resumes_at, discounts, base_mrr, src_rank, src_created, src_event_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24) \
     ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, status = excluded.status, currency = excluded.currency, \
     created = excluded.created, start_date = excluded.start_date, trial_start = excluded.trial_start, trial_end = excluded.trial_end, \
     current_period_start = excluded.current_period_start, current_period_end = excluded.current_period_end, \
     cancel_at_period_end = excluded.cancel_at_period_end, cancel_at = excluded.cancel_at, canceled_at = excluded.canceled_at, \
     ended_at = excluded.ended_at, cancel_reason = excluded.cancel_reason, cancel_feedback = excluded.cancel_feedback, \
     cancel_comment = excluded.cancel_comment, pause_behavior = excluded.pause_behavior, pause_resumes_at = excluded.pause_resumes_at, \
     discounts = excluded.discounts, base_mrr = excluded.base_mrr, src_rank = excluded.src_rank, src_created = excluded.src_created, \
     src_event_id = excluded.src_event_id WHERE ",
    newer!()
);

const DELETE_ITEMS: &str = "DELETE FROM subscription_items WHERE subscription_id = $1";
const INSERT_ITEM: &str = "INSERT INTO subscription_items (subscription_id, item_id, price_id, product, unit_amount, currency, \
     recurring_interval, interval_count, quantity) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";

const INSERT_HISTORY: &str = "INSERT INTO subscription_history (subscription_id, event_id, effective_at, src_rank, customer, status, \
     currency, base_mrr, collection_paused, pause_resumes_at, discounts, cancel_at_period_end, cancel_reason, cancel_feedback, \
     canceled_at, ended_at, items) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
     ON CONFLICT DO NOTHING";

const UPSERT_INVOICE: &str = concat!(
    "INSERT INTO invoices AS t (id, customer, subscription, status, billing_reason, currency, amount_due, \
     amount_paid, amount_remaining, attempt_count, next_payment_attempt, hosted_invoice_url, created, paid_at, src_rank, src_created, \
     src_event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
     ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, subscription = excluded.subscription, status = excluded.status, \
     billing_reason = excluded.billing_reason, currency = excluded.currency, amount_due = excluded.amount_due, \
     amount_paid = excluded.amount_paid, amount_remaining = excluded.amount_remaining, attempt_count = excluded.attempt_count, \
     next_payment_attempt = excluded.next_payment_attempt, hosted_invoice_url = excluded.hosted_invoice_url, created = excluded.created, \
     paid_at = excluded.paid_at, src_rank = excluded.src_rank, src_created = excluded.src_created, src_event_id = excluded.src_event_id WHERE ",
    newer!()
);

const UPSERT_DISCOUNT: &str = concat!(
    "INSERT INTO discounts AS t (id, customer, subscription, coupon_id, percent_off, amount_off, currency, \
     duration, starts_at, ends_at, deleted, src_rank, src_created, src_event_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
     ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, subscription = excluded.subscription, coupon_id = excluded.coupon_id, \
     percent_off = excluded.percent_off, amount_off = excluded.amount_off, currency = excluded.currency, duration = excluded.duration, \
     starts_at = excluded.starts_at, ends_at = excluded.ends_at, deleted = excluded.deleted, src_rank = excluded.src_rank, \
     src_created = excluded.src_created, src_event_id = excluded.src_event_id WHERE ",
    newer!()
);

/// Insert the batch's events, then project the ones that were new.
pub(super) async fn ingest(
    tx: &mut Transaction<'_, Sqlite>,
    events: &[&Event],
    received_at: i64,
    options: IngestOptions,
    reactor: Option<&Reactor>,
) -> Result<(Vec<Ingested>, usize), StoreError> {
    let mut outcome = vec![Ingested::Duplicate; events.len()];
    let (firsts, _repeats) = first_occurrences(events);
    let mut new_events = Vec::with_capacity(firsts.len());
    for i in firsts {
        let e = events[i];
        let done = sqlx::query(INSERT_EVENT)
            .bind(&e.id)
            .bind(&e.kind)
            .bind(e.created)
            .bind(e.livemode)
            .bind(&e.api_version)
            .bind(&e.account)
            .bind(&e.raw)
            .bind(received_at)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 1 {
            outcome[i] = Ingested::Stored;
            new_events.push(e);
        }
    }
    if !new_events.is_empty() {
        // Cached metrics are stale from this commit on.
        sqlx::query(crate::store::metrics::BUMP_GENERATION).execute(&mut **tx).await?;
    }
    apply(tx, &Writes::from_events(new_events.iter().copied())).await?;
    let enqueued = react(&mut Conn::Sqlite(tx), &new_events, received_at, options.notify, reactor).await?;
    Ok((outcome, enqueued))
}

async fn apply(conn: &mut SqliteConnection, w: &Writes) -> Result<(), sqlx::Error> {
    for (c, m) in &w.customers {
        sqlx::query(UPSERT_CUSTOMER)
            .bind(&c.id)
            .bind(clean(&c.email))
            .bind(clean(&c.name))
            .bind(c.created)
            .bind(c.deleted)
            .bind(m.rank)
            .bind(m.created)
            .bind(&m.event_id)
            .execute(&mut *conn)
            .await?;
    }
    for (s, m) in &w.subscriptions {
        let applied = subscription_query(s, m).execute(&mut *conn).await?.rows_affected() == 1;
        if applied {
            replace_items(conn, s).await?;
        }
    }
    for (s, m) in &w.history {
        history_query(s, m).execute(&mut *conn).await?;
    }
    for (i, m) in &w.invoices {
        sqlx::query(UPSERT_INVOICE)
            .bind(&i.id)
            .bind(&i.customer)
            .bind(&i.subscription)
            .bind(&i.status)
            .bind(&i.billing_reason)
            .bind(&i.currency)
            .bind(i.amount_due)
            .bind(i.amount_paid)
            .bind(i.amount_remaining)
            .bind(i.attempt_count)
            .bind(i.next_payment_attempt)
            .bind(clean(&i.hosted_invoice_url))
            .bind(i.created)
            .bind(i.paid_at)
            .bind(m.rank)
            .bind(m.created)
            .bind(&m.event_id)
            .execute(&mut *conn)
            .await?;
    }
    for (d, m) in &w.discounts {
        sqlx::query(UPSERT_DISCOUNT)
            .bind(&d.id)
            .bind(&d.customer)
            .bind(&d.subscription)
            .bind(&d.coupon_id)
            .bind(d.percent_off)
            .bind(d.amount_off)
            .bind(&d.currency)
            .bind(&d.duration)
            .bind(d.starts_at)
            .bind(d.ends_at)
            .bind(d.deleted)
            .bind(m.rank)
            .bind(m.created)
            .bind(&m.event_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

type Query<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

fn subscription_query<'q>(s: &'q SubscriptionSnapshot, m: &'q Watermark) -> Query<'q> {
    sqlx::query(UPSERT_SUBSCRIPTION)
        .bind(&s.id)
        .bind(&s.customer)
        .bind(&s.status)
        .bind(&s.currency)
        .bind(s.created)
        .bind(s.start_date)
        .bind(s.trial_start)
        .bind(s.trial_end)
        .bind(s.current_period_start)
        .bind(s.current_period_end)
        .bind(s.cancel_at_period_end)
        .bind(s.cancel_at)
        .bind(s.canceled_at)
        .bind(s.ended_at)
        .bind(&s.cancel_reason)
        .bind(&s.cancel_feedback)
        .bind(clean(&s.cancel_comment))
        .bind(&s.pause_behavior)
        .bind(s.pause_resumes_at)
        .bind(crate::store::shared::discount_ids_json(s))
        .bind(s.base_mrr())
        .bind(m.rank)
        .bind(m.created)
        .bind(&m.event_id)
}

fn history_query<'q>(s: &'q SubscriptionSnapshot, m: &'q Watermark) -> Query<'q> {
    sqlx::query(INSERT_HISTORY)
        .bind(&s.id)
        .bind(&m.event_id)
        .bind(m.created)
        .bind(m.rank)
        .bind(&s.customer)
        .bind(&s.status)
        .bind(&s.currency)
        .bind(s.base_mrr())
        .bind(s.collection_paused())
        .bind(s.pause_resumes_at)
        .bind(crate::store::shared::discount_ids_json(s))
        .bind(s.cancel_at_period_end)
        .bind(&s.cancel_reason)
        .bind(&s.cancel_feedback)
        .bind(s.canceled_at)
        .bind(s.ended_at)
        .bind(crate::store::shared::items_json(s))
}

async fn replace_items(conn: &mut SqliteConnection, s: &SubscriptionSnapshot) -> Result<(), sqlx::Error> {
    sqlx::query(DELETE_ITEMS).bind(&s.id).execute(&mut *conn).await?;
    for item in &s.items {
        sqlx::query(INSERT_ITEM)
            .bind(&s.id)
            .bind(&item.item_id)
            .bind(&item.price_id)
            .bind(&item.product)
            .bind(item.unit_amount)
            .bind(&item.currency)
            .bind(&item.interval)
            .bind(item.interval_count)
            .bind(item.quantity)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
