//! The owner's weekly digest: the week's MRR movement, who left and why (with their
//! comments), who was saved, what was recovered, who is at risk, each name linking to the
//! customer's page. Sent once per ISO week (`HOLDFAST_DIGEST_DAY`, `HOLDFAST_DIGEST_HOUR`,
//! UTC) to `HOLDFAST_OWNER_EMAIL`: the scheduler enqueues one outbox row under
//! `digest:<ISO year>-W<week>`, so replicas running the same check write one row between them.

pub mod storage;

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};

use crate::mail::{Category, EmailContent, NewEmail};
use crate::owner::alerts::{customer_url, date, html_escape};
use crate::owner::config::{DigestSettings, OwnerSettings};
use crate::owner::dashboard::labels::{label, money};
use crate::owner::digest::storage::DigestData;
use crate::owner::views::ListRow;

/// The digest due at some instant: its key and the week it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// `digest:2026-W49`.
    pub key: String,
    /// `[from, to)`: the seven days before the send time.
    pub from: i64,
    pub to: i64,
}

/// The digest policy.
#[derive(Debug, Clone, Default)]
pub struct Digest {
    settings: DigestSettings,
    owner_email: Option<String>,
    public_url: String,
}

impl Digest {
    pub fn new(owner: &OwnerSettings, public_url: &str) -> Self {
        Self { settings: owner.digest.clone(), owner_email: owner.email.clone(), public_url: public_url.to_owned() }
    }

    /// This ISO week's digest, once its day and hour have come (`None` before, or when off).
    pub fn due(&self, now: i64) -> Option<Due> {
        if !self.settings.on || self.owner_email.is_none() {
            return None;
        }
        let today = Utc.timestamp_opt(now, 0).single()?.date_naive();
        let week = today.iso_week();
        let monday = NaiveDate::from_isoywd_opt(week.year(), week.week(), Weekday::Mon)?;
        let day = monday + Duration::days(i64::from(self.settings.weekday) - 1);
        let send = day.and_hms_opt(self.settings.hour, 0, 0)?.and_utc().timestamp();
        (now >= send).then(|| Due {
            key: format!("digest:{}-W{:02}", week.year(), week.week()),
            from: send - 7 * 86_400,
            to: send,
        })
    }

    /// The digest email for `due` from the week's facts.
    pub fn email(&self, due: &Due, data: &DigestData, now: i64) -> Option<NewEmail> {
        let to = self.owner_email.clone()?;
        let content = render(&self.public_url, due, data);
        Some(NewEmail {
            dedupe_key: due.key.clone(),
            case_key: None,
            category: Category::Transactional,
            customer: None,
            recipient: to,
            template: "owner_digest".into(),
            content,
            send_at: now,
            unsubscribe_url: None,
        })
    }
}

/// Text and HTML side by side.
struct Doc {
    text: String,
    html: String,
}

impl Doc {
    fn heading(&mut self, h: &str) {
        self.text.push_str(&format!("\n{h}\n{}\n", "-".repeat(h.chars().count())));
        self.html.push_str(&format!("<h2>{}</h2>", html_escape(h)));
    }

    fn para(&mut self, p: &str) {
        self.text.push_str(&format!("{p}\n"));
        self.html.push_str(&format!("<p>{}</p>", html_escape(p)));
    }

    /// A list of customers: each name links to the customer page, then `what` about them.
    fn people(&mut self, public_url: &str, rows: &[ListRow], empty: &str, what: impl Fn(&ListRow) -> String) {
        if rows.is_empty() {
            self.para(empty);
            return;
        }
        self.html.push_str("<ul>");
        for r in rows {
            let who = r.name.clone().or_else(|| r.email.clone()).unwrap_or_else(|| r.customer.clone());
            let url = customer_url(public_url, &r.customer);
            let about = what(r);
            self.text.push_str(&format!("- {who}: {about}\n  {url}\n"));
            self.html.push_str(&format!(
                "<li><a href=\"{}\">{}</a>: {}</li>",
                html_escape(&url),
                html_escape(&who),
                html_escape(&about)
            ));
        }
        self.html.push_str("</ul>");
    }
}

fn amount(r: &ListRow) -> String {
    r.amount.map(|a| money(a, r.currency.as_deref())).unwrap_or_default()
}

fn render(public_url: &str, due: &Due, d: &DigestData) -> EmailContent {
    let mut doc = Doc { text: String::new(), html: String::new() };
    let period = format!("{} to {}", date(due.from), date(due.to - 1));
    doc.para(&format!("Your week, {period} (UTC)."));
    doc.heading("MRR");
    let currencies: std::collections::BTreeSet<&String> = d.mrr_start.keys().chain(d.mrr_end.keys()).collect();
    let mut headline = Vec::new();
    if currencies.is_empty() {
        doc.para("No paying subscriptions yet.");
    }
    for c in currencies {
        let (a, b) = (d.mrr_start.get(c).copied().unwrap_or(0.0), d.mrr_end.get(c).copied().unwrap_or(0.0));
        let change = b - a;
        let sign = if change >= 0.0 { "+" } else { "−" };
        let line = format!("{} → {} ({sign}{})", money(a, Some(c)), money(b, Some(c)), money(change.abs(), Some(c)));
        headline.push(format!("MRR {} ({sign}{})", money(b, Some(c)), money(change.abs(), Some(c))));
        doc.para(&format!("{}: {line}", c.to_ascii_uppercase()));
    }
    doc.heading(&format!("Who left ({})", d.cancellations.len()));
    doc.people(public_url, &d.cancellations, "Nobody cancelled this week.", |r| {
        let mut s = r.reason.as_deref().map_or_else(|| "no reason given".to_owned(), label);
        if let Some(c) = r.comment.as_deref().filter(|c| !c.trim().is_empty()) {
            s.push_str(&format!(" — “{}”", c.trim().chars().take(500).collect::<String>()));
        }
        s
    });
    doc.heading(&format!("Who was saved ({})", d.saves.len()));
    doc.people(public_url, &d.saves, "No saves this week.", |r| {
        let offer = r.outcome.as_deref().map_or_else(String::new, label);
        match r.reason.as_deref() {
            Some(reason) => format!("{offer} (was leaving: {})", label(reason)),
            None => offer,
        }
    });
    doc.heading(&format!("Recovered payments ({})", d.recovered.len()));
    doc.people(public_url, &d.recovered, "No failed payment was recovered this week.", |r| {
        format!("{} recovered", amount(r)).trim().to_owned()
    });
    doc.heading(&format!("At risk now ({})", d.at_risk.len()));
    doc.people(public_url, &d.at_risk, "Nobody is at risk.", |r| {
        let why = r.outcome.as_deref().map_or_else(|| "at risk".to_owned(), label);
        r.happened_at.map_or(why.clone(), |t| format!("{why} since {}", date(t)))
    });
    doc.para(&format!("The dashboard: {public_url}/dashboard"));
    let subject = match headline.first() {
        Some(h) => format!("Your week ({period}): {h}, {} left, {} saved", d.cancellations.len(), d.saves.len()),
        None => format!("Your week ({period})"),
    };
    EmailContent { subject, text: doc.text, html: format!("<!doctype html><html><body>{}</body></html>", doc.html) }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn digest(pairs: &[(&'static str, &str)]) -> Digest {
        let map: HashMap<&str, String> = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        Digest::new(&OwnerSettings::from_source(&map).expect("settings"), "https://hf.example.com")
    }

    #[test]
    fn names_link_to_the_customer_page_and_comments_are_escaped() {
        let row = ListRow {
            customer: "cus_1".into(),
            name: Some("Grace <Hopper>".into()),
            email: None,
            happened_at: Some(100),
            subscription: None,
            invoice: None,
            reason: Some("too_expensive".into()),
            comment: Some("<b>pricey</b>".into()),
            outcome: None,
            detail: None,
            currency: None,
            amount: None,
            next_email_at: None,
            next_email: None,
            day: None,
        };
        let data = DigestData { cancellations: vec![row], ..DigestData::default() };
        let due = Due { key: "digest:2026-W49".into(), from: 0, to: 7 * 86_400 };
        let c = render("https://hf.example.com", &due, &data);
        assert!(
            c.html.contains("<a href=\"https://hf.example.com/dashboard/customers/cus_1\">Grace &lt;Hopper&gt;</a>"),
            "{}",
            c.html
        );
        assert!(c.html.contains("&lt;b&gt;pricey&lt;/b&gt;") && !c.html.contains("<b>pricey"), "{}", c.html);
        assert!(c.text.contains("Grace <Hopper>: Too expensive — “<b>pricey</b>”"), "{}", c.text);
    }

    #[test]
    fn one_key_per_iso_week_from_the_configured_day_and_hour() {
        let d =
            digest(&[("HOLDFAST_OWNER_EMAIL", "o@example.com"), ("HOLDFAST_DIGEST_DAY", "wed"), ("HOLDFAST_DIGEST_HOUR", "9")]);
        // Wednesday 2026-12-02 08:59:59 UTC: not yet; 09:00 and later that week: due.
        let wed9 = Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).single().expect("date").timestamp();
        assert_eq!(d.due(wed9 - 1), None);
        let due = d.due(wed9).expect("due");
        assert_eq!(due.key, "digest:2026-W49");
        assert_eq!((due.from, due.to), (wed9 - 7 * 86_400, wed9));
        assert_eq!(d.due(wed9 + 4 * 86_400).map(|x| x.key), Some("digest:2026-W49".into()), "Sunday: same week");
        assert_eq!(d.due(wed9 + 5 * 86_400), None, "next Monday: before next Wednesday");
        // The ISO year differs from the calendar year around New Year.
        let jan1 = Utc.with_ymd_and_hms(2027, 1, 1, 12, 0, 0).single().expect("date").timestamp();
        assert_eq!(
            digest(&[("HOLDFAST_OWNER_EMAIL", "o@example.com"), ("HOLDFAST_DIGEST_DAY", "mon")]).due(jan1).map(|x| x.key),
            Some("digest:2026-W53".into())
        );
        assert_eq!(digest(&[]).due(wed9), None, "no owner email: no digest");
        assert_eq!(digest(&[("HOLDFAST_OWNER_EMAIL", "o@example.com"), ("HOLDFAST_DIGEST", "off")]).due(wed9), None);
    }
}
