//! The owner sees who and why: one customer whole (`GET /api/customers/<id>`, the dashboard
//! page), search, and the lists (`GET /api/lists/<list>`, JSON and CSV) — through the real
//! server, the cancel flow's Stripe calls answered by wiremock, payment failures as webhooks.

use holdfast::telemetry::capability_ref;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::cancel_flow::{Flow, OWNER_TOKEN, flow, seed, signed_link};
use crate::support::helpers::{Config, assert_owner_only, event, invoice, now};

/// A customer's comment that a spreadsheet would run as a formula.
const FORMULA_COMMENT: &str = "=HYPERLINK(\"http://evil.test\",\"sync fails\")";

fn session_id(location: &str) -> String {
    location.trim_start_matches("/cancel/s/").split('/').next().expect("id").to_owned()
}

impl Flow {
    async fn owner(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.app.address)).bearer_auth(OWNER_TOKEN).send().await.expect("sent")
    }

    async fn owner_json(&self, path: &str) -> Value {
        let r = self.owner(path).await;
        assert_eq!(r.status(), 200, "{path}: {:?}", r.text().await);
        r.json().await.expect("json")
    }

    /// `cus` cancels through the flow with `reason` and `comment`; returns the session id.
    async fn cancels(&self, cus: &str, sub: &str, object: &Value, reason: &str, comment: &str) -> String {
        let (session, csrf) = self.open(&signed_link(cus)).await;
        self.answer(&session, &csrf, reason, comment).await;
        let id = session_id(&session);
        self.expect_update(sub, &format!("holdfast-cancel-{}-cancel-1", capability_ref(&id)), object).await;
        assert_eq!(self.choose(&session, &csrf, "cancel").await.status(), 303);
        id
    }

    /// `cus` takes the discount; returns the session id.
    async fn takes_discount(&self, cus: &str, sub: &str, object: &Value) -> String {
        let (session, csrf) = self.open(&signed_link(cus)).await;
        self.answer(&session, &csrf, "too_expensive", "a bit pricey").await;
        let id = session_id(&session);
        self.expect_update(sub, &format!("holdfast-cancel-{}-discount-1", capability_ref(&id)), object).await;
        assert_eq!(self.choose(&session, &csrf, "discount").await.status(), 303);
        id
    }
}

/// The invoice of `sub` whose payment failed, with Stripe's next retry in 3 days.
fn failed_payment(id: &str, cus: &str, sub: &str, at: i64) -> Value {
    let mut i = invoice(id, cus, sub, "open", 4900, at);
    i["attempt_count"] = json!(1);
    i["next_payment_attempt"] = json!(at + 3 * 86_400);
    i["customer_email"] = json!(format!("{cus}@example.com"));
    event("invoice.payment_failed", at, i)
}

/// `change` is the cancellation Holdfast sent for `sub_whole`: the exact method, path and
/// parameters (the comment as Stripe received it in `sent`), caused by the customer.
fn assert_the_change_is_recorded_as_sent(change: &Value, sent: &[Vec<(String, String)>]) {
    assert_eq!(change["method"], "POST");
    assert_eq!(change["path"], "/v1/subscriptions/sub_whole");
    let params: Value = serde_json::from_str(change["params"].as_str().expect("params text")).expect("params JSON");
    assert_eq!(
        params,
        json!({"cancel_at_period_end": "true", "cancellation_details[feedback]": "other",
               "cancellation_details[comment]": params["cancellation_details[comment]"].clone()})
    );
    assert!(params["cancellation_details[comment]"].as_str().is_some_and(|s| s.contains("sync fails on Mondays")));
    let sent_comment = sent[0].iter().find(|(k, _)| k == "cancellation_details[comment]").map(|(_, v)| v.clone());
    assert_eq!(params["cancellation_details[comment]"].as_str().map(str::to_owned), sent_comment, "recorded as sent");
    assert!(change["triggered_by"].as_str().is_some_and(|s| s.contains("the customer")), "{change}");
}

#[tokio::test]
async fn one_customer_whole_newest_first_with_every_change_holdfast_made_in_stripe() {
    let f = flow().await;
    let object = seed(&f.app, "cus_whole", "sub_whole", "price_pro_monthly", |_| {}).await;
    let t = now() - 3600;
    f.app.deliver(&failed_payment("in_whole", "cus_whole", "sub_whole", t)).await;
    let session = f.cancels("cus_whole", "sub_whole", &object, "technical_problems", "sync fails on Mondays").await;
    f.app.wait_projected().await;

    let url = format!("{}/api/customers/cus_whole", f.app.address);
    let r = assert_owner_only(&f.http, Method::GET, &url, OWNER_TOKEN).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.expect("body");
    assert!(!body.contains(&session), "the cancel session's capability id never leaves the server");
    let c: Value = serde_json::from_str(&body).expect("json");

    assert_eq!(c["customer"]["email"], "cus_whole@example.com");
    assert_eq!(c["subscriptions"][0]["id"], "sub_whole");
    assert_eq!(c["items"][0]["price_id"], "price_pro_monthly");
    assert!(c["mrr_history"].as_array().is_some_and(|h| !h.is_empty()), "MRR over time: {}", c["mrr_history"]);
    assert_eq!(c["invoices"][0]["id"], "in_whole");
    assert_eq!(c["dunning_cases"][0]["invoice_id"], "in_whole");
    assert_eq!(c["dunning_cases"][0]["status"], "open");
    let emails = c["emails"].as_array().expect("emails");
    assert!(
        emails.iter().any(|e| e["case_key"] == "dunning:in_whole" && e["template"] == "payment_failed"),
        "the dunning email with its status: {emails:?}"
    );
    assert!(emails.iter().all(|e| e.get("body_text").is_none()), "bodies stay out of the record");
    let cancel = &c["cancel_sessions"][0];
    assert_eq!(cancel["reason"], "technical_problems");
    assert_eq!(cancel["comment"], "sync fails on Mondays");
    assert_eq!(cancel["outcome"], "canceled");

    // The change Holdfast made in Stripe: the exact request, and who caused it.
    assert_the_change_is_recorded_as_sent(&c["stripe_changes"][0], &f.sent_params().await);

    // One timeline, newest first, naming the cancellation, the failure and the change.
    let timeline = c["timeline"].as_array().expect("timeline");
    let times: Vec<i64> = timeline.iter().map(|e| e["at"].as_i64().expect("at")).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    for kind in ["customer", "subscription", "invoice", "payment_failure", "email", "cancel_flow", "stripe_change"] {
        assert!(timeline.iter().any(|e| e["kind"] == kind), "{kind} missing from {timeline:?}");
    }
    let text = serde_json::to_string(timeline).expect("text");
    assert!(text.contains("Technical problems") && !text.contains("technical_problems"), "human labels: {text}");

    let missing = f.owner("/api/customers/cus_nobody").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.expect("json")["error"]["code"], "customer_not_found");
}

#[tokio::test]
async fn search_finds_customers_by_email_name_or_stripe_id() {
    let f = flow().await;
    seed(&f.app, "cus_find", "sub_find", "price_pro_monthly", |_| {}).await;
    seed(&f.app, "cus_other", "sub_other", "price_pro_monthly", |_| {}).await;
    f.app.wait_projected().await;
    for q in ["CUS_FIND%40EXAMPLE", "cus_find", "sub_find"] {
        let found = f.owner_json(&format!("/api/customers?q={q}")).await;
        let ids: Vec<&str> = found["customers"].as_array().expect("list").iter().filter_map(|c| c["id"].as_str()).collect();
        assert_eq!(ids, ["cus_find"], "q={q}");
        assert_eq!(found["customers"][0]["dashboard_page"], "/dashboard/customers/cus_find");
    }
    // LIKE's wildcards are matched literally.
    let wild = f.owner_json("/api/customers?q=%25").await;
    assert_eq!(wild["customers"], json!([]));
    let both = f.owner_json("/api/customers?q=test%20customer").await;
    assert_eq!(both["customers"].as_array().map(Vec::len), Some(2), "by name");
    assert_eq!(f.owner("/api/customers?q=").await.status(), 400);
    assert_eq!(f.owner("/api/customers").await.status(), 400);
}

/// `cus_list_a` cancels with a formula for a comment and fails a payment, `cus_list_b`
/// cancels (too expensive), `cus_list_c` takes the discount and recovers a failed payment.
async fn seed_the_lists(f: &Flow) {
    let a = seed(&f.app, "cus_list_a", "sub_list_a", "price_pro_monthly", |_| {}).await;
    let b = seed(&f.app, "cus_list_b", "sub_list_b", "price_pro_monthly", |_| {}).await;
    let c = seed(&f.app, "cus_list_c", "sub_list_c", "price_pro_monthly", |_| {}).await;
    f.cancels("cus_list_a", "sub_list_a", &a, "missing_features", FORMULA_COMMENT).await;
    f.cancels("cus_list_b", "sub_list_b", &b, "too_expensive", "+1 for the old price").await;
    f.takes_discount("cus_list_c", "sub_list_c", &c).await;
    let t = now() - 7200;
    f.app.deliver(&failed_payment("in_list_a", "cus_list_a", "sub_list_a", t)).await;
    f.app.deliver(&failed_payment("in_list_c", "cus_list_c", "sub_list_c", t)).await;
    f.app.deliver(&event("invoice.paid", t + 600, invoice("in_list_c", "cus_list_c", "sub_list_c", "paid", 4900, t + 600))).await;
    f.app.wait_projected().await;
}

/// Exactly the two who cancelled, with the reason's label, the comment as written and a link
/// to the customer's page.
fn assert_the_cancellations_say_who_and_why(cancellations: &Value) {
    let who: Vec<&str> =
        cancellations["items"].as_array().expect("items").iter().filter_map(|i| i["customer"].as_str()).collect();
    assert_eq!(who.len(), 2);
    assert!(who.contains(&"cus_list_a") && who.contains(&"cus_list_b"), "{who:?}");
    let a_row = cancellations["items"].as_array().and_then(|i| i.iter().find(|r| r["customer"] == "cus_list_a")).expect("a");
    assert_eq!(a_row["reason_label"], "Missing a feature");
    assert_eq!(a_row["comment"], FORMULA_COMMENT);
    assert_eq!(a_row["customer_page"], "/dashboard/customers/cus_list_a");
}

/// In the comments' CSV, every cell a spreadsheet would evaluate starts with a quote instead.
fn assert_no_cell_would_run_as_a_formula(text: &str) {
    let mut reader = csv_rows(text);
    let header = reader.remove(0);
    assert_eq!(header[0], "customer_id");
    let comment_col = header.iter().position(|h| h == "Comment").expect("Comment column");
    let cells: Vec<&str> = reader.iter().map(|r| r[comment_col].as_str()).collect();
    assert!(cells.contains(&"'=HYPERLINK(\"http://evil.test\",\"sync fails\")"), "{cells:?}");
    assert!(cells.contains(&"'+1 for the old price"), "{cells:?}");
    for row in &reader {
        for cell in row {
            assert!(!cell.starts_with(['=', '+', '-', '@']), "unescaped cell {cell:?} in {text}");
        }
    }
}

/// An unknown list, a bad page size, page, format or reason: 400 with the error's code.
async fn assert_bad_list_requests_are_refused(f: &Flow) {
    for (path, code) in [
        ("/api/lists/everyone", "unknown_list"),
        ("/api/lists/saves?per_page=0", "bad_per_page"),
        ("/api/lists/saves?page=0", "bad_page"),
        ("/api/lists/saves?format=xls", "bad_format"),
        ("/api/lists/comments?reason=%27%20OR%201", "bad_reason"),
    ] {
        let r = f.owner(path).await;
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(r.json::<Value>().await.expect("json")["error"]["code"], code, "{path}");
    }
}

#[tokio::test]
async fn the_lists_answer_who_paginated_with_csv_that_never_runs_a_formula() {
    let f = flow().await;
    seed_the_lists(&f).await;

    let url = format!("{}/api/lists/cancellations", f.app.address);
    let cancellations: Value = assert_owner_only(&f.http, Method::GET, &url, OWNER_TOKEN).await.json().await.expect("json");
    assert_the_cancellations_say_who_and_why(&cancellations);

    // Paginated: one per page, then the next.
    let p1 = f.owner_json("/api/lists/cancellations?per_page=1").await;
    assert_eq!(p1["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(p1["next_page"], 2);
    let p2 = f.owner_json("/api/lists/cancellations?per_page=1&page=2").await;
    assert_eq!(p2["next_page"], Value::Null);
    assert_ne!(p1["items"][0]["customer"], p2["items"][0]["customer"]);

    let saves = f.owner_json("/api/lists/saves").await;
    assert_eq!(saves["items"][0]["customer"], "cus_list_c");
    assert_eq!(saves["items"][0]["outcome_label"], "Took the discount");

    let dunning = f.owner_json("/api/lists/dunning").await;
    let open: Vec<&Value> = dunning["items"].as_array().expect("items").iter().collect();
    assert_eq!(open.len(), 1, "the paid invoice left dunning: {open:?}");
    assert_eq!(open[0]["invoice"], "in_list_a");
    assert_eq!(open[0]["amount"], 4900.0);
    assert_eq!(open[0]["day"], 0);
    assert!(open[0]["next_email"].is_string() || open[0]["next_email"].is_null());

    let recovered = f.owner_json("/api/lists/recovered").await;
    assert_eq!(recovered["items"][0]["invoice"], "in_list_c");

    let new = f.owner_json("/api/lists/new-customers").await;
    assert_eq!(new["items"].as_array().map(Vec::len), Some(3));

    // What customers told us, filtered by reason.
    let told = f.owner_json("/api/lists/comments").await;
    assert_eq!(told["items"].as_array().map(Vec::len), Some(3));
    let expensive = f.owner_json("/api/lists/comments?reason=too_expensive").await;
    let comments: Vec<&str> =
        expensive["items"].as_array().expect("items").iter().filter_map(|i| i["comment"].as_str()).collect();
    assert_eq!(comments.len(), 2);
    assert!(comments.contains(&"+1 for the old price") && comments.contains(&"a bit pricey"), "{comments:?}");

    // CSV: every cell a spreadsheet would evaluate starts with a quote instead.
    let csv = f.owner("/api/lists/comments?format=csv").await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().expect("ascii").starts_with("text/csv"));
    assert_no_cell_would_run_as_a_formula(&csv.text().await.expect("csv"));

    assert_bad_list_requests_are_refused(&f).await;
}

/// A minimal RFC 4180 reader (quoted cells, doubled quotes), enough to check our own output.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell, mut quoted, mut chars) = (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, other) => cell.push(other),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, other) => cell.push(other),
        }
    }
    rows
}

/// `cus_fig_a` cancels, `cus_fig_b` takes the discount and recovers a failed payment, and
/// `cus_fig_c` came from the newsletter.
async fn seed_the_figures(f: &Flow) {
    let a = seed(&f.app, "cus_fig_a", "sub_fig_a", "price_pro_monthly", |_| {}).await;
    let b = seed(&f.app, "cus_fig_b", "sub_fig_b", "price_pro_monthly", |_| {}).await;
    // A customer who came from the newsletter.
    let t = now() - 86_400;
    let mut c = crate::support::helpers::customer("cus_fig_c", "cus_fig_c@example.com", t);
    c["metadata"] = json!({"utm_source": "newsletter"});
    f.app.deliver(&event("customer.created", t, c)).await;
    f.app
        .deliver(&event(
            "customer.subscription.created",
            t + 1,
            crate::support::helpers::Sub::new("sub_fig_c", "cus_fig_c", t).object(),
        ))
        .await;
    f.cancels("cus_fig_a", "sub_fig_a", &a, "too_expensive", "").await;
    f.takes_discount("cus_fig_b", "sub_fig_b", &b).await;
    let t = now() - 7200;
    f.app.deliver(&failed_payment("in_fig_b", "cus_fig_b", "sub_fig_b", t)).await;
    f.app.deliver(&event("invoice.paid", t + 600, invoice("in_fig_b", "cus_fig_b", "sub_fig_b", "paid", 4900, t + 600))).await;
    f.app.wait_projected().await;
}

/// The newsletter channel has its one customer, too few to judge, and a cohort row whose
/// ages (1, 3, 6 and 12 months) none has reached yet.
fn assert_the_newsletter_cohort_is_too_young_to_judge(fig: &Value) {
    let channels = fig["channels"].as_array().expect("channels");
    let newsletter = channels.iter().find(|c| c["channel"] == "newsletter").expect("the newsletter channel");
    assert_eq!(newsletter["customers"], 1);
    assert_eq!(newsletter["retention"]["text"], "too few to judge (n = 1)");
    // A cohort row per channel: retention 1, 3, 6 and 12 months on, none reached yet.
    let ages: Vec<(u64, u64)> = newsletter["after"]
        .as_array()
        .expect("cohort ages")
        .iter()
        .map(|p| (p["months"].as_u64().unwrap_or(0), p["rate"]["sample"].as_u64().unwrap_or(99)))
        .collect();
    assert_eq!(ages, [(1, 0), (3, 0), (6, 0), (12, 0)]);
}

/// The dashboard's HTML, signed in with the owner token.
async fn dashboard_page(f: &Flow) -> String {
    let login =
        f.http.post(format!("{}/dashboard/login", f.app.address)).form(&[("token", OWNER_TOKEN)]).send().await.expect("login");
    let session = login.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("cookie").to_owned();
    f.http
        .get(format!("{}/dashboard", f.app.address))
        .header("Cookie", session)
        .send()
        .await
        .expect("dashboard")
        .text()
        .await
        .expect("page")
}

#[tokio::test]
async fn figures_carry_their_sample_size_and_say_too_few_to_judge() {
    let f = crate::support::cancel_flow::flow_with(Config::new().with(|s| s.figures.min_sample = 3)).await;
    seed_the_figures(&f).await;

    let url = format!("{}/api/figures", f.app.address);
    let fig: Value = assert_owner_only(&f.http, Method::GET, &url, OWNER_TOKEN).await.json().await.expect("json");
    assert_eq!(fig["min_sample"], 3);
    assert_eq!(fig["recovered_this_month"], 4900);
    assert_eq!(fig["recovered_payments"], 1);
    // The confirmed-save rate: the discount is still pending, so only the cancellation is decided.
    assert_eq!(fig["save_rate"]["sample"], 1, "{}", fig["save_rate"]);
    assert_eq!(fig["save_rate"]["numerator"], 0);
    assert_eq!(fig["saves_pending"], 1);
    assert_eq!(fig["save_rate"]["text"], "too few to judge (n = 1)");
    assert!(fig["mrr"].as_f64().is_some_and(|m| m > 0.0), "{}", fig["mrr"]);
    assert!((fig["arr"].as_f64().unwrap_or(0.0) - 12.0 * fig["mrr"].as_f64().unwrap_or(0.0)).abs() < 1e-6);
    let plans = fig["mrr_by_plan"].as_array().expect("plans");
    let plan_mrr: f64 = plans.iter().filter_map(|p| p["mrr"].as_f64()).sum();
    assert!((plan_mrr - fig["mrr"].as_f64().unwrap_or(0.0)).abs() < 1.0, "plans add up to MRR: {plans:?} vs {}", fig["mrr"]);
    assert_the_newsletter_cohort_is_too_young_to_judge(&fig);

    // Thirty-one days on the discounted customer still pays: the save is confirmed.
    assert_eq!(f.app.scheduler.check_saves(now() + 31 * 86_400).await.expect("check saves"), 1);
    let fig = f.owner_json("/api/figures").await;
    assert_eq!((fig["save_rate"]["numerator"].as_u64(), fig["save_rate"]["sample"].as_u64()), (Some(1), Some(2)));
    assert_eq!(fig["save_rate"]["text"], "too few to judge (n = 2)");
    assert_eq!(fig["saves_pending"], 0);
    // Every figure is on the dashboard too.
    let page = dashboard_page(&f).await;
    for label in [
        "id=\"fig-mrr\"",
        "vs last month",
        "Recovered this month",
        "Confirmed-save rate",
        "Trial conversion",
        "Quick ratio",
        "Renewals of yearly and long plans",
        "id=\"mrr-by-plan\"",
        "id=\"channels\"",
        "After 12 mo",
        "newsletter",
    ] {
        assert!(page.contains(label), "{label} missing from the dashboard");
    }
    assert_eq!(f.owner("/api/figures?month=2026-13").await.status(), 400);
}
