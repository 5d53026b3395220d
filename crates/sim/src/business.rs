//! The business itself: customers and their subscriptions, changed by dated actions. Every
//! action records the customer's whole state after it, so the state at any instant is known.

use super::{Rng, play};

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

    pub(crate) fn record(&mut self, t: i64, what: Happening, subs: &[Subscription]) {
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

impl Business {
    /// Play the business from its seed.
    pub fn simulate(params: Params) -> Self {
        let mut rng = Rng::new(params.seed);
        let customers = (0..params.customers).map(|i| play::play_customer(&params, &mut rng, i)).collect();
        Self { params, customers }
    }
}
