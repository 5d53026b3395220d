//! Money as people read it: one formatter for every place Holdfast shows an amount (dashboard,
//! `holdfast summary`, emails, cancel pages, CSV).
//!
//! Stripe states every amount in the currency's minor unit, and the size of that unit is the
//! currency's: a yen is its own minor unit (zero-decimal), a Kuwaiti dinar has 1000 fils
//! (three-decimal), a dollar 100 cents. A few currencies keep Stripe's two-decimal amounts
//! for compatibility although nobody pays in their fractions: ISK amounts are multiples of
//! 100 (shown as whole krónur); HUF and TWD are whole units only for payouts, charges keep
//! two decimals (shown with them).

/// Stripe's zero-decimal currencies: the amount is the number of whole units.
const ZERO_DECIMAL: [&str; 16] =
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"];

/// Stripe's three-decimal currencies.
const THREE_DECIMAL: [&str; 5] = ["bhd", "jod", "kwd", "omr", "tnd"];

/// Symbols placed before the number. Dollar and yen symbols other currencies share carry a
/// prefix so an amount never reads as another currency; a currency not listed is written
/// with its code after the number (`1.250 KWD`).
const SYMBOLS: [(&str, &str); 19] = [
    ("usd", "$"),
    ("eur", "€"),
    ("gbp", "£"),
    ("jpy", "¥"),
    ("krw", "₩"),
    ("inr", "₹"),
    ("ils", "₪"),
    ("ngn", "₦"),
    ("php", "₱"),
    ("vnd", "₫"),
    ("cny", "CN¥"),
    ("cad", "CA$"),
    ("aud", "A$"),
    ("nzd", "NZ$"),
    ("hkd", "HK$"),
    ("sgd", "S$"),
    ("mxn", "MX$"),
    ("brl", "R$"),
    ("twd", "NT$"),
];

fn code_of(currency: &str) -> String {
    currency.trim().to_ascii_lowercase()
}

/// How many decimal places Stripe's minor unit of `currency` is (0, 2 or 3).
pub fn exponent(currency: &str) -> u32 {
    let c = code_of(currency);
    if ZERO_DECIMAL.contains(&c.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&c.as_str()) {
        3
    } else {
        2
    }
}

/// How many decimals an amount of `currency` is shown with: the exponent, except ISK, whose
/// two-decimal amounts always end in `00`.
pub fn decimals(currency: &str) -> u32 {
    if code_of(currency) == "isk" { 0 } else { exponent(currency) }
}

/// The symbol written before an amount of `currency`, when it has one here.
pub fn symbol(currency: &str) -> Option<&'static str> {
    let c = code_of(currency);
    SYMBOLS.iter().find(|(code, _)| *code == c).map(|(_, s)| *s)
}

/// `minor` (in `currency`'s minor unit, possibly fractional) in whole units rounded to
/// `places` decimals: (negative?, integer part, fraction digits).
fn split(minor: f64, currency: &str, places: u32) -> (bool, u128, String) {
    let minor = if minor.is_finite() { minor } else { 0.0 };
    let scale = 10f64.powi(places as i32 - exponent(currency) as i32);
    let scaled = (minor * scale).round();
    let negative = scaled < 0.0;
    // Saturating cast: amounts beyond u128 are not money anyone holds.
    let units = scaled.abs() as u128;
    let div = 10u128.pow(places);
    let fraction = if places == 0 { String::new() } else { format!("{:0width$}", units % div, width = places as usize) };
    (negative, units / div, fraction)
}

/// The amount as a plain number in whole units with the currency's decimals, no grouping and
/// no symbol: `12.50`, `1200` (JPY), `1.250` (KWD). For CSV and other machine-read text.
pub fn number(minor: f64, currency: &str) -> String {
    let (negative, whole, fraction) = split(minor, currency, decimals(currency));
    let sign = if negative { "-" } else { "" };
    if fraction.is_empty() { format!("{sign}{whole}") } else { format!("{sign}{whole}.{fraction}") }
}

fn grouped(whole: u128) -> String {
    let digits = whole.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn with_symbol(negative: bool, body: String, currency: &str) -> String {
    let sign = if negative { "-" } else { "" };
    match symbol(currency) {
        Some(s) => format!("{sign}{s}{body}"),
        None => format!("{sign}{body} {}", code_of(currency).to_ascii_uppercase()),
    }
}

/// Money as a person reads it: `$1,249.00`, `¥1,200`, `€9.50`, `1.250 KWD`, `-$3.00`.
pub fn format(minor: f64, currency: &str) -> String {
    let (negative, whole, fraction) = split(minor, currency, decimals(currency));
    let body = if fraction.is_empty() { grouped(whole) } else { format!("{}.{fraction}", grouped(whole)) };
    with_symbol(negative, body, currency)
}

/// [`format`] of a whole minor-unit amount (what Stripe's objects carry).
pub fn format_minor(minor: i64, currency: &str) -> String {
    format(minor as f64, currency)
}

/// Whole units only, for chart axes and labels: `$1,249`, `¥1,200`, `1 KWD`.
pub fn format_whole(minor: f64, currency: &str) -> String {
    let (negative, whole, _) = split(minor, currency, 0);
    with_symbol(negative, grouped(whole), currency)
}

/// `$20.00`, `€9.50`, `¥2,000`, `12.00 CHF`: money as a customer reads it (USD when the
/// object names no currency).
pub fn format_amount(cents: i64, currency: Option<&str>) -> String {
    format_minor(cents, currency.unwrap_or("usd"))
}

/// `2 March 2026` (UTC).
pub fn format_date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map(|d| d.format("%-d %B %Y").to_string()).unwrap_or_default()
}

/// `March 2026` and the (year, month) of an instant, UTC.
pub fn year_month(unix: i64) -> (i64, i64, String) {
    use chrono::Datelike;
    let d = chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default();
    (i64::from(d.year()), i64::from(d.month()), d.format("%B %Y").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_currency_has_its_own_exponent() {
        assert_eq!((exponent("usd"), exponent("JPY"), exponent("kwd"), exponent("isk")), (2, 0, 3, 2));
        for c in ZERO_DECIMAL {
            assert_eq!(exponent(c), 0, "{c}");
        }
        for c in THREE_DECIMAL {
            assert_eq!(exponent(c), 3, "{c}");
        }
        assert_eq!((decimals("isk"), decimals("huf"), decimals("twd")), (0, 2, 2));
    }

    #[test]
    fn amounts_read_as_money_in_their_currency() {
        assert_eq!(format_minor(2000, "usd"), "$20.00");
        assert_eq!(format_minor(124_900, "usd"), "$1,249.00");
        assert_eq!(format_minor(1200, "jpy"), "¥1,200");
        assert_eq!(format_minor(1_234_567, "JPY"), "¥1,234,567");
        assert_eq!(format_minor(1250, "kwd"), "1.250 KWD");
        assert_eq!(format_minor(950, "eur"), "€9.50");
        assert_eq!(format_minor(50_000, "isk"), "500 ISK");
        assert_eq!(format_minor(1205, "chf"), "12.05 CHF");
        assert_eq!(format_minor(-300, "usd"), "-$3.00");
        assert_eq!(format_minor(5, "usd"), "$0.05");
        assert_eq!(format_minor(1000, "cad"), "CA$10.00");
    }

    #[test]
    fn fractional_minor_units_round_to_the_shown_decimals() {
        // A yearly ¥10,000 is ¥833.33… a month: shown as ¥833.
        assert_eq!(format(10_000.0 / 12.0, "jpy"), "¥833");
        assert_eq!(format(99_900.0 / 12.0, "usd"), "$83.25");
        assert_eq!(format(1_000.0 / 3.0, "kwd"), "0.333 KWD");
        assert_eq!(format(f64::NAN, "usd"), "$0.00");
    }

    #[test]
    fn plain_numbers_and_whole_units() {
        assert_eq!(number(1250.0, "usd"), "12.50");
        assert_eq!(number(1200.0, "jpy"), "1200");
        assert_eq!(number(1250.0, "kwd"), "1.250");
        assert_eq!(number(-1250.0, "eur"), "-12.50");
        assert_eq!(number(123_456_789.0, "usd"), "1234567.89");
        assert_eq!(format_whole(124_960.0, "usd"), "$1,250");
        assert_eq!(format_whole(1200.0, "jpy"), "¥1,200");
        assert_eq!(format_whole(1250.0, "kwd"), "1 KWD");
    }

    #[test]
    fn amounts_read_as_money() {
        assert_eq!(format_amount(2000, Some("usd")), "$20.00");
        assert_eq!(format_amount(950, Some("EUR")), "€9.50");
        assert_eq!(format_amount(2000, Some("jpy")), "¥2,000");
        assert_eq!(format_amount(2000, Some("kwd")), "2.000 KWD");
        assert_eq!(format_amount(2000, None), "$20.00");
        assert_eq!(format_amount(1200, Some("chf")), "12.00 CHF");
    }
}
