//! A/B experiments: email templates split by customer with recovery per variant, and save
//! offers with the save rate per variant.

use holdfast::domain::lift::variant;
use holdfast::telemetry::capability_ref;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::helpers::{Config, Sub, customer, event, invoice, now};
use crate::support::lifecycle::{OWNER, dashboard, summary};
use crate::support::mail_world::{DAY, app_with_sink};
/// Two customers, one in each variant of an experiment named `name` at 50 %.
fn one_per_variant(name: &str) -> (String, String) {
    let a = (0..).map(|i| format!("cus_a{i}")).find(|c| variant(name, c, 50) == "a").expect("an a");
    let b = (0..).map(|i| format!("cus_b{i}")).find(|c| variant(name, c, 50) == "b").expect("a b");
    (a, b)
}

#[tokio::test]
async fn an_email_experiment_splits_templates_by_customer_and_reports_recovery_per_variant() {
    let dir = tempfile::tempdir().expect("dir");
    let b_template = dir.path().join("templates/payment_failed_short");
    std::fs::create_dir_all(&b_template).expect("mkdir");
    std::fs::write(b_template.join("subject.txt"), "Quick fix needed for {{ brand.name }}").expect("write");
    std::fs::write(b_template.join("body.txt"), "Fix it: {{ action_url }}").expect("write");
    std::fs::write(b_template.join("body.html"), "<p>Fix it: {{ action_url }}</p>").expect("write");
    let config = dir.path().join("holdfast.toml");
    std::fs::write(
        &config,
        "[[experiments]]\nname = \"short-dunning\"\nkind = \"email\"\npercent_b = 50\n\
         [experiments.templates]\npayment_failed = \"payment_failed_short\"\n",
    )
    .expect("write");
    let templates = dir.path().join("templates");
    let (app, sink) =
        app_with_sink(Config::new().file(&config).owner_token(OWNER).with(move |s| s.mail.templates_dir = Some(templates))).await;
    let (a, b) = one_per_variant("short-dunning");
    let t = now() - 3600;
    for cus in [&a, &b] {
        let sub = format!("sub_{cus}");
        app.deliver(&event("customer.created", t - DAY, customer(cus, &format!("{cus}@example.com"), t - DAY))).await;
        app.deliver(&event("customer.subscription.created", t - DAY, Sub::new(&sub, cus, t - DAY).object())).await;
        let mut inv = invoice(&format!("in_{cus}"), cus, &sub, "open", 2000, t);
        inv["next_payment_attempt"] = json!(t + 14 * DAY);
        app.deliver(&event("invoice.payment_failed", t, inv)).await;
    }
    app.outbox.run_until_idle_at(now()).await.expect("pass");
    let subject_to = |to: String| {
        let i = sink.messages().iter().position(|m| m.rcpt_to == vec![to.clone()]).expect("sent");
        sink.parsed()[i].header("Subject").unwrap_or_default()
    };
    assert_eq!(subject_to(format!("{b}@example.com")), "Quick fix needed for Acme");
    assert_eq!(subject_to(format!("{a}@example.com")), "Your Acme payment of $20.00 didn't go through");

    // b pays: recovery per variant, with the counts behind the rate.
    app.deliver(&event("invoice.paid", t + 600, invoice(&format!("in_{b}"), &b, &format!("sub_{b}"), "paid", 2000, t + 600)))
        .await;
    let s = summary(&app).await;
    let x = &s["experiments"][0];
    assert_eq!(
        (x["name"].as_str(), x["kind"].as_str(), x["percent_b"].as_u64()),
        (Some("short-dunning"), Some("email"), Some(50))
    );
    assert_eq!(
        x["variants"][0],
        json!({"variant": "a", "cases": 1, "recovered": 0, "lost": 0, "open": 1, "recovered_amount": 0, "recovery_rate": null})
    );
    assert_eq!(
        x["variants"][1],
        json!({"variant": "b", "cases": 1, "recovered": 1, "lost": 0, "open": 0, "recovered_amount": 2000, "recovery_rate": 1.0})
    );
    // The dashboard shows the same table.
    let page = dashboard(&app).await;
    assert!(
        page.contains("short-dunning") && page.contains("<td>b</td><td>1</td><td>1</td><td>0</td><td>0</td><td>100.0%</td>"),
        "{page}"
    );
}

#[tokio::test]
async fn a_save_offer_experiment_shows_variant_b_its_offers_and_reports_save_rate_per_variant() {
    use crate::support::cancel_flow::{flow_with, seed, signed_link};
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("holdfast.toml");
    std::fs::write(
        &config,
        "[[experiments]]\nname = \"pause-for-price\"\nkind = \"save_offer\"\n\
         [experiments.offers_by_reason]\ntoo_expensive = [\"pause\"]\n",
    )
    .expect("write");
    let f = flow_with(Config::new().file(&config)).await;
    let (a, b) = one_per_variant("pause-for-price");
    let mut offers = Vec::new();
    for cus in [&a, &b] {
        let object = seed(&f.app, cus, &format!("sub_{cus}"), "price_pro_monthly", |_| {}).await;
        let (session, csrf) = f.open(&signed_link(cus)).await;
        let page = f.answer(&session, &csrf, "too_expensive", "").await;
        offers.push((page.contains("choice-discount"), page.contains("choice-pause-1")));
        assert_eq!(f.session(&session).await.variant.as_deref(), Some(if cus == &a { "a" } else { "b" }));
        if cus == &b {
            let id = session.trim_start_matches("/cancel/s/").to_owned();
            f.expect_update(&format!("sub_{cus}"), &format!("holdfast-cancel-{}-pause_1-1", capability_ref(&id)), &object).await;
            assert_eq!(f.choose(&session, &csrf, "pause_1").await.status(), 303);
        } else {
            Mock::given(method("POST"))
                .and(path(format!("/v1/subscriptions/sub_{cus}")))
                .respond_with(ResponseTemplate::new(200).set_body_json(&object))
                .mount(&f.stripe)
                .await;
            assert_eq!(f.choose(&session, &csrf, "cancel").await.status(), 303);
        }
    }
    assert_eq!(offers, vec![(true, false), (false, true)], "a sees the configured discount; b sees only the pause");
    let r = f
        .app
        .client
        .get(format!("{}/api/summary", f.app.address))
        .bearer_auth(crate::support::cancel_flow::OWNER_TOKEN)
        .send()
        .await;
    let s: Value = r.expect("GET").json().await.expect("json");
    let x = &s["experiments"][0];
    assert_eq!(x["kind"], "save_offer");
    assert_eq!(
        x["variants"][0],
        json!({"variant": "a", "sessions": 1, "saved": 0, "canceled": 1, "abandoned": 0, "in_progress": 0, "save_rate": 0.0})
    );
    assert_eq!(
        x["variants"][1],
        json!({"variant": "b", "sessions": 1, "saved": 1, "canceled": 0, "abandoned": 0, "in_progress": 0, "save_rate": 1.0})
    );
}
