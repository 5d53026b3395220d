//! The re-engagement campaign of an at-risk episode: its emails and the arm it records. The
//! scheduler starts it for customers gone quiet; the NPS pages for a low score.

use minijinja::context;

use crate::domain::lift::HOLDOUT;
use crate::domain::money::format_date;
use crate::lifecycle::context::Lifecycle;
use crate::lifecycle::reactions::render_series;
use crate::lifecycle::rules::{DAY, reengage_case, series_arm};
use crate::mail::NewEmail;
use crate::store::reactions::{Contact, ReactError};

/// Days after an episode closes before the same customer can be at risk again: a single
/// return leaves last week's count low for a while, and that must not restart the series.
pub const REENTRY_COOLDOWN_SECS: i64 = 14 * DAY;

/// The arm a re-engagement series records for `customer`: none while the campaign is off or
/// has no holdout, else `treated`/`holdout` (the same stable split its emails follow).
pub fn reengagement_arm(r: &Lifecycle, customer: &str) -> Option<&'static str> {
    let campaign = &r.campaigns.reengagement;
    campaign.enabled.then(|| series_arm("reengagement", customer, campaign.holdout_percent)).flatten()
}

/// The re-engagement emails of an episode starting at `now` for `customer` (last active at
/// `last_at`), under the series key `reengage_case(customer, now)`; none when the campaign
/// is off, the customer is in its holdout, or can't be written to.
pub fn reengagement_emails(
    r: &Lifecycle,
    customer: &str,
    contact: Option<&Contact>,
    last_at: i64,
    now: i64,
) -> Result<Vec<NewEmail>, ReactError> {
    let case_key = reengage_case(customer, now);
    let held_out = series_arm("reengagement", customer, r.campaigns.reengagement.holdout_percent) == Some(HOLDOUT);
    if r.campaigns.reengagement.enabled
        && !held_out
        && let Some(contact) = contact.filter(|c| !c.deleted)
        && let Some(to) = contact.email.clone()
    {
        let product_url = r.campaigns.product_url.clone();
        // The last email offers a pause: a signed link to the cancel flow's pause offer (a page
        // whose button pauses; opening the link changes nothing).
        let pause_url = r.links.pause(customer, now);
        let ctx = |day: i64| {
            context! {
                customer => context! { name => contact.name.clone(), email => to.clone() },
                day => day, last_active_on => format_date(last_at), product_url => product_url.clone(),
                pause_url => pause_url.clone(),
                action_url => product_url.clone(), action_label => "Pick up where you left off",
            }
        };
        return render_series(r, &r.campaigns.reengagement, &case_key, customer, &to, now, true, ctx);
    }
    Ok(Vec::new())
}
