//! Monthly recurring revenue arithmetic, as `docs/metrics.md` defines it.

use crate::domain::pricing::ItemPricing;
use crate::domain::timeline::{CouponTerms, ItemAmount, Snapshot, Timeline};

/// Monthly-normalised amount of one subscription item, in minor units (may carry fractions
/// of a cent: a yearly price ÷ 12). Unknown intervals or amounts contribute 0.
pub fn item_monthly(unit_amount: Option<i64>, quantity: i64, interval: Option<&str>, interval_count: Option<i64>) -> f64 {
    let Some(amount) = unit_amount else { return 0.0 };
    let count = interval_count.filter(|c| *c > 0).unwrap_or(1) as f64;
    let months = match interval {
        Some("month") => count,
        Some("year") => 12.0 * count,
        // Weeks and days are normalised with 52 weeks / 365 days in 12 months.
        Some("week") => count * 12.0 / 52.0,
        Some("day") => count * 12.0 / 365.0,
        _ => return 0.0,
    };
    amount as f64 * quantity.max(0) as f64 / months
}

/// Apply a discount to a monthly amount: `percent_off` scales it, `amount_off` (already
/// monthly-normalised) subtracts, never below zero.
pub fn discounted(monthly: f64, percent_off: Option<f64>, amount_off_monthly: Option<f64>) -> f64 {
    let after_percent = match percent_off {
        Some(p) => monthly * (1.0 - p / 100.0),
        None => monthly,
    };
    (after_percent - amount_off_monthly.unwrap_or(0.0)).max(0.0)
}

/// A subscription's monthly amount after the discounts in force (`docs/metrics.md`,
/// "Discounts"): percentages first, each scaling the items it applies to, then fixed amounts
/// (per invoice, normalised by `interval_months`, ignored in another currency), each taken
/// off the items it applies to and never below zero. A coupon limited to products applies to
/// the items of those products; when the items are unknown, to the whole amount.
pub fn apply_discounts(base: f64, items: &[ItemAmount], terms: &[&CouponTerms], currency: &str, interval_months: f64) -> f64 {
    let whole = [ItemAmount { product: None, monthly: base, pricing: None }];
    let items = if items.is_empty() { &whole[..] } else { items };
    let mut amounts: Vec<f64> = items.iter().map(|i| i.monthly).collect();
    let applies = |t: &CouponTerms, i: &ItemAmount| match (&t.products, &i.product) {
        (Some(products), Some(p)) => products.contains(p),
        (Some(_), None) => items.len() == 1 && items[0].product.is_none(),
        (None, _) => true,
    };
    for t in terms {
        if let Some(p) = t.percent_off {
            for (a, i) in amounts.iter_mut().zip(items) {
                if applies(t, i) {
                    *a *= 1.0 - p / 100.0;
                }
            }
        }
    }
    for t in terms {
        let Some(off) = t.amount_off.filter(|_| t.currency.as_deref().is_none_or(|c| c.eq_ignore_ascii_case(currency))) else {
            continue;
        };
        let eligible: f64 = amounts.iter().zip(items).filter(|(_, i)| applies(t, i)).map(|(a, _)| *a).sum();
        if eligible <= 0.0 {
            continue;
        }
        let monthly_off = off as f64 / interval_months.max(f64::MIN_POSITIVE);
        let keep = (1.0 - monthly_off / eligible).max(0.0);
        for (a, i) in amounts.iter_mut().zip(items) {
            if applies(t, i) {
                *a *= keep;
            }
        }
    }
    amounts.iter().sum::<f64>().max(0.0)
}

/// The item-level discounts of `p` in force at `at`, each `(id, terms)`, terms `None` when
/// unresolved (listed but never seen, or its coupon's terms unknown: assumed in force).
fn item_discounts_at<'a>(t: &'a Timeline, p: &'a ItemPricing, at: i64) -> Vec<(&'a str, Option<&'a CouponTerms>)> {
    p.discounts
        .iter()
        .filter_map(|id| match t.discounts.get(id) {
            None => Some((id.as_str(), None)),
            Some(d) => {
                let terms = t.terms_of(d);
                d.in_force(terms, p.interval_months, at).then_some((id.as_str(), terms))
            }
        })
        .collect()
}

/// `items` (the amounts of `s`'s items at `at`, in order) with each item's own discounts
/// taken off that item only (`docs/metrics.md`, "Discounts"): the same arithmetic as a
/// subscription's discounts, an `amount_off` normalised by the item's own interval. Stripe
/// applies them before the subscription's discounts, which then see the reduced amounts.
pub fn with_item_discounts(t: &Timeline, currency: &str, s: &Snapshot, mut items: Vec<ItemAmount>, at: i64) -> Vec<ItemAmount> {
    for (amount, item) in items.iter_mut().zip(&s.items) {
        let Some(p) = item.pricing.as_deref().filter(|p| !p.discounts.is_empty()) else { continue };
        let terms: Vec<&CouponTerms> = item_discounts_at(t, p, at).into_iter().filter_map(|(_, terms)| terms).collect();
        if !terms.is_empty() {
            let one = [ItemAmount { product: amount.product.clone(), monthly: amount.monthly, pricing: None }];
            amount.monthly = apply_discounts(amount.monthly, &one, &terms, currency, p.interval_months);
        }
    }
    items
}

/// The item-level discounts of `s` in force at `at` whose terms are unknown.
pub fn unresolved_item_discounts<'a>(t: &'a Timeline, s: &'a Snapshot, at: i64) -> Vec<&'a str> {
    s.items
        .iter()
        .filter_map(|i| i.pricing.as_deref())
        .flat_map(|p| item_discounts_at(t, p, at))
        .filter(|(_, terms)| terms.is_none())
        .map(|(id, _)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_normalised_to_a_month() {
        assert_eq!(item_monthly(Some(2000), 1, Some("month"), Some(1)), 2000.0);
        assert_eq!(item_monthly(Some(2000), 3, Some("month"), Some(1)), 6000.0);
        assert_eq!(item_monthly(Some(12000), 1, Some("year"), Some(1)), 1000.0);
        assert_eq!(item_monthly(Some(3000), 1, Some("month"), Some(3)), 1000.0);
        assert!((item_monthly(Some(10000), 1, Some("year"), None) - 833.333_333).abs() < 1e-3);
        assert_eq!(item_monthly(None, 1, Some("month"), Some(1)), 0.0);
        assert_eq!(item_monthly(Some(100), 1, Some("fortnight"), Some(1)), 0.0);
    }

    #[test]
    fn discounts_scale_or_subtract_but_never_go_negative() {
        assert_eq!(discounted(1000.0, Some(30.0), None), 700.0);
        assert_eq!(discounted(1000.0, None, Some(250.0)), 750.0);
        assert_eq!(discounted(1000.0, None, Some(2500.0)), 0.0);
        assert_eq!(discounted(1000.0, None, None), 1000.0);
    }

    fn coupon(percent_off: Option<f64>, amount_off: Option<i64>, products: Option<&[&str]>) -> CouponTerms {
        CouponTerms {
            percent_off,
            amount_off,
            currency: amount_off.map(|_| "usd".into()),
            products: products.map(|p| p.iter().map(|s| s.to_string()).collect()),
            ..CouponTerms::default()
        }
    }

    #[test]
    fn discounts_apply_percent_then_amount_to_the_items_they_cover() {
        let items = [
            ItemAmount { product: Some("prod_a".into()), monthly: 6000.0, pricing: None },
            ItemAmount { product: Some("prod_b".into()), monthly: 4000.0, pricing: None },
        ];
        // 25 % off everything, then 10.00 off per (monthly) invoice: 10000 × 0.75 − 1000.
        let (pct, amt) = (coupon(Some(25.0), None, None), coupon(None, Some(1000), None));
        assert_eq!(apply_discounts(10000.0, &items, &[&amt, &pct], "usd", 1.0), 6500.0);
        // Limited to prod_b: 50 % of 4000 only.
        let b_only = coupon(Some(50.0), None, Some(&["prod_b"]));
        assert_eq!(apply_discounts(10000.0, &items, &[&b_only], "usd", 1.0), 8000.0);
        // An amount larger than the items it covers takes them to zero, not the others.
        let big_b = coupon(None, Some(9000), Some(&["prod_b"]));
        assert_eq!(apply_discounts(10000.0, &items, &[&big_b], "usd", 1.0), 6000.0);
        // 120.00 off a yearly invoice is 10.00 a month; another currency's amount is ignored.
        assert_eq!(apply_discounts(10000.0, &[], &[&coupon(None, Some(12000), None)], "usd", 12.0), 9000.0);
        assert_eq!(apply_discounts(10000.0, &[], &[&coupon(None, Some(12000), None)], "eur", 12.0), 10000.0);
        assert_eq!(apply_discounts(10000.0, &items, &[], "usd", 1.0), 10000.0);
    }

    #[test]
    fn a_multi_item_subscription_mixes_pricing_shapes_and_a_product_limited_coupon() {
        use crate::domain::pricing::{ItemPricing, LineAmount, PriceTiers, Tier};
        use crate::domain::timeline::{Snapshot, SubscriptionHistory, Timeline};
        let mut t = Timeline::default();
        let tier = |up_to, unit_amount, flat_amount| Tier { up_to, unit_amount, flat_amount };
        t.prices.insert(
            "price_seats".into(),
            PriceTiers { mode: Some("volume".into()), tiers: vec![tier(Some(10), 1500.0, 0.0), tier(None, 1000.0, 0.0)] },
        );
        t.item_lines.insert("si_api".into(), vec![LineAmount { at: 50, invoice: "in_1".into(), amount: 4200, net: 4200 }]);
        let item = |product: &str, monthly: f64, pricing: Option<ItemPricing>| ItemAmount {
            product: Some(product.into()),
            monthly,
            pricing: pricing.map(Box::new),
        };
        let seats = ItemPricing {
            price: Some("price_seats".into()),
            quantity: 12,
            interval_months: 1.0,
            tiered: true,
            ..ItemPricing::default()
        };
        let api = ItemPricing { item: Some("si_api".into()), interval_months: 1.0, metered: true, ..ItemPricing::default() };
        let support =
            ItemPricing { tax_inclusive: true, tax_percent: Some(20.0), interval_months: 3.0, ..ItemPricing::default() };
        let s = Snapshot {
            effective_at: 0,
            rank: 0,
            event_id: "evt_0".into(),
            status: "active".into(),
            base_mrr: 0.0,
            collection_paused: false,
            pause_resumes_at: None,
            discounts: vec!["di_seats".into()],
            cancel_reason: None,
            interval_months: 1.0,
            // 12 seats at the volume tier for 11+ (10.00): 12000; usage 42.00 (known from
            // instant 51); support 36.00 a quarter with 20 % tax included: 1200 a month gross, 1000 net.
            items: vec![
                item("prod_seats", 0.0, Some(seats)),
                item("prod_api", 0.0, Some(api)),
                item("prod_support", 1200.0, Some(support)),
            ],
        };
        let h =
            SubscriptionHistory { id: "sub".into(), customer: "cus".into(), currency: "usd".into(), snapshots: vec![s.clone()] };
        t.subscriptions.push(h.clone());
        assert_eq!(t.mrr_of(&h, &s, 10), 12000.0 + 1000.0);
        assert_eq!(t.unresolved_prices("usd", 10), 1, "usage not billed yet");
        assert_eq!(t.mrr_of(&h, &s, 51), 12000.0 + 4200.0 + 1000.0);
        assert_eq!(t.unresolved_prices("usd", 51), 0);
        // 25 % off the seats product only: 12000 × 0.75 + 4200 + 1000.
        let coupon = CouponTerms { percent_off: Some(25.0), products: Some(vec!["prod_seats".into()]), ..CouponTerms::default() };
        t.coupons.insert("SEATS25".into(), coupon);
        let discount = crate::domain::timeline::Discount { coupon_id: Some("SEATS25".into()), ..Default::default() };
        t.discounts.insert("di_seats".into(), discount);
        assert_eq!(t.mrr_of(&h, &s, 51), 9000.0 + 4200.0 + 1000.0);
    }

    #[test]
    fn item_level_discounts_take_off_their_own_item_before_the_subscriptions_discounts() {
        use crate::domain::timeline::{Discount, Snapshot, SubscriptionHistory, Timeline};
        let mut t = Timeline::default();
        let jan1 = 1_735_689_600; // 2025-01-01
        let day = 86_400;
        // Item A: 50 % off, forever (terms embedded). Item B: 10.00 off for 2 months (coupon by id).
        let half = CouponTerms { percent_off: Some(50.0), duration: Some("forever".into()), ..CouponTerms::default() };
        t.discounts.insert("di_a".into(), Discount { embedded: half, starts_at: Some(jan1), ..Discount::default() });
        let ten =
            CouponTerms { duration: Some("repeating".into()), duration_in_months: Some(2), ..coupon(None, Some(1000), None) };
        t.coupons.insert("TEN2".into(), ten);
        let by_id = Discount { coupon_id: Some("TEN2".into()), starts_at: Some(jan1), ..Discount::default() };
        t.discounts.insert("di_b".into(), by_id);
        // The subscription's own 10 % off everything.
        t.discounts.insert("di_s".into(), Discount { embedded: coupon(Some(10.0), None, None), ..Discount::default() });
        let item = |product: &str, monthly: f64, discounts: &[&str]| ItemAmount {
            product: Some(product.into()),
            monthly,
            pricing: Some(Box::new(ItemPricing {
                interval_months: 1.0,
                discounts: discounts.iter().map(|d| d.to_string()).collect(),
                ..ItemPricing::default()
            })),
        };
        let s = Snapshot {
            effective_at: 0,
            rank: 0,
            event_id: "evt_0".into(),
            status: "active".into(),
            base_mrr: 10000.0,
            collection_paused: false,
            pause_resumes_at: None,
            discounts: vec!["di_s".into()],
            cancel_reason: None,
            interval_months: 1.0,
            items: vec![item("prod_a", 6000.0, &["di_a"]), item("prod_b", 4000.0, &["di_b"])],
        };
        let h =
            SubscriptionHistory { id: "sub".into(), customer: "cus".into(), currency: "usd".into(), snapshots: vec![s.clone()] };
        t.subscriptions.push(h.clone());
        // Before the item discounts start: 10000 × 0.9.
        assert_eq!(t.mrr_of(&h, &s, jan1 - 1), 9000.0);
        // (6000 × 0.5 + (4000 − 1000)) × 0.9 = 5400.
        assert_eq!(t.mrr_of(&h, &s, jan1 + day), 5400.0);
        // B's coupon ended 2025-03-01: (3000 + 4000) × 0.9 = 6300.
        assert_eq!(t.mrr_of(&h, &s, jan1 + 60 * day), 6300.0);
        // A product-limited item coupon for another product takes nothing off.
        let other = CouponTerms { products: Some(vec!["prod_z".into()]), ..coupon(Some(50.0), None, None) };
        t.discounts.insert("di_a".into(), Discount { embedded: other, ..Discount::default() });
        assert_eq!(t.mrr_of(&h, &s, jan1 + 60 * day), 9000.0);
        // An item discount never seen: list price for that item, and reported as unresolved.
        t.discounts.remove("di_b");
        assert_eq!(t.mrr_of(&h, &s, jan1 + day), 9000.0);
        assert_eq!(t.unresolved_discounts("usd", jan1 + day), 1);
    }
}
