//! Failed-payment recovery end to end: webhook → case + outbox rows in the event's
//! transaction → outbox worker → a real SMTP server.

use serde_json::json;

use holdfast::dunning::rules::AfterRetries;

use crate::support::helpers::{Config, Sub, event, now};
use crate::support::mail_world::{
    DAY, EMAIL, app_with_sink, deliver_now, failed_invoice, invoice_paid, payment_failed, payment_failed_try, subscriber,
};

#[tokio::test]
async fn the_whole_series_arrives_on_its_cadence_with_links_and_headers() {
    let (app, sink) = app_with_sink(Config::new()).await;
    // The server's clock stands still: each step happens at the time the test says.
    app.clock.set(now());
    let t = app.clock.now() - 3600;
    subscriber(&app, t - DAY).await;
    // Try 7 of Stripe's 8 failed: the next try is the last.
    app.deliver(&payment_failed_try("in_1", t, 7, Some(t + 14 * DAY))).await;

    // At the failure: the first email, nothing else yet.
    app.outbox.run_until_idle_at(app.clock.now()).await.expect("pass");
    let first = sink.parsed();
    assert_eq!(first.len(), 1);
    let m = &first[0];
    assert_eq!(sink.messages()[0].rcpt_to, vec![EMAIL.to_owned()]);
    assert_eq!(sink.messages()[0].mail_from, "billing@acme.test");
    assert_eq!(m.header("From").as_deref(), Some("\"Acme Billing\" <billing@acme.test>"));
    assert_eq!(m.header("Reply-To").as_deref(), Some("help@acme.test"));
    assert_eq!(m.header("Subject").as_deref(), Some("Your Acme payment of $20.00 didn't go through"));
    let id = m.header("Message-ID").expect("message id");
    assert!(id.starts_with('<') && id.ends_with("@acme.test>"), "{id}");
    assert!(m.content_type.starts_with("multipart/alternative"), "{}", m.content_type);
    // Without a Stripe key the link is the invoice's hosted page.
    assert!(m.text.contains("Hi Test Customer") && m.text.contains("https://invoice.stripe.com/i/in_1"), "{}", m.text);
    assert!(m.html_unescaped().contains("href=\"https://invoice.stripe.com/i/in_1\""));
    assert!(m.html.contains("<strong>$20.00</strong>"));

    // +3 and +7 days: reminders; two days before Stripe's last try: the final notice.
    for (at, subject) in [
        (t + 3 * DAY, "Reminder: your Acme payment of $20.00 is still due"),
        (t + 7 * DAY, "Reminder: your Acme payment of $20.00 is still due"),
        (t + 12 * DAY, "Final notice: your Acme subscription is at risk"),
    ] {
        assert_eq!(app.outbox.run_until_idle_at(at - 1).await.expect("pass"), 0, "nothing before {subject}");
        assert_eq!(app.outbox.run_until_idle_at(at).await.expect("pass"), 1);
        assert_eq!(sink.parsed().last().and_then(|m| m.header("Subject")).as_deref(), Some(subject));
    }
    let ids: std::collections::HashSet<_> = sink.parsed().iter().filter_map(|m| m.header("Message-ID")).collect();
    assert_eq!(ids.len(), 4, "each email has its own Message-ID");
    assert!(sink.parsed()[3].text.contains(&holdfast::domain::money::format_date(t + 14 * DAY)));
}

#[tokio::test]
async fn payment_stops_the_series_and_records_the_recovery() {
    let (app, sink) = app_with_sink(Config::new()).await;
    // The server's clock stands still: each step happens at the time the test says.
    app.clock.set(now());
    let t = app.clock.now() - 2 * 3600;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed_try("in_1", t, 7, Some(t + 14 * DAY))).await;
    app.outbox.run_until_idle_at(app.clock.now()).await.expect("pass");
    app.deliver(&invoice_paid("in_1", t + 3600)).await;

    app.outbox.run_until_idle_at(t + 30 * DAY).await.expect("pass");
    assert_eq!(sink.messages().len(), 1, "only the email sent before the payment");
    let case = &app.store.dunning_cases().await.expect("cases")[0];
    assert_eq!(case.status, "recovered");
    assert_eq!(case.recovered_amount, Some(2000));
    assert_eq!(case.recovered_after_secs, Some(3600));
    assert_eq!(case.emails_before_close, Some(1));
    assert_eq!(app.store.outbox_counts().await.expect("counts").cancelled, 3);
}

#[tokio::test]
async fn duplicate_and_out_of_order_failures_make_one_case_and_one_email_per_step() {
    let (app, sink) = app_with_sink(Config::new()).await;
    // The server's clock stands still: each step happens at the time the test says.
    app.clock.set(now());
    let t = app.clock.now() - 6 * 3600;
    subscriber(&app, t - DAY).await;
    let retry = payment_failed_try("in_1", t + 3600, 7, Some(t + 14 * DAY));
    let first = payment_failed_try("in_1", t, 6, Some(t + 2 * DAY));
    // The retry arrives first, twice; the original failure after it.
    app.deliver(&retry).await;
    app.deliver(&retry).await;
    app.deliver(&first).await;

    let cases = app.store.dunning_cases().await.expect("cases");
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].opened_at, t, "the series runs from the earliest failure");
    assert_eq!(cases[0].next_payment_attempt, Some(t + 14 * DAY), "the newest failure knows the next retry");
    assert_eq!(cases[0].attempt_count, 7);
    // Day 3 counts from the original failure, not from the retry's arrival.
    assert_eq!(app.outbox.run_until_idle_at(t + 3 * DAY).await.expect("pass"), 2);
    app.outbox.run_until_idle_at(t + 40 * DAY).await.expect("pass");
    let mut keys: Vec<String> = app.store.outbox_rows().await.expect("rows").into_iter().map(|r| r.dedupe_key).collect();
    keys.sort();
    assert_eq!(keys, ["dunning:in_1:day0", "dunning:in_1:day3", "dunning:in_1:day7", "dunning:in_1:final"]);
    assert_eq!(sink.messages().len(), 4, "one email per step");
}

#[tokio::test]
async fn a_failure_older_than_the_horizon_records_state_but_sends_nothing() {
    let (app, sink) = app_with_sink(Config::new()).await;
    // The server's clock stands still: each step happens at the time the test says.
    app.clock.set(now());
    let t = app.clock.now() - 4 * DAY;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_old", t, Some(now() + DAY))).await;

    app.outbox.run_until_idle_at(now() + 30 * DAY).await.expect("pass");
    assert!(sink.messages().is_empty());
    let case = &app.store.dunning_cases().await.expect("cases")[0];
    assert_eq!((case.status.as_str(), case.silent), ("open", true));
    assert!(app.store.outbox_rows().await.expect("rows").is_empty());
}

#[tokio::test]
async fn action_required_links_to_the_hosted_invoice_even_with_a_stripe_key() {
    let (app, sink) = app_with_sink(Config::new().stripe_key("sk_test_holdfast")).await;
    // The server's clock stands still: each step happens at the time the test says.
    app.clock.set(now());
    let t = app.clock.now() - 60;
    subscriber(&app, t - DAY).await;
    app.deliver(&event("invoice.payment_action_required", t, failed_invoice("in_3ds", 2000, t, None))).await;

    app.outbox.run_until_idle_at(app.clock.now()).await.expect("pass");
    let m = &sink.parsed()[0];
    assert_eq!(m.header("Subject").as_deref(), Some("Please confirm your Acme payment of $20.00"));
    assert!(m.text.contains("https://invoice.stripe.com/i/in_3ds"));
    assert!(!m.text.contains("/billing/update"));
}

#[tokio::test]
async fn checkout_failures_and_zero_amount_invoices_open_no_case() {
    let (app, sink) = app_with_sink(Config::new()).await;
    // The server's clock stands still: each step happens at the time the test says.
    app.clock.set(now());
    let t = app.clock.now() - 60;
    app.deliver(&event("customer.created", t, crate::support::helpers::customer("cus_1", EMAIL, t))).await;
    let mut incomplete = Sub::new("sub_1", "cus_1", t);
    incomplete.status = "incomplete";
    app.deliver(&event("customer.subscription.created", t, incomplete.object())).await;
    let mut first = failed_invoice("in_first", 2000, t, None);
    first["billing_reason"] = json!("subscription_create");
    app.deliver(&event("invoice.payment_failed", t, first)).await;
    app.deliver(&event("invoice.payment_failed", t, failed_invoice("in_zero", 0, t, None))).await;

    app.outbox.run_until_idle_at(app.clock.now()).await.expect("pass");
    assert!(app.store.dunning_cases().await.expect("cases").is_empty());
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_voided_invoice_or_an_ended_subscription_loses_the_case() {
    let (app, sink) = app_with_sink(Config::new()).await;
    // The server's clock stands still: each step happens at the time the test says.
    app.clock.set(now());
    let t = app.clock.now() - 3600;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_void", t, Some(t + 3 * DAY))).await;
    app.deliver(&payment_failed("in_end", t, Some(t + 3 * DAY))).await;
    app.outbox.run_until_idle_at(app.clock.now()).await.expect("pass");
    let mut voided = failed_invoice("in_void", 2000, t, None);
    voided["status"] = json!("void");
    app.deliver(&event("invoice.voided", t + 60, voided)).await;
    let mut ended = Sub::new("sub_1", "cus_1", t - DAY);
    ended.status = "canceled";
    app.deliver(&event("customer.subscription.deleted", t + 120, ended.object())).await;

    app.outbox.run_until_idle_at(t + 30 * DAY).await.expect("pass");
    let cases = app.store.dunning_cases().await.expect("cases");
    let outcome: Vec<_> = cases.iter().map(|c| (c.invoice_id.as_str(), c.status.as_str(), c.close_reason.as_deref())).collect();
    assert_eq!(outcome, [("in_end", "lost", Some("subscription_ended")), ("in_void", "lost", Some("voided"))]);
    assert_eq!(sink.messages().len(), 2, "only the first email of each case");
}

#[tokio::test]
async fn a_payment_that_arrives_before_its_failure_sends_nothing() {
    let (app, sink) = app_with_sink(Config::new()).await;
    // The server's clock stands still: each step happens at the time the test says.
    app.clock.set(now());
    let t = app.clock.now() - 3600;
    subscriber(&app, t - DAY).await;
    app.deliver(&invoice_paid("in_1", t + 60)).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 3 * DAY))).await;

    app.outbox.run_until_idle_at(app.clock.now()).await.expect("pass");
    assert!(sink.messages().is_empty());
    let case = &app.store.dunning_cases().await.expect("cases")[0];
    assert_eq!((case.status.as_str(), case.emails_before_close), ("recovered", Some(0)));
}

/// Subjects of every message the sink received, in order.
fn subjects(sink: &crate::support::smtp_sink::SmtpSink) -> Vec<String> {
    sink.parsed().iter().filter_map(|m| m.header("Subject")).collect()
}

#[tokio::test]
async fn a_whole_retry_sequence_gets_reminders_one_final_notice_before_the_last_try_and_a_stop_notice() {
    let config = Config::new().key("lifecycle.product_url", "https://app.acme.test/").with(|s| s.dunning.stripe_tries = 4);
    let (app, sink) = app_with_sink(config).await;
    let t = now();
    app.clock.set(t);
    subscriber(&app, t - DAY).await;
    let run = async |at: i64| {
        app.clock.set(at);
        app.outbox.try_run_once().await.expect("pass");
    };

    // Try 1 fails; Stripe's Smart Retries will try again on days 3, 8 and 15 (4 tries).
    deliver_now(&app, &payment_failed_try("in_1", t, 1, Some(t + 3 * DAY))).await;
    run(t).await;
    assert_eq!(subjects(&sink), ["Your Acme payment of $20.00 didn't go through"]);
    let first = &sink.parsed()[0];
    assert!(first.text.contains("while we retry"), "{}", first.text);

    // Try 2 fails on day 3 (the day-3 reminder is due the same instant).
    app.clock.set(t + 3 * DAY);
    deliver_now(&app, &payment_failed_try("in_1", t + 3 * DAY, 2, Some(t + 8 * DAY))).await;
    run(t + 3 * DAY).await;
    run(t + 7 * DAY).await;
    let reminder = "Reminder: your Acme payment of $20.00 is still due";
    assert_eq!(subjects(&sink)[1..], [reminder, reminder], "no final notice on Stripe's next retry alone");

    // Try 3 fails on day 8: the next try (day 15) is the last, so the final notice goes two
    // days before it, and not a moment earlier.
    app.clock.set(t + 8 * DAY);
    deliver_now(&app, &payment_failed_try("in_1", t + 8 * DAY, 3, Some(t + 15 * DAY))).await;
    run(t + 13 * DAY - 1).await;
    assert_eq!(sink.messages().len(), 3);
    run(t + 13 * DAY).await;
    assert_eq!(subjects(&sink)[3], "Final notice: your Acme subscription is at risk");
    let notice = &sink.parsed()[3];
    let last_try = holdfast::domain::money::format_date(t + 15 * DAY);
    assert!(notice.text.contains(&format!("last attempt on {last_try}")), "{}", notice.text);
    assert!(notice.text.contains("If it fails, your subscription will be canceled"), "{}", notice.text);

    // Try 4 fails on day 15 and Stripe will not try again: payments have stopped.
    app.clock.set(t + 15 * DAY);
    deliver_now(&app, &payment_failed_try("in_1", t + 15 * DAY, 4, None)).await;
    run(t + 15 * DAY).await;
    assert_eq!(subjects(&sink)[4], "Your Acme subscription is ending: payment of $20.00 failed");
    let stopped = &sink.parsed()[4];
    assert!(stopped.text.contains("no more automatic attempts") && stopped.text.contains("will be canceled"), "{}", stopped.text);
    assert!(stopped.text.contains("https://app.acme.test/"), "the way back: {}", stopped.text);
    assert!(!stopped.text.contains("while we retry"));

    // Stripe cancels the subscription, as configured: the case is lost, nothing more goes.
    let mut ended = Sub::new("sub_1", "cus_1", t - DAY);
    ended.status = "canceled";
    deliver_now(&app, &event("customer.subscription.deleted", t + 15 * DAY + 60, ended.object())).await;
    run(t + 40 * DAY).await;
    assert_eq!(sink.messages().len(), 5);
    let case = &app.store.dunning_cases().await.expect("cases")[0];
    assert_eq!((case.status.as_str(), case.attempt_count, case.emails_before_close), ("lost", 4, Some(5)));
}

#[tokio::test]
async fn the_stop_notice_still_goes_when_the_cancellation_arrives_before_it_is_sent() {
    let (app, sink) = app_with_sink(Config::new().with(|s| s.dunning.stripe_tries = 4)).await;
    let t = now();
    app.clock.set(t);
    subscriber(&app, t - DAY).await;
    deliver_now(&app, &payment_failed_try("in_1", t, 4, None)).await;
    let mut ended = Sub::new("sub_1", "cus_1", t - DAY);
    ended.status = "canceled";
    deliver_now(&app, &event("customer.subscription.deleted", t + 1, ended.object())).await;
    app.outbox.try_run_once().await.expect("pass");
    assert_eq!(subjects(&sink), ["Your Acme subscription is ending: payment of $20.00 failed"]);
}

#[tokio::test]
async fn a_hard_decline_says_payments_have_stopped_and_what_happens_next() {
    let (app, sink) = app_with_sink(Config::new().with(|s| s.dunning.after_retries = AfterRetries::Unpaid)).await;
    let t = now();
    app.clock.set(t);
    subscriber(&app, t - DAY).await;
    // The first try is declined for good (e.g. a stolen card): no retry is planned.
    deliver_now(&app, &payment_failed_try("in_hard", t, 1, None)).await;

    app.outbox.try_run_once().await.expect("pass");
    assert_eq!(subjects(&sink), ["Action needed: your Acme payment of $20.00 failed"]);
    let m = &sink.parsed()[0];
    assert!(m.text.contains("Hi Test Customer,"), "{}", m.text);
    assert!(m.text.contains("no more automatic attempts") && m.text.contains("on hold (unpaid)"), "{}", m.text);
    assert!(!m.text.contains("while we retry") && !m.text.contains("last attempt"), "{}", m.text);
    // Paying the invoice is the way out: a new card alone is not charged.
    assert!(m.text.contains("https://invoice.stripe.com/i/in_hard"), "{}", m.text);
    assert!(m.html_unescaped().contains(">Pay the invoice</a>"));

    // No reminders follow.
    app.clock.set(t + 30 * DAY);
    app.outbox.try_run_once().await.expect("pass");
    assert_eq!(sink.messages().len(), 1);
    let keys: Vec<String> = app.store.outbox_rows().await.expect("rows").into_iter().map(|r| r.dedupe_key).collect();
    assert_eq!(keys, ["dunning:in_hard:stopped"]);
}

/// The projector writes a pass's outbox changes together (one statement for its enqueues and
/// one for its cancellations, on Postgres), not one by one. A whole retry sequence in one
/// pass (each try withdrawing steps the one before queued) must leave the outbox exactly as
/// the same tries delivered one pass each.
#[tokio::test]
async fn a_retry_sequence_in_one_projector_pass_queues_what_it_queues_one_event_at_a_time() {
    use holdfast::domain::event::Event;
    use holdfast::store::IngestOptions;

    let t = now();
    let tries = [
        payment_failed_try("in_1", t, 1, Some(t + 3 * DAY)),
        payment_failed_try("in_1", t + 60, 2, Some(t + 8 * DAY)),
        // The next try is the last: a final notice, and the reminders due after it withdrawn.
        payment_failed_try("in_1", t + 120, 3, Some(t + 15 * DAY)),
        // No further try: every reminder and the final notice withdrawn, the stop notice queued.
        payment_failed_try("in_1", t + 180, 4, None),
    ];
    let outbox_after = async |one_pass: bool| {
        let config = Config::new().with(|s| s.dunning.stripe_tries = 4);
        let (app, _sink) = app_with_sink(config).await;
        app.clock.set(t + 240);
        subscriber(&app, t - DAY).await;
        app.wait_projected().await;
        if one_pass {
            let parsed: Vec<Event> = tries.iter().map(|e| Event::parse(e.to_string().as_bytes()).expect("an event")).collect();
            let (_, head, durability) = app
                .store
                .append_committed(&parsed.iter().collect::<Vec<_>>(), t + 240, IngestOptions::WEBHOOK)
                .await
                .expect("appended in one commit");
            durability.wait().await.expect("durable");
            assert!(head.is_some(), "four new events in the log");
            app.wait_projected().await;
        } else {
            for event in &tries {
                deliver_now(&app, event).await;
            }
        }
        let mut rows: Vec<(String, String, i64, String)> = app
            .store
            .outbox_rows()
            .await
            .expect("outbox readable")
            .into_iter()
            .map(|r| (r.dedupe_key, r.status, r.next_attempt_at, r.body_text))
            .collect();
        rows.sort();
        rows
    };
    let one_by_one = outbox_after(false).await;
    let statuses: Vec<&str> = one_by_one.iter().map(|(_, status, _, _)| status.as_str()).collect();
    assert!(statuses.contains(&"cancelled") && statuses.contains(&"pending"), "steps queued and withdrawn: {one_by_one:?}");
    assert_eq!(outbox_after(true).await, one_by_one, "one pass and one event per pass agree");
}
