//! One month's additive figures as the store keeps them: money and count columns in storage
//! order, summed over customers and turned back into a month's figures.

use serde::{Deserialize, Serialize};

use crate::figures::report;
use crate::figures::report::MonthFigures;

/// Money columns of a [`Row`], in storage order.
pub const MONEY: [&str; 10] = [
    "mrr_start",
    "mrr_end",
    "mv_new",
    "mv_reactivation",
    "mv_expansion",
    "mv_contraction",
    "mv_paused",
    "mv_churned",
    "nrr_num",
    "nrr_den",
];
/// Count columns of a [`Row`], in storage order.
pub const COUNTS: [&str; 14] = [
    "active_start",
    "active_end",
    "new_customers",
    "churned",
    "churned_involuntary",
    "paying_end",
    "failed",
    "recovered",
    "lost",
    "pending",
    "recovered_amount",
    "lost_amount",
    "unresolved_discounts",
    "unresolved_prices",
];

/// Index in [`COUNTS`] of the discounts in force at the month's end whose terms are unknown.
pub const UNRESOLVED: usize = 12;
/// Index in [`COUNTS`] of the items of active subscriptions at the month's end whose amount
/// is unknown (a tiered price without its tiers, a metered one without a finalized line).
pub const UNRESOLVED_PRICES: usize = 13;

/// One month's additive figures (one customer's, or a sum of customers').
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub money: [f64; 10],
    pub counts: [i64; 14],
}

impl Row {
    pub fn is_zero(&self) -> bool {
        self.money.iter().all(|m| *m == 0.0) && self.counts.iter().all(|c| *c == 0)
    }

    /// `self += sign × other` (sign is 1 or −1).
    pub fn add(&mut self, other: &Row, sign: i64) {
        for (a, b) in self.money.iter_mut().zip(other.money) {
            *a += sign as f64 * b;
        }
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += sign * b;
        }
    }

    /// One month of a report as a row.
    pub(super) fn of(f: &MonthFigures, failed: &report::FailedFigures) -> Self {
        let mv = &f.movements;
        let (nrr_num, nrr_den) = f.nrr_12m.unwrap_or((0.0, 0.0));
        let n = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
        Self {
            money: [
                f.mrr_start,
                f.mrr_end,
                mv.new,
                mv.reactivation,
                mv.expansion,
                mv.contraction,
                mv.paused,
                mv.churned,
                nrr_num,
                nrr_den,
            ],
            counts: [
                n(f.active_start),
                n(f.active_end),
                n(f.new_customers),
                n(f.churned),
                n(f.churned_involuntary),
                n(f.paying_end),
                n(failed.failed),
                n(failed.recovered),
                n(failed.lost),
                n(failed.pending),
                failed.recovered_amount,
                failed.lost_amount,
                // Set by the caller, who knows the month's end (`Timeline::unresolved_discounts`
                // and `Timeline::unresolved_prices`).
                0,
                0,
            ],
        }
    }

    /// The month figures and failed-payment figures this row sums; `nrr_12m` is set when
    /// `has_year_of_history` (the caller knows where the whole history begins).
    pub fn figures(&self, has_year_of_history: bool) -> (MonthFigures, report::FailedFigures) {
        let m = &self.money;
        let c = &self.counts;
        let u = |x: i64| u64::try_from(x).unwrap_or(0);
        let f = MonthFigures {
            mrr_start: m[0],
            mrr_end: m[1],
            movements: report::Movements {
                new: m[2],
                reactivation: m[3],
                expansion: m[4],
                contraction: m[5],
                paused: m[6],
                churned: m[7],
            },
            active_start: u(c[0]),
            active_end: u(c[1]),
            new_customers: u(c[2]),
            churned: u(c[3]),
            churned_involuntary: u(c[4]),
            paying_end: u(c[5]),
            nrr_12m: has_year_of_history.then_some((m[8], m[9])),
            // Money given back after payment is not per customer: the reader applies it
            // (`report::apply_given_back`).
            given_back: report::GivenBackFigures::default(),
        };
        let failed = report::FailedFigures {
            failed: u(c[6]),
            recovered: u(c[7]),
            lost: u(c[8]),
            pending: u(c[9]),
            recovered_amount: c[10],
            lost_amount: c[11],
            refunded_amount: 0,
            disputed_amount: 0,
        };
        (f, failed)
    }

    /// Sums accumulated by difference carry float noise (1e-10 of a cent): snap it away, so
    /// a total that should be 0 is 0 (rates divide by these).
    pub fn snapped(mut self) -> Self {
        for m in &mut self.money {
            let r = (*m * 1e6).round() / 1e6;
            *m = if r == 0.0 { 0.0 } else { r };
        }
        self
    }
}
