//! The owner summary the simulated business should get, computed from the simulation's own
//! state (each customer's subscriptions at every month boundary), straight from
//! `docs/metrics.md`. Deliberately shares no code with the service's `figures` module.

use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};

use super::business::{Business, Customer, Discount, Outcome, Subscription};

/// Month labels `YYYY-MM` and their first instants, from the month of `start` through the
/// month containing `end - 1`, plus the boundary after the last.
pub fn months(start: i64, end: i64) -> (Vec<String>, Vec<i64>) {
    let first = chrono::DateTime::from_timestamp(start, 0).unwrap_or_default().date_naive();
    let last = chrono::DateTime::from_timestamp(end - 1, 0).unwrap_or_default().date_naive();
    let (mut y, mut m) = (first.year(), first.month());
    let (mut labels, mut bounds) = (Vec::new(), Vec::new());
    loop {
        labels.push(format!("{y:04}-{m:02}"));
        bounds.push(month_start(y, m));
        if (y, m) == (last.year(), last.month()) {
            break;
        }
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    bounds.push(month_start(ny, nm));
    (labels, bounds)
}

fn month_start(y: i32, m: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, m, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc().timestamp()).unwrap_or_default()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn frac(num: f64, den: f64) -> Value {
    if den == 0.0 { Value::Null } else { json!(round6(num / den)) }
}

/// A subscription's monthly revenue at instant `t`, from what the business knows of it: its
/// own discount while in force, else the customer's (`customer`) while in force.
fn sub_mrr(s: &Subscription, customer: Option<&Discount>, t: i64) -> f64 {
    if !matches!(s.status, "active" | "past_due") {
        return 0.0;
    }
    let paused = match s.pause {
        Some(Some(resumes_at)) => resumes_at >= t,
        Some(None) => true,
        None => false,
    };
    if paused {
        return 0.0;
    }
    let full = s.amount() as f64 / s.interval_months() as f64;
    let own = s.discount.as_ref().filter(|d| d.end >= t);
    let customer = customer.filter(|d| d.start <= t && d.end >= t);
    match own.or(customer) {
        Some(d) => full * (1.0 - d.percent_off as f64 / 100.0),
        None => full,
    }
}

struct Path {
    active: Vec<bool>,
    mrr: Vec<f64>,
}

fn path(c: &Customer, bounds: &[i64]) -> Path {
    let at = |t: i64| c.at(t);
    Path {
        active: bounds.iter().map(|&t| at(t).iter().any(|s| matches!(s.status, "active" | "past_due"))).collect(),
        mrr: bounds.iter().map(|&t| at(t).iter().map(|s| sub_mrr(s, c.discount.as_ref(), t)).sum()).collect(),
    }
}

/// The currencies of the business, in name order.
pub fn currencies(b: &Business) -> Vec<&'static str> {
    let mut c: Vec<&'static str> = b.customers.iter().map(|c| c.currency).collect();
    c.sort();
    c.dedup();
    c
}

/// The expected `GET /api/summary` of every simulated month, in order: each month's in the
/// currency with the most MRR (in minor units) at its end, the first named on a tie.
pub fn summaries(b: &Business) -> Vec<Value> {
    let all: Vec<Vec<Value>> = currencies(b).into_iter().map(|c| summaries_in(b, c)).collect();
    let Some(first) = all.first() else { return Vec::new() };
    (0..first.len())
        .map(|m| {
            let mut best = &all[0][m];
            for s in &all[1..] {
                if s[m]["mrr_end"].as_f64() > best["mrr_end"].as_f64() {
                    best = &s[m];
                }
            }
            best.clone()
        })
        .collect()
}

/// The expected `GET /api/summary?currency=…` of every simulated month: the figures of the
/// customers in `currency` only, with a section per currency of the business.
pub fn summaries_in(b: &Business, currency: &str) -> Vec<Value> {
    let sections: Vec<(&str, Vec<Value>)> = currencies(b).into_iter().map(|c| (c, one_currency(b, c))).collect();
    let Some((_, mut out)) = sections.iter().find(|(c, _)| *c == currency).cloned() else { return Vec::new() };
    for (m, s) in out.iter_mut().enumerate() {
        let list: Vec<Value> = sections
            .iter()
            .map(|(c, rows)| {
                json!({"currency": c, "mrr_start": rows[m]["mrr_start"], "mrr_end": rows[m]["mrr_end"],
                       "active_customers_end": rows[m]["active_customers_end"]})
            })
            .collect();
        s["currencies"] = json!(list);
    }
    out
}

/// Every month's summary from the customers in `currency` alone.
fn one_currency(whole: &Business, currency: &str) -> Vec<Value> {
    let b = &Business {
        params: whole.params.clone(),
        customers: whole.customers.iter().filter(|c| c.currency == currency).cloned().collect(),
    };
    let (labels, bounds) = months(b.params.start, b.params.end);
    let paths: Vec<Path> = b.customers.iter().map(|c| path(c, &bounds)).collect();
    let cohort_of = |c: &Customer| c.first_active.map(|t| bounds.iter().rposition(|&s| s <= t).unwrap_or(0));
    let span = Span { b, labels: &labels, bounds: &bounds, paths: &paths, cohort_of: &cohort_of };
    (0..labels.len()).map(|m| span.month(currency, m)).collect()
}

/// The customers of one currency over the simulated months.
struct Span<'a> {
    b: &'a Business,
    labels: &'a [String],
    bounds: &'a [i64],
    paths: &'a [Path],
    /// The month a customer's cohort starts (its first active subscription's).
    cohort_of: &'a dyn Fn(&Customer) -> Option<usize>,
}

/// A month's sums over the customers: MRR and its movements, customers, and the MRR kept by
/// those paying at its start (`kept_*`) and by those paying 12 months before its end (`y_*`).
#[derive(Default)]
struct Tally {
    mrr_start: f64,
    mrr_end: f64,
    new: f64,
    reactivation: f64,
    expansion: f64,
    contraction: f64,
    paused: f64,
    churned_mrr: f64,
    act_s: u64,
    act_e: u64,
    new_c: u64,
    churned: u64,
    involuntary: u64,
    paying: u64,
    kept_start: f64,
    kept_end: f64,
    y_start: f64,
    y_end: f64,
}

impl Span<'_> {
    /// The share of the customers active at the start of month `m` gone by its end.
    fn churn_rate(&self, m: usize) -> Option<f64> {
        let start = self.paths.iter().filter(|p| p.active[m]).count();
        let gone = self.paths.iter().filter(|p| p.active[m] && !p.active[m + 1]).count();
        (start > 0).then(|| gone as f64 / start as f64)
    }

    fn tally(&self, m: usize) -> Tally {
        let mut t = Tally::default();
        for (c, p) in self.b.customers.iter().zip(self.paths) {
            let (s, e) = (p.mrr[m], p.mrr[m + 1]);
            t.mrr_start += s;
            t.mrr_end += e;
            t.act_s += u64::from(p.active[m]);
            t.act_e += u64::from(p.active[m + 1]);
            t.paying += u64::from(e > 0.0);
            t.new_c += u64::from((self.cohort_of)(c) == Some(m));
            if p.active[m] && !p.active[m + 1] {
                t.churned += 1;
                let last_end = c.ends.iter().rfind(|(at, _)| *at >= self.bounds[m] && *at < self.bounds[m + 1]);
                t.involuntary += u64::from(last_end.is_some_and(|(_, inv)| *inv));
            }
            if s == 0.0 && e > 0.0 {
                if p.mrr[..m].iter().any(|x| *x > 0.0) { t.reactivation += e } else { t.new += e }
            }
            if s > 0.0 {
                t.kept_start += s;
                t.kept_end += e;
                if !p.active[m + 1] {
                    t.churned_mrr += s;
                } else if e == 0.0 {
                    t.paused += s;
                } else if e > s {
                    t.expansion += e - s;
                } else {
                    t.contraction += s - e;
                }
            }
            if m >= 12 && p.mrr[m - 11] > 0.0 {
                t.y_start += p.mrr[m - 11];
                t.y_end += e;
            }
        }
        t
    }

    /// Lifetime value: ARPU over the mean churn rate of the last three months.
    fn ltv(&self, arpu: Option<f64>, m: usize) -> Value {
        let recent: Vec<f64> = (m.saturating_sub(2)..=m).filter_map(|m| self.churn_rate(m)).collect();
        let mean = (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64);
        match (arpu, mean) {
            (Some(a), Some(r)) if r > 0.0 => json!(round2(a / r)),
            _ => Value::Null,
        }
    }

    /// The health bands: monthly churn, and the logo retention at 12 months of the cohort
    /// that started 12 months before.
    fn health(&self, cohorts: &[Value], m: usize) -> Value {
        let band = |r: f64, a: f64, b: f64| {
            if r < a {
                "good"
            } else if r <= b {
                "needs_improvement"
            } else {
                "critical"
            }
        };
        let retention_12m = m
            .checked_sub(12)
            .and_then(|c| cohorts.iter().find(|v| v["cohort"] == self.labels[c].as_str()))
            .and_then(|v| v["logo_retention"]["12"].as_f64())
            .map(|r| {
                if r > 0.70 {
                    "good"
                } else if r >= 0.50 {
                    "needs_improvement"
                } else {
                    "critical"
                }
            });
        json!({"monthly_churn": self.churn_rate(m).map(|r| band(r, 0.05, 0.10)), "retention_12m": retention_12m})
    }

    /// Month `m`'s summary.
    fn month(&self, currency: &str, m: usize) -> Value {
        let (b, labels) = (self.b, self.labels);
        let t = self.tally(m);
        let (churned, involuntary) = (t.churned, t.involuntary);
        let lost = t.churned_mrr + t.contraction + t.paused;
        let rate = |n: u64| frac(n as f64, t.act_s as f64);
        let arpu = (t.paying > 0).then(|| t.mrr_end / t.paying as f64);
        let cohorts: Vec<Value> = (0..=m).filter_map(|c| cohort_json(b, self.paths, labels, c, m, self.cohort_of)).collect();
        json!({
            "month": labels[m], "currency": currency,
            "mrr_start": round2(t.mrr_start), "mrr_end": round2(t.mrr_end),
            "mrr_movements": {"new": round2(t.new), "reactivation": round2(t.reactivation), "expansion": round2(t.expansion),
                              "contraction": round2(-t.contraction), "paused": round2(-t.paused), "churned": round2(-t.churned_mrr)},
            "active_customers_start": t.act_s, "active_customers_end": t.act_e, "new_customers": t.new_c,
            "churned_customers": churned, "churned_customers_voluntary": churned - involuntary,
            "churned_customers_involuntary": involuntary,
            "customer_churn_rate": rate(churned), "customer_churn_rate_voluntary": rate(churned - involuntary),
            "customer_churn_rate_involuntary": rate(involuntary),
            "gross_revenue_churn_rate": frac(lost, t.mrr_start), "net_revenue_churn_rate": frac(lost - t.expansion, t.mrr_start),
            "nrr": frac(t.kept_end, t.kept_start),
            "nrr_12m": if m >= 12 { frac(t.y_end, t.y_start) } else { Value::Null },
            "arpu": arpu.map(round2), "ltv": self.ltv(arpu, m),
            "health": self.health(&cohorts, m),
            "cohorts": cohorts,
            "failed_payments": failed_json(b, labels, self.bounds, m),
            // The simulated business gives nothing back. `currencies` is set by `summaries_in`.
            "given_back": {"refunds": 0, "lost_disputes": 0, "credit_notes": 0, "total": 0},
            "currencies": [],
            "cancel_flow": {"sessions": 0, "saved": 0, "save_rate": null,
                            "outcomes": {"paused": 0, "downgraded": 0, "discounted": 0, "canceled": 0, "abandoned": 0, "resumed": 0},
                            "reasons": {}},
            "unresolved_discounts": 0,
            "unresolved_prices": 0,
        })
    }
}

fn cohort_json(
    b: &Business,
    paths: &[Path],
    labels: &[String],
    c: usize,
    as_of: usize,
    cohort_of: &dyn Fn(&Customer) -> Option<usize>,
) -> Option<Value> {
    let members: Vec<&Path> = b.customers.iter().zip(paths).filter(|(cu, _)| cohort_of(cu) == Some(c)).map(|(_, p)| p).collect();
    if members.is_empty() {
        return None;
    }
    let base: f64 = members.iter().map(|p| p.mrr[c + 1]).sum();
    let at = |k: usize, revenue: bool| {
        if c + k > as_of {
            return Value::Null;
        }
        if revenue {
            frac(members.iter().map(|p| p.mrr[c + k + 1]).sum(), base)
        } else {
            frac(members.iter().filter(|p| p.active[c + k + 1]).count() as f64, members.len() as f64)
        }
    };
    Some(json!({
        "cohort": labels[c], "customers": members.len(), "mrr_end_of_cohort_month": round2(base),
        "logo_retention": {"1": at(1, false), "3": at(3, false), "6": at(6, false), "12": at(12, false)},
        "revenue_retention": {"1": at(1, true), "3": at(3, true), "6": at(6, true), "12": at(12, true)},
    }))
}

fn failed_json(b: &Business, labels: &[String], bounds: &[i64], m: usize) -> Value {
    let in_month = b
        .customers
        .iter()
        .flat_map(|c| &c.failed)
        .filter(|f| f.first_failed_at >= bounds[m] && f.first_failed_at < bounds[m + 1]);
    let (mut n, mut rec, mut lost, mut pending, mut rec_amt, mut lost_amt) = (0u64, 0u64, 0u64, 0u64, 0i64, 0i64);
    for f in in_month {
        n += 1;
        match f.outcome {
            Outcome::Recovered => {
                rec += 1;
                rec_amt += f.amount_due;
            }
            Outcome::Lost => {
                lost += 1;
                lost_amt += f.amount_due;
            }
            Outcome::Pending => pending += 1,
        }
    }
    json!({"month": labels[m], "failed_invoices": n, "recovered": rec, "lost": lost, "pending": pending,
           "recovery_rate": frac(rec as f64, (rec + lost) as f64), "recovered_amount": rec_amt, "lost_amount": lost_amt,
           "refunded_amount": 0, "disputed_amount": 0})
}
