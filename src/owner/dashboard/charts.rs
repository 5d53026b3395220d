//! Server-drawn SVG charts: geometry computed here, drawn by the template as rects, lines
//! and text (no script, no CDN).

use serde::Serialize;

use crate::figures::{CancelFlowJson, CohortJson, MonthlyJson};

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 12.0;

/// A rectangle.
#[derive(Debug, Serialize)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub fill: &'static str,
    pub title: String,
}

/// A text label.
#[derive(Debug, Serialize)]
pub struct Text {
    pub x: f64,
    pub y: f64,
    pub text: String,
    pub anchor: &'static str,
    /// Drawn over a dark shape: light text, so it keeps its contrast.
    pub on_dark: bool,
}

/// One SVG chart.
#[derive(Debug, Serialize)]
pub struct Chart {
    pub id: &'static str,
    pub title: String,
    pub width: f64,
    pub height: f64,
    pub rects: Vec<Rect>,
    pub texts: Vec<Text>,
    /// `points` of a polyline, if any.
    pub line: String,
}

impl Chart {
    fn new(id: &'static str, title: &str, height: f64) -> Self {
        Self { id, title: title.into(), width: W, height, rects: vec![], texts: vec![], line: String::new() }
    }

    fn text(&mut self, x: f64, y: f64, text: String, anchor: &'static str) {
        self.texts.push(Text { x, y, text, anchor, on_dark: false });
    }
}

const GREEN: &str = "#2e9d5b";
const AMBER: &str = "#e0a526";
const RED: &str = "#d24b4b";
const BLUE: &str = "#3b6fd4";
const GREY: &str = "#9aa3ad";

/// Whole units of the rows' currency (all rows of a series share it).
fn whole(rows: &[MonthlyJson], minor: f64) -> String {
    crate::domain::money::format_whole(minor, rows.first().map_or("usd", |r| r.currency.as_str()))
}

fn slot(n: usize) -> f64 {
    (W - LEFT - 10.0) / n.max(1) as f64
}

/// MRR at the end of each month (bars and line) with its movements (gains up, losses down).
pub fn mrr(rows: &[MonthlyJson]) -> Chart {
    let mut c = Chart::new("mrr", "MRR over time, with movements", H + 120.0);
    mrr_bars(&mut c, rows);
    movement_bars(&mut c, rows);
    c
}

/// Each month's MRR as a bar, joined by a line, with the axis's top and zero.
fn mrr_bars(c: &mut Chart, rows: &[MonthlyJson]) {
    let max = rows.iter().map(|r| r.mrr_end).fold(1.0, f64::max);
    let plot = H - TOP - BOTTOM;
    let s = slot(rows.len());
    let mut points = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let x = LEFT + i as f64 * s;
        let h = r.mrr_end / max * plot;
        c.rects.push(Rect {
            x: x + s * 0.15,
            y: TOP + plot - h,
            w: s * 0.7,
            h,
            fill: BLUE,
            title: format!("{}: MRR {}", r.month, whole(rows, r.mrr_end)),
        });
        points.push(format!("{:.1},{:.1}", x + s / 2.0, TOP + plot - h));
        c.text(x + s / 2.0, H - 6.0, r.month[2..].to_string(), "middle");
    }
    c.line = points.join(" ");
    c.text(LEFT - 6.0, TOP + 10.0, whole(rows, max), "end");
    c.text(LEFT - 6.0, TOP + plot, whole(rows, 0.0), "end");
}

/// A month's gains (new, reactivation, expansion) and losses (negative: contraction,
/// paused, churned).
fn gains_and_losses(r: &MonthlyJson) -> (f64, f64) {
    let m = &r.mrr_movements;
    (m.new + m.reactivation + m.expansion, -(m.contraction + m.paused + m.churned))
}

/// The movements band under the MRR bars: zero line at its middle.
fn movement_bars(c: &mut Chart, rows: &[MonthlyJson]) {
    let s = slot(rows.len());
    let biggest = rows
        .iter()
        .map(|r| {
            let (g, l) = gains_and_losses(r);
            g.max(-l.abs()).max(l.abs())
        })
        .fold(1.0, f64::max);
    let zero = H + 60.0;
    for (i, r) in rows.iter().enumerate() {
        let x = LEFT + i as f64 * s + s * 0.2;
        let (gain, loss) = gains_and_losses(r);
        let (gh, lh) = (gain / biggest * 50.0, loss.abs() / biggest * 50.0);
        c.rects.push(Rect {
            x,
            y: zero - gh,
            w: s * 0.6,
            h: gh,
            fill: GREEN,
            title: format!("{}: +{} new, reactivation, expansion", r.month, whole(rows, gain)),
        });
        c.rects.push(Rect {
            x,
            y: zero,
            w: s * 0.6,
            h: lh,
            fill: RED,
            title: format!("{}: -{} contraction, paused, churned", r.month, whole(rows, loss.abs())),
        });
    }
    c.rects.push(Rect { x: LEFT, y: zero, w: W - LEFT - 10.0, h: 1.0, fill: GREY, title: "zero".into() });
    c.text(LEFT - 6.0, zero - 40.0, "gains".into(), "end");
    c.text(LEFT - 6.0, zero + 46.0, "losses".into(), "end");
}

/// Monthly customer churn against the benchmark bands (good < 5 %, 5–10 %, critical > 10 %).
pub fn churn(rows: &[MonthlyJson]) -> Chart {
    let mut c = Chart::new("churn", "Monthly customer churn against the benchmark bands", H);
    let top = rows.iter().filter_map(|r| r.customer_churn_rate).fold(0.15, f64::max);
    let plot = H - TOP - BOTTOM;
    let y = |v: f64| TOP + plot - v / top * plot;
    for (lo, hi, fill, label) in
        [(0.0, 0.05, "#e3f4ea", "good < 5%"), (0.05, 0.10, "#fbf0d5", "5–10%"), (0.10, top, "#f8dede", "> 10% critical")]
    {
        c.rects.push(Rect { x: LEFT, y: y(hi), w: W - LEFT - 10.0, h: y(lo) - y(hi), fill, title: label.into() });
        c.text(LEFT - 6.0, y(hi) + 12.0, label.into(), "end");
    }
    let s = slot(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let x = LEFT + i as f64 * s;
        if let Some(rate) = r.customer_churn_rate {
            let fill = if rate < 0.05 {
                GREEN
            } else if rate <= 0.10 {
                AMBER
            } else {
                RED
            };
            c.rects.push(Rect {
                x: x + s * 0.25,
                y: y(rate),
                w: s * 0.5,
                h: y(0.0) - y(rate),
                fill,
                title: format!("{}: {:.1}%", r.month, rate * 100.0),
            });
        }
        c.text(x + s / 2.0, H - 6.0, r.month[2..].to_string(), "middle");
    }
    c
}

/// Cohort logo retention at 1, 3, 6 and 12 months as a heatmap.
pub fn cohorts(cohorts: &[CohortJson]) -> Chart {
    let rows = &cohorts[cohorts.len().saturating_sub(18)..];
    let cell_h = 18.0;
    let mut c =
        Chart::new("cohorts", "Cohort logo retention (share still active after k months)", 40.0 + cell_h * rows.len() as f64);
    let cell_w = 120.0;
    for (j, k) in ["1", "3", "6", "12"].iter().enumerate() {
        c.text(LEFT + 110.0 + cell_w * (j as f64 + 0.5), 14.0, format!("{k} mo"), "middle");
    }
    c.text(LEFT + 60.0, 14.0, "customers".into(), "middle");
    for (i, co) in rows.iter().enumerate() {
        let y = 22.0 + cell_h * i as f64;
        c.text(LEFT - 6.0, y + 13.0, co.cohort.clone(), "end");
        c.text(LEFT + 60.0, y + 13.0, co.customers.to_string(), "middle");
        let r = &co.logo_retention;
        for (j, v) in [r.m1, r.m3, r.m6, r.m12].into_iter().enumerate() {
            let x = LEFT + 110.0 + cell_w * j as f64;
            let fill = cohort_fill(v);
            let label = v.map_or("–".to_string(), |v| format!("{:.0}%", v * 100.0));
            c.rects.push(Rect {
                x,
                y,
                w: cell_w - 2.0,
                h: cell_h - 2.0,
                fill,
                title: format!("{} after {} months: {label}", co.cohort, [1, 3, 6, 12][j]),
            });
            c.text(x + cell_w / 2.0, y + 13.0, label, "middle");
            if fill == COHORT_DARK
                && let Some(t) = c.texts.last_mut()
            {
                t.on_dark = true;
            }
        }
    }
    c
}

/// The darkest heatmap cell, the only one labelled in light text.
const COHORT_DARK: &str = "#1f7a45";

/// A heatmap cell's colour: light enough for dark text everywhere but the darkest cell.
fn cohort_fill(v: Option<f64>) -> &'static str {
    match v {
        None => "#f1f3f5",
        Some(v) if v > 0.9 => COHORT_DARK,
        Some(v) if v > 0.7 => "#8fd19e",
        Some(v) if v > 0.5 => "#c8e9cf",
        Some(v) if v > 0.3 => "#f6d58e",
        Some(_) => "#f4b4a8",
    }
}

/// Failed invoices per month of first failure: recovered, lost, pending.
pub fn recovery(rows: &[MonthlyJson]) -> Chart {
    let mut c = Chart::new("recovery", "Failed-payment recovery (by month of first failure)", H);
    let max = rows.iter().map(|r| r.failed_payments.failed_invoices).max().unwrap_or(0).max(1) as f64;
    let plot = H - TOP - BOTTOM;
    let s = slot(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let x = LEFT + i as f64 * s + s * 0.2;
        let f = &r.failed_payments;
        let mut base = TOP + plot;
        for (n, fill, what) in [(f.recovered, GREEN, "recovered"), (f.lost, RED, "lost"), (f.pending, GREY, "pending")] {
            let h = n as f64 / max * plot;
            base -= h;
            c.rects.push(Rect { x, y: base, w: s * 0.6, h, fill, title: format!("{}: {n} {what}", r.month) });
        }
        c.text(x + s * 0.3, H - 6.0, r.month[2..].to_string(), "middle");
        if let Some(rate) = f.recovery_rate {
            c.text(x + s * 0.3, base - 4.0, format!("{:.0}%", rate * 100.0), "middle");
        }
    }
    c.text(LEFT - 6.0, TOP + 10.0, format!("{max}"), "end");
    c
}

/// Cancel-flow outcomes and reasons as horizontal bars.
pub fn cancel_flow(cf: &CancelFlowJson) -> Chart {
    let o = &cf.outcomes;
    let label = crate::owner::dashboard::labels::label;
    let mut bars: Vec<(String, u64, &'static str)> = vec![
        (label("paused"), o.paused, GREEN),
        (label("downgraded"), o.downgraded, GREEN),
        (label("discounted"), o.discounted, GREEN),
        (label("canceled"), o.canceled, RED),
        (label("abandoned"), o.abandoned, GREY),
    ];
    bars.extend(cf.reasons.iter().map(|(k, v)| (format!("Reason: {}", label(k)), *v, BLUE)));
    let mut c = Chart::new("cancel_flow", "Cancel-flow outcomes and reasons", 20.0 + 22.0 * bars.len() as f64);
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    for (i, (label, n, fill)) in bars.into_iter().enumerate() {
        let y = 10.0 + 22.0 * i as f64;
        // Labels end at BAR_X, so the longest ("Reason: Switched to another product") fits.
        const BAR_X: f64 = 250.0;
        let w = n as f64 / max * (W - BAR_X - 50.0);
        c.text(BAR_X - 8.0, y + 14.0, label.clone(), "end");
        c.rects.push(Rect { x: BAR_X, y, w, h: 18.0, fill, title: format!("{label}: {n}") });
        c.text(BAR_X + 6.0 + w, y + 14.0, n.to_string(), "start");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luminance(hex: &str) -> f64 {
        let channel = |i: usize| {
            let v = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0)) / 255.0;
            if v <= 0.03928 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    #[test]
    fn every_heatmap_label_meets_wcag_aa_on_its_cell() {
        for v in [None, Some(0.1), Some(0.4), Some(0.6), Some(0.8), Some(0.95)] {
            let fill = cohort_fill(v);
            // The page draws chart text #3c4654, and white (`on-dark`) on the darkest cell.
            let text = if fill == COHORT_DARK { "#ffffff" } else { "#3c4654" };
            assert!(contrast(text, fill) >= 4.5, "{v:?}: {text} on {fill} is {:.2}", contrast(text, fill));
        }
    }
}
