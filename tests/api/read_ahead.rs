//! The projector's read-ahead (`ingest::read_ahead`), on the database the suite runs on: the
//! next batch is read while a pass writes, and a pass takes it only when it is exactly the
//! batch it would read itself.

use holdfast::domain::event::Event;
use holdfast::ingest::read_ahead::ReadAhead;
use holdfast::store::{IngestOptions, Store};

use crate::support::helpers::{fresh_database, now};

/// `customer.created` for `cus_ra<n>`, with an email address.
fn customer_created(n: u32) -> Event {
    let body = serde_json::json!({
        "id": format!("evt_ra{n}"), "object": "event", "type": "customer.created", "created": 10 + n,
        "livemode": false,
        "data": {"object": {"id": format!("cus_ra{n}"), "object": "customer", "email": format!("person{n}@example.com"), "created": 10}}
    });
    Event::parse(body.to_string().as_bytes()).expect("an event")
}

async fn append(store: &Store, events: impl IntoIterator<Item = u32>) {
    let events: Vec<Event> = events.into_iter().map(customer_created).collect();
    let (_, _, durability) =
        store.append_committed(&events.iter().collect::<Vec<_>>(), now(), IngestOptions::IMPORT).await.expect("appended");
    durability.wait().await.expect("durable");
}

/// Four events in the log and a first pass of two projected with a read-ahead, which has then
/// read the other two.
async fn after_a_first_pass() -> (Store, ReadAhead, Option<crate::support::helpers::TestDb>) {
    let (url, db) = fresh_database().await;
    let store = Store::connect(&url).await.expect("store");
    store.migrate().await.expect("migrated");
    append(&store, 1..=4).await;
    let mut ahead = ReadAhead::default();
    let first = store.project_batch_reading_ahead(2, now(), &mut ahead).await.expect("first pass");
    assert_eq!(first.events, 2);
    assert_eq!(ahead.read().await, Some(vec!["evt_ra3", "evt_ra4"]), "the two events after the first pass, read ahead");
    (store, ahead, db)
}

async fn email(store: &Store, n: u32) -> Option<String> {
    store.customer_email(&format!("cus_ra{n}")).await.expect("readable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_pass_projects_the_batch_read_ahead() {
    let (store, mut ahead, _db) = after_a_first_pass().await;
    let second = store.project_batch_reading_ahead(2, now(), &mut ahead).await.expect("second pass");
    assert_eq!((second.events, ahead.taken()), (2, 1), "the pass took the batch read ahead");
    assert_eq!(email(&store, 4).await.as_deref(), Some("person4@example.com"));
    let third = store.project_batch_reading_ahead(2, now(), &mut ahead).await.expect("third pass");
    assert_eq!((third.events, ahead.taken()), (0, 1), "nothing left, nothing projected twice");
}

/// `holdfast forget` between the read and the pass: the pass reads the redacted payload
/// itself, so the forgotten address never reaches the tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_rewritten_after_the_read_ahead_is_read_again() {
    let (store, mut ahead, _db) = after_a_first_pass().await;
    store.forget_customer("cus_ra3").await.expect("forget");
    let second = store.project_batch_reading_ahead(2, now(), &mut ahead).await.expect("second pass");
    assert_eq!((second.events, ahead.taken()), (2, 0), "the batch read ahead was not used");
    assert_eq!(email(&store, 3).await, None, "projected without the forgotten address");
    assert_eq!(email(&store, 4).await.as_deref(), Some("person4@example.com"));
}

/// Another projector (an import, `holdfast replay`) moved the cursor past the batch read
/// ahead: the pass reads for itself and projects nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_read_ahead_of_a_cursor_that_moved_is_not_used() {
    let (store, mut ahead, _db) = after_a_first_pass().await;
    assert_eq!(store.project_batch(2, now()).await.expect("the other projector").events, 2);
    append(&store, [5]).await;
    let second = store.project_batch_reading_ahead(2, now(), &mut ahead).await.expect("second pass");
    assert_eq!((second.events, ahead.taken()), (1, 0), "only the new event, read by the pass");
    assert_eq!(email(&store, 5).await.as_deref(), Some("person5@example.com"));
}
