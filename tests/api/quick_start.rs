//! The README's quick start, run as a script so it cannot go stale: the `demo` and
//! `send-event` commands are read from the README's "Quick start" section and run as written
//! (the built binary for `cargo run --release --`, plus a free port), with a real Stripe key
//! and an SMTP server in the environment that the demo must not use. Then the printed links
//! are followed: the dashboard with the printed owner token, the cancel link, the
//! update-payment link (answered by the demo's Stripe stand-in) and the home page.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_holdfast");
const README: &str = include_str!("../../README.md");

/// The `cargo run --release -- …` commands of the quick start, as argument lists.
fn quick_start_commands() -> Vec<Vec<String>> {
    let section = README.split("\n## Quick start\n").nth(1).and_then(|s| s.split("\n## ").next()).expect("a Quick start section");
    section
        .lines()
        .filter_map(|l| l.trim().strip_prefix("cargo run --release -- "))
        .map(|rest| rest.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The demo process, stopped when the test ends (pass or fail).
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait (bounded) for the demo to print its links; the value after each `label:`.
fn printed(out: &Path, demo: &mut Demo) -> std::collections::HashMap<String, String> {
    for _ in 0..1200 {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if text.contains("Stop with Ctrl-C") {
            return text
                .lines()
                .filter_map(|l| l.trim().split_once(": "))
                .map(|(k, v)| (k.trim().to_owned(), v.split_whitespace().next().unwrap_or_default().to_owned()))
                .collect();
        }
        if let Ok(Some(status)) = demo.0.try_wait() {
            panic!("the demo exited ({status}) before printing its links:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the demo printed no links within 120 s:\n{}", std::fs::read_to_string(out).unwrap_or_default());
}

fn emails(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "eml")).count()).unwrap_or(0)
}

/// `holdfast demo` as the README runs it (on a free port) in `dir`, its output to `out`, with
/// a real-looking Stripe key and an SMTP server in the environment that it must not use.
fn start_demo(demo_args: &[String], dir: &Path, out: &Path, stripe_uri: &str, smtp: &TcpListener) -> Demo {
    let log = std::fs::File::create(out).expect("out file");
    Demo(
        Command::new(BIN)
            .args(demo_args)
            .args(["--bind", "127.0.0.1:0"])
            .env_remove("STRIPE_WEBHOOK_SECRET")
            .env_remove("HOLDFAST_BIND")
            .env_remove("RUST_LOG")
            .env("STRIPE_SECRET_KEY", "sk_live_must_not_be_used_by_the_demo")
            .env("STRIPE_API_BASE", stripe_uri)
            .env("SMTP_URL", format!("smtp://{}", smtp.local_addr().expect("addr")))
            .current_dir(dir)
            .stdout(Stdio::from(log.try_clone().expect("clone")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("holdfast demo starts"),
    )
}

/// `send-event` as the README runs it, against the demo at `base`: the event is stored as a
/// new one, and the dunning email it opens joins the `before` ones in `mail_dir`.
async fn assert_the_sample_event_is_stored_and_emailed(
    send_args: &[String],
    base: &str,
    dir: &Path,
    mail_dir: &Path,
    before: usize,
) {
    let sent = Command::new(BIN)
        .args(send_args)
        .args(["--url", base])
        .env_remove("STRIPE_WEBHOOK_SECRET")
        .current_dir(dir)
        .output()
        .expect("send-event runs");
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(sent.status.success(), "send-event: {said}\n{}", String::from_utf8_lossy(&sent.stderr));
    assert!(said.contains("200") && said.contains("\"duplicate\":false"), "stored as a new event: {said}");
    // A failed payment opens a dunning case: its first email follows.
    let mut after = before;
    for _ in 0..200 {
        after = emails(mail_dir);
        if after > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(after > before, "the sample invoice.payment_failed led to an email ({before} → {after})");
}

/// The printed owner `token` signs in at `base`, and the printed `dashboard` link then shows
/// every chart.
async fn assert_the_printed_token_opens_the_dashboard(client: &reqwest::Client, base: &str, token: &str, dashboard: &str) {
    let login = client.post(format!("{base}/dashboard/login")).form(&[("token", token)]).send().await.expect("login");
    assert_eq!(login.status(), 303, "the printed owner token signs in");
    let cookie = login.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("cookie").to_owned();
    let dashboard = client.get(dashboard).header("Cookie", cookie).send().await.expect("dashboard");
    assert_eq!(dashboard.status(), 200);
    let html = dashboard.text().await.expect("html");
    for id in ["chart-mrr", "chart-churn", "chart-cohorts", "chart-recovery", "chart-cancel_flow"] {
        assert!(html.contains(id), "{id} on the demo's dashboard");
    }
}

/// Stopped like any Holdfast: SIGTERM, then (bounded) exit status 0.
async fn assert_the_demo_exits_0_on_sigterm(demo: &mut Demo) {
    let status = Command::new("kill").args(["-TERM", &demo.0.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let mut exited = None;
    for _ in 0..300 {
        if let Some(s) = demo.0.try_wait().expect("try_wait") {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(exited.is_some_and(|s| s.success()), "the demo exits 0 on SIGTERM: {exited:?}");
}

/// The demo keeps its own SQLite database whatever the suite's backend: one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs sqlite"]
async fn sqlite_only_the_readme_quick_start_runs_as_written() {
    crate::support::requires::database("sqlite");
    let commands = quick_start_commands();
    let demo_args = commands.iter().find(|c| c.first().is_some_and(|a| a == "demo")).expect("the quick start runs `demo`");
    let send_args =
        commands.iter().find(|c| c.first().is_some_and(|a| a == "send-event")).expect("the quick start runs `send-event`");

    // Keys a user may have set: the demo must use neither.
    let stripe = MockServer::start().await;
    Mock::given(any()).respond_with(ResponseTemplate::new(500)).expect(0).named("real Stripe").mount(&stripe).await;
    let smtp = TcpListener::bind("127.0.0.1:0").expect("a port");
    smtp.set_nonblocking(true).expect("nonblocking");

    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("demo.out");
    let mut demo = start_demo(demo_args, dir.path(), &out, &stripe.uri(), &smtp);
    let links = printed(&out, &mut demo);
    let link = |label: &str| links.get(label).cloned().unwrap_or_else(|| panic!("the demo prints `{label}:`: {links:?}"));
    let base = link("home").trim_end_matches('/').to_owned();
    let mail_dir = dir.path().join(link("emails"));
    let before = emails(&mail_dir);
    assert!(before >= 1, "the demo's dunning email is in the mail folder");

    // The signed sample event, posted to the running demo.
    assert_the_sample_event_is_stored_and_emailed(send_args, &base, dir.path(), &mail_dir, before).await;

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let home = client.get(format!("{base}/")).send().await.expect("home");
    assert_eq!(home.status(), 200);
    let html = home.text().await.expect("html");
    assert!(html.contains("Holdfast") && html.contains("href=\"/dashboard\"") && html.contains("href=\"/docs\""), "{html}");
    let docs = client.get(format!("{base}/docs")).send().await.expect("docs").text().await.expect("text");
    assert!(docs.contains("\n## Quick start\n"), "/docs serves the README");

    // The dashboard, signed in with the printed token.
    assert_the_printed_token_opens_the_dashboard(&client, &base, &link("owner token"), &link("dashboard")).await;

    // The cancel link opens a session; the update-payment link goes to the stand-in's portal.
    let cancel = client.get(link("cancel link")).send().await.expect("cancel link");
    assert_eq!(cancel.status(), 303);
    assert!(cancel.headers()["location"].to_str().expect("ascii").starts_with("/cancel/s/"));
    let standin = link("Stripe calls").trim_end_matches('/').to_owned();
    let update = client.get(link("update payment")).send().await.expect("update link");
    assert_eq!(update.status(), 303);
    let portal = update.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(portal.starts_with(&format!("{standin}/portal")), "the portal is the stand-in's: {portal}");
    let page = client.get(&portal).send().await.expect("portal page").text().await.expect("html");
    assert!(page.contains("POST /v1/billing_portal/sessions") && page.contains("cus_demo_ada"), "{page}");
    assert!(page.contains("/v1/subscriptions/"), "the cancel-flow saves' calls are listed: {page}");

    // Stopped like any Holdfast: SIGTERM, exit 0.
    assert_the_demo_exits_0_on_sigterm(&mut demo).await;
    assert!(smtp.accept().is_err(), "the demo never connected to the SMTP server in the environment");
    // `stripe` verifies on drop that the real Stripe base received no request.
}
