//! The maintained figures (kept up to date by the projector, customer by customer) against a
//! from-scratch computation over the whole history, for every month and currency; and their
//! rebuild by `holdfast reproject` and on a database migrated from before they existed.

use holdfast::domain::month::Month;
use holdfast::figures::{CancelFlowJson, compute, summary};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::Value;

use crate::support::business::{OWNER_TOKEN, assert_close, business, deliver_all, stripe_events};
use crate::support::helpers::*;

/// Months compared past the history's first: the simulated 14 months and beyond them, where
/// every customer's figures repeat (its tail).
const MONTHS: i32 = 32;

/// Every month's summary from the maintained totals equals the one computed from the whole
/// history, in every currency.
async fn assert_maintained_match_from_scratch(app: &TestApp, when: &str) {
    let timeline = app.store.load_timeline().await.expect("history loads");
    let first = timeline.first_month().expect("a history");
    let last = first.plus(MONTHS);
    let currencies = timeline.currencies();
    assert!(!currencies.is_empty());
    for currency in currencies {
        let scratch = compute(&timeline, &currency, first, last);
        let maintained = app.store.maintained_report(Some(&currency), first, last).await.expect("maintained report");
        for i in 0..=MONTHS {
            let m = first.plus(i);
            let json = |r| serde_json::to_value(summary::summary(r, m, CancelFlowJson::default())).expect("json");
            assert_close(&format!("{when}: {currency} {m}"), &json(&maintained), &json(&scratch));
        }
    }
}

#[tokio::test]
async fn maintained_figures_equal_a_from_scratch_computation_every_month_after_a_random_stream() {
    let seed = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(23);
    let b = business(seed, 45);
    let app = spawn_owner_app(OWNER_TOKEN).await;
    let mut events = stripe_events(&b);
    let mut rng = StdRng::seed_from_u64(seed);
    let repeats: Vec<Value> = events.iter().step_by(4).cloned().collect();
    events.extend(repeats);
    events.shuffle(&mut rng);
    // Checked part-way too: a customer recomputed again later must replace, not add to,
    // what it contributed before.
    let thirds: Vec<&[Value]> = events.chunks(events.len().div_ceil(3)).collect();
    for (i, part) in thirds.iter().enumerate() {
        deliver_all(&app, part, 8).await;
        assert_maintained_match_from_scratch(&app, &format!("after part {}", i + 1)).await;
    }
}

async fn execute_sql(app: &TestApp, sql: &str) {
    match &app.store {
        holdfast::store::Store::Sqlite(s) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(s.pool()).await.map(drop),
        holdfast::store::Store::Postgres(s) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(s.pool()).await.map(drop)
        }
    }
    .expect("statement runs");
}

async fn every_summary(app: &TestApp) -> Vec<Value> {
    let first = Month::parse("2025-01").expect("month");
    let mut out = Vec::new();
    for i in 0..16 {
        let mut s = app.get_summary(&first.plus(i).to_string()).await;
        s.as_object_mut().map(|o| o.remove("emails"));
        out.push(s);
    }
    out
}

#[tokio::test]
async fn reproject_and_a_first_start_on_an_older_database_rebuild_the_same_figures() {
    let b = business(5, 30);
    let app = spawn_owner_app(OWNER_TOKEN).await;
    deliver_all(&app, &stripe_events(&b), 4).await;
    let live = every_summary(&app).await;
    assert!(live.iter().any(|s| s["mrr_end"].as_f64().unwrap_or(0.0) > 0.0), "the business has revenue");

    // The totals went wrong (a bug, a hand edit): reproject rebuilds them from the log.
    execute_sql(&app, "UPDATE metric_month_totals SET mrr_end = mrr_end + 12345").await;
    execute_sql(&app, "DELETE FROM metric_cohort_totals").await;
    let out = holdfast_cli(&app.database_url, &["reproject"]).await;
    assert!(out.contains("reprojected"), "{out}");
    assert_eq!(every_summary(&app).await, live, "reproject gives the same figures");
    assert_maintained_match_from_scratch(&app, "after reproject").await;

    // A database migrated from before the figures were maintained has empty tables and is
    // marked unbuilt: the next start (here `holdfast migrate`) builds them from the history.
    for table in ["metric_customers", "metric_month_totals", "metric_tail_totals", "metric_cohort_totals"] {
        execute_sql(&app, &format!("DELETE FROM {table}")).await;
    }
    execute_sql(&app, "UPDATE metric_state SET built = 0").await;
    holdfast_cli(&app.database_url, &["migrate"]).await;
    assert_eq!(every_summary(&app).await, live, "the first start's rebuild gives the same figures");
}

/// A pause whose `resumes_at` lies far beyond the months computed when it was projected ends
/// by the clock alone: no event comes. The customer is listed as due at the start of that
/// month; once the clock has passed it the scheduler recomputes the customer, and the month
/// shows the MRR back. Reads never correct: before the scheduler runs, the month still shows
/// the pause.
#[tokio::test]
async fn a_pause_resuming_twenty_months_ahead_shows_up_once_the_scheduler_passes_it() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    // Webhooks are signed by the real time, so the history is dated from it.
    let paused_at = now();
    let this_month = Month::of(paused_at);
    let created = this_month.plus(-1).start() + 86_400;
    let resume_month = this_month.plus(20);
    let resumes_at = resume_month.start() + 9 * 86_400;

    let sub = Sub::new("sub_longpause", "cus_longpause", created);
    app.deliver(&event("customer.subscription.created", created, sub.object())).await;
    let mut paused = sub.object();
    paused["pause_collection"] = serde_json::json!({"behavior": "void", "resumes_at": resumes_at});
    app.deliver(&event("customer.subscription.updated", paused_at, paused)).await;

    let mrr_end = |s: &Value| s["mrr_end"].as_f64().expect("mrr_end");
    let before = mrr_end(&app.get_summary(&this_month.plus(-1).to_string()).await);
    assert!(before > 0.0, "the subscription pays before its pause");
    let month_before_resume = resume_month.plus(-1).to_string();
    assert_eq!(mrr_end(&app.get_summary(&month_before_resume).await), 0.0, "paused until the resume");
    // Beyond what was computed when the pause was projected: the steady (paused) tail.
    assert_eq!(mrr_end(&app.get_summary(&resume_month.to_string()).await), 0.0);

    // The clock passes the resume; a read alone changes nothing.
    app.clock.set(resumes_at + 86_400);
    assert_eq!(mrr_end(&app.get_summary(&resume_month.to_string()).await), 0.0, "reads never correct");
    app.scheduler.try_run_once().await.expect("scheduler runs");
    assert_eq!(mrr_end(&app.get_summary(&resume_month.to_string()).await), before, "resumed by the clock");
    assert_eq!(mrr_end(&app.get_summary(&month_before_resume).await), 0.0);
    assert_maintained_match_from_scratch(&app, "after the scheduler").await;
    // Nothing else changes by the clock: the customer is no longer due.
    assert_eq!(app.scheduler.figures_due(resumes_at + 400 * 86_400).await.expect("due check"), 0);
}

/// Many customers falling due at once (here more than two of the scheduler's batches) are all
/// recomputed by one pass, batch after batch, and none is left due.
#[tokio::test]
async fn a_pass_over_more_customers_than_a_batch_recomputes_them_all() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    let paused_at = now();
    let this_month = Month::of(paused_at);
    let created = this_month.plus(-1).start() + 86_400;
    let resume_month = this_month.plus(20);
    let resumes_at = resume_month.start() + 9 * 86_400;
    let n = usize::try_from(holdfast::workers::scheduler::FIGURES_DUE_BATCH).expect("batch") * 2 + 5;
    let mut events = Vec::new();
    for i in 0..n {
        let sub = Sub::new(&format!("sub_many{i}"), &format!("cus_many{i}"), created);
        let mut paused = sub.object();
        paused["pause_collection"] = serde_json::json!({"behavior": "void", "resumes_at": resumes_at});
        events.push(event("customer.subscription.created", created, sub.object()));
        events.push(event("customer.subscription.updated", paused_at, paused));
    }
    deliver_all(&app, &events, 8).await;
    let mrr_end = |s: &Value| s["mrr_end"].as_f64().expect("mrr_end");
    let before = mrr_end(&app.get_summary(&this_month.plus(-1).to_string()).await);
    assert!(before > 0.0);
    assert_eq!(mrr_end(&app.get_summary(&resume_month.to_string()).await), 0.0);

    let later = resumes_at + 86_400;
    assert_eq!(app.scheduler.figures_due(later).await.expect("due pass"), n, "every due customer, in one pass");
    assert_eq!(mrr_end(&app.get_summary(&resume_month.to_string()).await), before, "all resumed");
    assert_eq!(app.scheduler.figures_due(later).await.expect("due pass"), 0, "none left due");
}

/// The dashboard's retention by acquisition channel is counted in the database: each
/// customer counts at an age (1, 3, 6, 12 months after its first subscription began) once it
/// reached it, and as kept when still subscribed then; channel values that show alike are one
/// channel.
#[tokio::test]
async fn channel_cohorts_count_only_customers_old_enough_for_each_age() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    let t = now();
    let month = 2_629_800;
    let subscribe = |customer: &str, source: &str, started: i64, ended: Option<i64>| {
        let mut c = customer_object(customer, started);
        c["metadata"] = serde_json::json!({"utm_source": source});
        let mut s = Sub::new(&format!("sub_{customer}"), customer, started).object();
        if let Some(end) = ended {
            s["status"] = serde_json::json!("canceled");
            s["canceled_at"] = serde_json::json!(end);
            s["ended_at"] = serde_json::json!(end);
        }
        (c, s, ended.unwrap_or(started))
    };
    for (c, s, at) in [
        subscribe("cus_ch1", "ads", t - 4 * month - 86_400, None),
        subscribe("cus_ch2", " ads ", t - 4 * month - 86_400, Some(t - 2 * month - 86_400)),
        subscribe("cus_ch3", "ads", t - 10 * 86_400, None),
    ] {
        let created = c["created"].as_i64().expect("created");
        app.deliver(&event("customer.created", created, c)).await;
        app.deliver(&event("customer.subscription.updated", at + 1, s)).await;
    }
    let fig = owner_figures(&app).await;
    let channels = fig["channels"].as_array().expect("channels");
    assert_eq!(channels.len(), 1, "{channels:?}");
    let ads = &channels[0];
    assert_eq!((ads["channel"].as_str(), ads["customers"].as_u64()), (Some("ads"), Some(3)));
    assert_eq!(ads["retention"]["numerator"], 2, "two still pay");
    let ages: Vec<(u64, u64, u64)> = ads["after"]
        .as_array()
        .expect("ages")
        .iter()
        .map(|p| {
            let n = |v: &Value| v.as_u64().unwrap_or(99);
            (n(&p["months"]), n(&p["rate"]["numerator"]), n(&p["rate"]["sample"]))
        })
        .collect();
    // The newest is not a month old; of the two older ones, one left two months in.
    assert_eq!(ages, [(1, 2, 2), (3, 1, 2), (6, 0, 0), (12, 0, 0)]);
}

fn customer_object(id: &str, created: i64) -> Value {
    customer(id, &format!("{id}@example.com"), created)
}

/// `GET /api/figures` for this month, as the owner.
async fn owner_figures(app: &TestApp) -> Value {
    let response = app.client.get(format!("{}/api/figures", app.address)).bearer_auth(OWNER_TOKEN).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// The dashboard's MRR by plan, by plan name.
async fn plans(app: &TestApp) -> std::collections::BTreeMap<String, (f64, u64)> {
    owner_figures(app).await["mrr_by_plan"]
        .as_array()
        .expect("plans")
        .iter()
        .map(|p| {
            let name = p["plan"].as_str().expect("plan name").to_owned();
            (name, (p["mrr"].as_f64().expect("mrr"), p["subscriptions"].as_u64().expect("subscriptions")))
        })
        .collect()
}

/// MRR by plan is kept per subscription as events are projected: a live subscription's MRR is
/// shared among its items by their monthly list prices (a yearly price counts a twelfth); a
/// price's new name shows at once; an ended subscription leaves. `holdfast reproject` and the
/// first start on a database from before it was kept rebuild the same breakdown.
#[tokio::test]
async fn mrr_by_plan_shares_each_subscription_by_list_price_and_follows_every_change() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    let t = now() - 3 * 86_400;
    app.deliver(&event("customer.created", t, customer_object("cus_plan", t))).await;
    let mut s = Sub::new("sub_plan", "cus_plan", t).object();
    let mut yearly = s["items"]["data"][0].clone();
    yearly["id"] = serde_json::json!("si_plan_yearly");
    yearly["price"]["id"] = serde_json::json!("price_team_yearly");
    yearly["price"]["unit_amount"] = serde_json::json!(24_000);
    yearly["price"]["unit_amount_decimal"] = serde_json::json!("24000");
    yearly["price"]["recurring"]["interval"] = serde_json::json!("year");
    s["items"]["data"].as_array_mut().expect("items").push(yearly);
    app.deliver(&event("customer.subscription.created", t + 1, s.clone())).await;
    app.wait_projected().await;
    // 2,000 a month and 24,000 a year: equal halves of the subscription's MRR.
    let halves = plans(&app).await;
    assert_eq!(halves.len(), 2, "{halves:?}");
    let (monthly, yearly_share) = (halves["price_basic_monthly"], halves["price_team_yearly"]);
    assert!(monthly.0 > 0.0 && (monthly.0 - yearly_share.0).abs() < 1e-6, "{halves:?}");
    assert_eq!((monthly.1, yearly_share.1), (1, 1));
    let mrr = monthly.0 + yearly_share.0;

    // Three seats of the monthly price: 6,000 against 2,000 a month.
    s["items"]["data"][0]["quantity"] = serde_json::json!(3);
    app.deliver(&event("customer.subscription.updated", t + 2, s.clone())).await;
    let mut price = fixture("price");
    price["id"] = serde_json::json!("price_team_yearly");
    price["nickname"] = serde_json::json!("Team (yearly)");
    price["transform_quantity"] = Value::Null;
    app.deliver(&event("price.updated", t + 3, price)).await;
    app.wait_projected().await;
    let seats = plans(&app).await;
    let (monthly, team) = (seats["price_basic_monthly"].0, seats["Team (yearly)"].0);
    assert!((monthly - 3.0 * team).abs() < 1e-6, "shared by list price: {seats:?}");
    assert!(monthly + team > mrr, "three seats pay more: {seats:?}");

    for (what, rebuild) in [("reproject", ["reproject"]), ("a first start", ["migrate"])] {
        if what == "a first start" {
            for table in ["metric_plan_shares", "metric_acquisition"] {
                execute_sql(&app, &format!("DELETE FROM {table}")).await;
            }
            execute_sql(&app, "UPDATE metric_state SET built = 0").await;
        } else {
            execute_sql(&app, "UPDATE metric_plan_shares SET mrr = mrr + 999").await;
        }
        holdfast_cli(&app.database_url, &rebuild).await;
        let rebuilt = plans(&app).await;
        assert_eq!(rebuilt.keys().collect::<Vec<_>>(), seats.keys().collect::<Vec<_>>(), "{what}");
        for (plan, (mrr, n)) in &seats {
            assert!((rebuilt[plan].0 - mrr).abs() < 1e-6 && rebuilt[plan].1 == *n, "{what}: {rebuilt:?} vs {seats:?}");
        }
    }

    s["status"] = serde_json::json!("canceled");
    s["canceled_at"] = serde_json::json!(t + 4);
    s["ended_at"] = serde_json::json!(t + 4);
    app.deliver(&event("customer.subscription.deleted", t + 4, s)).await;
    app.wait_projected().await;
    assert!(plans(&app).await.is_empty(), "an ended subscription has no MRR");
}

/// A customer whose channel metadata changes moves to the new channel on the dashboard.
#[tokio::test]
async fn a_customer_whose_channel_changes_moves_to_the_new_channel() {
    let app = spawn_owner_app(OWNER_TOKEN).await;
    let t = now() - 86_400;
    let mut c = customer_object("cus_moves", t);
    c["metadata"] = serde_json::json!({"utm_source": "ads"});
    app.deliver(&event("customer.created", t, c.clone())).await;
    app.deliver(&event("customer.subscription.created", t + 1, Sub::new("sub_moves", "cus_moves", t).object())).await;
    let channels = |fig: Value| -> Vec<(String, u64)> {
        fig["channels"]
            .as_array()
            .expect("channels")
            .iter()
            .map(|c| (c["channel"].as_str().unwrap_or("").to_owned(), c["customers"].as_u64().unwrap_or(0)))
            .collect()
    };
    app.wait_projected().await;
    assert_eq!(channels(owner_figures(&app).await), [("ads".to_owned(), 1)]);
    c["metadata"] = serde_json::json!({"utm_source": "newsletter"});
    app.deliver(&event("customer.updated", t + 2, c)).await;
    app.wait_projected().await;
    assert_eq!(channels(owner_figures(&app).await), [("newsletter".to_owned(), 1)]);
}

/// A backlog (a restart after an outage, an import) is worked through in many passes. Behind
/// the log, a pass marks the customers it touches stale instead of recomputing them, so a
/// customer with events in many passes is recomputed once; marks older than a few
/// seconds, and all of them once the projector reaches the end of the log, are recomputed.
/// The figures then equal a computation from the whole history, and no mark is left.
#[tokio::test]
async fn figures_left_behind_in_a_backlog_are_recomputed_once_and_exact_at_its_end() {
    use holdfast::domain::event::Event;
    use holdfast::store::{IngestOptions, Store};

    let events = stripe_events(&business(11, 60));
    let (url, dir) = fresh_database().await;
    let store = Store::connect(&url).await.expect("store");
    store.migrate().await.expect("migrated");
    let parsed: Vec<Event> = events.iter().map(|e| Event::parse(e.to_string().as_bytes()).expect("an event")).collect();
    let (_, head, durability) =
        store.append_committed(&parsed.iter().collect::<Vec<_>>(), now(), IngestOptions::IMPORT).await.expect("appended");
    durability.wait().await.expect("durable");
    let head = head.expect("events appended");
    let pass = 100;
    assert!(head > 5 * pass, "a backlog of several passes: {head} events");

    let t = now();
    let stale = async |at| store.projector_lag(at).await.expect("lag readable").stale_figures;
    let first = store.project_batch(pass, t).await.expect("first pass");
    assert_eq!((first.events, first.figures_pending), (pass as usize, true), "behind the log: figures pending");
    let marked = stale(t).await;
    assert!(marked > 0, "behind the log, the touched customers wait");
    store.project_batch(pass, t).await.expect("second pass");
    assert!(stale(t).await >= marked, "within the allowed delay, marks only add up");
    // A minute later, still behind the log: every mark is older than allowed, and recomputed.
    let later = store.project_batch(pass, t + 60).await.expect("third pass");
    assert!(!later.figures_pending);
    assert_eq!(stale(t + 60).await, 0, "old marks are recomputed even behind the log");
    let fourth = store.project_batch(pass, t + 60).await.expect("fourth pass");
    assert!(fourth.figures_pending && stale(t + 60).await > 0, "the next pass behind the log marks again");
    store.project_through(head, t + 60).await.expect("the rest");
    assert_eq!(stale(t + 60).await, 0, "at the end of the log nothing is left behind");
    store.close().await;

    let app = spawn_app_on(url, dir, Config::new().owner_token(OWNER_TOKEN)).await;
    app.wait_projected().await;
    assert_maintained_match_from_scratch(&app, "after the backlog").await;
}
