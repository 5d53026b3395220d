//! Arbitrary JSON bodies with a valid signature, through the webhook's path minus HTTP:
//! `verify` → `Event::parse` → `project` / `Writes::from_events` → a real SQLite ingest.
//! Invariants: nothing panics; an event we accept is stored (a database error would make
//! the webhook answer 500 and Stripe retry it forever); storing it twice is a duplicate.

#![no_main]

use std::sync::OnceLock;

use holdfast::domain::event::Event;
use holdfast::domain::projection::project;
use holdfast::store::batch::Writes;
use holdfast::store::{Ingested, Store};
use holdfast::webhook::signature::{sign, verify};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

const SECRET: &str = "whsec_fuzz_secret";
const NOW: i64 = 1_700_000_000;

struct Harness {
    runtime: tokio::runtime::Runtime,
    store: Store,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        // One shared in-memory database for the whole run (sqlx names it so every pooled
        // connection sees the same one).
        let store = runtime.block_on(async {
            let store = Store::connect("sqlite::memory:").await.expect("in-memory SQLite");
            store.migrate().await.expect("migrations");
            store
        });
        Harness { runtime, store }
    })
}

fuzz_target!(|body: &[u8]| {
    let header = sign(body, SECRET, NOW);
    verify(body, &header, &[SecretString::from(SECRET)], 300, NOW).expect("our own signature verifies");
    let Ok(event) = Event::parse(body) else { return };

    let projection = project(&event);
    let _ = projection.is_empty();
    let _writes = Writes::from_events([&event]);

    let h = harness();
    h.runtime.block_on(async {
        let first = h.store.ingest(&[&event], NOW).await;
        let first = first.unwrap_or_else(|e| panic!("accepted event {:?} was not stored: {e:?}", event.id));
        assert_eq!(first.len(), 1);
        let again = h.store.ingest(&[&event], NOW).await.expect("redelivery is stored");
        assert_eq!(again, vec![Ingested::Duplicate]);
    });
});
