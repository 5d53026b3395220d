//! Every email template on a phone: each is rendered with a configured brand and the long,
//! unbroken links real emails carry (signed update links, Stripe's hosted invoice URLs),
//! opened in headless Chromium at a 375 px wide viewport, and must not scroll sideways.
//!
//! A `browser_` test (see `support/requires.rs`): `scripts/test` runs it where chromium and
//! chromedriver are installed and reports it as skipped elsewhere. `CHROMEDRIVER` /
//! `CHROMIUM` override the binaries (default: `chromedriver` and `chromium` on PATH).

use holdfast::mail::templates::{Templates, sample_context};
use minijinja::context;

use crate::support::helpers::{Config, serverless_settings};

const PHONE_WIDTH: i64 = 375;

/// The templates as the service renders them, with a brand that has a logo and a long name.
fn templates() -> Templates {
    let brand = Config::new()
        .key("brand.name", "Acme Notes for Teams")
        .key("brand.color", "#1d4ed8")
        .key("brand.logo_url", "https://acme.test/a-very-wide-logo-1200x300.png");
    Templates::new(&serverless_settings(brand).mail)
}

/// Links as long as real ones: a signed token is ~130 characters with no break opportunity;
/// Stripe's hosted invoice URLs are longer.
fn long_links() -> minijinja::Value {
    let token = format!("cus_NffrFeUfNV2Hib.in_1MtHbELkdIwHu7ixl4OzzPMv.1767225600.{}", "9f3c".repeat(16));
    let hosted =
        format!("https://invoice.stripe.com/i/acct_1M2JTkLkdIwHu7ix/test_{}?s=ap", "YWNjdF8xTTJKVGtMa2RJd0h1N2l4".repeat(5));
    context! {
        action_url => format!("https://billing.acme-notes-for-teams.example.com/billing/update?token={token}"),
        unsubscribe_url => format!("https://billing.acme-notes-for-teams.example.com/unsubscribe?token={token}"),
        comeback_url => format!("https://billing.acme-notes-for-teams.example.com/comeback?token={token}"),
        pause_url => format!("https://billing.acme-notes-for-teams.example.com/pause?token={token}"),
        product_url => format!("https://app.acme-notes-for-teams.example.com/welcome?ref={token}"),
        return_url => format!("https://app.acme-notes-for-teams.example.com/account?ref={token}"),
        invoice => context! {
            id => "in_1MtHbELkdIwHu7ixl4OzzPMv", amount => "$1,249.00", failed_on => "2 March 2026",
            last_attempt_on => "16 March 2026", hosted_invoice_url => hosted,
        },
        ..sample_context()
    }
}

#[tokio::test]
#[ignore = "needs a browser (chromium + chromedriver)"]
async fn browser_every_email_fits_a_375_px_phone_screen_in_chromium() {
    // Every built-in template, rendered to a file the browser opens.
    let dir = tempfile::tempdir().expect("dir");
    let t = templates();
    let mut pages = Vec::new();
    for name in Templates::names() {
        let email = t.render(name, long_links()).expect(name);
        assert!(!email.html.contains("Holdfast <"), "{name}");
        let path = dir.path().join(format!("{name}.html"));
        std::fs::write(&path, &email.html).expect("write");
        pages.push((name, path));
    }
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/email"))
        .expect("templates dir")
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(pages.len(), on_disk, "every template directory is a built-in template");

    let (browser, driver, _profile) = crate::support::requires::chromium(PHONE_WIDTH as u32, 812).await;

    let measured = async {
        let mut widths = Vec::new();
        for (name, path) in &pages {
            browser.goto(&format!("file://{}", path.display())).await?;
            let v = browser
                .execute(
                    "return [screen.width, window.innerWidth, document.documentElement.scrollWidth, document.body.scrollWidth];",
                    vec![],
                )
                .await?;
            widths.push((*name, v));
        }
        Ok::<_, fantoccini::error::CmdError>(widths)
    }
    .await;
    let _ = browser.close().await;
    drop(driver);
    let widths = measured.expect("every template opens in Chromium");

    let mut too_wide = Vec::new();
    for (name, v) in &widths {
        let n = |i: usize| v[i].as_i64().unwrap_or(i64::MAX);
        assert_eq!(n(0), PHONE_WIDTH, "{name}: the screen is a phone's");
        // Content wider than the screen either scrolls sideways or (as a phone zooms out to
        // fit it) widens the layout viewport: both count.
        let widest = n(1).max(n(2)).max(n(3));
        if widest > PHONE_WIDTH {
            too_wide.push(format!("{name}: {widest} px"));
        }
    }
    assert!(too_wide.is_empty(), "emails wider than {PHONE_WIDTH} px (they scroll sideways): {too_wide:?}");
}
