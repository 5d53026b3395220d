//! One brand on the pages a customer can reach: with `[brand]` set, the cancel pages and the
//! unsubscribe page show the owner's name and colour and never "Holdfast".

use crate::support::cancel_flow::{flow_with, seed, signed_link};
use crate::support::helpers::Config;

/// The whole page, markup included: stricter than its visible text.
fn assert_no_holdfast(what: &str, html: &str) {
    assert!(!html.to_lowercase().contains("holdfast"), "{what} mentions Holdfast: {html}");
}

#[tokio::test]
async fn the_customer_pages_show_the_owners_brand_and_never_holdfast() {
    let logo = "https://cdn.acme-notes.test/logo.png";
    let f = flow_with(Config::new().key("brand.color", "#ffcc00").key("brand.logo_url", logo)).await;
    seed(&f.app, "cus_brand", "sub_brand", "price_pro_monthly", |_| {}).await;
    let (session, csrf) = f.open(&signed_link("cus_brand")).await;
    let first = f.http.get(format!("{}{session}", f.app.address)).send().await.expect("request");
    assert_eq!(first.status(), 200);
    let first = first.text().await.expect("html");
    assert!(first.contains("Acme Notes") && first.contains("#ffcc00"), "{first}");
    // Attribute values are HTML-escaped (`/` as `&#x2f;`); a browser reads them unescaped.
    let unescaped = first.replace("&#x2f;", "/");
    assert!(unescaped.contains(&format!("<img class=\"logo\" src=\"{logo}\"")), "the logo heads the page: {first}");
    assert_no_holdfast("the reason page", &first);
    let offer = f.answer(&session, &csrf, "too_expensive", "").await;
    assert!(offer.contains("Acme Notes"));
    assert_no_holdfast("the offer page", &offer);

    for path in ["/unsubscribe?token=not-a-token", "/cancel?customer=cus_brand&sig=wrong"] {
        let page = f.http.get(format!("{}{path}", f.app.address)).send().await.expect("request");
        let html = page.text().await.expect("html");
        assert!(html.contains("Acme Notes"), "{path}: {html}");
        assert_no_holdfast(path, &html);
    }
}
