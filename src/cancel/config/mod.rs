//! Cancel-flow settings: offers, pause lengths, downgrade map, coupon, links and brand. Read
//! from the `[cancel_flow]` and `[brand]` tables of `holdfast.toml` (path in
//! `HOLDFAST_CONFIG_FILE`, default `./holdfast.toml` when present), then overridden by the
//! environment variables named on each field.

use std::collections::BTreeMap;

use secrecy::SecretString;

use crate::cancel::rules::{Billing, OfferKind, Reason, Segment, default_offers_by_reason};
use crate::config::loader::Loader;
use crate::config::{Brand, ConfigError, Source, problem};

mod file;

pub(crate) use file::FileCancelFlow;

/// How a downgrade is billed (Stripe's `proration_behavior`).
pub const DEFAULT_PRORATION: &str = "none";
/// The cancel flow, validated.
#[derive(Clone, Debug)]
pub struct CancelFlowSettings {
    /// `HOLDFAST_LINK_SECRET`: key of the signed `/cancel?customer=…&sig=…` links (unset:
    /// signed links are refused; minted links still work).
    pub link_secret: Option<SecretString>,
    /// `HOLDFAST_CANCEL_OFFERS` / `offers` (default `pause,downgrade,discount`): offers enabled.
    pub offers_enabled: Vec<OfferKind>,
    /// `[cancel_flow.offers_by_reason]` (file only): which offers each reason gets, in order.
    pub offers_by_reason: BTreeMap<Reason, Vec<OfferKind>>,
    /// `HOLDFAST_CANCEL_PAUSE_MONTHS` / `pause_months` (default `1,2,3`): pause lengths offered.
    pub pause_months: Vec<u32>,
    /// `HOLDFAST_CANCEL_DOWNGRADE_MAP` (`price_a=price_b,…`) / `[cancel_flow.downgrade]`:
    /// price → cheaper price. A price without an entry gets no downgrade offer.
    pub downgrade_map: BTreeMap<String, String>,
    /// `HOLDFAST_CANCEL_DOWNGRADE_PRORATION` / `downgrade_proration` (default `none`): Stripe's
    /// `proration_behavior` for a downgrade (`none`, `create_prorations`, `always_invoice`).
    pub downgrade_proration: String,
    /// `HOLDFAST_CANCEL_COUPON` / `coupon`: the discount offer's coupon for monthly plans (unset:
    /// none for them unless `[[cancel_flow.discounts]]` has a monthly entry).
    pub coupon: Option<String>,
    /// `HOLDFAST_CANCEL_DISCOUNT_TEXT` / `discount_text`: what the discount offer says (describe
    /// the coupon, e.g. "30 % off your next 3 months").
    pub discount_text: String,
    /// `[[cancel_flow.discounts]]` (file only) plus the monthly coupon above: one coupon per
    /// billing interval, so a yearly subscriber is never offered a coupon sized for months.
    pub discounts: Vec<DiscountOffer>,
    /// `[[cancel_flow.segments]]` (file only): offers per reason for subscriptions of a given
    /// interval and tenure; the first matching segment that lists the reason wins.
    pub segments: Vec<Segment>,
    /// `HOLDFAST_CANCEL_DISCOUNT_COOLDOWN_MONTHS` / `discount_cooldown_months` (default 12): no
    /// discount offer when a discount started within this many months.
    pub discount_cooldown_months: u32,
    /// `HOLDFAST_CANCEL_RETURN_URL` / `return_url`: the "back to the product" link when a
    /// session has none of its own.
    pub return_url: Option<String>,
    /// `HOLDFAST_CANCEL_LINK_TTL_SECS` / `link_ttl_secs` (default 604800): life of a minted link.
    pub link_ttl_secs: i64,
    /// `HOLDFAST_CANCEL_SESSION_TIMEOUT_SECS` / `session_timeout_secs` (default 3600): a session
    /// unfinished this long after it was opened is abandoned (its pages answer 403).
    pub session_timeout_secs: i64,
    /// `HOLDFAST_CANCEL_RATE_LIMIT` / `rate_limit_per_minute` (default 60): requests per client
    /// address per minute on the public cancel pages.
    pub rate_limit_per_minute: u32,
    /// `HOLDFAST_SAVE_CONFIRM_DAYS` / `save_confirm_days` (default 30): a save without a paid
    /// invoice is confirmed when the customer is still paying this many days after the offer's
    /// effect ended.
    pub save_confirm_days: i64,
    pub brand: Brand,
}

/// The discount offered to subscriptions billed every `interval_count` `interval`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscountOffer {
    pub interval: String,
    pub interval_count: i64,
    pub coupon: String,
    /// What the offer says, e.g. "20 % off your next renewal".
    pub text: String,
    /// Required for an `amount_off` coupon (Stripe applies it only in its currency): the offer
    /// is then shown only to subscriptions in this currency. Unset: any currency (`percent_off`).
    pub currency: Option<String>,
}

impl CancelFlowSettings {
    /// The discount that fits `billing` and `currency`, if one is configured.
    pub fn discount_for(&self, billing: &Billing, currency: Option<&str>) -> Option<&DiscountOffer> {
        self.discounts.iter().find(|d| {
            billing.interval.as_deref() == Some(d.interval.as_str())
                && billing.interval_count.max(1) == d.interval_count
                && d.currency.as_deref().is_none_or(|c| currency.is_some_and(|cur| cur.eq_ignore_ascii_case(c)))
        })
    }
}

const INTERVALS: [&str; 4] = ["day", "week", "month", "year"];

fn interval(l: &Loader<'_>, key: &str, i: &str, count: Option<i64>) -> Result<(String, i64), ConfigError> {
    if !INTERVALS.contains(&i) {
        return Err(l.fail(key, format!("interval {i:?} must be day, week, month or year")));
    }
    match count.unwrap_or(1) {
        n if n >= 1 => Ok((i.to_owned(), n)),
        _ => Err(l.fail(key, "interval_count must be at least 1")),
    }
}

fn reason_offers(
    l: &Loader<'_>,
    key: &str,
    map: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<Reason, Vec<OfferKind>>, ConfigError> {
    map.iter()
        .map(|(reason, names)| {
            let r = Reason::parse(reason).ok_or_else(|| l.fail(key, format!("has an unknown reason {reason:?}")))?;
            Ok((r, offers(names).map_err(|e| l.fail(key, e))?))
        })
        .collect()
}

/// The offers `names` names, or the problem with the first that names none.
pub(crate) fn offers(names: &[String]) -> Result<Vec<OfferKind>, String> {
    names
        .iter()
        .map(|n| OfferKind::parse(n.trim()).ok_or_else(|| format!("unknown offer {n:?} (pause, downgrade, discount)")))
        .collect()
}

impl CancelFlowSettings {
    /// Read through the one loader (see `config::loader`).
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        let l = Loader::new(src)?;
        Self::from_loader(&l, Brand::from_loader(&l)?)
    }

    /// Every value checked.
    pub(crate) fn from_loader(l: &Loader<'_>, brand: Brand) -> Result<Self, ConfigError> {
        let f = &l.table::<FileCancelFlow>("cancel_flow")?;
        let offers_enabled = offers(&f.offers).map_err(|e| l.fail("cancel_flow.offers", e))?;

        let mut offers_by_reason = default_offers_by_reason();
        offers_by_reason.extend(reason_offers(
            l,
            "cancel_flow.offers_by_reason",
            f.offers_by_reason.as_ref().unwrap_or(&BTreeMap::new()),
        )?);

        let segments = segments(l, f)?;
        let discounts = discounts(l, f)?;
        let (coupon, discount_text) = (f.coupon.clone(), f.discount_text.clone());

        if f.pause_months.iter().any(|m| !(1..=12).contains(m)) {
            return Err(l.fail("cancel_flow.pause_months", "each pause length must be 1 to 12 months"));
        }
        if !["none", "create_prorations", "always_invoice"].contains(&f.downgrade_proration.as_str()) {
            return Err(l.fail("cancel_flow.downgrade_proration", "must be none, create_prorations or always_invoice"));
        }
        let positive = |key: &str, v: i64| if v > 0 { Ok(v) } else { Err(l.fail(key, "must be positive")) };
        let return_url = match &f.return_url {
            Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                return Err(l.fail("cancel_flow.return_url", "must start with http:// or https://"));
            }
            other => other.clone(),
        };

        Ok(Self {
            link_secret: link_secret(l)?,
            offers_enabled,
            offers_by_reason,
            pause_months: f.pause_months.clone(),
            downgrade_map: f.downgrade.clone(),
            downgrade_proration: f.downgrade_proration.clone(),
            coupon,
            discount_text,
            discounts,
            segments,
            discount_cooldown_months: f.discount_cooldown_months,
            return_url,
            link_ttl_secs: positive("cancel_flow.link_ttl_secs", f.link_ttl_secs)?,
            session_timeout_secs: positive("cancel_flow.session_timeout_secs", f.session_timeout_secs)?,
            rate_limit_per_minute: f.rate_limit_per_minute,
            save_confirm_days: positive("cancel_flow.save_confirm_days", f.save_confirm_days)?,
            brand,
        })
    }
}

/// `[[cancel_flow.segments]]`: offers by reason for customers of one interval and tenure.
fn segments(l: &Loader<'_>, f: &FileCancelFlow) -> Result<Vec<Segment>, ConfigError> {
    f.segments
        .iter()
        .flatten()
        .map(|seg| {
            let (interval, interval_count) = match &seg.interval {
                Some(i) => interval(l, "cancel_flow.segments", i, seg.interval_count).map(|(i, n)| (Some(i), Some(n)))?,
                None => (None, seg.interval_count),
            };
            Ok(Segment {
                interval,
                interval_count,
                min_tenure_months: seg.min_tenure_months,
                max_tenure_months: seg.max_tenure_months,
                offers_by_reason: reason_offers(l, "cancel_flow.segments", &seg.offers_by_reason)?,
            })
        })
        .collect()
}

/// `[[cancel_flow.discounts]]`, plus the single `coupon` as the monthly plans' discount.
fn discounts(l: &Loader<'_>, f: &FileCancelFlow) -> Result<Vec<DiscountOffer>, ConfigError> {
    let mut discounts = f
        .discounts
        .iter()
        .flatten()
        .map(|d| {
            let (interval, interval_count) = interval(l, "cancel_flow.discounts", &d.interval, d.interval_count)?;
            Ok(DiscountOffer {
                interval,
                interval_count,
                coupon: d.coupon.clone(),
                text: d.text.clone(),
                currency: d.currency.as_ref().map(|c| c.to_ascii_lowercase()),
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    // The single coupon is the monthly plans' coupon (the common case, and what it was
    // before intervals were told apart); an explicit monthly entry wins.
    if let Some(c) = &f.coupon
        && !discounts.iter().any(|d| d.interval == "month" && d.interval_count == 1)
    {
        discounts.push(DiscountOffer {
            interval: "month".into(),
            interval_count: 1,
            coupon: c.clone(),
            text: f.discount_text.clone(),
            currency: None,
        });
    }
    Ok(discounts)
}

/// `HOLDFAST_LINK_SECRET`, when set: at least 16 characters.
fn link_secret(l: &Loader<'_>) -> Result<Option<SecretString>, ConfigError> {
    match l.get("HOLDFAST_LINK_SECRET") {
        Some(s) if s.trim().len() < 16 => {
            Err(problem("HOLDFAST_LINK_SECRET", "must be at least 16 characters (e.g. `openssl rand -hex 32`)"))
        }
        Some(s) => Ok(Some(SecretString::from(s.trim().to_owned()))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&'static str, &str)]) -> Result<CancelFlowSettings, ConfigError> {
        let map: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        CancelFlowSettings::from_source(&map)
    }

    #[test]
    fn the_file_is_read_and_the_environment_wins() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("holdfast.toml");
        std::fs::write(
            &path,
            "[cancel_flow]\ncoupon = \"FILE\"\npause_months = [1, 3]\n[cancel_flow.downgrade]\nprice_pro = \"price_basic\"\n\
             [cancel_flow.offers_by_reason]\nunused = [\"discount\"]\n[brand]\nname = \"Acme\"\ncolor = \"#ffcc00\"\n",
        )
        .expect("write");
        let p = path.to_string_lossy().to_string();
        let s = load(&[("HOLDFAST_CONFIG_FILE", &p), ("HOLDFAST_CANCEL_COUPON", "ENV")]).expect("valid");
        assert_eq!(s.coupon.as_deref(), Some("ENV"));
        assert_eq!(s.pause_months, vec![1, 3]);
        assert_eq!(s.downgrade_map.get("price_pro").map(String::as_str), Some("price_basic"));
        assert_eq!(s.offers_by_reason[&Reason::Unused], vec![OfferKind::Discount]);
        assert_eq!(s.offers_by_reason[&Reason::TooExpensive], vec![OfferKind::Discount, OfferKind::Downgrade]);
        assert_eq!(s.brand.name, "Acme");
        assert_eq!(s.brand.text_on_color(), "#000000");
    }

    #[test]
    fn the_example_file_is_valid() {
        let s = load(&[("HOLDFAST_CONFIG_FILE", concat!(env!("CARGO_MANIFEST_DIR"), "/holdfast.example.toml"))]).expect("valid");
        assert_eq!(s.coupon.as_deref(), Some("SAVE30"));
        let coupon = |interval: &str, count: i64, currency: Option<&str>| {
            let billing = Billing { interval: Some(interval.into()), interval_count: count, period_end: None, pausable: false };
            s.discount_for(&billing, currency).map(|d| d.coupon.clone())
        };
        assert_eq!(coupon("month", 1, Some("usd")).as_deref(), Some("SAVE30"));
        assert_eq!(coupon("month", 3, Some("usd")).as_deref(), Some("QUARTER15"));
        assert_eq!(coupon("year", 1, Some("eur")).as_deref(), Some("YEARLY20"));
        assert_eq!(coupon("week", 1, Some("usd")), None);
        assert_eq!(s.segments.len(), 1);
        assert_eq!(s.segments[0].offers_by_reason[&Reason::Unused], vec![OfferKind::Discount]);
        assert_eq!(s.brand.name, "Acme Notes");
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(load(&[("HOLDFAST_CANCEL_OFFERS", "refund")]).expect_err("offer").var, "HOLDFAST_CANCEL_OFFERS");
        assert_eq!(load(&[("HOLDFAST_CANCEL_PAUSE_MONTHS", "0")]).expect_err("months").var, "HOLDFAST_CANCEL_PAUSE_MONTHS");
        assert_eq!(load(&[("HOLDFAST_CANCEL_DOWNGRADE_MAP", "a")]).expect_err("map").var, "HOLDFAST_CANCEL_DOWNGRADE_MAP");
        assert_eq!(load(&[("HOLDFAST_LINK_SECRET", "short")]).expect_err("secret").var, "HOLDFAST_LINK_SECRET");
        assert_eq!(
            load(&[("HOLDFAST_CONFIG_FILE", "/nonexistent/holdfast.toml")]).expect_err("file").var,
            "HOLDFAST_CONFIG_FILE"
        );
        let dir = tempfile::tempdir().expect("dir");
        for bad in [
            "[[cancel_flow.discounts]]\ninterval = \"fortnight\"\ncoupon = \"X\"\ntext = \"x\"\n",
            "[[cancel_flow.discounts]]\ninterval = \"month\"\ninterval_count = 0\ncoupon = \"X\"\ntext = \"x\"\n",
            "[[cancel_flow.segments]]\ninterval = \"year\"\n[cancel_flow.segments.offers_by_reason]\nbored = [\"pause\"]\n",
        ] {
            let path = dir.path().join("bad.toml");
            std::fs::write(&path, bad).expect("write");
            let p = path.to_string_lossy().to_string();
            assert_eq!(load(&[("HOLDFAST_CONFIG_FILE", &p)]).expect_err(bad).var, "HOLDFAST_CONFIG_FILE");
        }
        // A currency-bound coupon is offered only in its currency.
        let path = dir.path().join("eur.toml");
        std::fs::write(
            &path,
            "[[cancel_flow.discounts]]\ninterval = \"year\"\ncoupon = \"E40\"\ntext = \"x\"\ncurrency = \"EUR\"\n",
        )
        .expect("write");
        let s = load(&[("HOLDFAST_CONFIG_FILE", &path.to_string_lossy())]).expect("valid");
        let yearly = Billing { interval: Some("year".into()), interval_count: 1, period_end: None, pausable: false };
        assert!(s.discount_for(&yearly, Some("eur")).is_some());
        assert!(s.discount_for(&yearly, Some("usd")).is_none() && s.discount_for(&yearly, None).is_none());
        let default = load(&[]).expect("defaults");
        assert_eq!(default.brand.text_on_color(), "#ffffff");
        assert_eq!(default.downgrade_proration, "none");
    }
}
