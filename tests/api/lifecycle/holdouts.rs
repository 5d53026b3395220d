//! Holdouts of lifecycle series: nothing is sent to the held out, and the summary reports each
//! series' outcome per arm with its interval.

use serde_json::{Value, json};

use crate::support::helpers::{Config, Sub, TestApp, customer, event, now};
use crate::support::lifecycle::{OWNER, canceled, first_payment, post_activity, series_status, summary};
use crate::support::mail_world::{DAY, app_with_sink};
use crate::support::smtp_sink::SmtpSink;
/// A seeded population for the holdout tests: SplitMix64, the same draws on every run.
struct Seeded(u64);

impl Seeded {
    fn chance(&mut self, p: f64) -> bool {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) as f64 / u64::MAX as f64) < p
    }
}

/// The app with the `campaign` series on, half its customers held out
/// (`[lifecycle.<campaign>] holdout_percent = 50`), and the owner API; the directory holds
/// the config file.
async fn app_with_holdout(campaign: &str) -> (TestApp, SmtpSink, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("holdfast.toml");
    std::fs::write(&file, format!("[lifecycle.{campaign}]\nholdout_percent = 50\n")).expect("config");
    let (app, sink) = app_with_sink(Config::new().file(&file).campaign_on(campaign).owner_token(OWNER)).await;
    (app, sink, dir)
}

#[tokio::test]
async fn a_winback_holdout_gets_no_email_and_the_summary_reports_reactivation_per_arm_with_its_interval() {
    let (app, _sink, _dir) = app_with_holdout("winback").await;
    // 100 voluntary cancellations; a known effect: 60 % of the treated come back within 90
    // days, 30 % of the held out.
    let (t0, t) = (now() - 40 * DAY, now() - 3600);
    let mut rng = Seeded(0x5EED_2026);
    let mut expected: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    let mut held_out = Vec::new();
    for i in 0..100 {
        let (cus, sub) = (format!("cus_w{i}"), format!("sub_w{i}"));
        app.deliver(&event("customer.created", t0, customer(&cus, &format!("{cus}@example.com"), t0))).await;
        app.deliver(&event("customer.subscription.created", t0, Sub::new(&sub, &cus, t0).object())).await;
        app.deliver(&canceled(&sub, &cus, t0, t, "cancellation_requested")).await;
        let arm = holdfast::lifecycle::rules::series_arm("winback", &cus, 50).expect("an arm");
        let back = rng.chance(if arm == "holdout" { 0.3 } else { 0.6 });
        if back {
            app.deliver(&event("customer.subscription.created", t + 60, Sub::new(&format!("{sub}b"), &cus, t + 60).object()))
                .await;
        }
        let e = expected.entry(arm).or_default();
        e.0 += u64::from(back);
        e.1 += 1;
        if arm == "holdout" {
            held_out.push(format!("{cus}@example.com"));
        }
    }
    // The holdout's series are recorded, and nothing is written to them.
    let rows = app.store.outbox_rows().await.expect("outbox");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| !held_out.contains(&r.recipient)), "no email to the holdout");
    assert_eq!(series_status(&app, "winback").await.len(), 100);

    // 91 days later every series is decided.
    app.clock.advance(91 * DAY);
    let s = summary(&app).await;
    let x = s["experiments"].as_array().expect("experiments").iter().find(|x| x["name"] == "lifecycle:winback").cloned();
    let x = x.expect("the winback holdout is reported");
    assert_eq!((x["kind"].as_str(), x["holdout_percent"].as_u64()), (Some("lifecycle_email"), Some(50)), "{x}");
    let arm = |v: &str| x["arms"].as_array().expect("arms").iter().find(|a| a["variant"] == v).cloned().expect("arm");
    let (treated, holdout) = (arm("treated"), arm("holdout"));
    for (name, a) in [("treated", &treated), ("holdout", &holdout)] {
        let (successes, decided) = expected[name];
        assert_eq!(
            (a["successes"].as_u64(), a["decided"].as_u64(), a["undecided"].as_u64()),
            (Some(successes), Some(decided), Some(0)),
            "{x}"
        );
        assert_eq!(a["outcome"], "reactivated_within_90_days");
    }
    assert_the_lift_is_measured_with_its_interval(&x, &treated, expected["treated"], expected["holdout"]);
}

/// The treated arm of experiment `x` is measured: its lift over the holdout is the difference
/// of the two arms' rates (`(successes, decided)` each), with the interval the domain computes,
/// and the true effect of the seeded population (+30 points) lies inside it.
fn assert_the_lift_is_measured_with_its_interval(x: &Value, treated: &Value, (ts, tn): (u64, u64), (hs, hn): (u64, u64)) {
    assert!(tn >= 30 && hn >= 30, "the seeded split fills both arms: {tn} / {hn}");
    assert_eq!(treated["status"], "measured", "{x}");
    let lift = &treated["lift"];
    let difference = ts as f64 / tn as f64 - hs as f64 / hn as f64;
    assert!((lift["difference"].as_f64().expect("difference") - difference).abs() < 1e-6, "{x}");
    let interval = holdfast::domain::lift::lift_vs_holdout((ts, tn), (hs, hn)).expect("interval");
    assert!((lift["ci_low"].as_f64().expect("low") - interval.low).abs() < 1e-6, "{x}");
    assert!((lift["ci_high"].as_f64().expect("high") - interval.high).abs() < 1e-6, "{x}");
    assert!(
        lift["ci_low"].as_f64() < Some(0.3) && lift["ci_high"].as_f64() > Some(0.3),
        "the true effect (+30 points) is inside: {x}"
    );
}

#[tokio::test]
async fn an_onboarding_holdout_is_measured_on_paying_at_day_60() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("holdfast.toml");
    std::fs::write(&file, "[lifecycle.onboarding]\nholdout_percent = 50\n").expect("config");
    let (app, _sink) = app_with_sink(Config::new().file(&file).campaign_on("onboarding").owner_token(OWNER)).await;
    let t = now() - 3600;
    let mut expected: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for i in 0..8 {
        let (cus, sub) = (format!("cus_o{i}"), format!("sub_o{i}"));
        app.deliver(&event("customer.created", t, customer(&cus, &format!("{cus}@example.com"), t))).await;
        app.deliver(&event("customer.subscription.created", t, Sub::new(&sub, &cus, t).object())).await;
        app.deliver(&first_payment(&format!("in_o{i}"), &cus, &sub, t)).await;
        // Every third customer leaves within the 60 days.
        let stays = i % 3 != 0;
        if !stays {
            app.deliver(&canceled(&sub, &cus, t, t + 60, "cancellation_requested")).await;
        }
        let arm = holdfast::lifecycle::rules::series_arm("onboarding", &cus, 50).expect("an arm");
        let e = expected.entry(arm).or_default();
        e.0 += u64::from(stays);
        e.1 += 1;
    }
    // Before day 60 nothing is decided; after it, every series is.
    let arms = |s: &Value| {
        let x = s["experiments"].as_array().expect("experiments").iter().find(|x| x["name"] == "lifecycle:onboarding").cloned();
        x.expect("reported")["arms"].as_array().expect("arms").clone()
    };
    for a in arms(&summary(&app).await) {
        assert_eq!((a["decided"].as_u64(), a["outcome"].as_str()), (Some(0), Some("paying_at_day_60")), "{a}");
    }
    app.clock.advance(61 * DAY);
    for a in arms(&summary(&app).await) {
        let (successes, decided) = expected.get(a["variant"].as_str().expect("variant")).copied().unwrap_or_default();
        assert_eq!((a["successes"].as_u64(), a["decided"].as_u64()), (Some(successes), Some(decided)), "{a}");
        if a["variant"] == "treated" {
            assert_eq!(a["status"], "not_enough_data", "{a}");
        }
    }
}

#[tokio::test]
async fn a_reengagement_holdout_is_measured_on_activity_resumed_within_14_days() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("holdfast.toml");
    std::fs::write(&file, "[lifecycle.reengagement]\nholdout_percent = 50\n").expect("config");
    let (app, _sink) = app_with_sink(Config::new().file(&file).campaign_on("reengagement").owner_token(OWNER)).await;
    // The at-risk check ran 20 days ago (the activity API takes times up to now only).
    let t = now() - 20 * DAY;
    let mut expected: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for i in 0..8 {
        let (cus, sub) = (format!("cus_r{i}"), format!("sub_r{i}"));
        app.deliver(&event("customer.created", t - 90 * DAY, customer(&cus, &format!("{cus}@example.com"), t - 90 * DAY))).await;
        app.deliver(&event("customer.subscription.created", t - 90 * DAY, Sub::new(&sub, &cus, t - 90 * DAY).object())).await;
        let old: Vec<Value> = (40..50).map(|d| json!({"customer": cus, "at": t - d * DAY, "count": 4})).collect();
        assert_eq!(post_activity(&app, &json!(old)).await.status(), 200);
        let arm = holdfast::lifecycle::rules::series_arm("reengagement", &cus, 50).expect("an arm");
        // Two in three come back on day 3 of their episode; the others after the window.
        let returns = i % 3 != 0;
        let e = expected.entry(arm).or_default();
        e.0 += u64::from(returns);
        e.1 += 1;
    }
    app.scheduler.try_run_once_at(t).await.expect("the at-risk check");
    for i in 0..8 {
        let at = if i % 3 != 0 { t + 3 * DAY } else { t + 16 * DAY };
        assert_eq!(post_activity(&app, &json!([{"customer": format!("cus_r{i}"), "at": at}])).await.status(), 200);
    }
    let s = summary(&app).await;
    let x = s["experiments"].as_array().expect("experiments").iter().find(|x| x["name"] == "lifecycle:reengagement").cloned();
    let arms = x.expect("reported")["arms"].as_array().expect("arms").clone();
    assert_eq!(arms.len(), expected.len(), "{arms:?}");
    for a in arms {
        assert_eq!(a["outcome"], "active_again_within_14_days", "{a}");
        let (successes, decided) = expected.get(a["variant"].as_str().expect("variant")).copied().unwrap_or_default();
        assert_eq!((a["successes"].as_u64(), a["decided"].as_u64()), (Some(successes), Some(decided)), "{a}");
    }
}
