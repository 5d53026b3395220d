//! Onboarding, trial and trial-ending series: when they start, what they send, when they stop,
//! and one-click unsubscribe (marketing stops, dunning does not).

use serde_json::json;

use crate::support::helpers::{Config, Sub, customer, event, invoice, now};
use crate::support::lifecycle::{canceled, first_payment, series_status, subjects};
use crate::support::mail_world::{DAY, EMAIL, app_with_sink, payment_failed, subscriber};
#[tokio::test]
async fn onboarding_runs_its_days_after_the_first_payment_as_marketing_mail() {
    let (app, sink) = app_with_sink(Config::new().campaign_on("onboarding")).await;
    let t = now() - 3600;
    subscriber(&app, t).await;
    app.deliver(&first_payment("in_first", "cus_1", "sub_1", t)).await;

    assert_eq!(app.outbox.run_until_idle_at(t + DAY - 1).await.expect("pass"), 0, "day 1 is not due yet");
    assert_eq!(app.outbox.run_until_idle_at(t + DAY).await.expect("pass"), 1);
    let welcome = &sink.parsed()[0];
    assert_eq!(welcome.header("Subject").as_deref(), Some("Welcome to Acme"));
    assert_eq!(sink.messages()[0].rcpt_to, vec![EMAIL.to_owned()]);
    // Marketing: the RFC 8058 pair of headers and the same link in the body.
    let list = welcome.header("List-Unsubscribe").expect("List-Unsubscribe");
    assert!(list.starts_with("<https://billing.acme.test/unsubscribe?token=") && list.ends_with('>'), "{list}");
    assert_eq!(welcome.header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    assert!(welcome.text.contains(list.trim_matches(['<', '>'])), "{}", welcome.text);

    // A renewal a month later starts nothing new; the series runs to day 30.
    app.deliver(&event("invoice.paid", t + 30 * DAY, invoice("in_renewal", "cus_1", "sub_1", "paid", 2000, t + 30 * DAY))).await;
    assert_eq!(app.outbox.run_until_idle_at(t + 31 * DAY).await.expect("pass"), 3);
    let mut all = subjects(&sink);
    all.sort();
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(
        all.contains(&"How's it going with Acme?".to_owned()) && all.contains(&"A month with Acme: what's working?".to_owned())
    );
    let rows = app.store.outbox_rows().await.expect("outbox");
    let keys: Vec<&str> = rows.iter().map(|r| r.dedupe_key.as_str()).collect();
    assert_eq!(keys, vec!["onboarding:cus_1:day1", "onboarding:cus_1:day7", "onboarding:cus_1:day14", "onboarding:cus_1:day30"]);
    assert!(rows.iter().all(|r| r.category == "marketing" && r.status == "sent"));
}

#[tokio::test]
async fn a_renewal_of_a_customer_who_paid_before_starts_no_onboarding() {
    let (app, _sink) = app_with_sink(Config::new().campaign_on("onboarding")).await;
    let t = now() - 3600;
    subscriber(&app, t - 60 * DAY).await;
    // Their first payment happened long ago (delivered late, beyond the horizon: no series).
    app.deliver(&first_payment("in_old", "cus_1", "sub_1", t - 60 * DAY)).await;
    app.deliver(&event("invoice.paid", t, invoice("in_new", "cus_1", "sub_1", "paid", 2000, t))).await;
    assert!(app.store.outbox_rows().await.expect("outbox").is_empty());
    assert!(app.store.lifecycle_series().await.expect("series").is_empty());
}

#[tokio::test]
async fn onboarding_stops_when_the_subscription_ends() {
    let (app, sink) = app_with_sink(Config::new().campaign_on("onboarding")).await;
    // Well inside the 3-day horizon: at exactly 3 days, a second passing would make it too old.
    let t = now() - 3 * DAY + 3600;
    subscriber(&app, t).await;
    app.deliver(&first_payment("in_first", "cus_1", "sub_1", t)).await;
    app.outbox.run_until_idle_at(t + DAY).await.expect("pass");
    app.deliver(&canceled("sub_1", "cus_1", t, t + 2 * DAY, "payment_failed")).await;

    app.outbox.run_until_idle_at(t + 60 * DAY).await.expect("pass");
    assert_eq!(sink.messages().len(), 1, "only day 1 went before the end");
    assert_eq!(series_status(&app, "onboarding").await, vec![("stopped".into(), Some("subscription_ended".into()))]);
    assert_eq!(app.store.outbox_counts().await.expect("counts").cancelled, 3);
}

#[tokio::test]
async fn trial_ending_links_a_payment_method_only_when_none_is_on_file() {
    let (app, sink) = app_with_sink(Config::new().campaign_on("trial_ending").stripe_key("sk_test_lifecycle")).await;
    let t = now() - 600;
    let ends = now() + 3 * DAY;
    for (cus, card) in [("cus_nocard", None), ("cus_card", Some("pm_123"))] {
        app.deliver(&event("customer.created", t, customer(cus, &format!("{cus}@example.com"), t))).await;
        let mut s = Sub::new(&format!("sub_{cus}"), cus, t).object();
        s["status"] = json!("trialing");
        s["trial_start"] = json!(t);
        s["trial_end"] = json!(ends);
        s["default_payment_method"] = json!(card);
        let reminder = event("customer.subscription.trial_will_end", t + 1, s);
        app.deliver(&reminder).await;
        app.deliver(&reminder).await;
    }
    assert_eq!(app.outbox.run_until_idle_at(now()).await.expect("pass"), 2, "one reminder each, redelivery or not");
    let by = |to: &str| {
        let i = sink.messages().iter().position(|m| m.rcpt_to == vec![to.to_owned()]).expect("sent to");
        sink.parsed()[i].clone()
    };
    let (nocard, card) = (by("cus_nocard@example.com"), by("cus_card@example.com"));
    let date = holdfast::domain::money::format_date(ends);
    assert_eq!(nocard.header("Subject"), Some(format!("Your Acme trial ends on {date}")));
    assert!(nocard.text.contains("https://billing.acme.test/billing/update?token="), "{}", nocard.text);
    assert!(nocard.text.contains("$20.00 / month"), "{}", nocard.text);
    assert!(!card.text.contains("/billing/update"), "{}", card.text);
    // Transactional: no unsubscribe header.
    assert!(nocard.header("List-Unsubscribe").is_none() && card.header("List-Unsubscribe").is_none());
}

#[tokio::test]
async fn a_trial_gets_its_own_series_from_the_first_day_and_a_direct_purchase_the_paid_one() {
    let (app, sink) = app_with_sink(Config::new().campaign_on("onboarding").campaign_on("trial_onboarding")).await;
    let t = now() - 3600;
    app.deliver(&event("customer.created", t, customer("cus_1", EMAIL, t))).await;
    let mut trial = Sub::new("sub_1", "cus_1", t);
    trial.status = "trialing";
    let mut object = trial.object();
    object["trial_start"] = json!(t);
    object["trial_end"] = json!(t + 14 * DAY);
    app.deliver(&event("customer.subscription.created", t, object)).await;

    // Day 0 is the trial's first day: the welcome goes at once, as marketing mail.
    assert_eq!(app.outbox.run_until_idle_at(t).await.expect("pass"), 1);
    assert_eq!(subjects(&sink), vec!["Welcome to your Acme trial"]);
    let welcome = &sink.parsed()[0];
    assert!(welcome.header("List-Unsubscribe").is_some());
    let ends_on = holdfast::domain::money::format_date(t + 14 * DAY);
    assert!(welcome.text.contains(&format!("runs until {ends_on}")), "{}", welcome.text);

    // The trial converts: its first paid invoice starts no paid onboarding on top.
    app.deliver(&first_payment("in_first", "cus_1", "sub_1", t + 60)).await;
    assert_eq!(series_status(&app, "trial_onboarding").await, vec![("active".into(), None)]);
    assert_eq!(series_status(&app, "onboarding").await, vec![]);
    assert_eq!(app.outbox.run_until_idle_at(t + 3 * DAY).await.expect("pass"), 1);
    assert_eq!(subjects(&sink)[1], "How is your Acme trial going?");

    // A direct purchase (no trial) keeps the paid series.
    app.deliver(&event("customer.created", t, customer("cus_2", "grace@example.com", t))).await;
    app.deliver(&event("customer.subscription.created", t, Sub::new("sub_2", "cus_2", t).object())).await;
    app.deliver(&first_payment("in_2", "cus_2", "sub_2", t + 60)).await;
    assert_eq!(series_status(&app, "onboarding").await, vec![("active".into(), None)]);
    assert_eq!(series_status(&app, "trial_onboarding").await.len(), 1, "no trial series for a direct purchase");
}

#[tokio::test]
async fn a_trial_that_ends_unpaid_stops_its_series() {
    let (app, sink) = app_with_sink(Config::new().campaign_on("trial_onboarding")).await;
    let t = now() - 3600;
    app.deliver(&event("customer.created", t, customer("cus_1", EMAIL, t))).await;
    let mut trial = Sub::new("sub_1", "cus_1", t);
    trial.status = "trialing";
    let mut object = trial.object();
    object["trial_start"] = json!(t);
    app.deliver(&event("customer.subscription.created", t, object)).await;
    app.deliver(&canceled("sub_1", "cus_1", t, t + 60, "cancellation_requested")).await;
    assert_eq!(series_status(&app, "trial_onboarding").await, vec![("stopped".into(), Some("subscription_ended".into()))]);
    // The day-0 email was withdrawn with the series (it was due, not yet sent).
    assert_eq!(app.outbox.run_until_idle_at(t + 30 * DAY).await.expect("pass"), 0);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn one_click_unsubscribe_stops_marketing_at_once_but_not_dunning() {
    let (app, sink) = app_with_sink(Config::new().campaign_on("onboarding")).await;
    let t = now() - 2 * DAY;
    subscriber(&app, t).await;
    app.deliver(&first_payment("in_first", "cus_1", "sub_1", t)).await;
    app.outbox.run_until_idle_at(t + DAY).await.expect("pass");
    let url = sink.parsed()[0].header("List-Unsubscribe").expect("header").trim_matches(['<', '>']).to_owned();
    let local = url.replace("https://billing.acme.test", &app.address);

    // A GET (a link scanner, a preview) shows the button and changes nothing.
    let page = app.client.get(&local).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("name=\"List-Unsubscribe\"") && html.contains(EMAIL), "{html}");
    assert_eq!(app.store.outbox_counts().await.expect("counts").suppressed, 0);

    // The mail client's one-click POST (RFC 8058).
    let r = app.client.post(&local).form(&[("List-Unsubscribe", "One-Click")]).send().await.expect("POST");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("html").contains("unsubscribed"));
    assert_eq!(app.outbox.run_until_idle_at(t + 7 * DAY).await.expect("pass"), 1, "day 7 is processed...");
    assert_eq!(sink.messages().len(), 1, "...but not sent");
    assert_eq!(app.store.outbox_counts().await.expect("counts").suppressed, 1);

    // Dunning is transactional: it still arrives.
    app.deliver(&payment_failed("in_2", now() - 60, Some(now() + 14 * DAY))).await;
    app.outbox.run_until_idle_at(now()).await.expect("pass");
    assert_eq!(sink.messages().len(), 2);
    assert!(sink.parsed()[1].header("Subject").is_some_and(|s| s.contains("didn't go through")));

    // A forged token is refused with a friendly page.
    let forged = app.client.post(format!("{}/unsubscribe?token=6576654065.00ff", app.address)).send().await.expect("POST");
    assert_eq!(forged.status(), 400);
}
