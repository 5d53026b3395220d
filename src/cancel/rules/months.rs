//! Calendar-month arithmetic on unix seconds.
/// Whole calendar months from `start` to `now` (0 when `now` is earlier).
pub fn whole_months_between(start: i64, now: i64) -> u32 {
    let mut months = 0;
    while months < 1200 && add_months(start, months + 1) <= now {
        months += 1;
    }
    months
}

/// `months` calendar months after `from` (unix seconds), same time of day; the day is clamped
/// to the target month's length (31 Jan + 1 month = 28/29 Feb).
pub fn add_months(from: i64, months: u32) -> i64 {
    use chrono::{DateTime, Months};
    DateTime::from_timestamp(from, 0)
        .and_then(|t| t.checked_add_months(Months::new(months)))
        .map(|t| t.timestamp())
        .unwrap_or(from + i64::from(months) * 30 * 86_400)
}

/// `months` calendar months before `from` (unix seconds): the start of a cooldown window.
pub fn months_before(from: i64, months: u32) -> i64 {
    use chrono::{DateTime, Months};
    DateTime::from_timestamp(from, 0)
        .and_then(|t| t.checked_sub_months(Months::new(months)))
        .map(|t| t.timestamp())
        .unwrap_or(from - i64::from(months) * 31 * 86_400)
}
