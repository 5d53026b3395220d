//! The monthly value recap: on each paying customer's billing anniversary, one marketing
//! email with their plan and price and their month's product activity by event name, each
//! against the month before, ending with a question (replies go to `EMAIL_REPLY_TO`).
//! Decided by the scheduler with the app's clock; one per customer per month by its outbox
//! key `recap:<customer>:<YYYY-MM>`.

pub mod config;
pub mod storage;

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use minijinja::context;

use crate::domain::money;
use crate::domain::money::format_date;
use crate::lifecycle::context::Lifecycle;
use crate::lifecycle::recap::storage::{OTHER, RecapItem, RecapSubscription};
use crate::mail::NewEmail;
use crate::mail::composer::EmailTo;
use crate::store::reactions::ReactError;
use crate::store::{Store, StoreError};

const DAY: i64 = 86_400;
/// A recap missed on its day (the service was down) still goes this many days later.
pub const CATCH_UP_DAYS: i64 = 3;

/// The recap due at some instant: the month it covers and the one before (UTC days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The anniversary (UTC midnight) the recap belongs to.
    pub anniversary: i64,
    /// The covered month: `[from, anniversary)`.
    pub from: i64,
    /// The month before: `[previous_from, from)`.
    pub previous_from: i64,
}

impl Due {
    /// `YYYY-MM` of the anniversary: the recap's key within the customer.
    pub fn month_key(&self) -> String {
        Utc.timestamp_opt(self.anniversary, 0).single().map(|d| d.format("%Y-%m").to_string()).unwrap_or_default()
    }
}

fn month_shift(year: i32, month: u32, by: i32) -> (i32, u32) {
    let index = year * 12 + month as i32 - 1 + by;
    (index.div_euclid(12), (index.rem_euclid(12) + 1) as u32)
}

fn days_in(year: i32, month: u32) -> u32 {
    let (ny, nm) = month_shift(year, month, 1);
    NaiveDate::from_ymd_opt(ny, nm, 1).and_then(|d| d.pred_opt()).map_or(28, |d| d.day())
}

/// UTC midnight of the anchor's day of month in `(year, month)`; a month too short for it
/// (the 31st in April, the 30th in February) has its anniversary on its last day.
pub fn anniversary(anchor_day: u32, year: i32, month: u32) -> i64 {
    let day = anchor_day.min(days_in(year, month));
    NaiveDate::from_ymd_opt(year, month, day).and_then(|d| d.and_hms_opt(0, 0, 0)).map_or(0, |d| d.and_utc().timestamp())
}

/// The recap due at `now` for a subscription anchored at `anchor`: on the anniversary day
/// or up to `CATCH_UP_DAYS` after, once the subscription has a whole month behind it.
pub fn due(anchor: i64, now: i64) -> Option<Due> {
    due_on_day(anchor, Utc.timestamp_opt(anchor, 0).single()?.day(), now)
}

/// The day of the month a subscription renews on: read from its current billing period when
/// known (Stripe moves the anchor when it is set explicitly or reset by a plan change), else
/// the stored anchor's. A period clamped by a short month (31 January → 28 February) ends or
/// starts on the anchor day on its other side, hence the later of the two days.
pub fn anchor_day(anchor: i64, period_start: Option<i64>, period_end: Option<i64>) -> Option<u32> {
    let day = |t: i64| Utc.timestamp_opt(t, 0).single().map(|d| d.day());
    match (period_start.and_then(day), period_end.and_then(day)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (Some(a), None) | (None, Some(a)) => Some(a),
        (None, None) => day(anchor),
    }
}

/// [`due`] for a subscription that renews on `anchor_day` of each month (its first month
/// counted from `anchor`).
pub fn due_on_day(anchor: i64, anchor_day: u32, now: i64) -> Option<Due> {
    let n = Utc.timestamp_opt(now, 0).single()?;
    for back in [0, 1] {
        let (y, m) = month_shift(n.year(), n.month(), -back);
        let this = anniversary(anchor_day, y, m);
        if now < this || now >= this + CATCH_UP_DAYS * DAY {
            continue;
        }
        let (py, pm) = month_shift(y, m, -1);
        let (qy, qm) = month_shift(y, m, -2);
        let from = anniversary(anchor_day, py, pm);
        // A whole month subscribed: the covered month began on or after the anchor's day.
        if from < anchor - anchor.rem_euclid(DAY) {
            return None;
        }
        return Some(Due { anniversary: this, from, previous_from: anniversary(anchor_day, qy, qm) });
    }
    None
}

/// One line of the recap: an event name's count this month and last.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageLine {
    pub name: String,
    pub label: String,
    pub count: i64,
    pub previous: i64,
    /// `+3 (+25 %)`, `−2 (−50 %)`, `same as the month before`, `new this month`.
    pub change: String,
}

fn change(count: i64, previous: i64) -> String {
    let diff = count - previous;
    match (diff, previous) {
        (0, _) => "same as the month before".into(),
        (_, 0) => "new this month".into(),
        _ => {
            let pct = (diff as f64 * 100.0 / previous as f64).round() as i64;
            let sign = |v: i64| if v > 0 { format!("+{v}") } else { format!("−{}", v.unsigned_abs()) };
            format!("{} ({} %) on the month before", sign(diff), sign(pct))
        }
    }
}

/// The month's lines, most used first, `other` last.
pub fn usage_lines(
    this: &std::collections::BTreeMap<String, i64>,
    previous: &std::collections::BTreeMap<String, i64>,
    labels: &std::collections::BTreeMap<String, String>,
) -> Vec<UsageLine> {
    let names: std::collections::BTreeSet<&String> = this.keys().chain(previous.keys()).collect();
    let mut lines: Vec<UsageLine> = names
        .into_iter()
        .map(|name| {
            let (count, prev) = (this.get(name).copied().unwrap_or(0), previous.get(name).copied().unwrap_or(0));
            let label =
                labels.get(name).cloned().unwrap_or_else(|| if name == OTHER { "other activity".into() } else { name.clone() });
            UsageLine { name: name.clone(), label, count, previous: prev, change: change(count, prev) }
        })
        .collect();
    lines.sort_by(|a, b| (a.name == OTHER).cmp(&(b.name == OTHER)).then(b.count.cmp(&a.count)).then(a.name.cmp(&b.name)));
    lines
}

/// `Pro · $20.00 / month` for the subscription's items.
pub fn plan_and_price(items: &[RecapItem]) -> (Option<String>, Option<String>) {
    let Some(first) = items.first() else { return (None, None) };
    let names: Vec<String> = items.iter().filter_map(|i| i.plan.clone()).collect();
    let currency = first.currency.as_deref().unwrap_or("usd");
    let minor: i64 = items.iter().map(|i| i.unit_amount.unwrap_or(0) * i.quantity).sum();
    let every = match (first.recurring_interval.as_deref(), first.interval_count.unwrap_or(1)) {
        (Some(unit), 1) => format!(" / {unit}"),
        (Some(unit), n) => format!(" every {n} {unit}s"),
        (None, _) => String::new(),
    };
    let price = first.unit_amount.map(|_| format!("{}{every}", money::format_minor(minor, currency)));
    ((!names.is_empty()).then(|| names.join(", ")), price)
}

/// Why the recap check failed.
#[derive(Debug, thiserror::Error)]
pub enum RecapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Render(#[from] ReactError),
}

/// The recaps due at `now`, rendered (not yet enqueued). Customers with no named activity in
/// either month get none: there is nothing to recap.
pub async fn due_recaps(store: &Store, r: &Lifecycle, now: i64) -> Result<Vec<NewEmail>, RecapError> {
    if !r.recap.enabled {
        return Ok(Vec::new());
    }
    let mut emails = Vec::new();
    for s in store.recap_subscriptions().await? {
        let Some(day) = anchor_day(s.anchor, s.period_start, s.period_end) else { continue };
        let (Some(due), Some(to)) = (due_on_day(s.anchor, day, now), s.email.as_deref()) else { continue };
        let this = store.usage_by_name(&s.customer, due.from / DAY, due.anniversary / DAY).await?;
        let before = store.usage_by_name(&s.customer, due.previous_from / DAY, due.from / DAY).await?;
        if this.is_empty() && before.is_empty() {
            continue;
        }
        emails.push(recap_email(store, r, &s, to, &due, usage_lines(&this, &before, &r.recap.labels), now).await?);
    }
    Ok(emails)
}

async fn recap_email(
    store: &Store,
    r: &Lifecycle,
    s: &RecapSubscription,
    to: &str,
    due: &Due,
    lines: Vec<UsageLine>,
    now: i64,
) -> Result<NewEmail, RecapError> {
    let items = store.recap_items(&s.subscription).await?;
    let (plan, price) = plan_and_price(&items);
    let question =
        r.recap.question.clone().unwrap_or_else(|| "What's one thing we could do to make next month better for you?".into());
    let ctx = context! {
        customer => context! { name => s.name.clone(), email => to },
        plan => context! { name => plan, amount => price },
        period => context! { from => format_date(due.from), to => format_date(due.anniversary - DAY) },
        usage => lines,
        question => question,
        product_url => r.campaigns.product_url.clone(),
    };
    let key = format!("recap:{}:{}", s.customer, due.month_key());
    let to = EmailTo { dedupe_key: key, case_key: None, customer: Some(&s.customer), recipient: to, send_at: now };
    Ok(r.composer.marketing_email("recap_monthly", ctx, to).map_err(ReactError::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn at(y: i32, m: u32, d: u32, h: u32) -> i64 {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().expect("date").timestamp()
    }

    #[test]
    fn the_anniversary_is_the_anchor_day_or_the_last_day_of_a_short_month() {
        assert_eq!(anniversary(31, 2026, 2), at(2026, 2, 28, 0));
        assert_eq!(anniversary(31, 2028, 2), at(2028, 2, 29, 0));
        assert_eq!(anniversary(31, 2026, 4), at(2026, 4, 30, 0));
        assert_eq!(anniversary(15, 2026, 4), at(2026, 4, 15, 0));
        let anchor = at(2026, 1, 31, 10);
        let d = due(anchor, at(2026, 2, 28, 5)).expect("due on the last day of February");
        assert_eq!((d.from, d.anniversary, d.month_key()), (at(2026, 1, 31, 0), at(2026, 2, 28, 0), "2026-02".to_owned()));
        assert_eq!(d.previous_from, at(2025, 12, 31, 0));
        assert_eq!(due(anchor, at(2026, 2, 27, 23)), None, "not before the day");
        assert!(due(anchor, at(2026, 3, 2, 23)).is_some(), "caught up within three days");
        assert_eq!(due(anchor, at(2026, 3, 3, 1)), None, "not after the catch-up days");
        assert_eq!(due(at(2026, 2, 10, 9), at(2026, 2, 10, 12)), None, "not on the first day");
        assert!(due(at(2026, 2, 10, 9), at(2026, 3, 10, 0)).is_some());
    }

    #[test]
    fn the_anniversary_follows_the_billing_period_when_stripe_moved_the_anchor() {
        // Started on the 3rd, anchor reset to the 15th: the periods run 15th to 15th.
        let started = at(2026, 1, 3, 9);
        let day = anchor_day(started, Some(at(2026, 3, 15, 0)), Some(at(2026, 4, 15, 0)));
        assert_eq!(day, Some(15));
        let d = due_on_day(started, 15, at(2026, 4, 15, 1)).expect("due on the 15th");
        assert_eq!(d.anniversary, at(2026, 4, 15, 0));
        assert_eq!(due_on_day(started, 15, at(2026, 4, 3, 1)), None, "not on the start's day");
        // Anchored on the 31st, in a period clamped to February's end: still the 31st.
        assert_eq!(anchor_day(started, Some(at(2026, 1, 31, 0)), Some(at(2026, 2, 28, 0))), Some(31));
        assert_eq!(anchor_day(started, Some(at(2026, 2, 28, 0)), Some(at(2026, 3, 31, 0))), Some(31));
        // No period stored: the anchor's own day.
        assert_eq!(anchor_day(started, None, None), Some(3));
    }

    #[test]
    fn lines_compare_with_the_month_before_and_keep_other_last() {
        let this = BTreeMap::from([("login".to_owned(), 12), ("export".to_owned(), 3), (OTHER.to_owned(), 40)]);
        let before = BTreeMap::from([("login".to_owned(), 8), ("export".to_owned(), 3), ("invite".to_owned(), 2)]);
        let labels = BTreeMap::from([("login".to_owned(), "sign-ins".to_owned())]);
        let lines = usage_lines(&this, &before, &labels);
        let shown: Vec<(&str, i64, &str)> = lines.iter().map(|l| (l.label.as_str(), l.count, l.change.as_str())).collect();
        assert_eq!(
            shown,
            vec![
                ("sign-ins", 12, "+4 (+50 %) on the month before"),
                ("export", 3, "same as the month before"),
                ("invite", 0, "−2 (−100 %) on the month before"),
                ("other activity", 40, "new this month"),
            ]
        );
    }
}
