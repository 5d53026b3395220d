//! Arbitrary JSON bodies with a valid signature, through the webhook's path up to the
//! database: `verify` → `Event::parse` → `project` → `Writes::from_events`.
//! Invariants: nothing panics (debug assertions and overflow checks are on, so arithmetic on
//! amounts and times is checked too), and an event reduced alone yields exactly the
//! projection's snapshots.

#![no_main]

// Holdfast's own source files: the pure domain (no I/O) and the batch reducer.
#[path = "../../src/store/batch.rs"]
#[allow(dead_code)]
mod batch;
#[path = "../../src/domain/mod.rs"]
#[allow(dead_code, unused_imports)]
mod domain;
#[path = "../../src/ingest/signature.rs"]
#[allow(dead_code)]
mod signature;

use batch::Writes;
use domain::event::Event;
use domain::projection::project;
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use signature::{sign, verify};

const SECRET: &str = "whsec_fuzz_secret";
const NOW: i64 = 1_700_000_000;

fuzz_target!(|body: &[u8]| {
    let header = sign(body, SECRET, NOW);
    verify(body, &header, &[SecretString::from(SECRET)], 300, NOW).expect("our own signature verifies");
    let Ok(event) = Event::parse(body) else { return };
    assert!(!event.id.is_empty() && event.id.len() <= 255);
    assert!(event.object.is_object());

    let projection = project(&event);
    let counts =
        (projection.customers.len(), projection.subscriptions.len(), projection.invoices.len(), projection.discounts.len());
    let writes = Writes::from_events([&event]);
    // One event: history keeps every subscription snapshot; each table keeps at most them all.
    assert_eq!(writes.history.len(), counts.1);
    assert!(writes.customers.len() <= counts.0);
    assert!(writes.subscriptions.len() <= counts.1);
    assert!(writes.invoices.len() <= counts.2);
    assert!(writes.discounts.len() <= counts.3);
    // Reducing the same event twice changes nothing but the history.
    let twice = Writes::from_events([&event, &event]);
    assert_eq!(twice.subscriptions.len(), writes.subscriptions.len());
    assert_eq!(twice.customers.len(), writes.customers.len());
});
