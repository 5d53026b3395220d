//! Prometheus text exposition format 0.0.4.

use std::fmt::Write;

use crate::metrics::{LATENCY_BUCKETS, Snapshot};

/// A gauge read at scrape time (e.g. outbox depth from the store).
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// Metric name, `holdfast_…`.
    pub name: &'static str,
    pub help: &'static str,
    /// Label pairs, may be empty.
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// Render counters, histogram and gauges.
pub fn render(snapshot: &Snapshot, gauges: &[Gauge]) -> String {
    let mut out = String::with_capacity(4096);
    header(&mut out, "holdfast_webhook_events_total", "counter", "Stripe webhooks received, by event type and outcome.");
    for (kind, outcome, n) in &snapshot.events {
        let _ = writeln!(out, "holdfast_webhook_events_total{{type=\"{}\",outcome=\"{}\"}} {n}", escape(kind), outcome.as_str());
    }
    let h = &snapshot.latency;
    let name = "holdfast_webhook_duration_seconds";
    header(&mut out, name, "histogram", "Time from receiving a webhook to answering it (verify, store, commit).");
    let mut cumulative = 0;
    for (le, n) in LATENCY_BUCKETS.iter().zip(h.counts.iter()) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum_seconds);
    let _ = writeln!(out, "{name}_count {}", h.count);
    let mut last = "";
    for g in gauges {
        if g.name != last {
            header(&mut out, g.name, "gauge", g.help);
            last = g.name;
        }
        let labels: Vec<String> = g.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        let _ = writeln!(out, "{}{labels} {}", g.name, g.value);
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, Outcome};
    use std::time::Duration;

    #[test]
    fn the_text_format_has_cumulative_buckets_and_escaped_labels() {
        let m = Metrics::default();
        m.observe_webhook("we\"ird", Outcome::Rejected, Duration::from_millis(3));
        m.observe_webhook("invoice.paid", Outcome::Stored, Duration::from_millis(30));
        let gauge = Gauge { name: "holdfast_outbox_depth", help: "h", labels: vec![], value: 4.0 };
        let text = render(&m.snapshot(), &[gauge]);
        assert!(text.contains("holdfast_webhook_events_total{type=\"we\\\"ird\",outcome=\"rejected\"} 1"), "{text}");
        assert!(text.contains("holdfast_webhook_duration_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("holdfast_webhook_duration_seconds_bucket{le=\"0.05\"} 2\n"), "{text}");
        assert!(text.contains("holdfast_webhook_duration_seconds_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("# TYPE holdfast_outbox_depth gauge\nholdfast_outbox_depth 4\n"), "{text}");
    }
}
