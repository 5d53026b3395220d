//! Card-expiry warnings: cards from `payment_method.*` and `customer.source.expiring`, one
//! warning per card per month, only for customers with a live subscription.

use serde_json::json;

use crate::support::helpers::{Config, event, fixture, now};
use crate::support::mail_world::{DAY, EMAIL, app_with_sink, subscriber};

fn card_payment_method(id: &str, customer: &str, month: i64, year: i64) -> serde_json::Value {
    let mut pm = fixture("payment_method");
    pm["id"] = json!(id);
    pm["customer"] = json!(customer);
    pm["card"]["exp_month"] = json!(month);
    pm["card"]["exp_year"] = json!(year);
    pm["card"]["brand"] = json!("visa");
    pm["card"]["last4"] = json!("4242");
    pm
}

fn this_month(at: i64) -> (i64, i64) {
    let (y, m, _) = holdfast::domain::money::year_month(at);
    (y, m)
}

#[tokio::test]
async fn a_card_expiring_this_month_gets_one_warning() {
    let (app, sink) = app_with_sink(Config::new()).await;
    // One time for the whole test (the server's clock set to it), so a month boundary can't
    // fall between its steps.
    let at = now();
    app.clock.set(at);
    let t = at - 60;
    subscriber(&app, t - DAY).await;
    let (y, m) = this_month(at);
    app.deliver(&event("payment_method.attached", t, card_payment_method("pm_1", "cus_1", m, y))).await;
    // A later card expiring in a later month gets nothing.
    app.deliver(&event("payment_method.attached", t, card_payment_method("pm_2", "cus_1", m, y + 1))).await;

    app.scheduler.try_run_once().await.expect("check");
    app.scheduler.try_run_once().await.expect("check again");
    app.outbox.run_until_idle_at(app.clock.now()).await.expect("pass");
    let mails = sink.parsed();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].header("Subject").as_deref(), Some("Your card ending in 4242 expires at the end of the month"));
    assert!(mails[0].text.contains("Visa card ending in 4242"));
    assert_eq!(sink.messages()[0].rcpt_to, [EMAIL]);
}

#[tokio::test]
async fn an_expiring_source_is_warned_about_but_not_without_a_live_subscription() {
    let (app, sink) = app_with_sink(Config::new()).await;
    // One time for the whole test (the server's clock set to it), so a month boundary can't
    // fall between its steps.
    let at = now();
    app.clock.set(at);
    let t = at - 60;
    subscriber(&app, t - DAY).await;
    let (y, m) = this_month(at);
    let mut card = fixture("card");
    card["id"] = json!("card_1");
    card["customer"] = json!("cus_1");
    card["exp_month"] = json!(m);
    card["exp_year"] = json!(y);
    card["last4"] = json!("1881");
    app.deliver(&event("customer.source.expiring", t, card)).await;
    app.deliver(&event("customer.created", t, crate::support::helpers::customer("cus_2", "bo@example.com", t))).await;
    app.deliver(&event("payment_method.attached", t, card_payment_method("pm_9", "cus_2", m, y))).await;

    app.scheduler.try_run_once().await.expect("check");
    app.outbox.run_until_idle_at(app.clock.now()).await.expect("pass");
    let to: Vec<Vec<String>> = sink.messages().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(to, [[EMAIL.to_owned()]], "cus_2 has no subscription");
}
