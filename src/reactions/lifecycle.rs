//! Lifecycle reactions, inside the ingest transaction: start onboarding on the first paid
//! invoice, the trial-ending reminder, win-back after a voluntary cancellation; stop every
//! series the moment it stops being true (the subscription ended, the customer came back).
//! Re-engagement starts in the scheduler (it depends on time passing, not on an event).

use std::collections::{HashMap, HashSet};

use minijinja::{Value, context};

use super::{EmailTo, ReactError, Reactor};
use crate::config::Campaign;
use crate::domain::dunning::{format_amount, format_date};
use crate::domain::event::Event;
use crate::domain::fields::str_at;
use crate::domain::lifecycle::{DAY, Trigger, onboarding_case, reengage_case, trial_case, trial_end, trigger, winback_case};
use crate::domain::snapshots::{InvoiceSnapshot, SubscriptionSnapshot};
use crate::mail::NewEmail;
use crate::store::conn::Conn;
use crate::store::dunning as facts;
use crate::store::lifecycle::{self as state, NewSeries};
use crate::store::outbox;

/// What the hook needs to know about the batch's customers, read with one query each before
/// the per-event loop (not one per event on the webhook's path).
#[derive(Debug, Default)]
pub(super) struct Lookup {
    /// Each paying customer's first paid invoice (id, time), when onboarding may start.
    first_paid: HashMap<String, (String, i64)>,
    /// Customers with a win-back running (kept up to date as the batch starts new ones).
    winbacks: HashSet<String>,
}

impl Lookup {
    pub(super) async fn for_batch(r: &Reactor, conn: &mut Conn<'_>, events: &[&Event], notify: bool) -> Result<Self, ReactError> {
        let (mut paying, mut live) = (Vec::new(), Vec::new());
        for t in events.iter().filter_map(|e| trigger(e)) {
            match t {
                Trigger::Paid { invoice } => paying.extend(invoice.customer),
                Trigger::Live { subscription } => live.extend(subscription.customer),
                _ => {}
            }
        }
        let onboarding = notify && r.lifecycle.onboarding.enabled;
        let paying: Vec<&str> = if onboarding { paying.iter().map(String::as_str).collect() } else { Vec::new() };
        let live: Vec<&str> = live.iter().map(String::as_str).collect();
        Ok(Self {
            first_paid: state::first_paid_invoices(conn, &paying).await?,
            winbacks: state::live_winbacks_among(conn, &live).await?,
        })
    }
}

/// Apply one event's lifecycle trigger; returns the emails enqueued.
pub(super) async fn react(
    r: &Reactor,
    conn: &mut Conn<'_>,
    lookup: &mut Lookup,
    event: &Event,
    t: Trigger,
    now: i64,
    notify: bool,
) -> Result<usize, ReactError> {
    // Imports and late deliveries record nothing new here: a series is a reaction to news.
    let fresh = notify && now - event.created <= r.lifecycle.horizon_days * DAY;
    match t {
        Trigger::Paid { invoice } if fresh && r.lifecycle.onboarding.enabled => {
            onboarding(r, conn, lookup, event, &invoice, now).await
        }
        Trigger::Paid { .. } => Ok(0),
        Trigger::TrialWillEnd { subscription } if fresh && r.lifecycle.trial_ending.enabled => {
            trial_ending(r, conn, event, &subscription, now).await
        }
        Trigger::TrialWillEnd { .. } => Ok(0),
        Trigger::Ended { subscription, voluntary } => {
            let started = ended(r, conn, event, &subscription, voluntary && fresh, now).await?;
            if started > 0 {
                lookup.winbacks.extend(subscription.customer);
            }
            Ok(started)
        }
        Trigger::Live { subscription } => {
            let Some(customer) = &subscription.customer else { return Ok(0) };
            // Back on another subscription: the win-back of an old one has done its job.
            if lookup.winbacks.contains(customer) {
                state::stop_series(conn, customer, "winback", Some(&subscription.id), "resubscribed", now).await?;
            }
            Ok(0)
        }
    }
}

/// Who to write to: the stored customer, else the address on the event; nobody if deleted.
async fn recipient(conn: &mut Conn<'_>, customer: &str, event: &Event) -> Result<Option<(String, Option<String>)>, ReactError> {
    let contact = facts::contact(conn, customer).await?;
    if contact.as_ref().is_some_and(|c| c.deleted) {
        return Ok(None);
    }
    let email = contact.as_ref().and_then(|c| c.email.clone()).or_else(|| str_at(&event.object, "customer_email"));
    let name = contact.and_then(|c| c.name).or_else(|| str_at(&event.object, "customer_name"));
    Ok(email.map(|e| (e, name)))
}

/// `$20.00 / month` for a subscription's items.
fn plan_amount(s: &SubscriptionSnapshot) -> Option<String> {
    let first = s.items.first()?;
    let cents: i64 = s.items.iter().map(|i| i.unit_amount.unwrap_or(0) * i.quantity).sum();
    let every = match (first.interval.as_deref(), first.interval_count.unwrap_or(1)) {
        (Some(unit), 1) => format!(" / {unit}"),
        (Some(unit), n) => format!(" every {n} {unit}s"),
        (None, _) => String::new(),
    };
    Some(format!("{}{every}", format_amount(cents, first.currency.as_deref().or(s.currency.as_deref()))))
}

/// Render every step of `campaign` from `start` under `case_key`; `marketing` decides the
/// category (and so the unsubscribe link).
#[allow(clippy::too_many_arguments)]
fn render_series(
    r: &Reactor,
    campaign: &Campaign,
    case_key: &str,
    customer: &str,
    to: &str,
    start: i64,
    marketing: bool,
    ctx: impl Fn(i64) -> Value,
) -> Result<Vec<NewEmail>, ReactError> {
    let mut emails = Vec::new();
    for (step, day, template) in campaign.steps() {
        let addressed = EmailTo {
            dedupe_key: format!("{case_key}:{step}"),
            case_key: Some(case_key.to_owned()),
            customer: Some(customer),
            recipient: to,
            send_at: start + day * DAY,
        };
        emails.push(if marketing {
            r.marketing_email(template, ctx(day), addressed)?
        } else {
            r.email(template, ctx(day), addressed)?
        });
    }
    Ok(emails)
}

/// Write rendered emails to the outbox; returns how many were new.
async fn enqueue_all(conn: &mut Conn<'_>, emails: &[NewEmail], now: i64) -> Result<usize, sqlx::Error> {
    let mut n = 0;
    for email in emails {
        n += usize::from(outbox::enqueue(conn, email, now).await?);
    }
    Ok(n)
}

/// Render and enqueue a whole series (see `render_series`).
#[allow(clippy::too_many_arguments)]
async fn enqueue_series(
    r: &Reactor,
    conn: &mut Conn<'_>,
    campaign: &Campaign,
    case_key: &str,
    customer: &str,
    to: &str,
    start: i64,
    marketing: bool,
    ctx: impl Fn(i64) -> Value,
    now: i64,
) -> Result<usize, ReactError> {
    let emails = render_series(r, campaign, case_key, customer, to, start, marketing, ctx)?;
    Ok(enqueue_all(conn, &emails, now).await?)
}

async fn onboarding(
    r: &Reactor,
    conn: &mut Conn<'_>,
    lookup: &Lookup,
    event: &Event,
    inv: &InvoiceSnapshot,
    now: i64,
) -> Result<usize, ReactError> {
    let (Some(customer), Some(subscription)) = (&inv.customer, &inv.subscription) else { return Ok(0) };
    let paid_at = inv.paid_at.unwrap_or(event.created);
    // Only the customer's first payment: a renewal of someone who paid before starts nothing.
    let paid_before = lookup.first_paid.get(customer).is_some_and(|(first, at)| first != &inv.id && *at < paid_at);
    if paid_before {
        return Ok(0);
    }
    let case_key = onboarding_case(customer);
    let series = NewSeries {
        case_key: &case_key,
        campaign: "onboarding",
        customer,
        subscription: Some(subscription),
        started_at: paid_at,
    };
    let Some((to, name)) = recipient(conn, customer, event).await? else { return Ok(0) };
    if !state::start_series(conn, &series).await? {
        return Ok(0);
    }
    let plan = context! { amount => format_amount(inv.amount_paid, inv.currency.as_deref()) };
    let product_url = r.lifecycle.product_url.clone();
    let ctx = |day: i64| {
        context! {
            customer => context! { name => name.clone(), email => to.clone() },
            plan => plan.clone(), day => day, product_url => product_url.clone(),
            action_url => product_url.clone(), action_label => "Open your account",
        }
    };
    enqueue_series(r, conn, &r.lifecycle.onboarding, &case_key, customer, &to, paid_at, true, ctx, now).await
}

async fn trial_ending(
    r: &Reactor,
    conn: &mut Conn<'_>,
    event: &Event,
    s: &SubscriptionSnapshot,
    now: i64,
) -> Result<usize, ReactError> {
    let Some(customer) = &s.customer else { return Ok(0) };
    let Some(ends) = trial_end(event, s) else { return Ok(0) };
    if s.status != "trialing" || ends <= now {
        return Ok(0);
    }
    let Some((to, name)) = recipient(conn, customer, event).await? else { return Ok(0) };
    let case_key = trial_case(&s.id, ends);
    let series = NewSeries {
        case_key: &case_key,
        campaign: "trial_ending",
        customer,
        subscription: Some(&s.id),
        started_at: event.created,
    };
    if !state::start_series(conn, &series).await? {
        return Ok(0);
    }
    let on_file = ["default_payment_method", "default_source"].iter().any(|f| str_at(&event.object, f).is_some())
        || state::has_card(conn, customer).await?;
    let action_url = if on_file { None } else { r.links().update_payment(Some(customer), None, None, now) };
    let ctx = |_day: i64| {
        context! {
            customer => context! { name => name.clone(), email => to.clone() },
            plan => context! { amount => plan_amount(s) },
            trial_end => format_date(ends),
            has_payment_method => on_file,
            action_url => action_url.clone(),
            action_label => "Add a payment method",
            product_url => r.lifecycle.product_url.clone(),
        }
    };
    enqueue_series(r, conn, &r.lifecycle.trial_ending, &case_key, customer, &to, event.created, false, ctx, now).await
}

async fn ended(
    r: &Reactor,
    conn: &mut Conn<'_>,
    event: &Event,
    s: &SubscriptionSnapshot,
    start_winback: bool,
    now: i64,
) -> Result<usize, ReactError> {
    let Some(customer) = &s.customer else { return Ok(0) };
    let ended_at = s.ended_at.or(s.canceled_at).unwrap_or(event.created);
    state::stop_series(conn, customer, "trial_ending", None, "subscription_ended", now).await?;
    if state::other_live_subscriptions(conn, customer, &s.id).await? > 0 {
        // Still a customer on another subscription: nothing else changes.
        return Ok(0);
    }
    state::stop_series(conn, customer, "onboarding", None, "subscription_ended", now).await?;
    if let Some(since) = state::mark_risk_ended(conn, customer, ended_at).await? {
        state::stop_one(conn, &reengage_case(customer, since), "subscription_ended", now).await?;
    }
    if !(start_winback && r.lifecycle.winback.enabled) {
        return Ok(0);
    }
    let Some((to, name)) = recipient(conn, customer, event).await? else { return Ok(0) };
    let case_key = winback_case(customer, &s.id);
    let series =
        NewSeries { case_key: &case_key, campaign: "winback", customer, subscription: Some(&s.id), started_at: ended_at };
    if !state::start_series(conn, &series).await? {
        return Ok(0);
    }
    let product_url = r.lifecycle.product_url.clone();
    let comeback = r.links().come_back(customer, &s.id, product_url.as_deref(), now);
    let offer_text = r.lifecycle.winback_coupon.as_ref().and(r.lifecycle.winback_offer_text.clone());
    let ctx = |day: i64| {
        context! {
            customer => context! { name => name.clone(), email => to.clone() },
            day => day,
            comeback_url => comeback.clone(), action_url => comeback.clone(), action_label => "Come back",
            offer_text => offer_text.clone(), canceled_on => format_date(ended_at), product_url => product_url.clone(),
        }
    };
    enqueue_series(r, conn, &r.lifecycle.winback, &case_key, customer, &to, ended_at, true, ctx, now).await
}

/// Days after an episode closes before the same customer can be at risk again: a single
/// return leaves last week's count low for a while, and that must not restart the series.
pub const REENTRY_COOLDOWN_SECS: i64 = 14 * DAY;

/// Open an at-risk episode for a candidate the rule flagged, and enqueue its re-engagement
/// series (when that campaign is on) in the same transaction. Returns the emails enqueued.
pub async fn start_reengagement(
    r: &Reactor,
    store: &crate::store::Store,
    c: &state::Candidate,
    a: crate::domain::lifecycle::Assessment,
    now: i64,
) -> anyhow::Result<usize> {
    let contact = store.with_conn(async |conn| facts::contact(conn, &c.customer).await).await?;
    let case_key = reengage_case(&c.customer, now);
    let mut emails = Vec::new();
    if r.lifecycle.reengagement.enabled
        && let Some(contact) = contact.filter(|c| !c.deleted)
        && let Some(to) = contact.email.clone()
    {
        let product_url = r.lifecycle.product_url.clone();
        let ctx = |day: i64| {
            context! {
                customer => context! { name => contact.name.clone(), email => to.clone() },
                day => day, last_active_on => format_date(c.last_at), product_url => product_url.clone(),
                action_url => product_url.clone(), action_label => "Pick up where you left off",
            }
        };
        emails = render_series(r, &r.lifecycle.reengagement, &case_key, &c.customer, &to, now, true, ctx)?;
    }
    let episode = state::NewEpisode {
        customer: &c.customer,
        reason: a.risk.as_str(),
        since: now,
        last_activity_at: c.last_at,
        recent_week: a.recent_week,
        baseline_week: a.baseline_week,
    };
    let series =
        NewSeries { case_key: &case_key, campaign: "reengagement", customer: &c.customer, subscription: None, started_at: now };
    let n = store
        .in_transaction(async |conn| {
            if !state::open_episode(conn, &episode).await? {
                return Ok(0);
            }
            if emails.is_empty() || !state::start_series(conn, &series).await? {
                return Ok(0);
            }
            enqueue_all(conn, &emails, now).await
        })
        .await?;
    Ok(n)
}
