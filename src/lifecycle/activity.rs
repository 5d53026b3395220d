//! `POST /api/activity` (owner token): the founder's app reports product activity in batches
//! of `{customer, at, event?, count?}`. Counts are summed per customer per UTC day, and per
//! event name too (for the monthly value recap: at most 50 names, the rest as `other`); a customer at risk whose activity returns is re-engaged at
//! once (their re-engagement emails are cancelled in the same transaction). An
//! `Idempotency-Key` header makes a retried batch count once.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::lifecycle::rules::DAY;
use crate::lifecycle::storage::{ActivitySum, BatchKey, Recorded, fingerprint};
use crate::store::Store;
use crate::web::auth::Owner;
use crate::web::error::ApiError;

/// Most items in one batch.
pub const MAX_ITEMS: usize = 1_000;
/// Largest request body (a full batch with long ids fits).
pub const MAX_BODY_BYTES: usize = 512 * 1024;
/// Reported times may be this far ahead of our clock (skew), no further.
const FUTURE_SLACK_SECS: i64 = 3_600;
/// Nothing before 2000-01-01 is real activity.
const EARLIEST: i64 = 946_684_800;

/// One reported use of the product.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    customer: String,
    /// Unix seconds or an RFC 3339 time.
    at: When,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    count: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum When {
    Unix(i64),
    Text(String),
}

/// A batch: a bare array or `{"events": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Batch {
    Items(Vec<Item>),
    Wrapped { events: Vec<Item> },
}

#[derive(Debug, Serialize)]
struct Accepted {
    accepted: i64,
    customers: i64,
    /// Customers whose at-risk episode ended with this batch.
    reengaged: Vec<String>,
    /// The batch came before under this `Idempotency-Key` and was counted then, not now.
    replayed: bool,
}

/// The request's `Idempotency-Key`: none, or 1–255 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<&str>, ()> {
    let Some(value) = req.headers().get("Idempotency-Key") else { return Ok(None) };
    match value.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(k)),
        _ => Err(()),
    }
}

/// The first bad item and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
struct Invalid(String);

fn invalid(index: usize, what: &str) -> Invalid {
    Invalid(format!("item {index}: {what}"))
}

fn unix(when: &When) -> Option<i64> {
    match when {
        When::Unix(t) => Some(*t),
        When::Text(s) => chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.timestamp()),
    }
}

/// Validate and sum a batch per customer; the first bad item is named in the error.
fn sum(items: &[Item], now: i64) -> Result<Vec<ActivitySum>, Invalid> {
    type Sums<'a> = (i64, i64, BTreeMap<i64, i64>, BTreeMap<(i64, &'a str), i64>);
    let mut by_customer: BTreeMap<&str, Sums<'_>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let customer = item.customer.trim();
        if customer.is_empty() || customer.len() > 255 || customer.chars().any(char::is_control) {
            return Err(invalid(i, "customer must be a Stripe customer id (1–255 characters)"));
        }
        let at = unix(&item.at).ok_or_else(|| invalid(i, "at must be unix seconds or an RFC 3339 time"))?;
        if !(EARLIEST..=now + FUTURE_SLACK_SECS).contains(&at) {
            return Err(invalid(i, "at is before 2000 or in the future"));
        }
        if item.event.as_ref().is_some_and(|e| e.len() > 200) {
            return Err(invalid(i, "event is longer than 200 characters"));
        }
        let count = item.count.unwrap_or(1);
        if !(1..=1_000_000).contains(&count) {
            return Err(invalid(i, "count must be 1 to 1000000"));
        }
        let entry = by_customer.entry(customer).or_insert((at, at, BTreeMap::new(), BTreeMap::new()));
        entry.0 = entry.0.min(at);
        entry.1 = entry.1.max(at);
        *entry.2.entry(at.div_euclid(DAY)).or_default() += count;
        if let Some(name) = item.event.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            *entry.3.entry((at.div_euclid(DAY), name)).or_default() += count;
        }
    }
    Ok(by_customer
        .into_iter()
        .map(|(customer, (first_at, last_at, days, names))| ActivitySum {
            customer: customer.to_owned(),
            first_at,
            last_at,
            days: days.into_iter().collect(),
            names: names.into_iter().map(|((day, name), n)| (day, name.to_owned(), n)).collect(),
        })
        .collect())
}

/// Record a batch.
pub async fn post_activity(
    _owner: Owner,
    req: HttpRequest,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
    body: web::Json<Batch>,
) -> Result<HttpResponse, ApiError> {
    let Ok(key) = idempotency_key(&req) else {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    };
    let items = match body.into_inner() {
        Batch::Items(items) | Batch::Wrapped { events: items } => items,
    };
    if items.len() > MAX_ITEMS {
        return Err(ApiError::too_large("too_many_items", format!("at most {MAX_ITEMS} items per batch; split it")));
    }
    let now = clock.now();
    let sums = sum(&items, now).map_err(|Invalid(message)| ApiError::bad_request("invalid_activity", message))?;
    let print = key.map(|_| fingerprint(&sums));
    let (n_items, n_customers) = (items.len() as i64, sums.len() as i64);
    let batch_key = key.zip(print.as_deref()).map(|(key, fingerprint)| BatchKey { key, fingerprint, items: n_items });
    let recorded = store.record_activity(&sums, now, batch_key).await.map_err(ApiError::store("storing an activity batch"))?;
    match recorded {
        Recorded::Stored { reengaged } => {
            Ok(HttpResponse::Ok().json(Accepted { accepted: n_items, customers: n_customers, reengaged, replayed: false }))
        }
        Recorded::Replayed { items, customers } => {
            Ok(HttpResponse::Ok().json(Accepted { accepted: items, customers, reengaged: Vec::new(), replayed: true }))
        }
        Recorded::KeyReused => Err(ApiError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key came with a different batch in the last 7 days; use a new key per batch",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(customer: &str, at: i64, count: Option<i64>) -> Item {
        Item { customer: customer.into(), at: When::Unix(at), event: None, count }
    }

    #[test]
    fn a_batch_sums_per_customer_and_day() {
        // Day 20,000 is in 2024.
        let now = 20_000 * DAY;
        let day = |n: i64| 20_000 - n;
        let items =
            [item("cus_a", now - DAY + 5, None), item("cus_a", now - DAY + 9, Some(3)), item("cus_b", now - 2 * DAY, None)];
        let sums = sum(&items, now).expect("valid");
        assert_eq!(sums[0].customer, "cus_a");
        assert_eq!((sums[0].first_at, sums[0].last_at, sums[0].days.clone()), (now - DAY + 5, now - DAY + 9, vec![(day(1), 4)]));
        assert_eq!(sums[1].days, vec![(day(2), 1)]);
        assert!(sums.iter().all(|s| s.names.is_empty()), "unnamed items are counted by day only");
        let named = [
            Item { customer: "cus_a".into(), at: When::Unix(now - 5), event: Some(" login ".into()), count: Some(2) },
            Item { customer: "cus_a".into(), at: When::Unix(now - 9), event: Some("login".into()), count: None },
        ];
        assert_eq!(sum(&named, now).expect("valid")[0].names, vec![(day(1), "login".to_owned(), 3)]);
    }

    #[test]
    fn the_fingerprint_ignores_item_order_but_not_counts() {
        let now = 20_000 * DAY;
        let (a, b) = (item("cus_a", now - 5, None), item("cus_b", now - DAY, Some(2)));
        let print = |items: &[Item]| fingerprint(&sum(items, now).expect("valid"));
        let (a2, b2) = (item("cus_a", now - 5, None), item("cus_b", now - DAY, Some(2)));
        assert_eq!(print(&[a, b]), print(&[b2, a2]));
        assert_ne!(print(&[item("cus_a", now - 5, None)]), print(&[item("cus_a", now - 5, Some(2))]));
    }

    #[test]
    fn bad_items_are_named() {
        let now = 20_000 * DAY;
        assert!(sum(&[item("cus_a", 99 * DAY, None)], now).is_err(), "before 2000");
        assert!(sum(&[item("", now, None)], now).is_err());
        assert!(sum(&[item("cus_a", now + 2 * DAY, None)], now).is_err());
        assert!(sum(&[item("cus_a", now, Some(0))], now).is_err());
        let text = Item { customer: "cus_a".into(), at: When::Text("2026-01-02T03:04:05Z".into()), event: None, count: None };
        assert_eq!(unix(&text.at), Some(1_767_323_045));
    }
}
