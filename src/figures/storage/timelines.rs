//! The own histories of a batch of customers, read with one statement per table.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::domain::timeline::Timeline;
use crate::figures::storage::batch_sql::{BatchSql, json_list};
use crate::store::StoreError;
use crate::store::conn::{Conn, fetch};
use crate::store::metrics::{CouponPoint, DiscountPoint, FailedPoint, HistoryPoint, timeline};
use crate::store::pricing::{LinePoint, PriceTiersPoint};

/// The own histories of a batch of customers (by key), read with one statement per table.
pub(crate) async fn own_timelines(conn: &mut Conn<'_>, keys: &[&str]) -> Result<Vec<Timeline>, StoreError> {
    let sql = BatchSql::of(conn);
    let key_list = json_list(keys.iter().copied());
    let pairs: Vec<(String, String)> = fetch!(conn, fetch_all, (String, String), sql.subs_of_keys.as_str(), key_list.as_str())?;
    let mut subs_of: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (key, sub) in &pairs {
        subs_of.entry(key.as_str()).or_default().insert(sub.as_str());
    }
    let all_subs: BTreeSet<&str> = pairs.iter().map(|(_, s)| s.as_str()).collect();
    let sub_list = json_list(all_subs.iter().copied());
    let history_of = histories(conn, sql, &sub_list).await?;
    // Failed invoices of a subscription never seen count under the subscription's id.
    let known: Vec<(String,)> = fetch!(conn, fetch_all, (String,), sql.known_subs.as_str(), key_list.as_str())?;
    let known: BTreeSet<String> = known.into_iter().map(|(s,)| s).collect();
    let failed_list = json_list(all_subs.iter().copied().chain(keys.iter().copied()));
    let failed_of = failures(conn, sql, &failed_list).await?;
    // Discounts: those the snapshots list, the customers' own, and those naming their
    // subscriptions; then the coupons they name.
    let listed_of = listed_discounts(keys, &subs_of, &history_of);
    let listed_list = json_list(listed_of.values().flatten().map(String::as_str));
    let discounts: Vec<DiscountPoint> = fetch!(
        conn,
        fetch_all,
        DiscountPoint,
        sql.discounts.as_str(),
        listed_list.as_str(),
        key_list.as_str(),
        sub_list.as_str()
    )?;
    let coupon_ids: BTreeSet<&str> = discounts.iter().filter_map(|d| d.coupon_id.as_deref()).collect();
    let coupon_list = json_list(coupon_ids.iter().copied());
    let coupons: Vec<CouponPoint> = fetch!(conn, fetch_all, CouponPoint, sql.coupons.as_str(), coupon_list.as_str())?;
    let rows = BatchRows {
        subs_of,
        history_of,
        known,
        failed_of,
        listed_of,
        discounts: DiscountIndex::new(&discounts),
        coupons: coupons.iter().map(|c| (c.id.as_str(), c)).collect(),
    };
    let mut out: Vec<Timeline> = keys.iter().map(|key| rows.own_timeline(key)).collect();
    attach_pricing(conn, sql, &mut out).await?;
    Ok(out)
}

/// The history rows of the subscriptions in `sub_list`, by subscription.
async fn histories(
    conn: &mut Conn<'_>,
    sql: &'static BatchSql,
    sub_list: &str,
) -> Result<HashMap<String, Vec<HistoryPoint>>, StoreError> {
    let rows: Vec<HistoryPoint> = fetch!(conn, fetch_all, HistoryPoint, sql.history_of_subs.as_str(), sub_list)?;
    let mut history_of: HashMap<String, Vec<HistoryPoint>> = HashMap::new();
    for row in rows {
        history_of.entry(row.subscription_id.clone()).or_default().push(row);
    }
    Ok(history_of)
}

/// The first failures of the invoices of the subscriptions in `failed_list`, by subscription.
async fn failures(
    conn: &mut Conn<'_>,
    sql: &'static BatchSql,
    failed_list: &str,
) -> Result<HashMap<String, Vec<FailedPoint>>, StoreError> {
    let failed: Vec<FailedPoint> = fetch!(conn, fetch_all, FailedPoint, sql.failed_of_subs.as_str(), failed_list)?;
    let mut failed_of: HashMap<String, Vec<FailedPoint>> = HashMap::new();
    for f in failed {
        if let Some(sub) = f.subscription.clone() {
            failed_of.entry(sub).or_default().push(f);
        }
    }
    Ok(failed_of)
}

/// The discount ids each key's subscription snapshots list.
fn listed_discounts<'k>(
    keys: &[&'k str],
    subs_of: &HashMap<&str, BTreeSet<&str>>,
    history_of: &HashMap<String, Vec<HistoryPoint>>,
) -> HashMap<&'k str, BTreeSet<String>> {
    let mut listed_of: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for key in keys {
        let listed = listed_of.entry(key).or_default();
        for sub in subs_of.get(key).into_iter().flatten() {
            for h in history_of.get(*sub).into_iter().flatten() {
                listed.extend(serde_json::from_str::<Vec<String>>(&h.discounts).unwrap_or_default());
            }
        }
    }
    listed_of
}

/// A batch's discounts by id, by customer and by subscription.
struct DiscountIndex<'a> {
    by_id: BTreeMap<&'a str, &'a DiscountPoint>,
    by_customer: HashMap<&'a str, Vec<&'a DiscountPoint>>,
    by_sub: HashMap<&'a str, Vec<&'a DiscountPoint>>,
}

impl<'a> DiscountIndex<'a> {
    fn new(discounts: &'a [DiscountPoint]) -> Self {
        let mut index = Self { by_id: BTreeMap::new(), by_customer: HashMap::new(), by_sub: HashMap::new() };
        for d in discounts {
            index.by_id.insert(d.id.as_str(), d);
            if let Some(c) = &d.customer {
                index.by_customer.entry(c.as_str()).or_default().push(d);
            }
            if let Some(s) = &d.subscription {
                index.by_sub.entry(s.as_str()).or_default().push(d);
            }
        }
        index
    }
}

/// The rows read for a batch, indexed for assembling each key's own timeline.
struct BatchRows<'a> {
    subs_of: HashMap<&'a str, BTreeSet<&'a str>>,
    history_of: HashMap<String, Vec<HistoryPoint>>,
    known: BTreeSet<String>,
    failed_of: HashMap<String, Vec<FailedPoint>>,
    listed_of: HashMap<&'a str, BTreeSet<String>>,
    discounts: DiscountIndex<'a>,
    coupons: HashMap<&'a str, &'a CouponPoint>,
}

impl BatchRows<'_> {
    /// The own timeline of `key`.
    fn own_timeline(&self, key: &str) -> Timeline {
        let subs = self.subs_of.get(key).cloned().unwrap_or_default();
        let history: Vec<HistoryPoint> =
            subs.iter().flat_map(|s| self.history_of.get(*s).into_iter().flatten().cloned()).collect();
        let mut failed: Vec<FailedPoint> =
            subs.iter().flat_map(|s| self.failed_of.get(*s).into_iter().flatten().cloned()).collect();
        if !self.known.contains(key) {
            failed.extend(self.failed_of.get(key).into_iter().flatten().cloned());
        }
        let discounts = self.discounts_of(key, &subs);
        let used: BTreeSet<&str> = discounts.iter().filter_map(|d| d.coupon_id.as_deref()).collect();
        let own_coupons: Vec<CouponPoint> = used.iter().filter_map(|c| self.coupons.get(c).map(|c| (*c).clone())).collect();
        let mut own = timeline(history, discounts, own_coupons, failed);
        // A subscription counts under the customer its first snapshot names.
        own.subscriptions.retain(|s| s.customer == key);
        let kept: BTreeSet<&str> = own.subscriptions.iter().map(|s| s.id.as_str()).collect();
        own.failed_invoices.retain(|i| i.subscription.as_deref().is_some_and(|s| kept.contains(s) || s == key));
        own
    }

    /// The discounts of `key`: those its snapshots list, its own, and those naming its
    /// subscriptions, each once, by id.
    fn discounts_of(&self, key: &str, subs: &BTreeSet<&str>) -> Vec<DiscountPoint> {
        let mut found: BTreeMap<&str, &DiscountPoint> = BTreeMap::new();
        for id in self.listed_of.get(key).into_iter().flatten() {
            if let Some(d) = self.discounts.by_id.get(id.as_str()) {
                found.insert(id.as_str(), d);
            }
        }
        let own_discounts = self.discounts.by_customer.get(key).into_iter().flatten();
        let sub_discounts = subs.iter().flat_map(|s| self.discounts.by_sub.get(s).into_iter().flatten());
        for d in own_discounts.chain(sub_discounts) {
            found.insert(d.id.as_str(), d);
        }
        found.into_values().cloned().collect()
    }
}

/// Tiers and finalized lines for the timelines with items priced beyond per-unit (few), read
/// for the whole batch in one statement each.
async fn attach_pricing(conn: &mut Conn<'_>, sql: &'static BatchSql, owns: &mut [Timeline]) -> Result<(), StoreError> {
    let (mut price_ids, mut sub_ids) = (BTreeSet::new(), BTreeSet::new());
    for own in owns.iter() {
        let (prices, subs) = crate::store::pricing::pricing_wants(own);
        price_ids.extend(prices.into_iter().map(str::to_owned));
        sub_ids.extend(subs.into_iter().map(str::to_owned));
    }
    if sub_ids.is_empty() {
        return Ok(());
    }
    let prices: Vec<PriceTiersPoint> = fetch!(
        conn,
        fetch_all,
        PriceTiersPoint,
        sql.price_tiers.as_str(),
        json_list(price_ids.iter().map(String::as_str)).as_str()
    )?;
    let prices: HashMap<String, PriceTiersPoint> = prices.into_iter().map(|p| (p.id.clone(), p)).collect();
    let rows: Vec<(String, String, String, i64, i64, i64)> = fetch!(
        conn,
        fetch_all,
        (String, String, String, i64, i64, i64),
        sql.lines_of_subs.as_str(),
        json_list(sub_ids.iter().map(String::as_str)).as_str()
    )?;
    let mut lines: HashMap<String, Vec<LinePoint>> = HashMap::new();
    for (subscription, subscription_item, invoice_id, finalized_at, amount, inclusive_tax) in rows {
        lines.entry(subscription).or_default().push(LinePoint {
            subscription_item,
            invoice_id,
            finalized_at,
            amount,
            inclusive_tax,
        });
    }
    for own in owns.iter_mut() {
        crate::store::pricing::attach_from(own, &prices, &lines);
    }
    Ok(())
}
