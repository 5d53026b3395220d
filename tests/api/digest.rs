//! The owner's weekly digest: due on the configured day and hour (the app's clock), it tells
//! the week's MRR movement, who left and why (with their comments), who was saved, what was
//! recovered and who is at risk, each name linking to the customer page; two app instances
//! on one database running the check at once write one outbox row for the week.

use chrono::{Datelike, Duration, TimeZone, Utc, Weekday};
use serde_json::json;

use crate::support::helpers::{Config, Sub, TestApp, customer, event, fresh_database, invoice, now, spawn_app_on};

const OWNER: &str = "owner@example.com";

/// The owner's address, the digest on Tuesdays at 09:00, and the public URL its links use.
fn digest_config() -> Config {
    Config::new().with(|s| {
        s.owner.email = Some(OWNER.into());
        s.owner.digest.weekday = 2;
        s.owner.digest.hour = 9;
        s.public_url = "https://holdfast.example.com".into();
    })
}

/// The send time, the last Tuesday 09:00 UTC before now (events are signed now, so the week
/// is in the past), and the digest's key for that ISO week.
fn last_tuesday_9am() -> (i64, String) {
    let mut day = Utc.timestamp_opt(now(), 0).single().expect("now").date_naive();
    while day.weekday() != Weekday::Tue || day.and_hms_opt(9, 0, 0).expect("time").and_utc().timestamp() > now() {
        day -= Duration::days(1);
    }
    let send = day.and_hms_opt(9, 0, 0).expect("time").and_utc().timestamp();
    let key = format!("digest:{}-W{:02}", day.iso_week().year(), day.iso_week().week());
    (send, key)
}

/// The week before the digest: two customers from before it; one cancels during it with a
/// comment, one fails a payment that is recovered during it.
async fn deliver_the_week(a: &TestApp, week_ago: i64) {
    for (cus, name) in [("cus_dg_left", "Grace Hopper"), ("cus_dg_paid", "Alan Turing")] {
        let mut c = customer(cus, &format!("{cus}@example.com"), week_ago - 30 * 86_400);
        c["name"] = json!(name);
        a.deliver(&event("customer.created", week_ago - 30 * 86_400, c)).await;
    }
    let left = Sub::new("sub_dg_left", "cus_dg_left", week_ago - 30 * 86_400).object();
    a.deliver(&event("customer.subscription.created", week_ago - 30 * 86_400, left.clone())).await;
    let paid = Sub::new("sub_dg_paid", "cus_dg_paid", week_ago - 30 * 86_400).object();
    a.deliver(&event("customer.subscription.created", week_ago - 30 * 86_400, paid)).await;
    let mut ended = left;
    ended["status"] = json!("canceled");
    ended["canceled_at"] = json!(week_ago + 86_400);
    ended["ended_at"] = json!(week_ago + 86_400);
    ended["cancellation_details"] = json!({"comment": "We moved to a spreadsheet <sadly>", "feedback": "switched_service", "reason": "cancellation_requested"});
    a.deliver(&event("customer.subscription.deleted", week_ago + 86_400, ended)).await;
    let mut failed = invoice("in_dg", "cus_dg_paid", "sub_dg_paid", "open", 2000, week_ago + 2 * 86_400);
    failed["attempt_count"] = json!(1);
    a.deliver(&event("invoice.payment_failed", week_ago + 2 * 86_400, failed)).await;
    a.deliver(&event(
        "invoice.paid",
        week_ago + 3 * 86_400,
        invoice("in_dg", "cus_dg_paid", "sub_dg_paid", "paid", 2000, week_ago + 3 * 86_400),
    ))
    .await;
    a.wait_projected().await;
}

/// The digest's subject counts who left; its text tells the MRR movement, who left and why
/// (with the comment), who was recovered, each with a link to the customer page, and says
/// there were no saves and nobody at risk.
fn assert_the_digest_tells_who_left_why_and_what_was_recovered(d: &holdfast::store::outbox::OutboxRow) {
    let text = &d.body_text;
    assert!(d.subject.contains("1 left"), "{}", d.subject);
    assert!(text.contains("USD: $40.00 → $20.00 (−$20.00)"), "{text}");
    assert!(text.contains("Grace Hopper: Switched to another product — “We moved to a spreadsheet <sadly>”"), "{text}");
    assert!(text.contains("https://holdfast.example.com/dashboard/customers/cus_dg_left"), "{text}");
    assert!(text.contains("Alan Turing: $20.00 recovered"), "{text}");
    assert!(text.contains("https://holdfast.example.com/dashboard/customers/cus_dg_paid"), "{text}");
    assert!(text.contains("No saves this week.") && text.contains("Nobody is at risk."), "{text}");
}

#[tokio::test]
async fn one_weekly_digest_across_two_instances_with_who_left_why_and_links() {
    let (url, db) = fresh_database().await;
    let a = spawn_app_on(url.clone(), db, digest_config()).await;
    let b = spawn_app_on(url, None, digest_config()).await;
    // The send time: the last Tuesday 09:00 UTC before now (events are signed now, so the
    // week is in the past); the week is the seven days before it.
    let (send, key) = last_tuesday_9am();
    let week_ago = send - 7 * 86_400;

    // Two customers from before the week; one cancels during it with a comment, one fails a
    // payment that is recovered during it; a third signs up during it.
    deliver_the_week(&a, week_ago).await;

    // Before the hour: nothing.
    assert_eq!(a.scheduler.weekly_digest(send - 1).await.expect("check"), 0);
    // Both instances run the check at the same time: one row.
    let (x, y) = tokio::join!(a.scheduler.weekly_digest(send + 60), b.scheduler.weekly_digest(send + 60));
    assert_eq!(x.expect("a") + y.expect("b"), 1);
    // And again later in the week: still one.
    assert_eq!(b.scheduler.try_run_once_at(send + 3 * 86_400).await.map(|_| ()).ok(), Some(()));
    let rows: Vec<_> =
        a.store.outbox_rows().await.expect("outbox").into_iter().filter(|r| r.dedupe_key.starts_with("digest:")).collect();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let d = &rows[0];
    assert_eq!(d.dedupe_key, key);
    assert_eq!(d.recipient, OWNER);
    assert_the_digest_tells_who_left_why_and_what_was_recovered(d);
    // The next week has its own, when the app's clock reaches its hour.
    a.clock.set(send + 7 * 86_400 - 60);
    a.scheduler.try_run_once().await.expect("scheduler");
    let digests =
        |rows: Vec<holdfast::store::outbox::OutboxRow>| rows.into_iter().filter(|r| r.dedupe_key.starts_with("digest:")).count();
    assert_eq!(digests(a.store.outbox_rows().await.expect("outbox")), 1);
    a.clock.set(send + 7 * 86_400);
    a.scheduler.try_run_once().await.expect("scheduler");
    assert_eq!(digests(a.store.outbox_rows().await.expect("outbox")), 2);
}
