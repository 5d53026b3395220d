//! The description of each projected table: its columns in order, how each value is read
//! from a snapshot (and its watermark, or its item), and how a row meets a stored one.

use std::borrow::Cow;

use crate::domain::snapshots::{CustomerSnapshot, DiscountSnapshot, InvoiceSnapshot, ItemSnapshot, SubscriptionSnapshot};
use crate::domain::watermark::Watermark;
use crate::store::clean;
use crate::store::shared::{discount_ids_json, items_json};
use crate::store::tables::{Column, Guard, OnConflict, Table, Text};

fn text(s: &str) -> Text<'_> {
    Some(Cow::Borrowed(s))
}

fn opt(s: &Option<String>) -> Text<'_> {
    s.as_deref().map(Cow::Borrowed)
}

fn owned(s: String) -> Text<'static> {
    Some(Cow::Owned(s))
}

pub static CUSTOMERS: Table<CustomerSnapshot, Watermark> = Table::new(
    "customers",
    OnConflict::Replace { key: "id", guard: Guard::Newer },
    None,
    &[
        Column::text("id", |c, _| text(&c.id)),
        Column::text("email", |c, _| clean(&c.email)),
        Column::text("name", |c, _| clean(&c.name)),
        Column::int("created", |c, _| c.created),
        Column::bool("deleted", |c, _| c.deleted),
        Column::text("metadata", |c, _| opt(&c.metadata)),
        Column::int("src_rank", |_, m| Some(m.rank)),
        Column::int("src_created", |_, m| Some(m.created)),
        Column::text("src_event_id", |_, m| text(&m.event_id)),
    ],
);

/// Returns the ids whose snapshot won: their items are replaced.
pub static SUBSCRIPTIONS: Table<SubscriptionSnapshot, Watermark> = Table::new(
    "subscriptions",
    OnConflict::Replace { key: "id", guard: Guard::NewerTie },
    Some("id"),
    &[
        Column::text("id", |s, _| text(&s.id)),
        Column::text("customer", |s, _| opt(&s.customer)),
        Column::text("status", |s, _| text(&s.status)),
        Column::text("currency", |s, _| opt(&s.currency)),
        Column::int("created", |s, _| s.created),
        Column::int("start_date", |s, _| s.start_date),
        Column::int("trial_start", |s, _| s.trial_start),
        Column::int("trial_end", |s, _| s.trial_end),
        Column::int("current_period_start", |s, _| s.current_period_start),
        Column::int("current_period_end", |s, _| s.current_period_end),
        Column::bool("cancel_at_period_end", |s, _| s.cancel_at_period_end),
        Column::int("cancel_at", |s, _| s.cancel_at),
        Column::int("canceled_at", |s, _| s.canceled_at),
        Column::int("ended_at", |s, _| s.ended_at),
        Column::text("cancel_reason", |s, _| opt(&s.cancel_reason)),
        Column::text("cancel_feedback", |s, _| opt(&s.cancel_feedback)),
        Column::text("cancel_comment", |s, _| clean(&s.cancel_comment)),
        Column::text("pause_behavior", |s, _| opt(&s.pause_behavior)),
        Column::int("pause_resumes_at", |s, _| s.pause_resumes_at),
        Column::text("discounts", |s, _| owned(discount_ids_json(s))),
        Column::float("base_mrr", |s, _| Some(s.base_mrr())),
        Column::int("src_rank", |_, m| Some(m.rank)),
        Column::int("src_created", |_, m| Some(m.created)),
        Column::text("src_event_id", |_, m| text(&m.event_id)),
        Column::text("src_tie", |_, m| text(&m.tie)),
    ],
);

/// The items of a subscription's latest snapshot (the caller deletes the old ones first).
pub static SUBSCRIPTION_ITEMS: Table<SubscriptionSnapshot, ItemSnapshot> = Table::new(
    "subscription_items",
    OnConflict::Keep,
    None,
    &[
        Column::text("subscription_id", |s, _| text(&s.id)),
        Column::text("item_id", |_, i| text(&i.item_id)),
        Column::text("price_id", |_, i| opt(&i.price_id)),
        Column::text("product", |_, i| opt(&i.product)),
        Column::int("unit_amount", |_, i| i.unit_amount),
        Column::text("currency", |_, i| opt(&i.currency)),
        Column::text("recurring_interval", |_, i| opt(&i.interval)),
        Column::int("interval_count", |_, i| i.interval_count),
        Column::int("quantity", |_, i| Some(i.quantity)),
    ],
);

/// Every subscription snapshot at its effective time (the event's `created`).
pub static SUBSCRIPTION_HISTORY: Table<SubscriptionSnapshot, Watermark> = Table::new(
    "subscription_history",
    OnConflict::Keep,
    None,
    &[
        Column::text("subscription_id", |s, _| text(&s.id)),
        Column::text("event_id", |_, m| text(&m.event_id)),
        Column::int("effective_at", |_, m| Some(m.created)),
        Column::int("src_rank", |_, m| Some(m.rank)),
        Column::text("customer", |s, _| opt(&s.customer)),
        Column::text("status", |s, _| text(&s.status)),
        Column::text("currency", |s, _| opt(&s.currency)),
        Column::float("base_mrr", |s, _| Some(s.base_mrr())),
        Column::bool("collection_paused", |s, _| s.collection_paused()),
        Column::int("pause_resumes_at", |s, _| s.pause_resumes_at),
        Column::text("discounts", |s, _| owned(discount_ids_json(s))),
        Column::bool("cancel_at_period_end", |s, _| s.cancel_at_period_end),
        Column::text("cancel_reason", |s, _| s.history_reason().map(Cow::Borrowed)),
        Column::text("cancel_feedback", |s, _| opt(&s.cancel_feedback)),
        Column::int("canceled_at", |s, _| s.canceled_at),
        Column::int("ended_at", |s, _| s.ended_at),
        Column::text("items", |s, _| owned(items_json(s))),
    ],
);

pub static INVOICES: Table<InvoiceSnapshot, Watermark> = Table::new(
    "invoices",
    OnConflict::Replace { key: "id", guard: Guard::NewerTie },
    None,
    &[
        Column::text("id", |i, _| text(&i.id)),
        Column::text("customer", |i, _| opt(&i.customer)),
        Column::text("subscription", |i, _| opt(&i.subscription)),
        Column::text("status", |i, _| opt(&i.status)),
        Column::text("billing_reason", |i, _| opt(&i.billing_reason)),
        Column::text("currency", |i, _| opt(&i.currency)),
        Column::int("amount_due", |i, _| Some(i.amount_due)),
        Column::int("amount_paid", |i, _| Some(i.amount_paid)),
        Column::int("amount_remaining", |i, _| Some(i.amount_remaining)),
        Column::int("attempt_count", |i, _| Some(i.attempt_count)),
        Column::int("next_payment_attempt", |i, _| i.next_payment_attempt),
        Column::text("hosted_invoice_url", |i, _| clean(&i.hosted_invoice_url)),
        Column::int("created", |i, _| i.created),
        Column::int("paid_at", |i, _| i.paid_at),
        Column::int("src_rank", |_, m| Some(m.rank)),
        Column::int("src_created", |_, m| Some(m.created)),
        Column::text("src_event_id", |_, m| text(&m.event_id)),
        Column::text("src_tie", |_, m| text(&m.tie)),
    ],
);

pub static DISCOUNTS: Table<DiscountSnapshot, Watermark> = Table::new(
    "discounts",
    OnConflict::Replace { key: "id", guard: Guard::Newer },
    None,
    &[
        Column::text("id", |d, _| text(&d.id)),
        Column::text("customer", |d, _| opt(&d.customer)),
        Column::text("subscription", |d, _| opt(&d.subscription)),
        Column::text("coupon_id", |d, _| opt(&d.coupon_id)),
        Column::float("percent_off", |d, _| d.percent_off),
        Column::int("amount_off", |d, _| d.amount_off),
        Column::text("currency", |d, _| opt(&d.currency)),
        Column::text("duration", |d, _| opt(&d.duration)),
        Column::int("starts_at", |d, _| d.starts_at),
        Column::int("ends_at", |d, _| d.ends_at),
        Column::bool("deleted", |d, _| d.deleted),
        Column::int("src_rank", |_, m| Some(m.rank)),
        Column::int("src_created", |_, m| Some(m.created)),
        Column::text("src_event_id", |_, m| text(&m.event_id)),
    ],
);
