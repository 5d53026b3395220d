//! Lifecycle reactions, decided for the projector's run of events: start onboarding on the
//! first paid invoice, the trial-ending reminder, win-back after a voluntary cancellation;
//! stop every series the moment it stops being true (the subscription ended, the customer
//! came back). Re-engagement starts in the scheduler (it depends on time passing, not on an
//! event); its emails are rendered here too.

use minijinja::{Value, context};

use crate::domain::event::Event;
use crate::domain::fields::str_at;
use crate::domain::lift::HOLDOUT;
use crate::domain::money::{format_amount, format_date};
use crate::domain::snapshots::{InvoiceSnapshot, SubscriptionSnapshot};
use crate::lifecycle::config::Campaign;
use crate::lifecycle::context::Lifecycle;
use crate::lifecycle::rules::{
    DAY, Trigger, onboarding_case, reengage_case, series_arm, trial_case, trial_end, trial_onboarding_case, winback_case,
};
use crate::mail::NewEmail;
use crate::mail::composer::EmailTo;
use crate::store::reactions::{Deciding, FactsQuery, ReactError, Series, Write};

/// The facts `react` reads for `t`.
pub(crate) fn wants(r: &Lifecycle, q: &mut FactsQuery, event: &Event, t: &Trigger, notify: bool) {
    match t {
        Trigger::Paid { invoice } => {
            if let (Some(customer), Some(_)) = (&invoice.customer, &invoice.subscription) {
                q.customers.insert(customer.clone());
                q.series.insert(onboarding_case(customer));
                q.series.insert(trial_onboarding_case(customer));
                if notify && r.campaigns.onboarding.enabled {
                    q.first_paid_of.insert(customer.clone());
                }
            }
        }
        Trigger::TrialWillEnd { subscription: s } => {
            if let Some(customer) = &s.customer {
                q.customers.insert(customer.clone());
                q.series.extend(trial_end(event, s).map(|ends| trial_case(&s.id, ends)));
            }
        }
        Trigger::Ended { subscription: s, .. } => {
            if let Some(customer) = &s.customer {
                q.customers.insert(customer.clone());
                q.series.insert(winback_case(customer, &s.id));
            }
        }
        Trigger::Live { subscription: s } => {
            if let Some(customer) = &s.customer {
                q.customers.insert(customer.clone());
                if s.status == "trialing" {
                    q.series.insert(trial_onboarding_case(customer));
                }
            }
        }
    }
}

/// Decide on one event's lifecycle trigger.
pub(crate) fn react(
    r: &Lifecycle,
    d: &mut Deciding,
    event: &Event,
    t: Trigger,
    now: i64,
    notify: bool,
) -> Result<(), ReactError> {
    // Imports and late deliveries record nothing new here: a series is a reaction to news.
    let fresh = notify && now - event.created <= r.campaigns.horizon_days * DAY;
    match t {
        Trigger::Paid { invoice } if fresh && r.campaigns.onboarding.enabled => onboarding(r, d, event, &invoice),
        Trigger::Paid { .. } => Ok(()),
        Trigger::TrialWillEnd { subscription } if fresh && r.campaigns.trial_ending.enabled => {
            trial_ending(r, d, event, &subscription, now)
        }
        Trigger::TrialWillEnd { .. } => Ok(()),
        Trigger::Ended { subscription, voluntary } => {
            if ended(r, d, event, &subscription, voluntary && fresh, now)? {
                d.facts.winbacks.extend(subscription.customer);
            }
            Ok(())
        }
        Trigger::Live { subscription } => {
            let Some(customer) = &subscription.customer else { return Ok(()) };
            // Back on another subscription: the win-back of an old one has done its job.
            if d.facts.winbacks.contains(customer) {
                d.push(Write::StopSeries {
                    customer: customer.clone(),
                    campaign: "winback",
                    except: Some(subscription.id.clone()),
                    reason: "resubscribed",
                });
            }
            if subscription.status == "trialing" && notify && r.campaigns.trial_onboarding.enabled {
                trial_onboarding(r, d, event, &subscription, now)?;
            }
            Ok(())
        }
    }
}

/// Who to write to: the stored customer, else the address on the event; nobody if deleted.
fn recipient(d: &Deciding, customer: &str, event: &Event) -> Option<(String, Option<String>)> {
    let contact = d.facts.contacts.get(customer);
    if contact.is_some_and(|c| c.deleted) {
        return None;
    }
    let email = contact.and_then(|c| c.email.clone()).or_else(|| str_at(&event.object, "customer_email"));
    let name = contact.and_then(|c| c.name.clone()).or_else(|| str_at(&event.object, "customer_name"));
    email.map(|e| (e, name))
}

/// Start `series` unless it exists (a redelivery); `false` when it does.
fn start(d: &mut Deciding, series: Series) -> bool {
    if !d.facts.series.insert(series.case_key.clone()) {
        return false;
    }
    d.push(Write::StartSeries(series));
    true
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
pub(crate) fn render_series(
    r: &Lifecycle,
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
            r.composer.marketing_email(template, ctx(day), addressed)?
        } else {
            r.composer.email(template, ctx(day), addressed)?
        });
    }
    Ok(emails)
}

/// Render a whole series (see `render_series`) into the plan; returns how many emails.
#[allow(clippy::too_many_arguments)]
fn plan_series(
    r: &Lifecycle,
    d: &mut Deciding,
    campaign: &Campaign,
    case_key: &str,
    customer: &str,
    to: &str,
    start: i64,
    marketing: bool,
    ctx: impl Fn(i64) -> Value,
) -> Result<usize, ReactError> {
    let emails = render_series(r, campaign, case_key, customer, to, start, marketing, ctx)?;
    let n = emails.len();
    d.writes.extend(emails.into_iter().map(Write::Enqueue));
    Ok(n)
}

fn onboarding(r: &Lifecycle, d: &mut Deciding, event: &Event, inv: &InvoiceSnapshot) -> Result<(), ReactError> {
    let (Some(customer), Some(subscription)) = (&inv.customer, &inv.subscription) else { return Ok(()) };
    let paid_at = inv.paid_at.unwrap_or(event.created);
    // Only the customer's first payment: a renewal of someone who paid before starts nothing.
    let paid_before = d.facts.first_paid.get(customer).is_some_and(|(first, at)| first != &inv.id && *at < paid_at);
    // A trial customer had their own series from the trial's first day; the paid series is
    // for direct purchases.
    if paid_before || d.facts.series.contains(&trial_onboarding_case(customer)) {
        return Ok(());
    }
    let case_key = onboarding_case(customer);
    let series = Series {
        case_key: case_key.clone(),
        campaign: "onboarding",
        customer: customer.clone(),
        subscription: Some(subscription.clone()),
        started_at: paid_at,
        arm: series_arm("onboarding", customer, r.campaigns.onboarding.holdout_percent),
    };
    let Some((to, name)) = recipient(d, customer, event) else { return Ok(()) };
    let held_out = series.arm == Some(HOLDOUT);
    if !start(d, series) || held_out {
        return Ok(());
    }
    let plan = context! { amount => format_amount(inv.amount_paid, inv.currency.as_deref()) };
    let product_url = r.campaigns.product_url.clone();
    let ctx = |day: i64| {
        context! {
            customer => context! { name => name.clone(), email => to.clone() },
            plan => plan.clone(), day => day, product_url => product_url.clone(),
            action_url => product_url.clone(), action_label => "Open your account",
        }
    };
    plan_series(r, d, &r.campaigns.onboarding, &case_key, customer, &to, paid_at, true, ctx).map(|_| ())
}

/// The trial onboarding series, from the trial's first day. Only a trial that began within
/// the horizon starts it: a trialing subscription seen late (an import, an update of an old
/// trial) is not news.
fn trial_onboarding(
    r: &Lifecycle,
    d: &mut Deciding,
    event: &Event,
    s: &SubscriptionSnapshot,
    now: i64,
) -> Result<(), ReactError> {
    let Some(customer) = &s.customer else { return Ok(()) };
    let began = s.trial_start.or(s.start_date).or(s.created).unwrap_or(event.created);
    if now - began > r.campaigns.horizon_days * DAY {
        return Ok(());
    }
    let Some((to, name)) = recipient(d, customer, event) else { return Ok(()) };
    let case_key = trial_onboarding_case(customer);
    let series = Series {
        case_key: case_key.clone(),
        campaign: "trial_onboarding",
        customer: customer.clone(),
        subscription: Some(s.id.clone()),
        started_at: began,
        arm: series_arm("trial_onboarding", customer, r.campaigns.trial_onboarding.holdout_percent),
    };
    let held_out = series.arm == Some(HOLDOUT);
    if !start(d, series) || held_out {
        return Ok(());
    }
    let product_url = r.campaigns.product_url.clone();
    let trial_end_on = trial_end(event, s).map(format_date);
    let ctx = |day: i64| {
        context! {
            customer => context! { name => name.clone(), email => to.clone() },
            plan => context! { amount => plan_amount(s) },
            day => day, trial_end => trial_end_on.clone(), product_url => product_url.clone(),
            action_url => product_url.clone(), action_label => "Open your account",
        }
    };
    plan_series(r, d, &r.campaigns.trial_onboarding, &case_key, customer, &to, began, true, ctx).map(|_| ())
}

fn trial_ending(r: &Lifecycle, d: &mut Deciding, event: &Event, s: &SubscriptionSnapshot, now: i64) -> Result<(), ReactError> {
    let Some(customer) = &s.customer else { return Ok(()) };
    let Some(ends) = trial_end(event, s) else { return Ok(()) };
    if s.status != "trialing" || ends <= now {
        return Ok(());
    }
    let Some((to, name)) = recipient(d, customer, event) else { return Ok(()) };
    let case_key = trial_case(&s.id, ends);
    let series = Series {
        case_key: case_key.clone(),
        campaign: "trial_ending",
        customer: customer.clone(),
        subscription: Some(s.id.clone()),
        started_at: event.created,
        arm: None,
    };
    if !start(d, series) {
        return Ok(());
    }
    let has_card = d.facts.cards.values().any(|c| c.customer.as_deref() == Some(customer.as_str()));
    let on_file = ["default_payment_method", "default_source"].iter().any(|f| str_at(&event.object, f).is_some()) || has_card;
    let action_url = if on_file { None } else { r.links.update_payment(Some(customer), None, None, now) };
    let ctx = |_day: i64| {
        context! {
            customer => context! { name => name.clone(), email => to.clone() },
            plan => context! { amount => plan_amount(s) },
            trial_end => format_date(ends),
            has_payment_method => on_file,
            action_url => action_url.clone(),
            action_label => "Add a payment method",
            product_url => r.campaigns.product_url.clone(),
        }
    };
    plan_series(r, d, &r.campaigns.trial_ending, &case_key, customer, &to, event.created, false, ctx).map(|_| ())
}

/// Stop what a subscription's end makes moot and, for a voluntary one, plan the win-back;
/// `true` when a win-back with emails starts.
fn ended(
    r: &Lifecycle,
    d: &mut Deciding,
    event: &Event,
    s: &SubscriptionSnapshot,
    start_winback: bool,
    now: i64,
) -> Result<bool, ReactError> {
    let Some(customer) = &s.customer else { return Ok(false) };
    let ended_at = s.ended_at.or(s.canceled_at).unwrap_or(event.created);
    let stop = |campaign| Write::StopSeries { customer: customer.clone(), campaign, except: None, reason: "subscription_ended" };
    d.push(stop("trial_ending"));
    let others = d.facts.live_subscriptions.get(customer).map_or(0, |subs| subs.iter().filter(|id| **id != s.id).count());
    if others > 0 {
        // Still a customer on another subscription: nothing else changes.
        return Ok(false);
    }
    d.push(stop("onboarding"));
    d.push(stop("trial_onboarding"));
    if let Some(since) = d.facts.at_risk.remove(customer) {
        d.push(Write::EndRisk { customer: customer.clone(), at: ended_at });
        d.push(Write::StopOne { case_key: reengage_case(customer, since), reason: "subscription_ended" });
    }
    if !(start_winback && r.campaigns.winback.enabled) {
        return Ok(false);
    }
    let Some((to, name)) = recipient(d, customer, event) else { return Ok(false) };
    let case_key = winback_case(customer, &s.id);
    let series = Series {
        case_key: case_key.clone(),
        campaign: "winback",
        customer: customer.clone(),
        subscription: Some(s.id.clone()),
        started_at: ended_at,
        arm: series_arm("winback", customer, r.campaigns.winback.holdout_percent),
    };
    let held_out = series.arm == Some(HOLDOUT);
    if !start(d, series) {
        return Ok(false);
    }
    if held_out {
        // Recorded so its outcome (back within 90 days) counts; stopped like any other when
        // the customer returns.
        return Ok(true);
    }
    let product_url = r.campaigns.product_url.clone();
    let comeback = r.links.come_back(customer, &s.id, product_url.as_deref(), now);
    let offer_text = r.campaigns.winback_coupon.as_ref().and(r.campaigns.winback_offer_text.clone());
    let ctx = |day: i64| {
        context! {
            customer => context! { name => name.clone(), email => to.clone() },
            day => day,
            comeback_url => comeback.clone(), action_url => comeback.clone(), action_label => "Come back",
            offer_text => offer_text.clone(), canceled_on => format_date(ended_at), product_url => product_url.clone(),
        }
    };
    Ok(plan_series(r, d, &r.campaigns.winback, &case_key, customer, &to, ended_at, true, ctx)? > 0)
}
