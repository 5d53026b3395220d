//! The business itself: customers and their subscriptions, changed by dated actions. Every
//! action records the customer's whole state after it, so the state at any instant is known.

use super::Rng;

const DAY: i64 = 86_400;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Params {
    pub seed: u64,
    pub customers: usize,
    /// Unix seconds of 00:00 UTC on the 1st of the first month.
    pub start: i64,
    /// Unix seconds after which nothing happens.
    pub end: i64,
    /// Signups are spread over `[start, signup_until)`.
    pub signup_until: i64,
}

/// A discount in force on a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Discount {
    pub id: String,
    pub percent_off: i64,
    pub start: i64,
    pub end: i64,
}

/// One subscription as the business knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub created: i64,
    pub status: &'static str,
    pub price_id: &'static str,
    /// Per unit (0 for a tiered price: `tiers` prices the quantity).
    pub unit_amount: i64,
    pub tiers: Option<&'static TieredPrice>,
    /// A metered price: `usage` is what its latest usage invoice billed (`None` before one).
    pub metered: bool,
    pub usage: Option<i64>,
    /// `month` or `year`.
    pub interval: &'static str,
    pub quantity: i64,
    pub discount: Option<Discount>,
    /// Collection paused: `Some(resumes_at)` (`None` inside = until resumed by hand).
    pub pause: Option<Option<i64>>,
    pub cancel_reason: Option<&'static str>,
    pub ended_at: Option<i64>,
    pub trial_end: Option<i64>,
}

impl Subscription {
    /// Months in the billing interval.
    pub fn interval_months(&self) -> i64 {
        if self.interval == "year" { 12 } else { 1 }
    }

    /// What one billing interval costs before discounts.
    pub fn amount(&self) -> i64 {
        match self.tiers {
            _ if self.metered => self.usage.unwrap_or(0),
            Some(t) => t.amount(self.quantity),
            None => self.unit_amount * self.quantity,
        }
    }
}

/// A tiered price: each tier is `(up_to, unit_amount, flat_amount)`, the last unbounded.
#[derive(Debug, PartialEq)]
pub struct TieredPrice {
    pub id: &'static str,
    /// `volume` or `graduated`.
    pub mode: &'static str,
    pub tiers: &'static [(Option<i64>, i64, i64)],
}

impl TieredPrice {
    /// Stripe's pricing of `quantity` units: volume prices them all at the tier the quantity
    /// reaches, graduated each slice at its own tier; a tier's flat amount comes with it.
    pub fn amount(&self, quantity: i64) -> i64 {
        let mut total = 0;
        let mut below = 0;
        for &(up_to, unit, flat) in self.tiers {
            let top = up_to.unwrap_or(i64::MAX);
            if self.mode == "volume" {
                if quantity <= top {
                    return quantity * unit + flat;
                }
                continue;
            }
            let units = quantity.min(top) - below;
            if units > 0 {
                total += units * unit + flat;
            }
            below = top;
            if quantity <= top {
                break;
            }
        }
        total
    }
}

/// The metered monthly price (2 cents per unit used) some customers are on.
pub const METERED_PRICE: &str = "price_api_calls_m";

/// The tiered monthly prices some customers are on.
pub const TIERED: [TieredPrice; 2] = [
    TieredPrice { id: "price_seats_graduated_m", mode: "graduated", tiers: &[(Some(2), 1500, 500), (None, 1000, 0)] },
    TieredPrice { id: "price_seats_volume_m", mode: "volume", tiers: &[(Some(3), 1200, 0), (None, 900, 1000)] },
];

/// How a failed invoice ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Recovered,
    Lost,
    Pending,
}

/// A subscription invoice whose payment failed.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedInvoice {
    pub id: String,
    pub subscription: String,
    pub amount_due: i64,
    pub first_failed_at: i64,
    pub outcome: Outcome,
}

/// Something that happened, in the order it happened (per customer).
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    CustomerCreated,
    /// A discount applied to the customer (no subscription).
    CustomerDiscount(Discount),
    SubscriptionCreated(Subscription),
    SubscriptionUpdated(Subscription),
    SubscriptionDeleted(Subscription),
    InvoicePaymentFailed {
        invoice: String,
        subscription: String,
        amount: i64,
        action_required: bool,
        attempt: i64,
    },
    InvoicePaid {
        invoice: String,
        subscription: String,
        amount: i64,
    },
    /// A metered subscription's invoice for its usage, finalized and paid.
    UsageInvoice {
        invoice: String,
        subscription: String,
        amount: i64,
    },
    InvoiceVoided {
        invoice: String,
        subscription: String,
        amount: i64,
    },
    InvoiceUncollectible {
        invoice: String,
        subscription: String,
        amount: i64,
    },
}

/// One customer's life.
#[derive(Debug, Clone, Default)]
pub struct Customer {
    pub id: String,
    pub created: i64,
    /// `usd`, or `jpy` (a zero-decimal currency) for one customer in ten.
    pub currency: &'static str,
    /// (time, what) in order.
    pub happenings: Vec<(i64, Happening)>,
    /// (time, every subscription after the change at that time) in order.
    pub states: Vec<(i64, Vec<Subscription>)>,
    /// When a subscription of this customer first became active.
    pub first_active: Option<i64>,
    /// (time, involuntary) of every end of a subscription that had been active.
    pub ends: Vec<(i64, bool)>,
    pub failed: Vec<FailedInvoice>,
    /// A customer-level discount: it applies to the customer's subscriptions that have no
    /// discount of their own in force.
    pub discount: Option<Discount>,
}

impl Customer {
    /// Subscriptions after every change strictly before `t`.
    pub fn at(&self, t: i64) -> &[Subscription] {
        self.states.iter().rev().find(|(at, _)| *at < t).map_or(&[], |(_, s)| s.as_slice())
    }

    fn record(&mut self, t: i64, what: Happening, subs: &[Subscription]) {
        self.happenings.push((t, what));
        if self.states.last().is_some_and(|(at, s)| *at == t && s.as_slice() == subs) {
            return;
        }
        self.states.push((t, subs.to_vec()));
    }
}

/// The whole simulated business.
#[derive(Debug, Clone)]
pub struct Business {
    pub params: Params,
    pub customers: Vec<Customer>,
}

const MONTHLY: [(&str, i64); 3] = [("price_starter_m", 1900), ("price_team_m", 4900), ("price_business_m", 9900)];
const YEARLY: [(&str, i64); 2] = [("price_starter_y", 19000), ("price_team_y", 49000)];
/// Yen have no minor unit: these are whole yen.
const MONTHLY_JPY: [(&str, i64); 3] =
    [("price_starter_jpy_m", 2900), ("price_team_jpy_m", 7400), ("price_business_jpy_m", 14900)];
const YEARLY_JPY: [(&str, i64); 2] = [("price_starter_jpy_y", 29000), ("price_team_jpy_y", 74000)];

fn monthly_prices(currency: &str) -> &'static [(&'static str, i64)] {
    if currency == "jpy" { &MONTHLY_JPY } else { &MONTHLY }
}

impl Business {
    /// Play the business from its seed.
    pub fn simulate(params: Params) -> Self {
        let mut rng = Rng::new(params.seed);
        let customers = (0..params.customers).map(|i| play_customer(&params, &mut rng, i)).collect();
        Self { params, customers }
    }
}

fn play_customer(p: &Params, rng: &mut Rng, i: usize) -> Customer {
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
    c
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

/// Play one subscription to its end (returns when it ended) or to the end of time (`None`).
fn play_subscription(p: &Params, rng: &mut Rng, c: &mut Customer, t0: i64, n: usize) -> Option<i64> {
    let mut s = new_subscription(rng, c, t0, n);
    let mut t = t0;
    let mut n_inv = 0;
    // Stripe invoices a metered subscription at its start for nothing used yet.
    let usage_invoice = |c: &mut Customer, s: &mut Subscription, t: i64, n_inv: &mut usize, amount: i64| {
        *n_inv += 1;
        s.usage = Some(amount);
        let invoice = format!("in_{}_{}", &s.id[4..], *n_inv);
        c.record(t, Happening::UsageInvoice { invoice, subscription: s.id.clone(), amount }, std::slice::from_ref(s));
    };
    if rng.chance(40) {
        s.status = "trialing";
        s.trial_end = Some(t + 14 * DAY);
        c.record(t, Happening::SubscriptionCreated(s.clone()), std::slice::from_ref(&s));
        if s.metered {
            usage_invoice(c, &mut s, t, &mut n_inv, 0);
        }
        t += 14 * DAY;
        if t >= p.end {
            return None;
        }
        if rng.chance(25) {
            // The trial ends without a card: never active, so not churn.
            s.status = if rng.chance(50) { "paused" } else { "canceled" };
            if s.status == "canceled" {
                s.ended_at = Some(t);
                c.record(t, Happening::SubscriptionDeleted(s.clone()), std::slice::from_ref(&s));
            } else {
                c.record(t, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(&s));
            }
            return if s.status == "canceled" { Some(t) } else { None };
        }
        s.status = "active";
        c.record(t, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(&s));
    } else {
        c.record(t, Happening::SubscriptionCreated(s.clone()), std::slice::from_ref(&s));
        if s.metered {
            usage_invoice(c, &mut s, t, &mut n_inv, 0);
        }
    }
    c.first_active.get_or_insert(t);
    loop {
        // Same-second follow-ups happen (Stripe's often do): a step of 0 days keeps the second.
        t += rng.range(8, 45) * DAY + rng.range(0, DAY);
        if t >= p.end {
            return None;
        }
        // Clock-driven ends are reflected in the next snapshot Stripe sends.
        if s.discount.as_ref().is_some_and(|d| d.end < t) {
            s.discount = None;
        }
        if matches!(s.pause, Some(Some(r)) if r < t) {
            s.pause = None;
        }
        let roll = rng.range(0, 100);
        let update = |c: &mut Customer, s: &Subscription, t: i64| {
            c.record(t, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(s))
        };
        match roll {
            0..=9 => {
                s.quantity += 1;
                update(c, &s, t);
            }
            10..=17 if s.quantity > 1 => {
                s.quantity -= 1;
                update(c, &s, t);
            }
            18..=22 if s.interval == "month" => {
                let (price_id, unit_amount) = rng.pick(monthly_prices(c.currency));
                s.price_id = price_id;
                s.unit_amount = unit_amount;
                s.tiers = None;
                s.metered = false;
                s.usage = None;
                update(c, &s, t);
            }
            23..=30 if s.discount.is_none() => {
                let id = format!("di_{}_{t}", &s.id[4..]);
                s.discount =
                    Some(Discount { id, percent_off: rng.pick(&[10, 20, 25, 50]), start: t, end: t + rng.range(40, 130) * DAY });
                update(c, &s, t);
            }
            31..=36 if s.pause.is_none() => {
                s.pause = Some(if rng.chance(70) { Some(t + rng.range(15, 70) * DAY) } else { None });
                update(c, &s, t);
            }
            37..=44 if s.pause == Some(None) => {
                s.pause = None;
                update(c, &s, t);
            }
            45..=49 => {
                s.status = "canceled";
                s.cancel_reason = Some("cancellation_requested");
                s.ended_at = Some(t);
                c.ends.push((t, false));
                c.record(t, Happening::SubscriptionDeleted(s.clone()), std::slice::from_ref(&s));
                return Some(t);
            }
            59..=68 if s.metered && s.pause.is_none() && s.status == "active" => {
                let amount = rng.range(5, 400) * 10 * s.unit_amount;
                usage_invoice(c, &mut s, t, &mut n_inv, amount);
            }
            50..=58 if s.pause.is_none() => {
                n_inv += 1;
                if let Some(ended) = fail_payment(p, rng, c, &mut s, &mut t, n_inv) {
                    return Some(ended);
                }
                if s.status == "past_due" {
                    return None; // pending until the end of time
                }
            }
            _ => {}
        }
    }
}

/// A renewal invoice fails; `now` moves to when it settled. Returns the end time if the
/// subscription was canceled for it.
fn fail_payment(p: &Params, rng: &mut Rng, c: &mut Customer, s: &mut Subscription, now: &mut i64, n: usize) -> Option<i64> {
    let t = *now;
    let invoice = format!("in_{}_{n}", &s.id[4..]);
    let amount = s.amount();
    let subscription = s.id.clone();
    let action_required = rng.chance(20);
    c.record(
        t,
        Happening::InvoicePaymentFailed {
            invoice: invoice.clone(),
            subscription: subscription.clone(),
            amount,
            action_required,
            attempt: 1,
        },
        std::slice::from_ref(s),
    );
    s.status = "past_due";
    c.record(t, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(s));
    let mut record = FailedInvoice {
        id: invoice.clone(),
        subscription: subscription.clone(),
        amount_due: amount,
        first_failed_at: t,
        outcome: Outcome::Pending,
    };
    let t2 = t + rng.range(1, 22) * DAY + rng.range(0, DAY);
    if t2 >= p.end {
        *now = t2;
        c.failed.push(record);
        return None;
    }
    if rng.chance(30) {
        // A retry fails again first.
        let retry = Happening::InvoicePaymentFailed {
            invoice: invoice.clone(),
            subscription: subscription.clone(),
            amount,
            action_required: false,
            attempt: 2,
        };
        c.record(t2, retry, std::slice::from_ref(s));
    }
    let t3 = t2 + rng.range(0, 3) * DAY;
    *now = t3;
    let roll = rng.range(0, 100);
    let ended = match roll {
        0..=54 => {
            record.outcome = Outcome::Recovered;
            c.record(t3, Happening::InvoicePaid { invoice, subscription, amount }, std::slice::from_ref(s));
            s.status = "active";
            c.record(t3, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(s));
            None
        }
        55..=79 => {
            record.outcome = Outcome::Lost;
            if rng.chance(50) {
                c.record(t3, Happening::InvoiceUncollectible { invoice, subscription, amount }, std::slice::from_ref(s));
            }
            s.status = "canceled";
            s.cancel_reason = Some("payment_failed");
            s.ended_at = Some(t3);
            c.ends.push((t3, true));
            c.record(t3, Happening::SubscriptionDeleted(s.clone()), std::slice::from_ref(s));
            Some(t3)
        }
        80..=87 => {
            record.outcome = Outcome::Lost;
            c.record(t3, Happening::InvoiceVoided { invoice, subscription, amount }, std::slice::from_ref(s));
            s.status = "active";
            c.record(t3, Happening::SubscriptionUpdated(s.clone()), std::slice::from_ref(s));
            None
        }
        _ => None, // pending: the subscription stays past_due
    };
    c.failed.push(record);
    ended
}
