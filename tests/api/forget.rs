//! `holdfast forget <customer>`: personal data gone from projected rows and raw payloads,
//! figures unchanged.

use std::process::Command;

use holdfast::store::Store;
use serde_json::Value;

use crate::support::helpers::{Sub, TestApp, customer, event, invoice, now, spawn_owner_app};

const TOKEN: &str = "owner-token-forget-0123456789";
const EMAIL: &str = "forget.me@example.org";

async fn summary(app: &TestApp) -> Value {
    let r = app.client.get(format!("{}/api/summary", app.address)).bearer_auth(TOKEN).send().await.expect("sent");
    assert_eq!(r.status(), 200);
    r.json().await.expect("summary JSON")
}

/// The acquisition channels the dashboard's figures list.
async fn channels(app: &TestApp) -> Vec<String> {
    let r = app.client.get(format!("{}/api/figures", app.address)).bearer_auth(TOKEN).send().await.expect("sent");
    assert_eq!(r.status(), 200);
    let fig: Value = r.json().await.expect("json");
    fig["channels"].as_array().expect("channels").iter().filter_map(|c| c["channel"].as_str().map(str::to_owned)).collect()
}

async fn payloads(store: &Store) -> Vec<String> {
    const ALL: &str = "SELECT payload FROM stripe_events";
    let rows: Vec<(String,)> = match store {
        Store::Sqlite(s) => sqlx::query_as(ALL).fetch_all(s.pool()).await,
        Store::Postgres(s) => sqlx::query_as(ALL).fetch_all(s.pool()).await,
    }
    .expect("payloads readable");
    rows.into_iter().map(|(p,)| p).collect()
}

/// `holdfast forget cus_forget` on the app's database, insisting it succeeds. On a blocking
/// thread: the test's runtime keeps driving the server meanwhile.
async fn forget_cus_forget(app: &TestApp) {
    let url = app.database_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(["forget", "cus_forget"])
            .env_clear()
            .env("DATABASE_URL", url)
            .output()
            .expect("holdfast forget runs")
    })
    .await
    .expect("the command's thread");
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn forgetting_a_customer_erases_personal_data_and_keeps_the_figures() {
    let app = spawn_owner_app(TOKEN).await;
    let t = now() - 40 * 86_400;
    let mut cus = customer("cus_forget", EMAIL, t);
    cus["name"] = "Ann Forget".into();
    cus["address"] = serde_json::json!({"line1": "1 Main St", "city": "Ghent"});
    cus["metadata"] = serde_json::json!({"utm_source": "referred-by-ann"});
    app.deliver(&event("customer.created", t, cus)).await;
    app.deliver(&event("customer.subscription.created", t + 1, Sub::new("sub_forget", "cus_forget", t).object())).await;
    let mut inv = invoice("in_forget", "cus_forget", "sub_forget", "paid", 2000, t + 2);
    inv["customer_email"] = EMAIL.into();
    app.deliver(&event("invoice.paid", t + 2, inv)).await;
    app.deliver(&event("customer.created", t, customer("cus_other", "keep.me@example.org", t))).await;
    // A failed payment now: a dunning email waits in the outbox, addressed to the customer.
    let mut failed = invoice("in_forget_failed", "cus_forget", "sub_forget", "open", 2000, now() - 60);
    failed["attempt_count"] = 1.into();
    failed["customer_email"] = EMAIL.into();
    app.deliver(&event("invoice.payment_failed", now() - 60, failed)).await;
    let queued = app.store.outbox_rows().await.expect("outbox");
    assert!(queued.iter().any(|r| r.recipient.contains(EMAIL) && r.status == "pending"), "{queued:?}");
    let before = summary(&app).await;
    assert!(payloads(&app.store).await.iter().any(|p| p.contains(EMAIL)), "the email was stored");
    assert!(channels(&app).await.contains(&"referred-by-ann".to_owned()), "the metadata was kept for the dashboard");

    // On a blocking thread: this test's runtime keeps driving the server meanwhile (its
    // projector may be mid-transaction, holding SQLite's write lock the command needs).
    forget_cus_forget(&app).await;

    let stored = payloads(&app.store).await;
    for needle in [EMAIL, "Ann Forget", "1 Main St", "referred-by-ann"] {
        assert!(stored.iter().all(|p| !p.contains(needle)), "{needle} left in a raw payload");
    }
    assert!(stored.iter().any(|p| p.contains("keep.me@example.org")), "other customers are untouched");
    let state = app.state().await;
    let row = state.customers.iter().find(|c| c.id == "cus_forget").expect("the customer row stays");
    assert_eq!((row.email.as_deref(), row.name.as_deref()), (None, None));
    // Metadata is personal too: the dashboard's channel cohorts no longer show it.
    assert!(!channels(&app).await.contains(&"referred-by-ann".to_owned()), "the metadata is forgotten");
    let outbox = app.store.outbox_rows().await.expect("outbox");
    assert!(outbox.iter().all(|r| !r.recipient.contains(EMAIL) && r.status != "pending"), "{outbox:?}");
    // The figures stay; only the count of emails waiting changes (the dunning emails are
    // cancelled: there is nobody to send them to).
    let mut after = summary(&app).await;
    let mut before = before;
    assert!(before["emails"]["pending"].as_i64() > Some(0), "{before}");
    assert_eq!(after["emails"]["pending"], 0);
    before.as_object_mut().map(|o| o.remove("emails"));
    after.as_object_mut().map(|o| o.remove("emails"));
    assert_eq!(after, before, "the figures do not change");
}

#[tokio::test]
async fn raw_payloads_older_than_the_retention_lose_their_personal_fields() {
    let app = spawn_owner_app(TOKEN).await;
    let old = now() - 500 * 86_400;
    let recent = now() - 10 * 86_400;
    app.deliver(&event("customer.created", old, customer("cus_old", "old.customer@example.org", old))).await;
    app.deliver(&event("customer.subscription.created", old + 1, Sub::new("sub_old", "cus_old", old).object())).await;
    app.deliver(&event("customer.created", recent, customer("cus_new", "new.customer@example.org", recent))).await;
    let before = summary(&app).await;
    // On a blocking thread, so the server this runtime drives keeps going (see above).
    let prune = async |extra: &[&str]| {
        let (url, extra): (String, Vec<String>) = (app.database_url.clone(), extra.iter().map(|a| (*a).to_owned()).collect());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_holdfast"))
                .arg("prune-payloads")
                .args(extra)
                .env_clear()
                .env("DATABASE_URL", url)
                .output()
                .expect("holdfast prune-payloads runs")
        })
        .await
        .expect("the command's thread")
    };

    let out = prune(&[]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("from 2 raw events"), "the customer and its subscription: {out:?}");
    let stored = payloads(&app.store).await;
    assert!(stored.iter().all(|p| !p.contains("old.customer@example.org")), "older than 400 days: pruned");
    assert!(stored.iter().any(|p| p.contains("new.customer@example.org")), "within the retention: kept");
    assert_eq!(summary(&app).await, before, "the figures do not change");

    let again = prune(&[]).await;
    assert!(String::from_utf8_lossy(&again.stdout).contains("from 0 raw events"), "nothing left to prune: {again:?}");
    assert!(prune(&["--older-than-days", "5"]).await.status.success());
    assert!(payloads(&app.store).await.iter().all(|p| !p.contains("new.customer@example.org")));
}
