//! `holdfast replay FILE`: import Stripe events from a JSON-lines file (one event per line, as
//! `stripe events list` or an export writes them) or from Stripe's `events list` JSON
//! (`{"object": "list", "data": [...]}`, or a plain array) through the webhook's pipeline,
//! without signatures. Idempotent (event ids are the key) and never emails
//! (`IngestOptions::IMPORT`).

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::domain::event::Event;
use crate::store::{IngestOptions, Ingested, Store};

/// Events committed per transaction.
const BATCH: usize = 500;

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub stored: u64,
    pub duplicates: u64,
}

/// Parse every event first (a bad line stops the replay before anything is written, naming
/// the line), then store them in batches.
/// `clock` gives the time the events are received at.
pub async fn replay(store: &Store, text: &str, progress: bool, clock: &crate::clock::Clock) -> anyhow::Result<ReplayReport> {
    let events = parse(text)?;
    let bar = if progress { ProgressBar::new(events.len() as u64) } else { ProgressBar::hidden() };
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec}, eta {eta})") {
        bar.set_style(style);
    }
    let mut report = ReplayReport::default();
    for chunk in events.chunks(BATCH) {
        let refs: Vec<&Event> = chunk.iter().collect();
        let outcomes = store.ingest_with(&refs, clock.now(), IngestOptions::IMPORT).await.context("storing replayed events")?;
        report.stored += outcomes.iter().filter(|o| **o == Ingested::Stored).count() as u64;
        report.duplicates += outcomes.iter().filter(|o| **o == Ingested::Duplicate).count() as u64;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(report)
}

/// The events of a file in either format.
pub fn parse(text: &str) -> anyhow::Result<Vec<Event>> {
    let trimmed = text.trim_start();
    // One JSON document holding a list, or one event per line?
    if trimmed.starts_with('[') || (trimmed.starts_with('{') && is_list_document(trimmed)) {
        let doc: Value = serde_json::from_str(trimmed).context("the file is not valid JSON")?;
        let items = match &doc {
            Value::Array(items) => items.as_slice(),
            _ => doc.get("data").and_then(Value::as_array).map_or(&[][..], |a| a.as_slice()),
        };
        return items
            .iter()
            .enumerate()
            .map(|(i, e)| Event::parse(e.to_string().as_bytes()).with_context(|| format!("event #{} of `data`", i + 1)))
            .collect();
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| Event::parse(line.trim().as_bytes()).with_context(|| format!("line {}", n + 1)))
        .collect()
}

/// A whole-file `{"object": "list", "data": [...]}` (not a first JSON-lines event).
fn is_list_document(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| v.get("data").is_some_and(Value::is_array))
}

#[cfg(test)]
mod tests {
    use super::*;

    const E1: &str = r#"{"id":"evt_1","object":"event","type":"customer.created","created":1,"data":{"object":{"object":"customer","id":"cus_1"}}}"#;
    const E2: &str = r#"{"id":"evt_2","object":"event","type":"customer.updated","created":2,"data":{"object":{"object":"customer","id":"cus_1"}}}"#;

    #[test]
    fn json_lines_and_an_events_list_give_the_same_events() {
        let lines = parse(&format!("{E1}\n\n{E2}\n")).expect("json lines");
        let list = parse(&format!(r#"{{"object":"list","has_more":false,"data":[{E1},{E2}]}}"#)).expect("list");
        let ids = |v: &[Event]| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&lines), ["evt_1", "evt_2"]);
        assert_eq!(ids(&list), ids(&lines));
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = parse(&format!("{E1}\nnot json\n")).expect_err("line 2 is bad");
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }
}
