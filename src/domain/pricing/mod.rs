//! Pricing shapes beyond a per-unit price × quantity, as `docs/metrics.md` counts them:
//! tiered prices (from their tiers and the quantity), metered prices and tax-inclusive prices
//! (from the finalized invoice lines of the subscription item). Pure: read from Stripe's JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::fields::{int_at, list, path, str_at};

mod invoice_lines;

pub use invoice_lines::{ItemLine, LineAmount, item_lines, latest_lines};

/// One tier of a tiered price: up to `up_to` units (`None`: every unit above the previous
/// tier), each at `unit_amount`, plus `flat_amount` once for the tier. Amounts in minor
/// units (the `_decimal` forms may carry fractions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tier {
    pub up_to: Option<i64>,
    pub unit_amount: f64,
    pub flat_amount: f64,
}

/// A price's tiers from Stripe's `tiers` array (present only when the price was expanded with
/// `tiers`). `None` when absent or unreadable: the tiers are then unknown.
pub fn read_tiers(tiers: Option<&Value>) -> Option<Vec<Tier>> {
    let tiers = tiers?.as_array()?;
    if tiers.is_empty() {
        return None;
    }
    let amount = |t: &Value, key: &str| -> Option<f64> {
        int_at(t, key).map(|a| a as f64).or_else(|| str_at(t, &format!("{key}_decimal")).and_then(|d| d.parse::<f64>().ok()))
    };
    let mut out = Vec::with_capacity(tiers.len());
    for t in tiers {
        // `up_to` is a number, or the string "inf" in requests (null in objects).
        let up_to = t.get("up_to").and_then(Value::as_i64);
        out.push(Tier {
            up_to,
            unit_amount: amount(t, "unit_amount").unwrap_or(0.0),
            flat_amount: amount(t, "flat_amount").unwrap_or(0.0),
        });
    }
    // Only the last tier may be unbounded; the bounds must rise.
    let bounded = &out[..out.len() - 1];
    let rising = bounded.windows(2).all(|w| matches!((w[0].up_to, w[1].up_to), (Some(a), Some(b)) if a < b));
    (bounded.iter().all(|t| t.up_to.is_some()) && rising).then_some(out)
}

/// What `quantity` units cost per billing interval under `tiers`: `volume` prices every unit
/// at the tier the whole quantity falls in (plus that tier's flat amount); `graduated` prices
/// the units falling in each tier at that tier's rate (plus the flat amount of each tier that
/// has units). No units cost nothing. `None` when the quantity is above every tier or the mode
/// is unknown.
pub fn tiered_amount(tiers: &[Tier], mode: &str, quantity: i64) -> Option<f64> {
    if quantity <= 0 {
        return Some(0.0);
    }
    match mode {
        "volume" => {
            let tier = tiers.iter().find(|t| t.up_to.is_none_or(|u| quantity <= u))?;
            Some(quantity as f64 * tier.unit_amount + tier.flat_amount)
        }
        "graduated" => {
            let mut total = 0.0;
            let mut below = 0;
            for t in tiers {
                let top = t.up_to.map_or(quantity, |u| u.min(quantity));
                let units = top - below;
                if units > 0 {
                    total += units as f64 * t.unit_amount + t.flat_amount;
                }
                below = top;
                if t.up_to.is_none_or(|u| u >= quantity) {
                    return Some(total);
                }
            }
            None
        }
        _ => None,
    }
}

/// Months in a billing interval (`None` for an unknown interval).
pub fn interval_months(interval: Option<&str>, count: Option<i64>) -> Option<f64> {
    let count = count.filter(|c| *c > 0).unwrap_or(1) as f64;
    match interval? {
        "month" => Some(count),
        "year" => Some(12.0 * count),
        // Weeks and days are normalised with 52 weeks / 365 days in 12 months.
        "week" => Some(count * 12.0 / 52.0),
        "day" => Some(count * 12.0 / 365.0),
        _ => None,
    }
}

/// The sum of the inclusive tax rates' percentages in a list of (expanded) tax rates.
pub fn inclusive_tax_percent(rates: Option<&Value>) -> Option<f64> {
    let inclusive: Vec<f64> = list(rates)
        .iter()
        .filter(|r| r.get("inclusive").and_then(Value::as_bool) == Some(true))
        .filter_map(|r| r.get("effective_percentage").or_else(|| r.get("percentage")).and_then(Value::as_f64))
        .collect();
    (!inclusive.is_empty()).then(|| inclusive.iter().sum())
}

/// How one subscription item is priced beyond `unit_amount × quantity`, as its history row
/// recorded it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemPricing {
    pub item: Option<String>,
    pub price: Option<String>,
    pub quantity: i64,
    /// Months in the item's billing interval.
    pub interval_months: f64,
    /// `billing_scheme = tiered`.
    pub tiered: bool,
    pub tiers_mode: Option<String>,
    /// Tiers that arrived with the item's price (else the price's stored ones apply).
    pub tiers: Option<Vec<Tier>>,
    /// `recurring.usage_type = metered`.
    pub metered: bool,
    /// `tax_behavior = inclusive`.
    pub tax_inclusive: bool,
    /// Inclusive tax rates on the item or subscription, in percent.
    pub tax_percent: Option<f64>,
    /// The item's own discounts (`items.data[].discounts`, ids): they apply to this item's
    /// amount only, before the subscription's discounts.
    pub discounts: Vec<String>,
}

/// A price's tiers as last seen on the price itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTiers {
    pub mode: Option<String>,
    pub tiers: Vec<Tier>,
}

/// One item's monthly amount at `t`, before discounts, and whether it is known: a metered
/// item from its latest finalized line (net of inclusive tax) ÷ months in its interval; a
/// tiered one from its tiers and quantity ÷ months; otherwise `list_monthly`. A tax-inclusive
/// amount is then taken net of tax: at the inclusive tax rates the item or subscription
/// names, else in the proportion of its latest finalized line, else (unknown) gross.
pub fn item_monthly_at(
    p: &ItemPricing,
    list_monthly: f64,
    prices: &std::collections::HashMap<String, PriceTiers>,
    lines: Option<&[LineAmount]>,
    t: i64,
) -> (f64, bool) {
    let latest = lines.and_then(|l| latest_lines(l, t));
    let months = p.interval_months.max(f64::MIN_POSITIVE);
    if p.metered {
        return match latest {
            Some((_, net)) => (net as f64 / months, true),
            None => (0.0, false),
        };
    }
    let gross = if p.tiered {
        let stored = p.price.as_ref().and_then(|id| prices.get(id));
        let tiers = p.tiers.as_deref().or(stored.map(|s| s.tiers.as_slice()));
        let mode = p.tiers_mode.as_deref().or(stored.and_then(|s| s.mode.as_deref()));
        match (tiers, mode) {
            (Some(tiers), Some(mode)) => match tiered_amount(tiers, mode, p.quantity) {
                Some(amount) => amount / months,
                None => return (0.0, false),
            },
            _ => return (0.0, false),
        }
    } else {
        list_monthly
    };
    if !p.tax_inclusive {
        return (gross, true);
    }
    match (p.tax_percent, latest) {
        (Some(pct), _) => (gross / (1.0 + pct / 100.0), true),
        (None, Some((amount, net))) if amount > 0 => (gross * net as f64 / amount as f64, true),
        _ => (gross, true),
    }
}

/// Why a subscription with status `paused` was paused: `status_details.paused` names
/// `type: "subscription"` and, under `subscription.type`, the reason (Stripe's values:
/// `pause_requested`, `trial_end_without_payment_method`, `first_payment_failure`,
/// `final_payment_failure`, `system`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseCause {
    /// A payment failed and the account's settings pause instead of cancel
    /// (`first_payment_failure`, `final_payment_failure`).
    PaymentFailure,
    /// A trial ended without a payment method (`trial_end_without_payment_method`).
    TrialEnd,
    /// Stripe's Pause endpoint (`pause_requested`).
    Requested,
    /// `system`, a value Stripe may add later, or no `status_details` (API versions before
    /// it): counted like a requested pause.
    Other,
}

pub fn pause_cause(subscription: &Value) -> Option<PauseCause> {
    if str_at(subscription, "status").as_deref() != Some("paused") {
        return None;
    }
    let reason = path(subscription, &["status_details", "paused", "subscription", "type"]).and_then(Value::as_str);
    Some(match reason {
        Some("first_payment_failure" | "final_payment_failure") => PauseCause::PaymentFailure,
        Some("trial_end_without_payment_method") => PauseCause::TrialEnd,
        Some("pause_requested") => PauseCause::Requested,
        _ => PauseCause::Other,
    })
}

/// `price.updated` for a price fetched from Stripe with its tiers (`GET /v1/prices/{id}` with
/// `expand[]=tiers`), dated by its creation. Its own id family: an earlier synced event of the
/// same price (which may lack the tiers) is not a duplicate of it.
pub fn fetched_price_events(obj: &Value) -> Vec<crate::domain::backfill::Synthetic> {
    let (Some(id), Some(at)) = (str_at(obj, "id"), int_at(obj, "created")) else { return Vec::new() };
    vec![crate::domain::backfill::Synthetic {
        id: format!("evt_tiers_{id}_{at}"),
        kind: "price.updated",
        created: at,
        object: obj.clone(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tiers() -> Vec<Tier> {
        // 1–5 units at 10.00 plus 5.00 flat; 6–10 at 8.00; above 10 at 6.00 plus 20.00 flat.
        read_tiers(Some(&json!([
            {"up_to": 5, "unit_amount": 1000, "flat_amount": 500},
            {"up_to": 10, "unit_amount": 800, "flat_amount": null},
            {"up_to": null, "unit_amount_decimal": "600", "flat_amount": 2000}
        ])))
        .expect("tiers")
    }

    #[test]
    fn volume_prices_every_unit_at_the_tier_of_the_whole_quantity() {
        let t = tiers();
        assert_eq!(tiered_amount(&t, "volume", 3), Some(3.0 * 1000.0 + 500.0));
        assert_eq!(tiered_amount(&t, "volume", 5), Some(5500.0));
        assert_eq!(tiered_amount(&t, "volume", 7), Some(7.0 * 800.0));
        assert_eq!(tiered_amount(&t, "volume", 12), Some(12.0 * 600.0 + 2000.0));
        assert_eq!(tiered_amount(&t, "volume", 0), Some(0.0));
    }

    #[test]
    fn graduated_prices_each_slice_at_its_own_tier() {
        let t = tiers();
        assert_eq!(tiered_amount(&t, "graduated", 3), Some(3000.0 + 500.0));
        // 5 × 10.00 + 5.00, then 2 × 8.00.
        assert_eq!(tiered_amount(&t, "graduated", 7), Some(5000.0 + 500.0 + 1600.0));
        // 5 × 10.00 + 5.00, 5 × 8.00, 2 × 6.00 + 20.00.
        assert_eq!(tiered_amount(&t, "graduated", 12), Some(5500.0 + 4000.0 + 1200.0 + 2000.0));
        assert_eq!(tiered_amount(&t, "graduated", 10), Some(9500.0));
    }

    #[test]
    fn bounded_last_tiers_and_bad_tiers_are_handled() {
        let capped = read_tiers(Some(&json!([{"up_to": 2, "unit_amount": 100}]))).expect("tiers");
        assert_eq!(tiered_amount(&capped, "volume", 3), None);
        assert_eq!(tiered_amount(&capped, "graduated", 3), None);
        assert_eq!(tiered_amount(&capped, "weird", 1), None);
        assert_eq!(read_tiers(Some(&json!([{"up_to": null, "unit_amount": 1}, {"up_to": 5}]))), None);
        assert_eq!(read_tiers(Some(&json!([]))), None);
        assert_eq!(read_tiers(None), None);
    }

    #[test]
    fn finalized_lines_are_read_from_both_shapes_without_prorations() {
        let old = json!({"id": "in_1", "status": "paid", "subscription": "sub_1", "status_transitions": {"finalized_at": 77},
            "lines": {"data": [
                {"id": "il_1", "subscription_item": "si_1", "price": {"id": "price_m"}, "amount": 1190, "proration": false,
                 "tax_amounts": [{"amount": 190, "inclusive": true}, {"amount": 50, "inclusive": false}]},
                {"id": "il_2", "subscription_item": "si_1", "amount": -300, "proration": true}]}});
        let new = json!({"id": "in_1", "status": "open", "parent": {"subscription_details": {"subscription": "sub_1"}},
            "status_transitions": {"finalized_at": 77}, "lines": {"data": [
                {"id": "il_1", "amount": 1190, "pricing": {"price_details": {"price": "price_m"}},
                 "parent": {"subscription_item_details": {"subscription_item": "si_1", "proration": false, "subscription": "sub_1"}},
                 "taxes": [{"amount": 190, "tax_behavior": "inclusive"}, {"amount": 50, "tax_behavior": "exclusive"}]}]}});
        for v in [old, new] {
            let lines = item_lines(&v, 99);
            assert_eq!(lines.len(), 1);
            let l = &lines[0];
            assert_eq!(
                (l.item.as_str(), l.price.as_deref(), l.subscription.as_deref()),
                ("si_1", Some("price_m"), Some("sub_1"))
            );
            assert_eq!((l.finalized_at, l.amount, l.inclusive_tax, l.net()), (77, 1190, 190, 1000));
        }
        assert!(
            item_lines(
                &json!({"id": "in_2", "status": "draft", "lines": {"data": [{"id": "il", "subscription_item": "si"}]}}),
                1
            )
            .is_empty()
        );
    }

    #[test]
    fn pause_causes_are_told_apart() {
        // Stripe's shape: `{type: "subscription", transitioned_at, subscription: {type: <reason>}}`.
        let paused = |reason: &str| {
            json!({"status": "paused", "status_details": {"paused": {"type": "subscription", "transitioned_at": 5,
                "subscription": {"type": reason}}}})
        };
        assert_eq!(pause_cause(&paused("final_payment_failure")), Some(PauseCause::PaymentFailure));
        assert_eq!(pause_cause(&paused("first_payment_failure")), Some(PauseCause::PaymentFailure));
        // Names a payment method, but is no payment failure.
        assert_eq!(pause_cause(&paused("trial_end_without_payment_method")), Some(PauseCause::TrialEnd));
        assert_eq!(pause_cause(&paused("pause_requested")), Some(PauseCause::Requested));
        assert_eq!(pause_cause(&paused("system")), Some(PauseCause::Other));
        assert_eq!(pause_cause(&json!({"status": "paused"})), Some(PauseCause::Other));
        assert_eq!(pause_cause(&json!({"status": "active", "pause_collection": {"behavior": "void"}})), None);
        assert_eq!(
            inclusive_tax_percent(Some(
                &json!([{"percentage": 19.0, "inclusive": true}, {"percentage": 5.0, "inclusive": false}])
            )),
            Some(19.0)
        );
        assert_eq!(inclusive_tax_percent(Some(&json!([]))), None);
    }

    #[test]
    fn an_items_amount_at_an_instant_comes_from_its_tiers_or_its_finalized_lines() {
        let mut prices = std::collections::HashMap::new();
        prices.insert("price_t".to_string(), PriceTiers { mode: Some("graduated".into()), tiers: tiers() });
        let line = |at: i64, invoice: &str, amount: i64, net: i64| LineAmount { at, invoice: invoice.into(), amount, net };
        // Tiered by the price's stored tiers, 7 units on a 3-month interval: (5500 + 1600) / 3.
        let tiered = ItemPricing {
            price: Some("price_t".into()),
            quantity: 7,
            interval_months: 3.0,
            tiered: true,
            ..ItemPricing::default()
        };
        let (m, known) = item_monthly_at(&tiered, 0.0, &prices, None, 10);
        assert!(known && (m - 7100.0 / 3.0).abs() < 1e-9);
        // Tiers never seen: 0, unresolved.
        let unknown = ItemPricing { price: Some("price_x".into()), ..tiered.clone() };
        assert_eq!(item_monthly_at(&unknown, 0.0, &prices, None, 10), (0.0, false));
        // Metered, yearly: the latest invoice finalized before the instant (its lines summed), net of inclusive tax, ÷ 12.
        let metered = ItemPricing { item: Some("si_m".into()), metered: true, interval_months: 12.0, ..ItemPricing::default() };
        let lines = [line(5, "in_a", 1200, 1200), line(20, "in_b", 2400, 2000), line(20, "in_b", 1200, 1000)];
        assert_eq!(item_monthly_at(&metered, 0.0, &prices, Some(&lines), 20), (100.0, true));
        assert_eq!(item_monthly_at(&metered, 0.0, &prices, Some(&lines), 21), (250.0, true));
        assert_eq!(item_monthly_at(&metered, 0.0, &prices, Some(&lines), 5), (0.0, false));
        // Tax-inclusive: at the named rate, else in its latest line's proportion, else gross.
        let inclusive =
            ItemPricing { item: Some("si_m".into()), tax_inclusive: true, tax_percent: Some(25.0), ..ItemPricing::default() };
        assert_eq!(item_monthly_at(&inclusive, 1250.0, &prices, None, 10), (1000.0, true));
        let by_line = ItemPricing { tax_percent: None, ..inclusive };
        assert_eq!(item_monthly_at(&by_line, 1200.0, &prices, Some(&lines), 21), (1200.0 * 3000.0 / 3600.0, true));
        assert_eq!(item_monthly_at(&by_line, 1200.0, &prices, None, 21), (1200.0, true));
    }

    #[test]
    fn a_subscription_snapshot_carries_each_items_pricing_and_its_pause_cause() {
        use crate::domain::snapshots::SubscriptionSnapshot;
        let v = json!({"id": "sub_1", "status": "paused", "cancellation_details": {"reason": null},
            "status_details": {"paused": {"type": "subscription", "transitioned_at": 5,
                "subscription": {"type": "final_payment_failure"}}},
            "default_tax_rates": [{"percentage": 10.0, "inclusive": true}],
            "items": {"data": [
                {"id": "si_t", "quantity": 4, "price": {"id": "price_t", "billing_scheme": "tiered", "tiers_mode": "volume",
                 "unit_amount": null, "tiers": [{"up_to": null, "unit_amount": 700}], "tax_behavior": "inclusive",
                 "recurring": {"interval": "month", "usage_type": "licensed"}},
                 "tax_rates": [{"percentage": 20.0, "inclusive": true}]},
                {"id": "si_m", "price": {"id": "price_m", "billing_scheme": "per_unit", "unit_amount": 3,
                 "recurring": {"interval": "month", "usage_type": "metered"}}}]}});
        let s = SubscriptionSnapshot::read(&v).expect("snapshot");
        let (t, m) = (&s.items[0], &s.items[1]);
        assert_eq!(
            (t.tiers_mode.as_deref(), t.tiers.as_ref().map(Vec::len), t.tax_percent),
            (Some("volume"), Some(1), Some(20.0))
        );
        assert_eq!((m.usage_type.as_deref(), m.tax_percent, m.monthly()), (Some("metered"), Some(10.0), 0.0));
        assert_eq!(s.pause_cause, Some(PauseCause::PaymentFailure));
        assert_eq!(s.history_reason(), Some("payment_failed"));
        let requested = SubscriptionSnapshot::read(&json!({"id": "sub_2", "status": "paused"})).expect("snapshot");
        assert_eq!(requested.history_reason(), None);
    }
}
