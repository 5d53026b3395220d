//! The summary as a plain-text table (`holdfast summary`).

use std::fmt::Write;

#[cfg(test)]
use crate::figures::summary::CurrencyJson;
use crate::figures::summary::Summary;

fn pct(rate: Option<f64>) -> String {
    rate.map_or("–".into(), |r| format!("{:.2}%", r * 100.0))
}

/// Render a summary for a terminal: money in major units, rates in percent.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    mrr_and_customers(s, &mut out);
    churn_and_value(s, &mut out);
    payments_and_saves(s, &mut out);
    if s.currencies.len() > 1 {
        every_currency(s, &mut out);
    }
    cohorts(s, &mut out);
    out
}

/// One labelled figure.
fn row(out: &mut String, label: &str, value: String) {
    let _ = writeln!(out, "  {label:<34} {value:>16}");
}

/// `minor` units of the summary's currency, in major units.
fn money(s: &Summary, minor: f64) -> String {
    crate::domain::money::format(minor, &s.currency)
}

fn mrr_and_customers(s: &Summary, out: &mut String) {
    row(out, "Month", s.month.clone());
    row(out, "Currency", s.currency.to_uppercase());
    row(out, "MRR at start", money(s, s.mrr_start));
    row(out, "MRR at end", money(s, s.mrr_end));
    let m = &s.mrr_movements;
    for (label, v) in [
        ("  new", m.new),
        ("  reactivation", m.reactivation),
        ("  expansion", m.expansion),
        ("  contraction", m.contraction),
        ("  paused", m.paused),
        ("  churned", m.churned),
    ] {
        row(out, label, money(s, v));
    }
    row(out, "Active customers (start → end)", format!("{} → {}", s.active_customers_start, s.active_customers_end));
    row(out, "New customers", s.new_customers.to_string());
    row(
        out,
        "Churned (voluntary/involuntary)",
        format!("{} ({}/{})", s.churned_customers, s.churned_customers_voluntary, s.churned_customers_involuntary),
    );
}

fn churn_and_value(s: &Summary, out: &mut String) {
    row(out, "Customer churn rate", pct(s.customer_churn_rate));
    row(out, "  voluntary", pct(s.customer_churn_rate_voluntary));
    row(out, "  involuntary", pct(s.customer_churn_rate_involuntary));
    row(out, "Gross revenue churn", pct(s.gross_revenue_churn_rate));
    row(out, "Net revenue churn", pct(s.net_revenue_churn_rate));
    row(out, "NRR", pct(s.nrr));
    row(out, "NRR (12 months)", pct(s.nrr_12m));
    row(out, "ARPU", s.arpu.map_or("–".into(), |v| money(s, v)));
    row(out, "LTV", s.ltv.map_or("–".into(), |v| money(s, v)));
    row(out, "Health: monthly churn", s.health.monthly_churn.clone().unwrap_or("–".into()));
    row(out, "Health: 12-month retention", s.health.retention_12m.clone().unwrap_or("–".into()));
}

fn payments_and_saves(s: &Summary, out: &mut String) {
    let f = &s.failed_payments;
    row(out, "Failed invoices", f.failed_invoices.to_string());
    row(out, "  recovered / lost / pending", format!("{} / {} / {}", f.recovered, f.lost, f.pending));
    row(out, "  recovery rate", pct(f.recovery_rate));
    row(
        out,
        "  recovered / lost amount",
        format!("{} / {}", money(s, f.recovered_amount as f64), money(s, f.lost_amount as f64)),
    );
    row(
        out,
        "  later refunded / disputed",
        format!("{} / {}", money(s, f.refunded_amount as f64), money(s, f.disputed_amount as f64)),
    );
    row(out, "Given back (refunds, disputes, notes)", money(s, s.given_back.total as f64));
    let c = &s.cancel_flow;
    row(out, "Cancel-flow sessions (saved)", format!("{} ({})", c.sessions, c.saved));
    row(out, "  save rate", pct(c.save_rate));
}

/// Every currency's MRR and customers: never added together, each currency is its own
/// business.
fn every_currency(s: &Summary, out: &mut String) {
    let _ = writeln!(out, "\n  Every currency (MRR start → end, active customers at end; not added together)");
    for c in &s.currencies {
        let mark = if c.currency == s.currency { "*" } else { " " };
        let _ = writeln!(
            out,
            "  {mark}{:<4} {:>18} → {:<18} {:>6} customers",
            c.currency.to_uppercase(),
            crate::domain::money::format(c.mrr_start, &c.currency),
            crate::domain::money::format(c.mrr_end, &c.currency),
            c.active_customers_end
        );
    }
    let _ = writeln!(out, "  (* the currency above; `--currency <code>` for another)");
}

fn cohorts(s: &Summary, out: &mut String) {
    let _ = writeln!(out, "\n  Cohorts (logo retention after 1 / 3 / 6 / 12 months)");
    for co in &s.cohorts {
        let r = &co.logo_retention;
        let _ = writeln!(
            out,
            "  {:<8} {:>6} customers  {:>8} {:>8} {:>8} {:>8}",
            co.cohort,
            co.customers,
            pct(r.m1),
            pct(r.m3),
            pct(r.m6),
            pct(r.m12)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_money_in_major_units_and_rates_in_percent() {
        let s =
            Summary { month: "2025-04".into(), currency: "usd".into(), mrr_end: 123456.0, nrr: Some(0.98), ..Default::default() };
        let t = render(&s);
        assert!(t.contains("$1,234.56"), "{t}");
        assert!(t.contains("98.00%"), "{t}");
        assert!(t.contains("USD"), "{t}");
    }

    #[test]
    fn yen_and_dinars_keep_their_own_decimals_and_other_currencies_are_listed_apart() {
        let yen = Summary { currency: "jpy".into(), mrr_end: 123456.0, arpu: Some(1234.4), ..Default::default() };
        let t = render(&yen);
        assert!(t.contains("¥123,456") && t.contains("¥1,234") && !t.contains("1234.56"), "{t}");
        let dinars = Summary {
            currency: "kwd".into(),
            mrr_end: 123456.0,
            currencies: vec![
                CurrencyJson { currency: "kwd".into(), mrr_end: 123456.0, ..Default::default() },
                CurrencyJson { currency: "eur".into(), mrr_start: 950.0, mrr_end: 1950.0, active_customers_end: 2 },
            ],
            ..Default::default()
        };
        let t = render(&dinars);
        assert!(t.contains("123.456 KWD"), "{t}");
        assert!(t.contains("Given back"), "{t}");
        assert!(t.contains("EUR") && t.contains("€9.50") && t.contains("€19.50"), "{t}");
    }
}
