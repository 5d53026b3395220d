//! Calendar months in UTC, as metrics count them.

use chrono::{Datelike, NaiveDate};

/// A calendar month (UTC), ordered; `"2025-04"` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(i32);

/// A month string that is not `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("month must be YYYY-MM (e.g. 2025-04)")]
pub struct BadMonth;

impl Month {
    /// Build from a year and a 1-based month.
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((1..=12).contains(&month) && (1970..=9999).contains(&year)).then(|| Self(year * 12 + month as i32 - 1))
    }

    /// Parse `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Self, BadMonth> {
        let (y, m) = s.split_once('-').ok_or(BadMonth)?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(BadMonth);
        }
        Self::new(y.parse().map_err(|_| BadMonth)?, m.parse().map_err(|_| BadMonth)?).ok_or(BadMonth)
    }

    /// The month containing a unix timestamp.
    pub fn of(ts: i64) -> Self {
        let date = chrono::DateTime::from_timestamp(ts, 0).unwrap_or_default().date_naive();
        Self(date.year() * 12 + date.month0() as i32)
    }

    pub fn year(self) -> i32 {
        self.0.div_euclid(12)
    }

    /// 1-based month of the year.
    pub fn month(self) -> u32 {
        self.0.rem_euclid(12) as u32 + 1
    }

    /// 00:00:00 UTC on the 1st, as unix seconds.
    pub fn start(self) -> i64 {
        NaiveDate::from_ymd_opt(self.year(), self.month(), 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp())
            .unwrap_or_default()
    }

    /// `self + n` months (n may be negative).
    pub fn plus(self, n: i32) -> Self {
        Self(self.0 + n)
    }

    /// Months from `other` to `self`.
    pub fn since(self, other: Self) -> i32 {
        self.0 - other.0
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_print_and_start_at_midnight_utc() {
        let m = Month::parse("2025-04").expect("valid");
        assert_eq!(m.to_string(), "2025-04");
        assert_eq!(m.start(), 1_743_465_600);
        assert_eq!(Month::of(1_743_465_599), m.plus(-1));
        assert_eq!(Month::of(1_743_465_600), m);
        assert_eq!(m.plus(9).to_string(), "2026-01");
        for bad in ["2025-13", "2025-4", "25-04", "2025/04", "", "2025-00", "abcd-ef"] {
            assert_eq!(Month::parse(bad), Err(BadMonth), "{bad}");
        }
    }
}
