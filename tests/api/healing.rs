//! Background parts heal by themselves: while the projector can't write (the SQLite file
//! locked by another process, the Postgres database refusing connections) or the outbox can't
//! reach the mail server, `/readyz` first lists the failure, then — once it has lasted the
//! grace — answers 503 naming the part, the reason and for how long; when the cause goes away
//! the part recovers without a restart and `/readyz` is 200 again.

use std::time::Duration;

use holdfast::health::UNREADY_AFTER_SECS;
use serde_json::Value;
use sqlx::Connection;

use crate::support::helpers::*;
use crate::support::mail_world::{DAY, app_with_sink, payment_failed, subscriber};

/// Poll `/readyz` until `want(status, body)` holds (bounded: the state must come by itself).
async fn wait_readyz(app: &TestApp, what: &str, want: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    for _ in 0..300 {
        let response = app.get("/readyz").await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if want(status, &body) {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("/readyz never showed {what}");
}

/// The entry for `part` in `/readyz`'s `failing` list.
fn failing(body: &Value, part: &str) -> Option<Value> {
    body["failing"].as_array()?.iter().find(|f| f["part"] == part).cloned()
}

fn customer_event(id: &str) -> Value {
    event("customer.created", now(), customer(id, &format!("{id}@example.com"), now()))
}

/// After the grace, `/readyz` is 503 and its message names `expected`.
async fn assert_unready_with(app: &TestApp, expected: &str) {
    app.clock.advance(UNREADY_AFTER_SECS);
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("JSON");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("{expected} for ")), "{expected:?} not in {body}");
    assert_eq!(app.get("/healthz").await.status(), 200, "the process stays up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs sqlite"]
async fn sqlite_only_a_locked_database_makes_the_projector_unready_with_the_reason_until_the_lock_goes() {
    crate::support::requires::database("sqlite");
    let app = spawn_app().await;
    app.deliver(&customer_event("cus_before")).await;

    // Another process's write transaction holds the lock past the projector's busy_timeout.
    let mut other = sqlx::SqliteConnection::connect(&app.database_url).await.expect("second connection");
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.expect("write lock");
    let (status, body) = wait_readyz(&app, "the projector failing", |_, b| failing(b, "projector").is_some()).await;
    assert_eq!(status, 200, "a failure younger than the grace is listed, not held against readiness: {body}");
    assert_eq!(failing(&body, "projector").expect("listed")["reason"], "database locked");
    assert_unready_with(&app, "projector: database locked").await;

    sqlx::query("ROLLBACK").execute(&mut other).await.expect("release");
    wait_readyz(&app, "ready again", |s, b| s == 200 && failing(b, "projector").is_none()).await;
    app.deliver(&customer_event("cus_after")).await;
    let ids: Vec<String> = app.state().await.customers.into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["cus_after", "cus_before"], "projecting again without a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs postgres"]
async fn postgres_only_a_lost_database_makes_the_projector_unready_with_the_reason_until_it_returns() {
    crate::support::requires::database("postgres");
    let app = spawn_app().await;
    app.deliver(&customer_event("cus_before")).await;

    // The database refuses connections and every open one is terminated, as in an outage.
    let name = app.database_url.rsplit('/').next().expect("database name").to_owned();
    let admin_url = std::env::var("TEST_POSTGRES_URL").expect("TEST_POSTGRES_URL");
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("admin connection");
    let run = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
    run(format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false")).execute(&mut admin).await.expect("refuse");
    // Only the app's own connections: an autovacuum worker on the new database runs as the
    // superuser, and terminating it is refused to the test's role.
    run(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid() \
         AND backend_type = 'client backend'"
    ))
    .execute(&mut admin)
    .await
    .expect("terminate");
    let (status, body) = wait_readyz(&app, "the projector failing", |_, b| failing(b, "projector").is_some()).await;
    assert_eq!(status, 503, "the database itself is unreachable: {body}");
    assert_eq!(failing(&body, "projector").expect("listed")["reason"], "database unavailable");
    assert_unready_with(&app, "projector: database unavailable").await;

    run(format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true")).execute(&mut admin).await.expect("allow");
    wait_readyz(&app, "ready again", |s, b| s == 200 && failing(b, "projector").is_none()).await;
    app.deliver(&customer_event("cus_after")).await;
    let ids: Vec<String> = app.state().await.customers.into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["cus_after", "cus_before"], "projecting again without a restart");
}

#[tokio::test]
async fn a_mail_server_down_makes_the_outbox_unready_with_the_reason_until_it_answers_again() {
    let (app, sink) = app_with_sink(Config::new()).await;
    let t = now() - 60;
    subscriber(&app, t - DAY).await;
    app.deliver(&payment_failed("in_1", t, Some(t + 3 * DAY))).await;
    sink.set_down(true);

    let at = now();
    app.clock.set(at);
    app.outbox.run_until_idle_at(at).await.expect("a pass with the mail server down still works");
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert!(failing(&body, "mail server").is_some(), "{body}");
    assert_unready_with(&app, "mail server: unreachable (emails wait and are retried)").await;

    // Back: the waiting email goes at its retry time, and readiness returns by itself.
    sink.set_down(false);
    app.clock.set(at + 60);
    assert_eq!(app.outbox.run_until_idle_at(at + 60).await.expect("pass"), 1);
    assert_eq!(sink.messages().len(), 1);
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["failing"], serde_json::json!([]));
}
