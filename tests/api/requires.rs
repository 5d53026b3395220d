//! Tests that need something this machine may lack are chosen before the run, never skipped
//! from inside (libtest counts an early return as a pass). The convention:
//!
//! - `browser_*`: needs chromium + chromedriver, `#[ignore = "needs a browser …"]`;
//! - `postgres_only_*`: needs `TEST_DATABASE=postgres`, `#[ignore = "needs postgres"]`;
//! - `sqlite_only_*`: needs the SQLite run, `#[ignore = "needs sqlite"]`.
//!
//! `scripts/test` runs them with `--include-ignored` where the requirement is met and
//! `--skip`s (and reports as skipped) the rest. Run by hand without the requirement, such a
//! test fails with a message instead of passing without having run.

use crate::helpers::backend;

/// Fail unless the suite runs on `wanted` (`postgres` or `sqlite`).
pub fn database(wanted: &str) {
    assert_eq!(backend(), wanted, "this test needs the {wanted} run (scripts/test selects it by its name prefix {wanted}_only_)");
}

/// The chromedriver to use, or a failure naming what to install.
pub fn chromedriver() -> String {
    let candidates =
        [std::env::var("CHROMEDRIVER").ok(), Some("chromedriver".into()), Some("/usr/lib/chromium/chromedriver".into())];
    candidates
        .into_iter()
        .flatten()
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .unwrap_or_else(|| {
            panic!("this browser test needs chromedriver (apt-get install chromium chromium-driver, or set CHROMEDRIVER); scripts/test skips browser_* tests without it")
        })
}
