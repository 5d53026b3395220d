//! `holdfast sync`: backfill products, prices, coupons, customers, subscriptions (every status),
//! invoices, refunded charges, disputes and credit notes from
//! Stripe's API through the webhook's own pipeline (`Store::ingest_with`), as events
//! synthesized from each object's own dates (`domain::backfill`). Resumable: after each page
//! the id of its last object is saved in `sync_cursors`; an interrupted run continues after it.
//! Imported with `IngestOptions::IMPORT`: it never emails.

pub mod coupons;
pub mod prices;
pub mod stripe_list;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::domain::backfill::{self, Synthetic};
use crate::domain::event::Event;
use crate::domain::{catalog, coupons as coupon_events, refunds};
use crate::store::{IngestOptions, Ingested, Store};
use crate::stripe_api::StripeApi;
pub use stripe_list::Retry;
use stripe_list::{ListEndpoint, Page};

/// Stripe's largest page.
pub const MAX_PAGE_SIZE: u32 = 100;

/// One kind of Stripe object to backfill.
struct Kind {
    name: &'static str,
    endpoint: ListEndpoint,
    events: fn(&Value) -> Vec<Synthetic>,
}

/// In dependency order: customers before the subscriptions and invoices that name them.
/// Products, prices and coupons (plan names, amounts, discount terms) after them: they are
/// read when metrics are computed, not when the objects naming them are stored.
const KINDS: [Kind; 9] = [
    Kind { name: "customers", endpoint: ListEndpoint { path: "/customers", params: &[] }, events: backfill::customer_events },
    Kind {
        name: "subscriptions",
        // Without status=all, Stripe leaves out canceled subscriptions: the churn history.
        // Discounts are ids unless expanded; expanded, they carry their start, end and coupon.
        // Items have their own (indexed keys: the query is a map, and Stripe reads both forms).
        endpoint: ListEndpoint {
            path: "/subscriptions",
            params: &[("status", "all"), ("expand[0]", "data.discounts"), ("expand[1]", "data.items.data.discounts")],
        },
        events: backfill::subscription_events,
    },
    // `payments` ties each invoice to the payment intents that paid it (refunds and disputes
    // name the payment, not the invoice).
    Kind {
        name: "invoices",
        endpoint: ListEndpoint { path: "/invoices", params: &[("expand[]", "data.payments")] },
        events: backfill::invoice_events,
    },
    Kind { name: "products", endpoint: ListEndpoint { path: "/products", params: &[] }, events: catalog::product_events },
    // Tiers are left out of a price unless expanded: the metrics need them for tiered prices.
    Kind {
        name: "prices",
        endpoint: ListEndpoint { path: "/prices", params: &[("expand[]", "data.tiers")] },
        events: catalog::price_events,
    },
    Kind { name: "coupons", endpoint: ListEndpoint { path: "/coupons", params: &[] }, events: coupon_events::coupon_events },
    // Refunds, disputes and credit notes: what recovered money was given back (the metrics).
    Kind {
        name: "charges",
        endpoint: ListEndpoint { path: "/charges", params: &[("expand[]", "data.refunds")] },
        events: refunds::charge_events,
    },
    Kind { name: "disputes", endpoint: ListEndpoint { path: "/disputes", params: &[] }, events: refunds::dispute_events },
    Kind {
        name: "credit_notes",
        endpoint: ListEndpoint { path: "/credit_notes", params: &[] },
        events: refunds::credit_note_events,
    },
];

/// How to run a sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Objects per page (1–100).
    pub page_size: u32,
    pub retry: Retry,
    /// Draw progress bars on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// The time imported events are received at.
    pub clock: crate::clock::Clock,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self { page_size: MAX_PAGE_SIZE, retry: Retry::default(), progress: true, clock: crate::clock::Clock::system() }
    }
}

/// What one object type's pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindReport {
    pub name: &'static str,
    pub objects: u64,
    pub pages: u64,
    /// Synthesized events stored for the first time.
    pub stored: u64,
    /// Synthesized events already present (an earlier sync).
    pub duplicates: u64,
    /// This pass continued an interrupted one.
    pub resumed: bool,
}

/// Backfill every kind, in order. On error, the cursors keep what was done.
pub async fn run(store: &Store, api: &StripeApi, options: &SyncOptions) -> anyhow::Result<Vec<KindReport>> {
    let mut reports = Vec::with_capacity(KINDS.len());
    for kind in &KINDS {
        reports.push(sync_kind(store, api, options, kind).await?);
    }
    Ok(reports)
}

/// Forget interrupted passes: the next sync starts from the beginning.
pub async fn restart(store: &Store) -> anyhow::Result<()> {
    for kind in &KINDS {
        store.clear_sync_cursor(kind.name).await.context("clearing sync cursors")?;
    }
    Ok(())
}

async fn sync_kind(store: &Store, api: &StripeApi, options: &SyncOptions, kind: &Kind) -> anyhow::Result<KindReport> {
    let mut cursor = store.sync_cursor(kind.name).await.context("reading the sync cursor")?;
    let mut report = KindReport { name: kind.name, resumed: cursor.is_some(), ..KindReport::default() };
    let bar = progress_bar(options.progress, kind.name, cursor.is_some());
    loop {
        let page = kind.endpoint.page(api, options.page_size.clamp(1, MAX_PAGE_SIZE), cursor.as_deref(), options.retry).await?;
        store_page(store, kind, &page, options.clock.now(), &mut report).await?;
        bar.inc(page.objects.len() as u64);
        let last = page.objects.last().and_then(|o| o.get("id")).and_then(Value::as_str).map(str::to_owned);
        match last {
            Some(last) if page.has_more => {
                store.save_sync_cursor(kind.name, &last, options.clock.now()).await.context("saving the sync cursor")?;
                cursor = Some(last);
            }
            _ => break,
        }
    }
    store.clear_sync_cursor(kind.name).await.context("clearing the sync cursor")?;
    bar.finish_with_message(format!("{}: {} objects, {} new events", kind.name, report.objects, report.stored));
    tracing::info!(
        kind = kind.name,
        objects = report.objects,
        pages = report.pages,
        stored = report.stored,
        duplicates = report.duplicates,
        "sync pass done"
    );
    Ok(report)
}

/// Synthesize the page's events and commit them in one transaction.
async fn store_page(store: &Store, kind: &Kind, page: &Page, now: i64, report: &mut KindReport) -> anyhow::Result<()> {
    let events = page
        .objects
        .iter()
        .flat_map(|o| (kind.events)(o))
        .map(|s| Event::parse(s.to_json().to_string().as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .context("synthesizing events")?;
    let refs: Vec<&Event> = events.iter().collect();
    let outcomes = store.ingest_with(&refs, now, IngestOptions::IMPORT).await.context("storing synced objects")?;
    report.pages += 1;
    report.objects += page.objects.len() as u64;
    report.stored += outcomes.iter().filter(|o| **o == Ingested::Stored).count() as u64;
    report.duplicates += outcomes.iter().filter(|o| **o == Ingested::Duplicate).count() as u64;
    Ok(())
}

fn progress_bar(visible: bool, name: &str, resumed: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix}: {pos} objects ({per_sec}) {msg}") {
        bar.set_style(style);
    }
    bar.set_prefix(name.to_owned());
    if resumed {
        bar.set_message("(resumed)");
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
