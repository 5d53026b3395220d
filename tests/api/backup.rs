//! `holdfast backup FILE` on a live database, then a restore: the copy, started as the
//! database, answers the same summary and holds the same state.

use std::process::Command;

use serde_json::Value;

use crate::support::helpers::{
    Config, Sub, TestApp, TestDb, backend, customer, event, invoice, now, spawn_app_on, spawn_owner_app,
};

const TOKEN: &str = "owner-token-backup-0123456789";

async fn summary(app: &TestApp) -> Value {
    let r = app.client.get(format!("{}/api/summary", app.address)).bearer_auth(TOKEN).send().await.expect("sent");
    assert_eq!(r.status(), 200);
    r.json().await.expect("summary JSON")
}

fn run_backup(database_url: &str, file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["backup", file.to_str().expect("utf-8 path")])
        .env_clear()
        .env("DATABASE_URL", database_url)
        .output()
        .expect("holdfast backup runs")
}

/// Twenty signed webhooks posted to `app` one after the other, each of which must be
/// acknowledged (the task panics otherwise).
fn keep_webhooks_arriving(app: &TestApp) -> tokio::task::JoinHandle<()> {
    let (address, client) = (app.address.clone(), app.client.clone());
    tokio::spawn(async move {
        for i in 0..20 {
            let e = event("customer.created", now(), customer(&format!("cus_live{i}"), "live@example.com", now()));
            let body = e.to_string();
            let header = holdfast::ingest::signature::sign(body.as_bytes(), crate::support::helpers::SECRET, now());
            let r = client
                .post(format!("{address}/webhooks/stripe"))
                .header("Stripe-Signature", header)
                .body(body)
                .send()
                .await
                .expect("sent");
            assert_eq!(r.status(), 200);
        }
    })
}

#[tokio::test]
async fn a_backup_of_a_live_database_restores_to_the_same_summary() {
    let app = spawn_owner_app(TOKEN).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("backup.db");
    if backend() == "postgres" {
        // Not silently skipped: the command refuses and says what to use instead.
        let out = run_backup(&app.database_url, &file);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"), "{out:?}");
        return;
    }
    let t = now() - 40 * 86_400;
    for i in 0..5 {
        let (cus, sub) = (format!("cus_bk{i}"), format!("sub_bk{i}"));
        app.deliver(&event("customer.created", t, customer(&cus, &format!("bk{i}@example.com"), t))).await;
        app.deliver(&event("customer.subscription.created", t + 1, Sub::new(&sub, &cus, t).object())).await;
        let inv = invoice(&format!("in_bk{i}"), &cus, &sub, "paid", 2000, t + 2);
        app.deliver(&event("invoice.paid", t + 2, inv)).await;
    }
    // Webhooks keep arriving while the backup runs: it must not block them or tear.
    let writer = keep_webhooks_arriving(&app);
    let out = tokio::task::spawn_blocking({
        let (url, file) = (app.database_url.clone(), file.clone());
        move || run_backup(&url, &file)
    })
    .await
    .expect("backup task");
    assert!(out.status.success(), "{out:?}");
    writer.await.expect("webhooks during the backup were acknowledged");
    let again = run_backup(&app.database_url, &file);
    assert!(!again.status.success(), "an existing file is never overwritten");
    let missing = run_backup("sqlite:///nonexistent/holdfast.db", &dir.path().join("other.db"));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"), "{missing:?}");

    // Restore: the copy becomes the database of a new instance.
    let restored_dir = tempfile::tempdir().expect("temp dir");
    let restored_file = restored_dir.path().join("holdfast.db");
    std::fs::copy(&file, &restored_file).expect("copy the backup into place");
    let url = format!("sqlite://{}", restored_file.display());
    let restored = spawn_app_on(url, Some(TestDb::Sqlite { _dir: restored_dir }), Config::new().owner_token(TOKEN)).await;

    let before = summary(&app).await;
    assert_eq!(summary(&restored).await, before, "the restored database gives the same summary");
    assert_eq!(before["active_customers_end"], 5, "the figures are not empty: {before}");
    let (original, copy) = (app.state().await, restored.state().await);
    assert!(copy.event_ids.len() >= 15, "every event acknowledged before the backup is in it");
    assert!(copy.event_ids.iter().all(|e| original.event_ids.contains(e)), "the copy is a snapshot of the original");
}
