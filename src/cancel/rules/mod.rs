//! The cancel flow's rules, without I/O: the survey's reasons and how they map to Stripe's
//! `cancellation_details.feedback`, the offers, and which offers apply to a subscription.
//!
//! `reasons`: the survey's answers; `choices`: the offers, what the customer clicked and how a
//! session ended; `segments`: which offers apply; `pauses`: the pause that fits a
//! subscription's billing; `months`: calendar-month arithmetic.

mod choices;
mod months;
mod pauses;
mod reasons;
mod segments;

pub use self::choices::{Choice, OfferKind, Outcome};
pub use self::months::{add_months, months_before, whole_months_between};
pub use self::pauses::{Billing, PauseMethod, PausePlan, RESUME_MARGIN_SECS, pause_plan};
pub use self::reasons::Reason;
pub use self::segments::{OfferFacts, Segment, applicable_offers, configured_offers, default_offers_by_reason};

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> OfferFacts {
        OfferFacts {
            paused: false,
            downgrade_to: Some("price_cheap".into()),
            recently_discounted: false,
            coupon_configured: true,
            pause_configured: true,
            past_due: false,
        }
    }

    const ALL: [OfferKind; 3] = [OfferKind::Pause, OfferKind::Downgrade, OfferKind::Discount];

    #[test]
    fn reasons_map_to_stripe_feedback_values() {
        let stripe = ["too_expensive", "unused", "missing_features", "switched_service", "low_quality", "too_complex", "other"];
        for r in Reason::ALL {
            assert!(stripe.contains(&r.stripe_feedback()), "{r:?}");
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::TechnicalProblems.stripe_comment(Some(" crashes ")).as_deref(), Some("Technical problems: crashes"));
        assert_eq!(Reason::MissingFeatures.stripe_comment(Some("SSO")).as_deref(), Some("SSO"));
        assert_eq!(Reason::Other.stripe_comment(Some("  ")), None);
        assert_eq!(Reason::parse("bogus"), None);
    }

    #[test]
    fn offers_appear_only_where_they_apply() {
        let by_reason = default_offers_by_reason();
        let expensive = &by_reason[&Reason::TooExpensive];
        assert_eq!(applicable_offers(expensive, &ALL, &facts()), vec![OfferKind::Discount, OfferKind::Downgrade]);
        let cheapest = OfferFacts { downgrade_to: None, ..facts() };
        assert_eq!(applicable_offers(expensive, &ALL, &cheapest), vec![OfferKind::Discount]);
        let discounted = OfferFacts { recently_discounted: true, downgrade_to: None, ..facts() };
        assert!(applicable_offers(expensive, &ALL, &discounted).is_empty());
        let paused = OfferFacts { paused: true, ..facts() };
        assert!(applicable_offers(&by_reason[&Reason::Unused], &ALL, &paused).is_empty());
        assert_eq!(applicable_offers(&by_reason[&Reason::Unused], &ALL, &facts()), vec![OfferKind::Pause]);
        assert!(applicable_offers(&by_reason[&Reason::Unused], &[OfferKind::Discount], &facts()).is_empty());
    }

    #[test]
    fn choices_parse_strictly() {
        assert_eq!(Choice::parse("pause_2"), Some(Choice::Pause { months: 2 }));
        assert_eq!(Choice::parse("pause_x"), None);
        assert_eq!(Choice::parse("cancel"), Some(Choice::Cancel));
        assert_eq!(Choice::parse("refund"), None);
    }

    fn billing(interval: &str, count: i64, period_end: i64) -> Billing {
        Billing { interval: Some(interval.into()), interval_count: count, period_end: Some(period_end), pausable: false }
    }

    #[test]
    fn pauses_forgo_only_whole_paused_periods() {
        // 2026-01-31T12:00:00Z; the paid period ends 2026-02-28T12:00:00Z.
        let now = 1_769_860_800;
        let end = 1_772_280_000;
        let monthly = billing("month", 1, end);
        let p = pause_plan(&monthly, 2, now).expect("monthly pauses fit");
        assert_eq!(p.resumes_on, add_months(end, 2));
        assert_eq!(p.resumes_at, add_months(end, 2) - RESUME_MARGIN_SECS);
        let quarterly = billing("month", 3, end);
        assert_eq!(pause_plan(&quarterly, 1, now), None);
        assert_eq!(pause_plan(&quarterly, 2, now), None);
        assert_eq!(pause_plan(&quarterly, 3, now).map(|p| p.resumes_on), Some(add_months(end, 3)));
        let yearly = billing("year", 1, end);
        assert!((1..=11).all(|m| pause_plan(&yearly, m, now).is_none()));
        assert_eq!(pause_plan(&yearly, 12, now).map(|p| p.resumes_on), Some(add_months(end, 12)));
        assert_eq!(pause_plan(&billing("week", 1, end), 1, now), None);
        assert_eq!(pause_plan(&billing("month", 1, now - 1), 1, now), None, "no known renewal ahead");
        // Stripe pauses a flexible-mode yearly subscription itself: from now, any length.
        let flexible = Billing { pausable: true, ..yearly };
        let p = pause_plan(&flexible, 2, now).expect("a scheduled pause");
        assert_eq!((p.method, p.resumes_on, p.resumes_at), (PauseMethod::Schedule, add_months(now, 2), add_months(now, 2)));
    }

    #[test]
    fn segments_pick_offers_by_interval_and_tenure() {
        let by_reason = default_offers_by_reason();
        let yearly_new = Segment {
            interval: Some("year".into()),
            max_tenure_months: Some(6),
            offers_by_reason: [(Reason::TooExpensive, vec![OfferKind::Downgrade])].into_iter().collect(),
            ..Segment::default()
        };
        let segments = [yearly_new];
        let yearly = billing("year", 1, 0);
        let monthly = billing("month", 1, 0);
        assert_eq!(configured_offers(&segments, &by_reason, &yearly, 2, Reason::TooExpensive), &[OfferKind::Downgrade]);
        assert_eq!(
            configured_offers(&segments, &by_reason, &yearly, 7, Reason::TooExpensive),
            &[OfferKind::Discount, OfferKind::Downgrade]
        );
        assert_eq!(
            configured_offers(&segments, &by_reason, &monthly, 2, Reason::TooExpensive),
            &[OfferKind::Discount, OfferKind::Downgrade]
        );
        assert_eq!(configured_offers(&segments, &by_reason, &yearly, 2, Reason::Unused), &[OfferKind::Pause]);
        assert_eq!(whole_months_between(1_769_860_800, 1_772_280_000), 1);
        assert_eq!(whole_months_between(1_772_280_000, 1_769_860_800), 0);
    }

    #[test]
    fn a_past_due_subscription_gets_no_offer() {
        let by_reason = default_offers_by_reason();
        let past_due = OfferFacts { past_due: true, ..facts() };
        for r in Reason::ALL {
            assert!(applicable_offers(&by_reason[&r], &ALL, &past_due).is_empty());
        }
    }

    #[test]
    fn months_are_calendar_months() {
        // 2026-01-31T12:00:00Z + 1 month = 2026-02-28T12:00:00Z
        assert_eq!(add_months(1_769_860_800, 1), 1_772_280_000);
        assert_eq!(add_months(1_769_860_800, 0), 1_769_860_800);
        assert_eq!(months_before(1_772_280_000, 1), 1_769_860_800 - 3 * 86_400);
    }
}
