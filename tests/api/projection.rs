//! Each event family keeps customers, subscriptions, invoices and history current.

use serde_json::{Value, json};

use crate::support::helpers::*;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

#[tokio::test]
async fn a_subscription_is_projected_with_items_periods_and_history_at_event_time() {
    let app = spawn_app().await;
    let mut sub = Sub::new("sub_proj1", "cus_p1", T0);
    sub.quantity = 3;
    sub.interval = "year";
    sub.unit_amount = 12_000;

    app.deliver(&event("customer.subscription.created", T0 + 5, sub.object())).await;

    let state = app.state().await;
    let row = &state.subscriptions[0];
    assert_eq!((row.id.as_str(), row.status.as_str()), ("sub_proj1", "active"));
    assert_eq!(row.customer.as_deref(), Some("cus_p1"));
    assert_eq!((row.current_period_start, row.current_period_end), (Some(T0), Some(T0 + 30 * 86_400)));
    assert_eq!(row.base_mrr, 3000.0, "12,000 a year × 3 seats = 3,000 a month");
    let item = &state.items[0];
    assert_eq!((item.price_id.as_deref(), item.unit_amount, item.quantity), (Some("price_basic_monthly"), Some(12_000), 3));
    assert_eq!((item.recurring_interval.as_deref(), item.interval_count), (Some("year"), Some(1)));
    assert_eq!(item.product.as_deref(), Some("prod_QXg1hqf4jFNsqG"));
    assert_eq!(state.history.len(), 1);
    assert_eq!(state.history[0].effective_at, T0 + 5, "history is at the event's created, not arrival");
}

#[tokio::test]
async fn the_pre_basil_shape_is_read_from_the_old_places() {
    let app = spawn_app().await;
    let mut obj = Sub::new("sub_old", "cus_old", T0).object();
    obj["current_period_start"] = json!(T0);
    obj["current_period_end"] = json!(T0 + 100);
    let item = obj["items"]["data"][0].as_object_mut().expect("item");
    item.remove("current_period_start");
    item.remove("current_period_end");
    obj["discount"] = json!({"coupon": {"id": "LAUNCH", "percent_off": 25.0, "duration": "forever"}, "start": T0, "end": null});
    let mut inv = invoice("in_old", "cus_old", "sub_old", "open", 2000, T0);
    inv.as_object_mut().expect("invoice").remove("parent");
    inv["subscription"] = json!("sub_old");

    app.deliver(&event("customer.subscription.created", T0, obj)).await;
    app.deliver(&event("invoice.finalized", T0 + 1, inv)).await;

    let state = app.state().await;
    assert_eq!(
        (state.subscriptions[0].current_period_start, state.subscriptions[0].current_period_end),
        (Some(T0), Some(T0 + 100))
    );
    assert_eq!(state.subscriptions[0].discounts, r#"["di_legacy_sub_old_LAUNCH"]"#);
    assert_eq!(state.discounts[0].percent_off, Some(25.0));
    assert_eq!(state.invoices[0].subscription.as_deref(), Some("sub_old"));
}

#[tokio::test]
async fn pause_cancellation_and_trial_fields_are_kept() {
    let app = spawn_app().await;
    let sub = Sub::new("sub_life", "cus_life", T0);
    let mut paused = sub.object();
    paused["pause_collection"] = json!({"behavior": "void", "resumes_at": T0 + 60 * 86_400});
    paused["trial_start"] = json!(T0 - 14 * 86_400);
    paused["trial_end"] = json!(T0);
    let mut canceling = sub.object();
    canceling["cancel_at_period_end"] = json!(true);
    canceling["cancel_at"] = json!(T0 + 30 * 86_400);
    canceling["canceled_at"] = json!(T0 + 10);
    canceling["cancellation_details"] =
        json!({"reason": "cancellation_requested", "feedback": "too_expensive", "comment": "pricey"});

    app.deliver(&event("customer.subscription.updated", T0 + 1, paused)).await;
    let state = app.state().await;
    let row = &state.subscriptions[0];
    assert_eq!((row.pause_behavior.as_deref(), row.pause_resumes_at), (Some("void"), Some(T0 + 60 * 86_400)));
    assert_eq!((row.trial_start, row.trial_end), (Some(T0 - 14 * 86_400), Some(T0)));
    assert!(state.history[0].collection_paused);

    app.deliver(&event("customer.subscription.updated", T0 + 10, canceling)).await;
    let state = app.state().await;
    let row = &state.subscriptions[0];
    assert!(row.cancel_at_period_end);
    assert_eq!((row.cancel_at, row.canceled_at), (Some(T0 + 30 * 86_400), Some(T0 + 10)));
    assert_eq!(row.cancel_feedback.as_deref(), Some("too_expensive"));
    assert_eq!(row.cancel_comment.as_deref(), Some("pricey"));
    assert_eq!(row.cancel_reason.as_deref(), Some("cancellation_requested"));
    assert_eq!(row.pause_behavior, None, "the newer snapshot cleared the pause");
    assert_eq!(state.history.len(), 2);
}

#[tokio::test]
async fn invoice_events_track_attempts_and_payment() {
    let app = spawn_app().await;
    let mut failed = invoice("in_f", "cus_f", "sub_f", "open", 4900, T0);
    failed["attempt_count"] = json!(2);
    failed["next_payment_attempt"] = json!(T0 + 3 * 86_400);
    let paid = invoice("in_f", "cus_f", "sub_f", "paid", 4900, T0);

    app.deliver(&event("invoice.payment_failed", T0 + 100, failed)).await;
    let row = app.state().await.invoices[0].clone();
    assert_eq!((row.status.as_deref(), row.attempt_count, row.next_payment_attempt), (Some("open"), 2, Some(T0 + 3 * 86_400)));
    assert_eq!(row.hosted_invoice_url.as_deref(), Some("https://invoice.stripe.com/i/in_f"));
    assert_eq!(
        (row.billing_reason.as_deref(), row.amount_due, row.currency.as_deref()),
        (Some("subscription_cycle"), 4900, Some("usd"))
    );

    app.deliver(&event("invoice.paid", T0 + 200, paid)).await;
    let row = app.state().await.invoices[0].clone();
    assert_eq!((row.status.as_deref(), row.amount_paid, row.paid_at), (Some("paid"), 4900, Some(T0)));
}

#[tokio::test]
async fn an_upcoming_invoice_is_kept_as_an_event_but_projects_nothing() {
    let app = spawn_app().await;
    let mut upcoming = invoice("in_x", "cus_u", "sub_u", "draft", 900, T0);
    upcoming.as_object_mut().expect("invoice").remove("id");
    app.deliver(&event("invoice.upcoming", T0, upcoming)).await;
    let state = app.state().await;
    assert_eq!(state.event_ids.len(), 1);
    assert!(state.invoices.is_empty());
}

#[tokio::test]
async fn customers_are_created_updated_and_deleted_and_checkout_leaves_a_stub() {
    let app = spawn_app().await;
    let mut session = fixture("checkout.session");
    session["customer"] = json!("cus_lc");
    session["mode"] = json!("subscription");
    session["customer_details"]["email"] = json!("from-checkout@example.com");
    app.deliver(&event("checkout.session.completed", T0, session)).await;
    assert_eq!(app.state().await.customers[0].email.as_deref(), Some("from-checkout@example.com"));

    app.deliver(&event("customer.created", T0 + 1, customer("cus_lc", "real@example.com", T0))).await;
    app.deliver(&event("customer.updated", T0 + 2, customer("cus_lc", "new@example.com", T0))).await;
    assert_eq!(app.state().await.customers[0].email.as_deref(), Some("new@example.com"));

    let mut deleted = fixture("deleted_customer");
    deleted["id"] = json!("cus_lc");
    app.deliver(&event("customer.deleted", T0 + 3, deleted)).await;
    let row = app.state().await.customers[0].clone();
    assert!(row.deleted);
    assert_eq!(row.email.as_deref(), None::<&str>, "deleted customers keep no address");
}

#[tokio::test]
async fn discounts_are_recorded_and_their_removal_too() {
    let app = spawn_app().await;
    let mut discount = fixture("discount");
    discount["id"] = json!("di_1");
    discount["subscription"] = json!("sub_d");
    discount["source"] = json!({"type": "coupon", "coupon": {"id": "SAVE30", "object": "coupon", "percent_off": 30.0, "duration": "repeating", "duration_in_months": 3}});
    discount["start"] = json!(T0);
    discount["end"] = json!(T0 + 90 * 86_400);

    app.deliver(&event("customer.discount.created", T0, discount.clone())).await;
    let row = app.state().await.discounts[0].clone();
    assert_eq!((row.coupon_id.as_deref(), row.percent_off, row.deleted), (Some("SAVE30"), Some(30.0), false));
    assert_eq!((row.starts_at, row.ends_at), (Some(T0), Some(T0 + 90 * 86_400)));

    app.deliver(&event("customer.discount.deleted", T0 + 5, discount)).await;
    assert!(app.state().await.discounts[0].deleted);
}

#[tokio::test]
async fn every_listed_event_type_is_accepted() {
    let app = spawn_app().await;
    let sub = Sub::new("sub_all", "cus_all", T0).object();
    let inv = invoice("in_all", "cus_all", "sub_all", "open", 100, T0);
    let types: [(&str, Value); 18] = [
        ("customer.created", customer("cus_all", "a@example.com", T0)),
        ("customer.updated", customer("cus_all", "a@example.com", T0)),
        ("customer.subscription.created", sub.clone()),
        ("customer.subscription.updated", sub.clone()),
        ("customer.subscription.paused", sub.clone()),
        ("customer.subscription.resumed", sub.clone()),
        ("customer.subscription.trial_will_end", sub.clone()),
        ("invoice.created", inv.clone()),
        ("invoice.finalized", inv.clone()),
        ("invoice.payment_failed", inv.clone()),
        ("invoice.payment_action_required", inv.clone()),
        ("invoice.upcoming", json!({"object": "invoice", "amount_due": 100})),
        ("invoice.marked_uncollectible", inv.clone()),
        ("invoice.voided", inv.clone()),
        ("invoice.paid", inv.clone()),
        ("invoice.payment_succeeded", inv.clone()),
        ("customer.subscription.deleted", sub.clone()),
        ("customer.deleted", customer("cus_all", "a@example.com", T0)),
    ];
    for (i, (kind, object)) in types.iter().enumerate() {
        app.deliver(&event(kind, T0 + i as i64, object.clone())).await;
    }
    let state = app.state().await;
    assert_eq!(state.event_ids.len(), types.len());
    assert_eq!(state.history.len(), 6);
    assert!(state.customers[0].deleted);
}

/// Run one statement on the test's database, whichever backend (test setup only).
async fn execute_sql(app: &TestApp, sql: &str) {
    match &app.store {
        holdfast::store::Store::Sqlite(s) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(s.pool()).await.map(drop),
        holdfast::store::Store::Postgres(s) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(s.pool()).await.map(drop)
        }
    }
    .expect("setup statement runs");
}

/// A gauge's value in `/metrics`.
async fn gauge(app: &TestApp, token: &str, name: &str) -> f64 {
    let body = app
        .client
        .get(format!("{}/metrics", app.address))
        .bearer_auth(token)
        .send()
        .await
        .expect("metrics answered")
        .text()
        .await
        .expect("metrics body");
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{body}"))
}

#[tokio::test]
async fn an_event_that_fails_to_project_parks_its_customer_and_everyone_else_goes_on() {
    const TOKEN: &str = "owner-token-for-parking-0123456789";
    let app = spawn_owner_app(TOKEN).await;
    app.clock.set(now());
    // Bad data, as the database sees it: a trigger refuses this one customer's row.
    let poison = if backend() == "postgres" {
        "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN IF NEW.id = 'cus_poison' THEN \
         RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION poison();"
    } else {
        "CREATE TRIGGER poison BEFORE INSERT ON customers WHEN NEW.id = 'cus_poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;"
    };
    execute_sql(&app, poison).await;

    app.deliver(&event("customer.created", T0, customer("cus_poison", "first@example.com", T0))).await;
    app.deliver(&event("customer.updated", T0 + 1, customer("cus_poison", "second@example.com", T0))).await;
    app.deliver(&event("customer.created", T0 + 2, customer("cus_fine", "fine@example.com", T0))).await;

    let state = app.state().await;
    let ids: Vec<&str> = state.customers.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["cus_fine"], "the other customer is projected; the failed one is not");
    assert_eq!(state.event_ids.len(), 3, "every acknowledged event is in the log");
    assert_eq!(gauge(&app, TOKEN, "holdfast_projector_parked_customers").await, 1.0);
    assert_eq!(gauge(&app, TOKEN, "holdfast_projector_parked_events").await, 2.0, "the later event waits behind");
    assert_eq!(gauge(&app, TOKEN, "holdfast_projector_lag_events").await, 0.0, "the log itself moved on");
    let lag = app.store.projector_lag(app.clock.now()).await.expect("lag readable");
    assert_eq!((lag.parked_customers, lag.parked_events), (1, 2));

    // Back-off: not retried before its time, even once the cause is gone.
    execute_sql(&app, if backend() == "postgres" { "DROP TRIGGER poison ON customers" } else { "DROP TRIGGER poison" }).await;
    app.store.retry_parked(app.clock.now()).await.expect("retry runs");
    assert_eq!(app.store.projector_lag(app.clock.now()).await.expect("lag").parked_customers, 1, "retried too early");

    app.clock.advance(11);
    app.store.retry_parked(app.clock.now()).await.expect("retry runs");
    let lag = app.store.projector_lag(app.clock.now()).await.expect("lag readable");
    assert_eq!((lag.parked_customers, lag.parked_events), (0, 0), "unparked once its events project");
    let state = app.state().await;
    let poisoned = state.customers.iter().find(|c| c.id == "cus_poison").expect("projected after the retry");
    assert_eq!(poisoned.email.as_deref(), Some("second@example.com"), "its events applied in order");
    assert_eq!(gauge(&app, TOKEN, "holdfast_projector_parked_customers").await, 0.0);
}

#[tokio::test]
async fn reproject_rebuilds_the_tables_from_the_log_without_email() {
    let (app, _sink) = crate::support::mail_world::app_with_sink(Config::new()).await;
    let t = now() - 3600;
    crate::support::mail_world::subscriber(&app, t - 86_400).await;
    app.deliver(&crate::support::mail_world::payment_failed("in_1", t, Some(t + 14 * 86_400))).await;
    let mut canceled = Sub::new("sub_1", "cus_1", t - 86_400);
    canceled.status = "canceled";
    app.deliver(&event("customer.subscription.deleted", t + 10, canceled.object())).await;
    app.deliver(&event("customer.updated", t + 20, customer("cus_1", "new@example.com", t - 86_400))).await;
    let live = app.state().await;
    let emails = app.store.outbox_rows().await.expect("outbox").len();
    assert!(emails > 0, "the failed payment queued mail");

    // A projection bug left a wrong row, and a table lost its rows: reproject repairs both.
    execute_sql(&app, "UPDATE customers SET email = 'wrong@example.com'").await;
    execute_sql(&app, "DELETE FROM subscription_history").await;
    let out = holdfast_cli(&app.database_url, &["reproject"]).await;
    assert!(out.contains("reprojected 5 events"), "{out}");

    assert_eq!(app.state().await, live, "the same state as the live path");
    assert_eq!(app.store.outbox_rows().await.expect("outbox").len(), emails, "no email from a reprojection");
    // The live path goes on after it.
    app.deliver(&event("customer.updated", t + 30, customer("cus_1", "newer@example.com", t - 86_400))).await;
    assert_eq!(app.state().await.customers[0].email.as_deref(), Some("newer@example.com"));
}

#[tokio::test]
async fn holdfast_migrate_upgrades_a_database_of_the_previous_release_in_place() {
    let (url, dir) = fresh_database().await;
    // The previous release: migrations up to 0007, events stored and projected by its
    // ingest transaction.
    let old = tempfile::tempdir().expect("dir");
    let source = format!("{}/migrations/{}", env!("CARGO_MANIFEST_DIR"), backend());
    for n in 1..=7 {
        let file = std::fs::read_dir(&source)
            .expect("migrations")
            .filter_map(Result::ok)
            .find(|f| f.file_name().to_string_lossy().starts_with(&format!("{n:04}_")))
            .expect("migration of the previous release");
        std::fs::copy(file.path(), old.path().join(file.file_name())).expect("copy");
    }
    let store = holdfast::store::Store::connect(&url).await.expect("connect");
    let migrator = sqlx::migrate::Migrator::new(old.path()).await.expect("old migrations");
    let e1 = event("customer.created", T0, customer("cus_old1", "one@example.com", T0));
    let e2 = event("customer.created", T0 + 1, customer("cus_old2", "two@example.com", T0));
    let insert_event = "INSERT INTO stripe_events (id, type, created, livemode, api_version, account, payload, received_at) \
                        VALUES ($1, 'customer.created', $2, false, NULL, NULL, $3, $2)";
    let insert_customer = "INSERT INTO customers (id, email, name, created, deleted, src_rank, src_created, src_event_id) \
                           VALUES ($1, $2, NULL, $3, false, 0, $3, $4)";
    macro_rules! old_release {
        ($pool:expr) => {{
            migrator.run($pool).await.expect("old migrations run");
            for (e, email) in [(&e1, "one@example.com"), (&e2, "two@example.com")] {
                let (id, created) = (e["id"].as_str().expect("id"), e["created"].as_i64().expect("created"));
                sqlx::query(insert_event).bind(id).bind(created).bind(e.to_string()).execute($pool).await.expect("event");
                let cus = e["data"]["object"]["id"].as_str().expect("customer id");
                sqlx::query(insert_customer).bind(cus).bind(email).bind(created).bind(id).execute($pool).await.expect("row");
            }
        }};
    }
    match &store {
        holdfast::store::Store::Sqlite(s) => old_release!(s.pool()),
        holdfast::store::Store::Postgres(s) => old_release!(s.pool()),
    }
    store.close().await;

    let out = holdfast_cli(&url, &["migrate"]).await;
    assert!(out.contains("migrations applied"), "{out}");

    let app = spawn_app_on(url, dir, Config::new()).await;
    assert_eq!(
        app.store.projector_position().await.expect("cursor"),
        app.store.log_head().await.expect("head"),
        "events the previous release projected are not projected again"
    );
    app.deliver(&event("customer.updated", T0 + 2, customer("cus_old1", "one-new@example.com", T0))).await;
    let state = app.state().await;
    let emails: Vec<(&str, Option<&str>)> = state.customers.iter().map(|c| (c.id.as_str(), c.email.as_deref())).collect();
    assert_eq!(emails, [("cus_old1", Some("one-new@example.com")), ("cus_old2", Some("two@example.com"))]);
    assert_eq!(state.event_ids.len(), 3);
}
