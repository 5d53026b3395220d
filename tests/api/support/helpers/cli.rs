//! The `holdfast` binary run as a command against a test's database.

/// Run the `holdfast` binary against `database_url` and return its stdout. It runs on a
/// blocking thread: the test's runtime must keep driving the server it started (a projector
/// pass mid-transaction would otherwise hold SQLite's write lock until the command gave up).
pub async fn holdfast_cli(database_url: &str, args: &[&str]) -> String {
    let database_url = database_url.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (database_url, args) = (database_url.as_str(), args.as_slice());
        let dir = tempfile::tempdir().expect("dir");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("HOLDFAST_STRIPE_MODE", "test")
            .current_dir(dir.path())
            .output()
            .expect("holdfast runs");
        assert!(out.status.success(), "holdfast {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
