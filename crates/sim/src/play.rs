//! Playing the business: each customer's subscriptions from signup to their end, drawn from
//! the seeded `Rng`. Every draw happens in a fixed order, so a seed always plays the same.

use std::ops::ControlFlow::{self, Break, Continue};

use super::Rng;
use super::business::{Customer, Discount, FailedInvoice, Happening, METERED_PRICE, Outcome, Params, Subscription, TIERED};

const DAY: i64 = 86_400;

const MONTHLY: [(&str, i64); 3] = [("price_starter_m", 1900), ("price_team_m", 4900), ("price_business_m", 9900)];
const YEARLY: [(&str, i64); 2] = [("price_starter_y", 19000), ("price_team_y", 49000)];
/// Yen have no minor unit: these are whole yen.
const MONTHLY_JPY: [(&str, i64); 3] =
    [("price_starter_jpy_m", 2900), ("price_team_jpy_m", 7400), ("price_business_jpy_m", 14900)];
const YEARLY_JPY: [(&str, i64); 2] = [("price_starter_jpy_y", 29000), ("price_team_jpy_y", 74000)];

fn monthly_prices(currency: &str) -> &'static [(&'static str, i64)] {
    if currency == "jpy" { &MONTHLY_JPY } else { &MONTHLY }
}

/// What playing a subscription gives back once it is over: when it ended, or `None` when it
/// runs (or stays pending) to the end of time.
type Over = Option<i64>;

pub(crate) fn play_customer(p: &Params, rng: &mut Rng, i: usize) -> Customer {
    // The first customer signs up in the first month so the history starts there.
    let t0 = if i == 0 { p.start + rng.range(0, 20 * DAY) } else { rng.range(p.start, p.signup_until) };
    let currency = if i % 10 == 3 { "jpy" } else { "usd" };
    let mut c = Customer { id: format!("cus_{}_{i:05}", p.seed), created: t0, currency, ..Default::default() };
    c.record(t0, Happening::CustomerCreated, &[]);
    let mut t = t0;
    let mut n_sub = 0;
    loop {
        n_sub += 1;
        let Some(end_t) = play_subscription(p, rng, &mut c, t, n_sub) else { break };
        // Some churned customers come back with a new subscription.
        t = end_t + rng.range(20 * DAY, 150 * DAY);
        if t >= p.end || n_sub >= 3 || !rng.chance(35) {
            break;
        }
    }
    if rng.chance(15) {
        give_customer_discount(p, rng, &mut c, t0);
    }
    c
}

/// A customer-level discount some time after signup (recorded only if it starts in time).
fn give_customer_discount(p: &Params, rng: &mut Rng, c: &mut Customer, t0: i64) {
    let start = t0 + rng.range(5 * DAY, 120 * DAY);
    let d = Discount {
        id: format!("di_{}", &c.id[4..]),
        percent_off: rng.pick(&[15, 30]),
        start,
        end: start + rng.range(60 * DAY, 240 * DAY),
    };
    if start < p.end {
        // In time order among the customer's happenings (after any at the same second).
        let at = c.happenings.iter().position(|(t, _)| *t > start).unwrap_or(c.happenings.len());
        c.happenings.insert(at, (start, Happening::CustomerDiscount(d.clone())));
        c.discount = Some(d);
    }
}

fn new_subscription(rng: &mut Rng, c: &Customer, t: i64, n: usize) -> Subscription {
    let yearly: &[(&str, i64)] = if c.currency == "jpy" { &YEARLY_JPY } else { &YEARLY };
    let (interval, (price_id, unit_amount)) =
        if rng.chance(20) { ("year", rng.pick(yearly)) } else { ("month", rng.pick(monthly_prices(c.currency))) };
    // The tiered and metered prices are in dollars.
    let tiers = (interval == "month" && rng.chance(15) && c.currency == "usd").then(|| &TIERED[rng.range(0, 2) as usize]);
    let metered = tiers.is_none() && interval == "month" && rng.chance(12) && c.currency == "usd";
    Subscription {
        id: format!("sub_{}_{n}", &c.id[4..]),
        created: t,
        status: "active",
        price_id: if metered { METERED_PRICE } else { tiers.map_or(price_id, |t| t.id) },
        unit_amount: if metered {
            2
        } else if tiers.is_some() {
            0
        } else {
            unit_amount
        },
        tiers,
        metered,
        usage: None,
        interval,
        quantity: rng.range(1, 4),
        discount: None,
        pause: None,
        cancel_reason: None,
        ended_at: None,
        trial_end: None,
    }
}

/// The subscription and its invoice count as it is played.
struct Playing {
    s: Subscription,
    /// Invoices issued so far (numbers the next one).
    invoices: usize,
}

/// Play one subscription to its end (returns when it ended) or to the end of time (`None`).
fn play_subscription(p: &Params, rng: &mut Rng, c: &mut Customer, t0: i64, n: usize) -> Over {
    let mut play = Playing { s: new_subscription(rng, c, t0, n), invoices: 0 };
    let mut t = match begin(p, rng, c, &mut play, t0) {
        Continue(active_from) => active_from,
        Break(over) => return over,
    };
    c.first_active.get_or_insert(t);
    loop {
        // Same-second follow-ups happen (Stripe's often do): a step of 0 days keeps the second.
        t += rng.range(8, 45) * DAY + rng.range(0, DAY);
        if t >= p.end {
            return None;
        }
        expire_lapsed_terms(&mut play.s, t);
        if let Break(over) = random_change(p, rng, c, &mut play, &mut t) {
            return over;
        }
    }
}

/// The subscription's start: straight to active, or through a 14-day trial. `Continue` with
/// when it became active, or `Break` when it never does.
fn begin(p: &Params, rng: &mut Rng, c: &mut Customer, play: &mut Playing, t: i64) -> ControlFlow<Over, i64> {
    if rng.chance(40) {
        return play_trial(p, rng, c, play, t);
    }
    c.record(t, Happening::SubscriptionCreated(play.s.clone()), std::slice::from_ref(&play.s));
    if play.s.metered {
        usage_invoice(c, play, t, 0);
    }
    Continue(t)
}

/// A 14-day trial that converts to active, or ends without a card (never active, so not
/// churn): paused or canceled.
fn play_trial(p: &Params, rng: &mut Rng, c: &mut Customer, play: &mut Playing, t0: i64) -> ControlFlow<Over, i64> {
    play.s.status = "trialing";
    play.s.trial_end = Some(t0 + 14 * DAY);
    c.record(t0, Happening::SubscriptionCreated(play.s.clone()), std::slice::from_ref(&play.s));
    if play.s.metered {
        usage_invoice(c, play, t0, 0);
    }
    let t = t0 + 14 * DAY;
    if t >= p.end {
        return Break(None);
    }
    let s = &mut play.s;
    if rng.chance(25) {
        s.status = if rng.chance(50) { "paused" } else { "canceled" };
        if s.status == "canceled" {
            s.ended_at = Some(t);
            c.record(t, Happening::SubscriptionDeleted(s.clone()), std::slice::from_ref(s));
            return Break(Some(t));
        }
        c.record(t, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(s));
        return Break(None);
    }
    s.status = "active";
    c.record(t, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(s));
    Continue(t)
}

/// Clock-driven ends (a discount's, a pause's) are reflected in the next snapshot Stripe sends.
fn expire_lapsed_terms(s: &mut Subscription, t: i64) {
    if s.discount.as_ref().is_some_and(|d| d.end < t) {
        s.discount = None;
    }
    if matches!(s.pause, Some(Some(r)) if r < t) {
        s.pause = None;
    }
}

/// Stripe invoices a metered subscription for its usage (at its start for nothing used yet).
fn usage_invoice(c: &mut Customer, play: &mut Playing, t: i64, amount: i64) {
    play.invoices += 1;
    let s = &mut play.s;
    s.usage = Some(amount);
    let invoice = format!("in_{}_{}", &s.id[4..], play.invoices);
    c.record(t, Happening::UsageInvoice { invoice, subscription: s.id.clone(), amount }, std::slice::from_ref(s));
}

/// One drawn event in a running subscription's life; `Break` once the subscription is over.
fn random_change(p: &Params, rng: &mut Rng, c: &mut Customer, play: &mut Playing, t: &mut i64) -> ControlFlow<Over> {
    let roll = rng.range(0, 100);
    let s = &mut play.s;
    match roll {
        0..=44 => amend(rng, c, s, *t, roll),
        45..=49 => return Break(Some(cancel_voluntarily(c, s, *t))),
        59..=68 if s.metered && s.pause.is_none() && s.status == "active" => {
            let amount = rng.range(5, 400) * 10 * s.unit_amount;
            usage_invoice(c, play, *t, amount);
        }
        50..=58 if s.pause.is_none() => {
            play.invoices += 1;
            if let Some(ended) = fail_payment(p, rng, c, s, t, play.invoices) {
                return Break(Some(ended));
            }
            if s.status == "past_due" {
                return Break(None); // pending until the end of time
            }
        }
        _ => {}
    }
    Continue(())
}

/// A change of the subscription's terms for `roll` in `0..=44` (some only when they apply):
/// quantity, price, a discount, a pause or its end.
fn amend(rng: &mut Rng, c: &mut Customer, s: &mut Subscription, t: i64, roll: i64) {
    match roll {
        0..=9 => s.quantity += 1,
        10..=17 if s.quantity > 1 => s.quantity -= 1,
        18..=22 if s.interval == "month" => {
            let (price_id, unit_amount) = rng.pick(monthly_prices(c.currency));
            s.price_id = price_id;
            s.unit_amount = unit_amount;
            s.tiers = None;
            s.metered = false;
            s.usage = None;
        }
        23..=30 if s.discount.is_none() => {
            let id = format!("di_{}_{t}", &s.id[4..]);
            s.discount =
                Some(Discount { id, percent_off: rng.pick(&[10, 20, 25, 50]), start: t, end: t + rng.range(40, 130) * DAY });
        }
        31..=36 if s.pause.is_none() => {
            s.pause = Some(if rng.chance(70) { Some(t + rng.range(15, 70) * DAY) } else { None });
        }
        37..=44 if s.pause == Some(None) => s.pause = None,
        _ => return,
    }
    c.record(t, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(s));
}

/// The customer cancels: the subscription ends now (returned).
fn cancel_voluntarily(c: &mut Customer, s: &mut Subscription, t: i64) -> i64 {
    s.status = "canceled";
    s.cancel_reason = Some("cancellation_requested");
    s.ended_at = Some(t);
    c.ends.push((t, false));
    c.record(t, Happening::SubscriptionDeleted(s.clone()), std::slice::from_ref(s));
    t
}

/// A renewal invoice fails; `now` moves to when it settled. Returns the end time if the
/// subscription was canceled for it.
fn fail_payment(p: &Params, rng: &mut Rng, c: &mut Customer, s: &mut Subscription, now: &mut i64, n: usize) -> Option<i64> {
    let t = *now;
    let invoice = format!("in_{}_{n}", &s.id[4..]);
    let amount = s.amount();
    let mut record = FailedInvoice {
        id: invoice.clone(),
        subscription: s.id.clone(),
        amount_due: amount,
        first_failed_at: t,
        outcome: Outcome::Pending,
    };
    let action_required = rng.chance(20);
    record_failure(c, s, &invoice, amount, t, action_required, 1);
    s.status = "past_due";
    c.record(t, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(s));
    let t2 = t + rng.range(1, 22) * DAY + rng.range(0, DAY);
    if t2 >= p.end {
        *now = t2;
        c.failed.push(record);
        return None;
    }
    if rng.chance(30) {
        // A retry fails again first.
        record_failure(c, s, &invoice, amount, t2, false, 2);
    }
    let t3 = t2 + rng.range(0, 3) * DAY;
    *now = t3;
    let ended = settle_failed_invoice(rng, c, s, &mut record, t3);
    c.failed.push(record);
    ended
}

fn record_failure(c: &mut Customer, s: &Subscription, invoice: &str, amount: i64, t: i64, action_required: bool, attempt: i64) {
    let failed = Happening::InvoicePaymentFailed {
        invoice: invoice.to_owned(),
        subscription: s.id.clone(),
        amount,
        action_required,
        attempt,
    };
    c.record(t, failed, std::slice::from_ref(s));
}

/// How the failed invoice `record` ends at `t`: paid, lost (uncollectible and the
/// subscription canceled for it, or voided), or still pending. Returns the end time if the
/// subscription was canceled.
fn settle_failed_invoice(
    rng: &mut Rng,
    c: &mut Customer,
    s: &mut Subscription,
    record: &mut FailedInvoice,
    t: i64,
) -> Option<i64> {
    let (invoice, subscription, amount) = (record.id.clone(), s.id.clone(), record.amount_due);
    let roll = rng.range(0, 100);
    match roll {
        0..=54 => {
            record.outcome = Outcome::Recovered;
            c.record(t, Happening::InvoicePaid { invoice, subscription, amount }, std::slice::from_ref(s));
            s.status = "active";
            c.record(t, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(s));
            None
        }
        55..=79 => {
            record.outcome = Outcome::Lost;
            if rng.chance(50) {
                c.record(t, Happening::InvoiceUncollectible { invoice, subscription, amount }, std::slice::from_ref(s));
            }
            s.status = "canceled";
            s.cancel_reason = Some("payment_failed");
            s.ended_at = Some(t);
            c.ends.push((t, true));
            c.record(t, Happening::SubscriptionDeleted(s.clone()), std::slice::from_ref(s));
            Some(t)
        }
        80..=87 => {
            record.outcome = Outcome::Lost;
            c.record(t, Happening::InvoiceVoided { invoice, subscription, amount }, std::slice::from_ref(s));
            s.status = "active";
            c.record(t, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(s));
            None
        }
        _ => None, // pending: the subscription stays past_due
    }
}
