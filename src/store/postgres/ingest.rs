//! The Postgres write path: each table written once per batch from arrays (`UNNEST`).

use std::collections::HashSet;

use sqlx::{PgConnection, Postgres, Transaction};

use crate::domain::event::Event;
use crate::store::StoreError;
use crate::store::batch::{Writes, first_occurrences};
use crate::store::shared::{discount_ids_json, items_json};
use crate::store::{IngestOptions, Ingested, clean};

const INSERT_EVENTS: &str = "INSERT INTO stripe_events (id, type, created, livemode, api_version, account, payload, received_at, notify) \
     SELECT u.id, u.type, u.created, u.livemode, u.api_version, u.account, u.payload, u.received_at, $9 \
     FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::bool[], $5::text[], $6::text[], $7::text[], $8::int8[]) \
     WITH ORDINALITY AS u(id, type, created, livemode, api_version, account, payload, received_at, n) ORDER BY u.n \
     ON CONFLICT (id) DO NOTHING RETURNING id, seq";

/// Appends hold this lock from their first statement to their commit, so log positions
/// (`seq`) become visible in increasing order, on every replica: the projector, reading
/// "after my cursor", can never skip a row that commits late with a smaller `seq`.
const APPEND_LOCK: &str = "SELECT pg_advisory_xact_lock(7242101140)";

/// The watermark guard of every upsert: applies when the incoming watermark is greater than
/// the stored one; "C" collation compares ids bytewise, as SQLite and Rust do.
macro_rules! newer {
    () => {
        "(EXCLUDED.src_rank, EXCLUDED.src_created, EXCLUDED.src_event_id COLLATE \"C\") > (t.src_rank, t.src_created, t.src_event_id COLLATE \"C\")"
    };
}

/// The guard of the tables with a same-second tie rule (subscriptions, invoices).
macro_rules! newer_tie {
    () => {
        "(EXCLUDED.src_rank, EXCLUDED.src_created, EXCLUDED.src_tie COLLATE \"C\", EXCLUDED.src_event_id COLLATE \"C\") \
         > (t.src_rank, t.src_created, t.src_tie COLLATE \"C\", t.src_event_id COLLATE \"C\")"
    };
}

const UPSERT_CUSTOMERS: &str = concat!(
    "INSERT INTO customers AS t (id, email, name, created, deleted, src_rank, src_created, src_event_id) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::bool[], $6::int8[], $7::int8[], $8::text[]) \
     ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, created = EXCLUDED.created, \
     deleted = EXCLUDED.deleted, src_rank = EXCLUDED.src_rank, src_created = EXCLUDED.src_created, \
     src_event_id = EXCLUDED.src_event_id WHERE ",
    newer!()
);

const UPSERT_SUBSCRIPTIONS: &str = concat!(
    "INSERT INTO subscriptions AS t (id, customer, status, currency, created, start_date, trial_start, \
     trial_end, current_period_start, current_period_end, cancel_at_period_end, cancel_at, canceled_at, ended_at, cancel_reason, \
     cancel_feedback, cancel_comment, pause_behavior, pause_resumes_at, discounts, base_mrr, src_rank, src_created, src_event_id, src_tie) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], \
     $10::int8[], $11::bool[], $12::int8[], $13::int8[], $14::int8[], $15::text[], $16::text[], $17::text[], $18::text[], $19::int8[], \
     $20::text[], $21::float8[], $22::int8[], $23::int8[], $24::text[], $25::text[]) \
     ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, status = EXCLUDED.status, currency = EXCLUDED.currency, \
     created = EXCLUDED.created, start_date = EXCLUDED.start_date, trial_start = EXCLUDED.trial_start, trial_end = EXCLUDED.trial_end, \
     current_period_start = EXCLUDED.current_period_start, current_period_end = EXCLUDED.current_period_end, \
     cancel_at_period_end = EXCLUDED.cancel_at_period_end, cancel_at = EXCLUDED.cancel_at, canceled_at = EXCLUDED.canceled_at, \
     ended_at = EXCLUDED.ended_at, cancel_reason = EXCLUDED.cancel_reason, cancel_feedback = EXCLUDED.cancel_feedback, \
     cancel_comment = EXCLUDED.cancel_comment, pause_behavior = EXCLUDED.pause_behavior, pause_resumes_at = EXCLUDED.pause_resumes_at, \
     discounts = EXCLUDED.discounts, base_mrr = EXCLUDED.base_mrr, src_rank = EXCLUDED.src_rank, src_created = EXCLUDED.src_created, \
     src_event_id = EXCLUDED.src_event_id, src_tie = EXCLUDED.src_tie WHERE ",
    newer_tie!(),
    " RETURNING t.id"
);

const DELETE_ITEMS: &str = "DELETE FROM subscription_items WHERE subscription_id = ANY($1)";
const INSERT_ITEMS: &str = "INSERT INTO subscription_items (subscription_id, item_id, price_id, product, unit_amount, currency, \
     recurring_interval, interval_count, quantity) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
     $6::text[], $7::text[], $8::int8[], $9::int8[]) ON CONFLICT DO NOTHING";

const INSERT_HISTORY: &str = "INSERT INTO subscription_history (subscription_id, event_id, effective_at, src_rank, customer, status, \
     currency, base_mrr, collection_paused, pause_resumes_at, discounts, cancel_at_period_end, cancel_reason, cancel_feedback, \
     canceled_at, ended_at, items) SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::text[], \
     $7::text[], $8::float8[], $9::bool[], $10::int8[], $11::text[], $12::bool[], $13::text[], $14::text[], $15::int8[], $16::int8[], \
     $17::text[]) ON CONFLICT DO NOTHING";

const UPSERT_INVOICES: &str = concat!(
    "INSERT INTO invoices AS t (id, customer, subscription, status, billing_reason, currency, amount_due, \
     amount_paid, amount_remaining, attempt_count, next_payment_attempt, hosted_invoice_url, created, paid_at, src_rank, src_created, \
     src_event_id, src_tie) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], \
     $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::text[], $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::text[], \
     $18::text[]) \
     ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, subscription = EXCLUDED.subscription, status = EXCLUDED.status, \
     billing_reason = EXCLUDED.billing_reason, currency = EXCLUDED.currency, amount_due = EXCLUDED.amount_due, \
     amount_paid = EXCLUDED.amount_paid, amount_remaining = EXCLUDED.amount_remaining, attempt_count = EXCLUDED.attempt_count, \
     next_payment_attempt = EXCLUDED.next_payment_attempt, hosted_invoice_url = EXCLUDED.hosted_invoice_url, created = EXCLUDED.created, \
     paid_at = EXCLUDED.paid_at, src_rank = EXCLUDED.src_rank, src_created = EXCLUDED.src_created, src_event_id = EXCLUDED.src_event_id, \
     src_tie = EXCLUDED.src_tie WHERE ",
    newer_tie!()
);

const UPSERT_DISCOUNTS: &str = concat!(
    "INSERT INTO discounts AS t (id, customer, subscription, coupon_id, percent_off, amount_off, currency, \
     duration, starts_at, ends_at, deleted, src_rank, src_created, src_event_id) SELECT * FROM UNNEST($1::text[], $2::text[], \
     $3::text[], $4::text[], $5::float8[], $6::int8[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::bool[], $12::int8[], \
     $13::int8[], $14::text[]) \
     ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, subscription = EXCLUDED.subscription, coupon_id = EXCLUDED.coupon_id, \
     percent_off = EXCLUDED.percent_off, amount_off = EXCLUDED.amount_off, currency = EXCLUDED.currency, duration = EXCLUDED.duration, \
     starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, deleted = EXCLUDED.deleted, src_rank = EXCLUDED.src_rank, \
     src_created = EXCLUDED.src_created, src_event_id = EXCLUDED.src_event_id WHERE ",
    newer!()
);

/// Column arrays, built by pushing one row at a time.
macro_rules! columns {
    ($rows:expr, |$r:ident| { $($name:ident: $value:expr),+ $(,)? }) => {{
        $(let mut $name = Vec::with_capacity($rows.len());)+
        for $r in $rows {
            $($name.push($value);)+
        }
        ($($name,)+)
    }};
}

/// Append the batch's events to the log (nothing else: the projector applies them later).
/// Returns each event's outcome and the log position of the last new one.
pub(crate) async fn append(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&Event],
    received_at: i64,
    options: IngestOptions,
) -> Result<(Vec<Ingested>, Option<i64>), StoreError> {
    let (firsts, _repeats) = first_occurrences(events);
    let unique: Vec<&Event> = firsts.iter().map(|&i| events[i]).collect();
    let (ids, kinds, created, livemode, versions, accounts, payloads, received) = columns!(&unique, |e| {
        ids: e.id.as_str(),
        kinds: e.kind.as_str(),
        created: e.created,
        livemode: e.livemode,
        versions: e.api_version.as_deref(),
        accounts: e.account.as_deref(),
        payloads: e.raw.as_str(),
        received: received_at,
    });
    sqlx::query(APPEND_LOCK).execute(&mut **tx).await?;
    let inserted: Vec<(String, i64)> = sqlx::query_as(INSERT_EVENTS)
        .bind(ids)
        .bind(kinds)
        .bind(created)
        .bind(livemode)
        .bind(versions)
        .bind(accounts)
        .bind(payloads)
        .bind(received)
        .bind(options.notify)
        .fetch_all(&mut **tx)
        .await?;
    let last = inserted.iter().map(|(_, seq)| *seq).max();
    let inserted: HashSet<String> = inserted.into_iter().map(|(id, _)| id).collect();
    let mut outcome = vec![Ingested::Duplicate; events.len()];
    for &i in &firsts {
        if inserted.contains(&events[i].id) {
            outcome[i] = Ingested::Stored;
        }
    }
    Ok((outcome, last))
}

/// Write a batch's projection (the projector calls it inside its transaction).
pub(crate) async fn apply(conn: &mut PgConnection, w: &Writes) -> Result<(), sqlx::Error> {
    if !w.customers.is_empty() {
        upsert_customers(conn, w).await?;
    }
    if !w.subscriptions.is_empty() {
        upsert_subscriptions(conn, w).await?;
    }
    if !w.history.is_empty() {
        insert_history(conn, w).await?;
    }
    if !w.invoices.is_empty() {
        upsert_invoices(conn, w).await?;
    }
    if !w.discounts.is_empty() {
        upsert_discounts(conn, w).await?;
    }
    Ok(())
}

async fn upsert_customers(conn: &mut PgConnection, w: &Writes) -> Result<(), sqlx::Error> {
    let (id, email, name, created, deleted, rank, src_created, event) = columns!(&w.customers, |r| {
        id: r.0.id.as_str(),
        email: clean(&r.0.email),
        name: clean(&r.0.name),
        created: r.0.created,
        deleted: r.0.deleted,
        rank: r.1.rank,
        src_created: r.1.created,
        event: r.1.event_id.as_str(),
    });
    sqlx::query(UPSERT_CUSTOMERS)
        .bind(id)
        .bind(email)
        .bind(name)
        .bind(created)
        .bind(deleted)
        .bind(rank)
        .bind(src_created)
        .bind(event)
        .execute(conn)
        .await?;
    Ok(())
}

async fn upsert_subscriptions(conn: &mut PgConnection, w: &Writes) -> Result<(), sqlx::Error> {
    let (id, customer, status, currency, created, start, trial_start, trial_end, period_start, period_end) = columns!(&w.subscriptions, |r| {
        id: r.0.id.as_str(),
        customer: r.0.customer.as_deref(),
        status: r.0.status.as_str(),
        currency: r.0.currency.as_deref(),
        created: r.0.created,
        start: r.0.start_date,
        trial_start: r.0.trial_start,
        trial_end: r.0.trial_end,
        period_start: r.0.current_period_start,
        period_end: r.0.current_period_end,
    });
    let (
        cape,
        cancel_at,
        canceled_at,
        ended_at,
        reason,
        feedback,
        comment,
        pause,
        resumes,
        discounts,
        mrr,
        rank,
        src_created,
        event,
        tie,
    ) = columns!(&w.subscriptions, |r| {
        cape: r.0.cancel_at_period_end,
        cancel_at: r.0.cancel_at,
        canceled_at: r.0.canceled_at,
        ended_at: r.0.ended_at,
        reason: r.0.cancel_reason.as_deref(),
        feedback: r.0.cancel_feedback.as_deref(),
        comment: clean(&r.0.cancel_comment),
        pause: r.0.pause_behavior.as_deref(),
        resumes: r.0.pause_resumes_at,
        discounts: discount_ids_json(&r.0),
        mrr: r.0.base_mrr(),
        rank: r.1.rank,
        src_created: r.1.created,
        event: r.1.event_id.as_str(),
        tie: r.1.tie.as_str(),
    });
    let applied: Vec<(String,)> = sqlx::query_as(UPSERT_SUBSCRIPTIONS)
        .bind(id)
        .bind(customer)
        .bind(status)
        .bind(currency)
        .bind(created)
        .bind(start)
        .bind(trial_start)
        .bind(trial_end)
        .bind(period_start)
        .bind(period_end)
        .bind(cape)
        .bind(cancel_at)
        .bind(canceled_at)
        .bind(ended_at)
        .bind(reason)
        .bind(feedback)
        .bind(comment)
        .bind(pause)
        .bind(resumes)
        .bind(discounts)
        .bind(mrr)
        .bind(rank)
        .bind(src_created)
        .bind(event)
        .bind(tie)
        .fetch_all(&mut *conn)
        .await?;
    let applied: HashSet<String> = applied.into_iter().map(|(id,)| id).collect();
    if applied.is_empty() {
        return Ok(());
    }
    let applied_ids: Vec<&str> = applied.iter().map(String::as_str).collect();
    sqlx::query(DELETE_ITEMS).bind(applied_ids).execute(&mut *conn).await?;
    let items: Vec<_> = w
        .subscriptions
        .iter()
        .filter(|(s, _)| applied.contains(&s.id))
        .flat_map(|(s, _)| s.items.iter().map(move |i| (s.id.as_str(), i)))
        .collect();
    let (sub, item, price, product, amount, currency, interval, count, quantity) = columns!(&items, |r| {
        sub: r.0,
        item: r.1.item_id.as_str(),
        price: r.1.price_id.as_deref(),
        product: r.1.product.as_deref(),
        amount: r.1.unit_amount,
        currency: r.1.currency.as_deref(),
        interval: r.1.interval.as_deref(),
        count: r.1.interval_count,
        quantity: r.1.quantity,
    });
    sqlx::query(INSERT_ITEMS)
        .bind(sub)
        .bind(item)
        .bind(price)
        .bind(product)
        .bind(amount)
        .bind(currency)
        .bind(interval)
        .bind(count)
        .bind(quantity)
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert_history(conn: &mut PgConnection, w: &Writes) -> Result<(), sqlx::Error> {
    let (sub, event, at, rank, customer, status, currency, mrr, paused) = columns!(&w.history, |r| {
        sub: r.0.id.as_str(),
        event: r.1.event_id.as_str(),
        at: r.1.created,
        rank: r.1.rank,
        customer: r.0.customer.as_deref(),
        status: r.0.status.as_str(),
        currency: r.0.currency.as_deref(),
        mrr: r.0.base_mrr(),
        paused: r.0.collection_paused(),
    });
    let (resumes, discounts, cape, reason, feedback, canceled_at, ended_at, items) = columns!(&w.history, |r| {
        resumes: r.0.pause_resumes_at,
        discounts: discount_ids_json(&r.0),
        cape: r.0.cancel_at_period_end,
        reason: r.0.history_reason(),
        feedback: r.0.cancel_feedback.as_deref(),
        canceled_at: r.0.canceled_at,
        ended_at: r.0.ended_at,
        items: items_json(&r.0),
    });
    sqlx::query(INSERT_HISTORY)
        .bind(sub)
        .bind(event)
        .bind(at)
        .bind(rank)
        .bind(customer)
        .bind(status)
        .bind(currency)
        .bind(mrr)
        .bind(paused)
        .bind(resumes)
        .bind(discounts)
        .bind(cape)
        .bind(reason)
        .bind(feedback)
        .bind(canceled_at)
        .bind(ended_at)
        .bind(items)
        .execute(conn)
        .await?;
    Ok(())
}

async fn upsert_invoices(conn: &mut PgConnection, w: &Writes) -> Result<(), sqlx::Error> {
    let (id, customer, subscription, status, reason, currency, due, paid, remaining) = columns!(&w.invoices, |r| {
        id: r.0.id.as_str(),
        customer: r.0.customer.as_deref(),
        subscription: r.0.subscription.as_deref(),
        status: r.0.status.as_deref(),
        reason: r.0.billing_reason.as_deref(),
        currency: r.0.currency.as_deref(),
        due: r.0.amount_due,
        paid: r.0.amount_paid,
        remaining: r.0.amount_remaining,
    });
    let (attempts, next, url, created, paid_at, rank, src_created, event, tie) = columns!(&w.invoices, |r| {
        attempts: r.0.attempt_count,
        next: r.0.next_payment_attempt,
        url: clean(&r.0.hosted_invoice_url),
        created: r.0.created,
        paid_at: r.0.paid_at,
        rank: r.1.rank,
        src_created: r.1.created,
        event: r.1.event_id.as_str(),
        tie: r.1.tie.as_str(),
    });
    sqlx::query(UPSERT_INVOICES)
        .bind(id)
        .bind(customer)
        .bind(subscription)
        .bind(status)
        .bind(reason)
        .bind(currency)
        .bind(due)
        .bind(paid)
        .bind(remaining)
        .bind(attempts)
        .bind(next)
        .bind(url)
        .bind(created)
        .bind(paid_at)
        .bind(rank)
        .bind(src_created)
        .bind(event)
        .bind(tie)
        .execute(conn)
        .await?;
    Ok(())
}

async fn upsert_discounts(conn: &mut PgConnection, w: &Writes) -> Result<(), sqlx::Error> {
    let (id, customer, subscription, coupon, percent, amount, currency) = columns!(&w.discounts, |r| {
        id: r.0.id.as_str(),
        customer: r.0.customer.as_deref(),
        subscription: r.0.subscription.as_deref(),
        coupon: r.0.coupon_id.as_deref(),
        percent: r.0.percent_off,
        amount: r.0.amount_off,
        currency: r.0.currency.as_deref(),
    });
    let (duration, starts, ends, deleted, rank, src_created, event) = columns!(&w.discounts, |r| {
        duration: r.0.duration.as_deref(),
        starts: r.0.starts_at,
        ends: r.0.ends_at,
        deleted: r.0.deleted,
        rank: r.1.rank,
        src_created: r.1.created,
        event: r.1.event_id.as_str(),
    });
    sqlx::query(UPSERT_DISCOUNTS)
        .bind(id)
        .bind(customer)
        .bind(subscription)
        .bind(coupon)
        .bind(percent)
        .bind(amount)
        .bind(currency)
        .bind(duration)
        .bind(starts)
        .bind(ends)
        .bind(deleted)
        .bind(rank)
        .bind(src_created)
        .bind(event)
        .execute(conn)
        .await?;
    Ok(())
}
