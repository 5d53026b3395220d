//! A per-test database on whichever backend `TEST_DATABASE` names, removed when the test ends.

use holdfast::store::Store;

/// Which database the suite runs on.
pub fn backend() -> &'static str {
    match std::env::var("TEST_DATABASE").as_deref() {
        Ok("postgres") => "postgres",
        _ => "sqlite",
    }
}

/// A test's database, removed when the test ends (pass or panic): the SQLite file's temp
/// directory, or the Postgres database (dropped, so the cluster holds no more after a run
/// than before it).
pub enum TestDb {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Postgres { admin_url, name } = self {
            drop_postgres_database(admin_url.clone(), name.clone());
        }
    }
}

/// `DROP DATABASE … WITH (FORCE)` (the app's pool may still hold connections), on a thread
/// of its own: `Drop` can't await, and the test's runtime may be the current thread.
///
/// The test waits for the drop at most `DROP_WAIT`, then leaves it running. The drop can
/// need the test's own runtime: a pool connection of the app that is mid-handshake (the
/// server waiting for its SASL answer) only moves when that runtime runs, and
/// `DROP … WITH (FORCE)` waits for it; joining would block the runtime until the server's
/// `authentication_timeout` (60 s) cut the connection. A drop still running when the test
/// binary exits is swept by `scripts/test`.
fn drop_postgres_database(admin_url: String, name: String) {
    const DROP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
    let target = name.clone();
    let (done, outcome) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("drop-test-db".into()).spawn(move || {
        let result =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string()).and_then(|runtime| {
                runtime.block_on(async {
                    // A busy cluster (the whole suite's pools open at once) can refuse or time
                    // out one attempt; a few more keep the cluster from collecting leftovers.
                    let mut last = String::new();
                    for attempt in 0..5u32 {
                        if attempt > 0 {
                            tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                        }
                        match try_drop(&admin_url, &target).await {
                            Ok(()) => return Ok(()),
                            Err(e) => last = e,
                        }
                    }
                    Err(last)
                })
            });
        if let Err(e) = &result {
            eprintln!("warning: could not drop the test database {target}: {e}");
        }
        // The test may have stopped listening; the outcome was reported above.
        let _ = done.send(());
    });
    // Never panic in a drop (a second panic while unwinding aborts the whole suite).
    match spawned {
        Ok(_) => {
            // Not done in time: the thread goes on by itself (see above).
            let _ = outcome.recv_timeout(DROP_WAIT);
        }
        Err(e) => eprintln!("warning: no thread to drop the test database {name}: {e}"),
    }
}

async fn try_drop(admin_url: &str, name: &str) -> Result<(), String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.map_err(|e| e.to_string())?;
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.map_err(|e| e.to_string())?;
    conn.close().await.map_err(|e| e.to_string())
}

/// A fresh database URL: a temp SQLite file, or a new Postgres database, with the guard that
/// removes it (keep it alive as long as the database is used).
pub async fn fresh_database() -> (String, Option<TestDb>) {
    if backend() == "postgres" {
        let admin = std::env::var("TEST_POSTGRES_URL")
            .expect("TEST_DATABASE=postgres needs TEST_POSTGRES_URL (postgres://user:pass@host/db)");
        let name = format!("holdfast_test_{}", uuid::Uuid::new_v4().simple());
        let store = Store::connect(&admin).await.expect("connect to TEST_POSTGRES_URL");
        let Store::Postgres(pg) = &store else { unreachable!("postgres URL") };
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(pg.pool())
            .await
            .expect("create test database");
        store.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).expect("URL has a database path");
        let url = format!("{base}/{name}");
        (url, Some(TestDb::Postgres { admin_url: admin, name }))
    } else {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/holdfast.db", dir.path().display());
        (url, Some(TestDb::Sqlite { _dir: dir }))
    }
}
