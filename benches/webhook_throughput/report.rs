//! The run's figures as text (one summary line, then one figure a line) and, with `--json`,
//! as one JSON line.

use serde_json::json;

use crate::Args;
use crate::client::{Totals, pct_ms};
use crate::database::Lag;

/// What a timed run measured.
pub struct Run<'a> {
    pub args: &'a Args,
    pub tag: &'a str,
    pub url: &'a str,
    pub totals: &'a Totals,
    /// This run's events the server stored (`None`: not checked).
    pub persisted: Option<i64>,
    pub client_cpu_us: Option<f64>,
    pub lag: Option<&'a Lag>,
}

/// The figures derived from the totals.
#[derive(Clone, Copy)]
struct Figures {
    secs: f64,
    rps: f64,
    non2xx: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Figures {
    fn of(t: &Totals) -> Self {
        let secs = t.wall.as_secs_f64();
        let rps = if secs > 0.0 { t.sent as f64 / secs } else { 0.0 };
        let non2xx: u64 = t.by_status.values().sum();
        let (p50, p90, p99) = (pct_ms(&t.latencies_us, 50.0), pct_ms(&t.latencies_us, 90.0), pct_ms(&t.latencies_us, 99.0));
        let max = t.latencies_us.last().map_or(0.0, |&v| f64::from(v) / 1000.0);
        Self { secs, rps, non2xx, p50, p90, p99, max }
    }
}

pub fn print(run: &Run<'_>) {
    let f = Figures::of(run.totals);
    print_text(run, &f);
    if run.args.json {
        print_json(run, &f);
    }
}

/// Whether every acknowledged event was stored (and only those).
fn durability(persisted: Option<i64>, ok: u64) -> String {
    match persisted {
        Some(p) if p == ok as i64 => format!("persisted == acknowledged ({p})"),
        Some(p) if p < ok as i64 => {
            format!("persisted != acknowledged: {p} persisted < {ok} acknowledged (LOST {})", ok as i64 - p)
        }
        Some(p) => {
            format!("persisted != acknowledged: {p} persisted > {ok} acknowledged ({} committed but not acked)", p - ok as i64)
        }
        None => "persisted: not checked".to_owned(),
    }
}

fn print_text(run: &Run<'_>, f: &Figures) {
    let (args, t) = (run.args, run.totals);
    let Figures { secs, rps, non2xx, p50, p90, p99, max } = *f;
    let status_str = if t.by_status.is_empty() {
        "-".to_owned()
    } else {
        t.by_status.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(",")
    };
    let verdict = durability(run.persisted, t.ok);
    let label = if args.label.is_empty() { String::new() } else { format!("[{}] ", args.label) };

    println!(
        "{label}c={} n={} {:.0} ev/s wall={secs:.2}s 2xx={} non2xx={non2xx} errors={} p50={p50:.2}ms p90={p90:.2}ms p99={p99:.2}ms max={max:.2}ms | {verdict}",
        args.concurrency, t.sent, rps, t.ok, t.errors
    );
    println!("  {:<22} {}", "run tag", run.tag);
    println!("  {:<22} {}", "concurrency", args.concurrency);
    println!("  {:<22} {}", "events sent", t.sent);
    println!("  {:<22} {}", "2xx", t.ok);
    println!("  {:<22} {non2xx} ({status_str})", "non-2xx");
    println!("  {:<22} {}", "errors", t.errors);
    println!("  {:<22} {secs:.3} s", "wall time");
    println!("  {:<22} {rps:.1}", "events/s");
    println!("  {:<22} {p50:.2} / {p90:.2} / {p99:.2} / {max:.2}", "p50/p90/p99/max ms");
    println!(
        "  {:<22} holdfast-bench (raw HTTP/1.1, {} thread(s)), {} µs CPU per request",
        "load client",
        args.client_threads,
        run.client_cpu_us.map_or_else(|| "n/a".to_owned(), |c| format!("{c:.1}"))
    );
    println!("  {:<22} {}", "persisted", run.persisted.map_or_else(|| "n/a".to_owned(), |p| p.to_string()));
    println!("  {:<22} {verdict}", "durability");
    for e in &t.first_errors {
        println!("  error: {e}");
    }
    if let Some(l) = run.lag {
        println!("  {:<22} {} / {}", "lag events p99/max", l.events_p99, l.events_max);
        println!("  {:<22} {:.2} / {:.2}", "lag seconds p99/max", l.seconds_p99, l.seconds_max);
        println!("  {:<22} {} events in {:.2} s = {:.0} ev/s", "projector drain", l.drained, l.drain_secs, l.drain_rate);
    }
}

fn print_json(run: &Run<'_>, f: &Figures) {
    let (t, lag, persisted) = (run.totals, run.lag, run.persisted);
    let line = json!({
        "label": run.args.label,
        "tag": run.tag,
        "url": run.url,
        "concurrency": run.args.concurrency,
        "events": t.sent,
        "ok_2xx": t.ok,
        "non_2xx": f.non2xx,
        "non_2xx_by_status": t.by_status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "errors": t.errors,
        "wall_s": f.secs,
        "events_per_s": f.rps,
        "p50_ms": f.p50,
        "p90_ms": f.p90,
        "p99_ms": f.p99,
        "max_ms": f.max,
        "persisted": persisted,
        "persisted_eq_acknowledged": persisted.map(|p| p == t.ok as i64),
        "lag_events_p99": lag.map(|l| l.events_p99),
        "lag_seconds_p99": lag.map(|l| l.seconds_p99),
        "lag_seconds_max": lag.map(|l| l.seconds_max),
        "drain_events": lag.map(|l| l.drained),
        "drain_events_per_s": lag.map(|l| l.drain_rate),
        "client_cpu_us_per_request": run.client_cpu_us,
    });
    println!("{line}");
}
