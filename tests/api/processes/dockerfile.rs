//! The Dockerfile's runtime contract, and the check that guards it.

use std::process::Command;
/// Builds the Dockerfile's build stage from a context of only what it copies (offline, dev
/// profile, a target directory under target/ kept between runs), then runs the result as
/// the runtime stage would. The first run compiles the dependencies once more (minutes);
/// reruns recompile only the crate. The image's database is SQLite (its default): one run.
#[test]
#[ignore = "needs sqlite"]
fn sqlite_only_the_dockerfile_builds_from_its_own_context_and_runs() {
    crate::support::requires::database("sqlite");
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/scripts/check-dockerfile")).output().expect("python3 runs the check");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// The check itself fails for a Dockerfile that forgets a directory the code embeds, and for
/// one that copies something the context does not have.
#[test]
fn the_dockerfile_check_refuses_a_missing_copy_or_an_include_outside_the_copied_set() {
    let root = env!("CARGO_MANIFEST_DIR");
    let original = std::fs::read_to_string(format!("{root}/Dockerfile")).expect("Dockerfile");
    let dir = tempfile::tempdir().expect("dir");
    let check = |dockerfile: &str| {
        let path = dir.path().join("Dockerfile");
        std::fs::write(&path, dockerfile).expect("write");
        let out = Command::new(format!("{root}/scripts/check-dockerfile"))
            .args(["--static-only", "--dockerfile"])
            .arg(&path)
            .output()
            .expect("python3 runs the check");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, said) = check(&original);
    assert!(ok, "the real Dockerfile passes the static check: {said}");

    let (ok, said) = check(&original.replace("COPY templates ./templates\n", ""));
    assert!(!ok, "a Dockerfile without templates/ must fail: {said}");
    assert!(said.contains("templates/email/_layout.html") && said.contains("outside the files the Dockerfile copies"), "{said}");

    let (ok, said) =
        check(&original.replace("COPY templates ./templates\n", "COPY templates ./templates\nCOPY assets ./assets\n"));
    assert!(!ok, "a COPY of a missing path must fail: {said}");
    assert!(said.contains("COPY assets: not in the build context"), "{said}");
}
