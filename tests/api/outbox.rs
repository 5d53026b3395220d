//! The outbox worker against a real SMTP server: outages, retries, bounces, suppression,
//! crashed claims, several workers, and the `.eml` fallback.

use std::collections::HashSet;

use holdfast::config::SmtpUrl;
use holdfast::mail::{Category, EmailContent, NewEmail};
use holdfast::workers::outbox::OutboxWorker;
use secrecy::SecretString;

use crate::support::helpers::{Config, event, now, serverless_settings, spawn_app_with};
use crate::support::mail_world::{DAY, EMAIL, app_with_sink, payment_failed, subscriber};

#[tokio::test]
async fn smtp_down_is_retried_later_with_nothing_lost_and_nothing_doubled() {
    let (app, sink) = app_with_sink(Config::new()).await;
    let t = now() - 60;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 3 * DAY))).await;
    sink.set_down(true);

    let at = now();
    app.outbox.run_until_idle_at(at).await.expect("pass");
    let row = app.store.outbox_rows().await.expect("rows").remove(0);
    assert_eq!((row.status.as_str(), row.attempts, row.next_attempt_at), ("pending", 1, at + 60));
    assert!(row.last_error.is_some());
    // Not due again before its back-off, even with the server back.
    sink.set_down(false);
    assert_eq!(app.outbox.run_until_idle_at(at + 59).await.expect("pass"), 0);
    assert_eq!(app.outbox.run_until_idle_at(at + 60).await.expect("pass"), 1);
    app.outbox.run_until_idle_at(at + 3600).await.expect("pass");
    assert_eq!(sink.messages().len(), 1);
    let row = app.store.outbox_rows().await.expect("rows").remove(0);
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 2));
}

#[tokio::test]
async fn after_the_last_attempt_a_row_is_failed_and_counted() {
    let (app, sink) = app_with_sink(Config::new().with(|s| {
        s.mail.max_attempts = 3;
        s.dunning.cadence_days = vec![0];
    }))
    .await;
    let t = now() - 60;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 3 * DAY))).await;
    sink.set_down(true);

    let at = now();
    for offset in [0, 60, 60 + 120, 10 * DAY] {
        app.outbox.run_until_idle_at(at + offset).await.expect("pass");
    }
    let counts = app.store.outbox_counts().await.expect("counts");
    assert_eq!((counts.failed, counts.sent), (1, 0));
    assert_eq!(app.store.outbox_rows().await.expect("rows")[0].attempts, 3);
    sink.set_down(false);
    app.outbox.run_until_idle_at(at + 20 * DAY).await.expect("pass");
    assert!(sink.messages().is_empty(), "a failed row is never sent later");
}

#[tokio::test]
async fn a_permanent_bounce_suppresses_the_address_for_every_later_email() {
    let (app, sink) = app_with_sink(Config::new()).await;
    sink.bounce(EMAIL);
    let t = now() - 60;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 3 * DAY))).await;
    app.outbox.run_until_idle_at(now()).await.expect("pass");
    assert_eq!(app.store.outbox_counts().await.expect("counts").bounced, 1);

    app.deliver(&payment_failed("in_2", t + 1, Some(t + 1 + 3 * DAY))).await;
    app.outbox.run_until_idle_at(now()).await.expect("pass");
    let counts = app.store.outbox_counts().await.expect("counts");
    assert_eq!((counts.bounced, counts.suppressed, counts.sent), (1, 1, 0));
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_deleted_customer_is_not_emailed() {
    let (app, sink) = app_with_sink(Config::new()).await;
    let t = now() - 60;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 3 * DAY))).await;
    app.deliver(&event("customer.deleted", t + 1, crate::support::helpers::customer("cus_1", EMAIL, t - DAY))).await;

    app.outbox.run_until_idle_at(now()).await.expect("pass");
    assert!(sink.messages().is_empty());
    assert_eq!(app.store.outbox_counts().await.expect("counts").suppressed, 1);
}

#[tokio::test]
async fn a_marketing_unsubscribe_does_not_block_dunning() {
    let (app, sink) = app_with_sink(Config::new()).await;
    app.store.suppress(EMAIL, "marketing", "unsubscribed", now()).await.expect("suppress");
    let t = now() - 60;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 3 * DAY))).await;

    app.outbox.run_until_idle_at(now()).await.expect("pass");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn a_claim_left_by_a_crashed_worker_is_taken_over_after_its_lease() {
    let (app, sink) = app_with_sink(Config::new()).await;
    let t = now() - 60;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 3 * DAY))).await;
    let at = now();
    // A worker claims the row and dies before sending.
    let claimed = app.store.claim_due_outbox(at, 300, 10, "crashed-worker").await.expect("claim");
    assert_eq!(claimed.len(), 1);

    assert_eq!(app.outbox.run_until_idle_at(at + 299).await.expect("pass"), 0, "the lease still holds");
    assert_eq!(app.outbox.run_until_idle_at(at + 301).await.expect("pass"), 1);
    // The dead worker's late outcome can't overwrite the new one.
    let outcome = holdfast::store::outbox::SendOutcome::Retry { error: "late".into(), retry_at: at, give_up: false };
    app.store.record_send_outcome(&claimed[0], "crashed-worker", &outcome, at + 302).await.expect("record");
    assert_eq!(app.store.outbox_rows().await.expect("rows")[0].status, "sent");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn without_smtp_mail_is_written_as_eml_files() {
    let app = spawn_app_with(Config::new()).await;
    let t = now() - 60;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 3 * DAY))).await;

    app.outbox.run_until_idle_at(now()).await.expect("pass");
    let files: Vec<_> = std::fs::read_dir(app.mail_dir.path()).expect("dir").flatten().collect();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read_to_string(files[0].path()).expect("eml");
    let email = crate::support::smtp_sink::Email::parse(&raw);
    assert!(email.text.contains("https://invoice.stripe.com/i/in_1"));
}

#[tokio::test]
async fn background_workers_send_soon_after_the_webhook_commits() {
    let (app, sink) = app_with_sink(Config::new().with(|s| s.run_workers = true)).await;
    let t = now() - 60;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 3 * DAY))).await;
    // Bounded wait for the background loop (woken by the commit, or its 5 s poll).
    for _ in 0..200 {
        if !sink.messages().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(sink.messages().len(), 1);
}

fn bulk_email(i: usize, at: i64) -> NewEmail {
    NewEmail {
        dedupe_key: format!("bulk:{i}"),
        case_key: None,
        category: Category::Transactional,
        customer: None,
        recipient: format!("user{i}@example.com"),
        template: "bulk".into(),
        content: EmailContent { subject: format!("bulk {i}"), text: "hello".into(), html: "<p>hello</p>".into() },
        send_at: at,
        unsubscribe_url: None,
    }
}

#[tokio::test]
async fn enqueueing_the_same_dedupe_key_twice_queues_one_email() {
    let (app, _sink) = app_with_sink(Config::new()).await;
    let e = bulk_email(1, now());
    assert_eq!(app.store.enqueue_emails(&[e.clone(), e], now()).await.expect("enqueue"), 1);
    assert_eq!(app.store.outbox_rows().await.expect("rows").len(), 1);
}

/// SQLite is one process with one writer; the replica claim is Postgres's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs postgres"]
async fn postgres_only_three_workers_send_each_of_1000_rows_exactly_once() {
    crate::support::requires::database("postgres");
    let (app, sink) = app_with_sink(Config::new()).await;
    let at = now();
    let emails: Vec<NewEmail> = (0..1000).map(|i| bulk_email(i, at)).collect();
    assert_eq!(app.store.enqueue_emails(&emails, at).await.expect("enqueue"), 1000);

    // Three replicas: each its own pool and SMTP connections, all connected before any sends.
    let mut workers = Vec::new();
    for _ in 0..3 {
        let store = holdfast::store::Store::connect(&app.database_url).await.expect("replica store");
        let smtp = SmtpUrl(SecretString::from(sink.url()));
        let settings = serverless_settings(Config::new().with(move |s| s.mail.smtp_url = Some(smtp)));
        let mailer = holdfast::mail::transport::Mailer::new(&settings.mail).expect("mailer");
        workers.push(OutboxWorker::new(store, mailer, 8));
    }
    // Transient failures on a loaded machine are retried after their back-off: advance the
    // clock a day per round until nothing is pending.
    let mut per_worker = [0usize; 3];
    for round in 0..10 {
        let replicas: Vec<_> = workers
            .iter()
            .cloned()
            .map(|w| tokio::spawn(async move { w.run_until_idle_at(at + round * DAY).await.expect("pass") }))
            .collect();
        for (i, r) in replicas.into_iter().enumerate() {
            per_worker[i] += r.await.expect("worker");
        }
        if app.store.outbox_counts().await.expect("counts").pending == 0 {
            break;
        }
    }

    let subjects: Vec<String> = sink.parsed().iter().filter_map(|m| m.header("Subject")).collect();
    let distinct: HashSet<&String> = subjects.iter().collect();
    assert_eq!((subjects.len(), distinct.len()), (1000, 1000), "each row exactly once");
    assert!(per_worker.iter().sum::<usize>() >= 1000, "{per_worker:?}");
    assert_eq!(app.store.outbox_counts().await.expect("counts").sent, 1000);
}
