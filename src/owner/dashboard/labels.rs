//! Words for the owner's pages: human labels for every stored code (reasons, outcomes,
//! statuses, campaigns) and money in the currency's own unit (JPY has no minor unit).

use serde_json::Value;

/// Money in the currency's own unit and symbol (`$12.50`, `¥1,200`), from an amount in its
/// minor unit as Stripe stores it; one formatter for every page (`domain::money`).
pub fn money(minor: f64, currency: Option<&str>) -> String {
    match currency.filter(|c| !c.is_empty()) {
        Some(c) => crate::domain::money::format(minor, c),
        None => format!("{:.2}", minor / 100.0),
    }
}

/// Every stored code with a human label, by what it is. A code not listed is spelled out.
const LABELS: &[(&str, &str)] = &[
    // Survey reasons (ours) and Stripe's cancellation feedback.
    ("too_expensive", "Too expensive"),
    ("unused", "Not using it enough"),
    ("missing_features", "Missing a feature"),
    ("switched_service", "Switched to another product"),
    ("low_quality", "Not the value expected"),
    ("technical_problems", "Technical problems"),
    ("customer_service", "Customer service"),
    ("too_complex", "Too complicated"),
    ("other", "Something else"),
    // Cancel-flow outcomes and cancellation states.
    ("paused", "Paused"),
    ("downgraded", "Downgraded"),
    ("discounted", "Took the discount"),
    ("canceled", "Cancelled"),
    ("abandoned", "Left without choosing"),
    ("resumed", "Kept the subscription"),
    ("ends_at_period_end", "Ends at period end"),
    ("ended", "Ended"),
    // At-risk reasons and states.
    ("inactive", "Inactive"),
    ("activity_drop", "Activity dropped"),
    ("low_nps", "Low NPS score"),
    ("at_risk", "At risk"),
    ("reengaged", "Re-engaged"),
    // Email states.
    ("sent", "Sent"),
    ("pending", "Scheduled"),
    ("cancelled", "Withdrawn"),
    ("failed", "Failed"),
    ("bounced", "Bounced"),
    ("suppressed", "Not sent (suppressed)"),
    ("observed", "Held (observe-only mode)"),
    // Lifecycle campaigns and series states.
    ("onboarding", "Onboarding"),
    ("trial_ending", "Trial ending"),
    ("trial_onboarding", "Trial onboarding"),
    ("annual_offer", "Annual-plan offer"),
    ("winback", "Win-back"),
    ("reengagement", "Re-engagement"),
    ("active", "Active"),
    ("stopped", "Stopped"),
    // Dunning cases.
    ("open", "Open"),
    ("recovered", "Recovered"),
    ("lost", "Lost"),
    // Subscription statuses.
    ("trialing", "Trial"),
    ("past_due", "Past due"),
    ("unpaid", "Unpaid"),
    ("incomplete", "Incomplete"),
    ("incomplete_expired", "Incomplete (expired)"),
    // Who opened the cancel flow.
    ("signed_link", "Signed link from the app"),
    ("minted", "Link made by the owner"),
    ("pause_link", "Pause link in a re-engagement email"),
];

/// The human label of a stored code; unknown codes are spelled out (`some_thing` → `Some thing`).
pub fn label(code: &str) -> String {
    if let Some((_, known)) = LABELS.iter().find(|(c, _)| *c == code) {
        return (*known).to_owned();
    }
    let spaced = code.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What a cancel-flow outcome changed, in words, from its recorded detail.
pub fn outcome_detail(outcome: &str, detail_json: Option<&str>) -> String {
    let detail: Value = detail_json.and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
    let date = |key: &str| detail.get(key).and_then(Value::as_i64).map(crate::domain::money::format_date);
    let text = |key: &str| detail.get(key).and_then(Value::as_str).map(str::to_owned);
    match outcome {
        "paused" => {
            let months = detail.get("months").and_then(Value::as_i64).unwrap_or(0);
            let resumes = date("resumes_on").or_else(|| date("resumes_at")).unwrap_or_default();
            format!("Paused {months} month{}, resumes {resumes}", if months == 1 { "" } else { "s" })
        }
        "downgraded" => format!(
            "From {} to {}",
            text("from_price").unwrap_or_else(|| "the current price".into()),
            text("to_price").unwrap_or_default()
        ),
        "discounted" => format!("Coupon {}", text("coupon").unwrap_or_default()),
        "canceled" => date("ends_at").map_or("Cancelled at period end".into(), |d| format!("Ends {d}")),
        "resumed" => "Scheduled cancellation undone".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_respects_the_currency_unit() {
        assert_eq!(money(1250.0, Some("usd")), "$12.50");
        assert_eq!(money(1200.0, Some("jpy")), "¥1,200");
        assert_eq!(money(5.0, None), "0.05");
    }

    #[test]
    fn codes_read_as_words() {
        assert_eq!(label("technical_problems"), "Technical problems");
        assert_eq!(label("discounted"), "Took the discount");
        assert_eq!(label("something_new"), "Something new");
        assert_eq!(label(""), "");
        assert!(!label("too_expensive").contains('_'));
    }

    #[test]
    fn outcomes_say_what_changed() {
        let paused = outcome_detail("paused", Some(r#"{"months":2,"resumes_on":1780272000}"#));
        assert!(paused.starts_with("Paused 2 months, resumes"), "{paused}");
        assert_eq!(outcome_detail("discounted", Some(r#"{"coupon":"SAVE20"}"#)), "Coupon SAVE20");
        assert_eq!(outcome_detail("abandoned", None), "");
    }
}
