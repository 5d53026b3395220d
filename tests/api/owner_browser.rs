//! The owner's pages in headless Chromium at 375 px: the dashboard, a customer page and the
//! lists fit the phone (no horizontal overflow), every text meets WCAG AA contrast against
//! what is behind it (computed from the rendered colours), "Sign out" is readable, names
//! link to the customer page, and search finds a customer by email.
//!
//! `browser_*` tests (see `support/requires.rs`): chosen by scripts/test when chromedriver is
//! installed, reported as skipped otherwise; run by hand without it, they fail.

use fantoccini::Locator;
use serde_json::json;

use crate::support::cancel_flow::{Flow, OWNER_TOKEN, flow, seed, signed_link};
use crate::support::helpers::{event, invoice, now};
use crate::support::requires::chromium;

/// Elements whose own text has less than WCAG AA contrast with the colour behind it (4.5:1,
/// 3:1 for large text), HTML and SVG alike; each as "tag 'text' ratio".
const LOW_CONTRAST: &str = r#"
const parse = c => { const m = /rgba?\(([^)]+)\)/.exec(c || ''); if (!m) return null;
  const p = m[1].split(',').map(s => parseFloat(s)); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
const behind = el => { const layers = [];
  for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; } }
  let base = {r: 255, g: 255, b: 255};
  for (let i = layers.length - 1; i >= 0; i--) { const l = layers[i];
    base = {r: l.r * l.a + base.r * (1 - l.a), g: l.g * l.a + base.g * (1 - l.a), b: l.b * l.a + base.b * (1 - l.a)}; }
  return base; };
const bad = [];
let checked = 0;
for (const el of document.querySelectorAll('body *')) {
  if (el.closest('svg') || !['', 'visible'].includes(getComputedStyle(el).visibility)) continue;
  if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
  const r = el.getBoundingClientRect(); if (r.width < 2 || r.height < 2) continue;
  const s = getComputedStyle(el); const size = parseFloat(s.fontSize); const bold = parseInt(s.fontWeight, 10) >= 700;
  const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
  const got = ratio(parse(s.color), behind(el)); checked++;
  if (got < need) bad.push(el.tagName + " '" + el.textContent.trim().slice(0, 40) + "' " + got.toFixed(2));
}
// SVG text against the topmost shape drawn under its centre before it (white when none).
for (const t of document.querySelectorAll('svg text')) {
  if (!t.textContent.trim()) continue;
  const b = t.getBBox(); const cx = b.x + b.width / 2, cy = b.y + b.height / 2;
  let fill = {r: 255, g: 255, b: 255};
  for (const rect of t.ownerSVGElement.querySelectorAll('rect')) {
    if (rect.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_PRECEDING) continue;
    const x = +rect.getAttribute('x'), y = +rect.getAttribute('y'), w = +rect.getAttribute('width'), h = +rect.getAttribute('height');
    if (cx >= x && cx <= x + w && cy >= y && cy <= y + h) { const c = parse(getComputedStyle(rect).fill); if (c) fill = c; }
  }
  const got = ratio(parse(getComputedStyle(t).fill), fill); checked++;
  if (got < 4.5) bad.push("svg text '" + t.textContent.trim() + "' " + got.toFixed(2));
}
return [checked, bad];
"#;

/// The page's layout width and the viewport's.
const WIDTHS: &str = "return [Math.max(document.documentElement.scrollWidth, document.body.scrollWidth), window.innerWidth];";

async fn check_page(browser: &fantoccini::Client, what: &str) -> Result<Vec<String>, fantoccini::error::CmdError> {
    let mut problems = Vec::new();
    let w = browser.execute(WIDTHS, vec![]).await?;
    let (page, viewport) = (w[0].as_i64().unwrap_or(i64::MAX), w[1].as_i64().unwrap_or(0));
    if page > viewport {
        problems.push(format!("{what}: {page} px wide in a {viewport} px viewport"));
    }
    let c = browser.execute(LOW_CONTRAST, vec![]).await?;
    if c[0].as_i64().unwrap_or(0) < 5 {
        problems.push(format!("{what}: hardly any text checked ({})", c[0]));
    }
    for bad in c[1].as_array().into_iter().flatten() {
        problems.push(format!("{what}: low contrast {bad}"));
    }
    Ok(problems)
}

/// Three customers for the owner's pages: `cus_phone` fails a payment, then cancels through
/// the flow with a long technical comment; `cus_saver` takes the discount (the saves list);
/// `cus_back` pays after a failure (recovered). All are new this month.
async fn seed_the_owner_pages(f: &Flow) {
    let object = seed(&f.app, "cus_phone", "sub_phone", "price_pro_monthly", |_| {}).await;
    let t = now() - 3600;
    let mut failed = invoice("in_phone", "cus_phone", "sub_phone", "open", 4900, t);
    failed["attempt_count"] = json!(1);
    failed["next_payment_attempt"] = json!(t + 3 * 86_400);
    f.app.deliver(&event("invoice.payment_failed", t, failed)).await;
    // A second customer takes the discount (the saves list), a third pays after a failure
    // (recovered) and is new this month.
    let saver = seed(&f.app, "cus_saver", "sub_saver", "price_pro_monthly", |_| {}).await;
    let (s2, c2) = f.open(&signed_link("cus_saver")).await;
    f.answer(&s2, &c2, "too_expensive", "").await;
    let id2 = s2.trim_start_matches("/cancel/s/").split('/').next().expect("id").to_owned();
    f.expect_update("sub_saver", &format!("holdfast-cancel-{}-discount-1", holdfast::telemetry::capability_ref(&id2)), &saver)
        .await;
    assert_eq!(f.choose(&s2, &c2, "discount").await.status(), 303);
    seed(&f.app, "cus_back", "sub_back", "price_pro_monthly", |_| {}).await;
    let mut back = invoice("in_back", "cus_back", "sub_back", "open", 4900, t);
    back["attempt_count"] = json!(1);
    f.app.deliver(&event("invoice.payment_failed", t, back)).await;
    f.app.deliver(&event("invoice.paid", t + 60, invoice("in_back", "cus_back", "sub_back", "paid", 4900, t + 60))).await;
    let (session, csrf) = f.open(&signed_link("cus_phone")).await;
    f.answer(&session, &csrf, "technical_problems", "A long comment about the sync failing every Monday morning, with a URL https://example.com/a/very/long/path/that/should/wrap/instead/of/overflowing").await;
    let id = session.trim_start_matches("/cancel/s/").split('/').next().expect("id").to_owned();
    f.expect_update("sub_phone", &format!("holdfast-cancel-{}-cancel-1", holdfast::telemetry::capability_ref(&id)), &object)
        .await;
    assert_eq!(f.choose(&session, &csrf, "cancel").await.status(), 303);
    f.app.wait_projected().await;
}

/// What the browser read on the owner's pages, for the test to assert once it is closed.
struct OwnerPages {
    /// Overflow and contrast problems of every page visited.
    problems: Vec<String>,
    /// Whether "Sign out" is displayed, and its text.
    sign_out: (bool, String),
    figures: String,
    /// Each list: its name, its text, and where its links go.
    list_texts: Vec<(&'static str, String, Vec<String>)>,
    /// The cancellations list.
    list_text: String,
    timeline: String,
    changes: String,
    comments: String,
    /// Where a search by email landed.
    found_url: String,
    png: Vec<u8>,
}

/// Signs in at `base`, then reads the dashboard, every list, the cancellations list and the
/// customer page it links to, the comments, and a search by email; each page is checked.
async fn visit_owner_pages(browser: &fantoccini::Client, base: &str) -> Result<OwnerPages, fantoccini::error::CmdError> {
    let mut problems = Vec::new();
    browser.goto(&format!("{base}/dashboard")).await?;
    browser.find(Locator::Id("token")).await?.send_keys(OWNER_TOKEN).await?;
    browser.find(Locator::Id("sign-in")).await?.click().await?;
    browser.wait().for_element(Locator::Id("dashboard")).await?;
    problems.extend(check_page(browser, "dashboard").await?);
    let sign_out = browser.find(Locator::Id("sign-out")).await?;
    let sign_out = (sign_out.is_displayed().await?, sign_out.text().await?);
    // The figures are on the phone too, each with its sample size.
    let figures = browser.find(Locator::Id("figures")).await?.text().await?;
    let list_texts = visit_lists(browser, base, &mut problems).await?;

    // The list names the customer and links to their page.
    browser.goto(&format!("{base}/dashboard/lists/cancellations")).await?;
    browser.wait().for_element(Locator::Id("list")).await?;
    problems.extend(check_page(browser, "cancellations").await?);
    let list_text = browser.find(Locator::Id("list")).await?.text().await?;
    browser.find(Locator::Css("#list a[href='/dashboard/customers/cus_phone']")).await?.click().await?;
    browser.wait().for_element(Locator::Id("customer")).await?;
    problems.extend(check_page(browser, "customer").await?);
    let timeline = browser.find(Locator::Id("timeline")).await?.text().await?;
    let changes = browser.find(Locator::Id("stripe-changes")).await?.text().await?;

    browser.goto(&format!("{base}/dashboard/lists/comments?reason=technical_problems")).await?;
    browser.wait().for_element(Locator::Id("list")).await?;
    problems.extend(check_page(browser, "comments").await?);
    let comments = browser.find(Locator::Id("list")).await?.text().await?;

    // Search by email from the header: one match opens the customer's page.
    browser.find(Locator::Id("q")).await?.send_keys("cus_phone@example.com").await?;
    browser.find(Locator::Css("form.search button")).await?.click().await?;
    browser.wait().for_element(Locator::Id("customer-name")).await?;
    let found_url = browser.current_url().await?.to_string();
    let png = browser.screenshot().await?;
    Ok(OwnerPages { problems, sign_out, figures, list_texts, list_text, timeline, changes, comments, found_url, png })
}

/// Every other list fits and reads clearly (problems go to `problems`); returns each list's
/// name, text and links.
async fn visit_lists(
    browser: &fantoccini::Client,
    base: &str,
    problems: &mut Vec<String>,
) -> Result<Vec<(&'static str, String, Vec<String>)>, fantoccini::error::CmdError> {
    let mut list_texts = Vec::new();
    for list in ["saves", "dunning", "recovered", "new-customers", "at-risk"] {
        browser.goto(&format!("{base}/dashboard/lists/{list}")).await?;
        // The page's own main (an empty list says so instead of drawing a table).
        browser.wait().for_element(Locator::Id(&format!("list-{list}"))).await?;
        problems.extend(check_page(browser, list).await?);
        let text = browser.find(Locator::Css("main section")).await?.text().await?;
        let mut links = Vec::new();
        for a in browser.find_all(Locator::Css("#list a")).await? {
            links.push(a.attr("href").await?.unwrap_or_default());
        }
        list_texts.push((list, text, links));
    }
    Ok(list_texts)
}

/// Each list links to the pages of the customers it should hold and carries its telling words
/// (an empty one says "Nobody here.").
fn assert_each_list_names_its_customers(list_texts: &[(&'static str, String, Vec<String>)]) {
    let page = |c: &str| format!("/dashboard/customers/{c}");
    for (list, text, links) in list_texts {
        let (who, words): (&[&str], &str) = match *list {
            "saves" => (&["cus_saver"], "Took the discount"),
            "dunning" => (&["cus_phone"], "$49.00"),
            "recovered" => (&["cus_back"], "$49.00"),
            "new-customers" => (&["cus_back", "cus_saver", "cus_phone"], ""),
            _ => (&[], "Nobody here."),
        };
        for c in who {
            assert!(links.contains(&page(c)), "{list} links to {c}: {links:?}");
        }
        assert!(text.contains(words), "{list}: {text}");
    }
}

#[tokio::test]
#[ignore = "needs a browser (chromium + chromedriver)"]
async fn browser_the_owner_pages_fit_375px_read_clearly_and_link_to_the_customer() {
    let (browser, driver, _profile) = chromium(375, 812).await;
    let f = flow().await;
    seed_the_owner_pages(&f).await;
    let base = f.app.address.clone();

    let outcome = visit_owner_pages(&browser, &base).await;
    let _ = browser.close().await;
    drop(driver);
    let OwnerPages { problems, sign_out, figures, list_texts, list_text, timeline, changes, comments, found_url, png } =
        outcome.expect("the pages load");
    for want in ["Confirmed-save rate", "Trial conversion", "Quick ratio", "MRR by plan", "vs last month", "After 12 mo"] {
        // Card labels are drawn upper-case by CSS.
        assert!(figures.to_lowercase().contains(&want.to_lowercase()), "{want} missing: {figures}");
    }
    assert_each_list_names_its_customers(&list_texts);

    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(sign_out, (true, "Sign out".to_owned()));
    assert!(list_text.contains("Technical problems") && !list_text.contains("technical_problems"), "{list_text}");
    assert!(timeline.contains("Cancel flow outcome: Cancelled"), "{timeline}");
    assert!(timeline.contains("Payment of $49.00 failed"), "{timeline}");
    assert!(changes.contains("POST /v1/subscriptions/sub_phone") && changes.contains("cancel_at_period_end"), "{changes}");
    assert!(comments.contains("sync failing every Monday"), "{comments}");
    assert!(found_url.ends_with("/dashboard/customers/cus_phone"), "{found_url}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join("owner_customer_375.png"), png).expect("screenshot saved");
}
