//! Saves checked against billing: the pending saves with their projected subscription and paid
//! invoices (the scheduler decides them with `cancel::saves::decide`), the decision's write,
//! and the counts the owner summary reports; clicks on update-payment links and the recovery
//! attribution they make. Same SQL text on both backends.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cancel::rules::Outcome;
use crate::cancel::saves::{Decision, PaidInvoice, Save, SaveState, SubscriptionFacts};
use crate::store::{Store, StoreError};

/// Run `$body` with `$pool` bound to whichever backend's pool: the SQL is the same text.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite(s) => {
                let $pool = s.pool();
                $body
            }
            Store::Postgres(s) => {
                let $pool = s.pool();
                $body
            }
        }
    };
}

const SELECT_PENDING: &str = "SELECT c.id, c.outcome, c.completed_at, c.paused_until, c.subscription, s.status, \
     s.cancel_at_period_end, s.cancel_at, s.canceled_at, s.ended_at, s.base_mrr, s.currency \
     FROM cancel_sessions c LEFT JOIN subscriptions s ON s.id = c.subscription \
     WHERE c.save_state = 'pending' AND c.id > $1 ORDER BY c.id LIMIT $2";

const SELECT_PAID_INVOICES: &str = "SELECT created, paid_at, amount_paid FROM invoices \
     WHERE subscription = $1 AND status = 'paid' AND amount_paid > 0 AND created IS NOT NULL AND created >= $2";

const DECIDE: &str = "UPDATE cancel_sessions SET save_state = $2, save_decided_at = $3, save_evidence = $4, save_mrr = $5, \
     save_currency = $6 WHERE id = $1 AND save_state = 'pending'";

const SELECT_STATS: &str = "SELECT outcome, save_state, save_mrr, save_currency FROM cancel_sessions \
     WHERE save_state IS NOT NULL AND started_at IS NOT NULL AND started_at >= $1 AND started_at < $2";

/// Pending saves are read this many at a time.
const PAGE: i64 = 500;

#[derive(Debug, sqlx::FromRow)]
struct PendingRow {
    id: String,
    outcome: Option<String>,
    completed_at: Option<i64>,
    paused_until: Option<i64>,
    subscription: Option<String>,
    status: Option<String>,
    cancel_at_period_end: Option<bool>,
    cancel_at: Option<i64>,
    canceled_at: Option<i64>,
    ended_at: Option<i64>,
    base_mrr: Option<f64>,
    currency: Option<String>,
}

/// A pending save and what billing says about it now.
#[derive(Debug, Clone)]
pub struct PendingSave {
    /// The cancel session's id (a capability: never logged raw).
    pub session: String,
    pub save: Save,
    /// The projected subscription; `None` until Stripe's events about it arrived.
    pub subscription: Option<SubscriptionFacts>,
    /// Invoices of the subscription paid since the save, for more than zero.
    pub paid_invoices: Vec<PaidInvoice>,
    /// The subscription's MRR (minor units, before discounts) and currency.
    pub mrr: Option<f64>,
    pub currency: Option<String>,
}

/// Saves by state over a period, for the owner summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SaveStats {
    /// Counts by outcome (`paused`, …) then by state (`pending`, `confirmed`, `reversed`).
    pub by_outcome: BTreeMap<String, BTreeMap<String, i64>>,
    /// Confirmed saves' MRR per currency (minor units).
    pub confirmed_mrr: BTreeMap<String, f64>,
}

impl SaveStats {
    /// How many saves are in `state`, all outcomes together.
    pub fn count(&self, state: SaveState) -> i64 {
        self.by_outcome.values().filter_map(|m| m.get(state.as_str())).sum()
    }

    /// How many saves of `outcome` are in `state`.
    pub fn of(&self, outcome: Outcome, state: SaveState) -> i64 {
        self.by_outcome.get(outcome.as_str()).and_then(|m| m.get(state.as_str())).copied().unwrap_or(0)
    }
}

impl Store {
    /// Every pending save with its subscription and paid invoices as projected now.
    pub async fn pending_saves(&self) -> Result<Vec<PendingSave>, StoreError> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let rows: Vec<PendingRow> = on_pool!(self, pool => sqlx::query_as(SELECT_PENDING)
                .bind(&after).bind(PAGE).fetch_all(pool).await?);
            let full = rows.len() as i64 == PAGE;
            for r in rows {
                after.clone_from(&r.id);
                let (Some(outcome), Some(saved_at)) = (r.outcome.as_deref().and_then(Outcome::parse), r.completed_at) else {
                    continue;
                };
                let save = Save { outcome, saved_at, paused_until: r.paused_until };
                let subscription = r.status.map(|status| SubscriptionFacts {
                    status,
                    cancel_at_period_end: r.cancel_at_period_end.unwrap_or(false),
                    cancel_at: r.cancel_at,
                    canceled_at: r.canceled_at,
                    ended_at: r.ended_at,
                });
                let paid_invoices = match &r.subscription {
                    Some(sub) if subscription.is_some() => {
                        let rows: Vec<(i64, Option<i64>, i64)> = on_pool!(self, pool => sqlx::query_as(SELECT_PAID_INVOICES)
                            .bind(sub).bind(saved_at.min(save.effect_ends()) - crate::cancel::rules::RESUME_MARGIN_SECS)
                            .fetch_all(pool).await?);
                        rows.into_iter()
                            .map(|(created, paid_at, amount_paid)| PaidInvoice {
                                created,
                                paid_at: paid_at.unwrap_or(created),
                                amount_paid,
                            })
                            .collect()
                    }
                    _ => Vec::new(),
                };
                out.push(PendingSave { session: r.id, save, subscription, paid_invoices, mrr: r.base_mrr, currency: r.currency });
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Record a pending save's decision (once: a decided save never changes). `mrr` is kept
    /// for confirmed saves only. Returns whether this call decided it.
    pub async fn decide_save(
        &self,
        session: &str,
        d: &Decision,
        mrr: Option<f64>,
        currency: Option<&str>,
    ) -> Result<bool, StoreError> {
        let confirmed = d.state == SaveState::Confirmed;
        let mrr = mrr.filter(|_| confirmed);
        let currency = currency.filter(|_| confirmed).map(str::to_ascii_lowercase);
        let n = on_pool!(self, pool => sqlx::query(DECIDE)
            .bind(session).bind(d.state.as_str()).bind(d.at).bind(d.evidence.as_str()).bind(mrr).bind(currency)
            .execute(pool).await?.rows_affected());
        Ok(n == 1)
    }

    /// Saves of the sessions started in `[from_ts, to_ts)`, by outcome and state now.
    pub async fn save_stats(&self, from_ts: i64, to_ts: i64) -> Result<SaveStats, StoreError> {
        type Row = (Option<String>, Option<String>, Option<f64>, Option<String>);
        let rows: Vec<Row> =
            on_pool!(self, pool => sqlx::query_as(SELECT_STATS).bind(from_ts).bind(to_ts).fetch_all(pool).await?);
        let mut stats = SaveStats::default();
        for (outcome, state, mrr, currency) in rows {
            let (Some(outcome), Some(state)) = (outcome, state) else { continue };
            *stats.by_outcome.entry(outcome).or_default().entry(state.clone()).or_default() += 1;
            if state == SaveState::Confirmed.as_str()
                && let (Some(mrr), Some(currency)) = (mrr, currency)
            {
                *stats.confirmed_mrr.entry(currency).or_default() += mrr;
            }
        }
        Ok(stats)
    }
}

const SELECT_ARMS: &str = "SELECT c.variant, c.outcome, c.save_state, c.completed_at, s.status, s.cancel_at_period_end, s.cancel_at \
     FROM cancel_sessions c LEFT JOIN subscriptions s ON s.id = c.subscription \
     WHERE c.experiment = $1 AND c.variant IS NOT NULL AND c.started_at IS NOT NULL";

/// One experiment arm's customers by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArmCounts {
    /// Kept (save offers) or recovered (dunning).
    pub successes: i64,
    /// Whose result is known: successes + losses.
    pub decided: i64,
    /// Not known yet.
    pub undecided: i64,
}

/// A session's subscription is live: billing normally and not set to cancel.
fn live(status: Option<&str>, cancel_at_period_end: Option<bool>, cancel_at: Option<i64>) -> bool {
    matches!(status, Some("active" | "trialing")) && cancel_at_period_end != Some(true) && cancel_at.is_none()
}

impl Store {
    /// The arms of save-offer experiment `name` at `now`: a session is **kept** when its save
    /// was confirmed, or when it was abandoned at least `confirm_secs` ago and the subscription
    /// is still live; **lost** when the customer canceled, the save was reversed, or it was
    /// abandoned that long ago and the subscription is no longer live; otherwise undecided
    /// (pending saves, sessions in progress, recent abandons). Undone scheduled cancellations
    /// (`resumed`) are left out: no offer was made. The same rule holds for every arm, so the
    /// holdout (no offer shown) is comparable.
    pub async fn save_offer_arms(
        &self,
        name: &str,
        now: i64,
        confirm_secs: i64,
    ) -> Result<BTreeMap<String, ArmCounts>, StoreError> {
        type Row = (String, Option<String>, Option<String>, Option<i64>, Option<String>, Option<bool>, Option<i64>);
        let rows: Vec<Row> = on_pool!(self, pool => sqlx::query_as(SELECT_ARMS).bind(name).fetch_all(pool).await?);
        let mut out: BTreeMap<String, ArmCounts> = BTreeMap::new();
        for (variant, outcome, state, completed_at, status, cape, cancel_at) in rows {
            let kept = match (outcome.as_deref(), state.as_deref()) {
                (Some("resumed"), _) => continue,
                (_, Some("confirmed")) => Some(true),
                (_, Some("reversed")) | (Some("canceled"), _) => Some(false),
                (Some("abandoned"), _) if completed_at.is_some_and(|t| t.saturating_add(confirm_secs) <= now) => {
                    Some(live(status.as_deref(), cape, cancel_at))
                }
                _ => None,
            };
            let arm = out.entry(variant).or_default();
            match kept {
                Some(k) => {
                    arm.decided += 1;
                    arm.successes += i64::from(k);
                }
                None => arm.undecided += 1,
            }
        }
        Ok(out)
    }
}

const RECORD_CLICK: &str =
    "INSERT INTO payment_link_clicks (invoice, email_ref, clicked_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

// A recovered case is attributed to the furthest step the customer had reached when the
// invoice was paid: a click on the update-payment link, else a dunning email sent, else none.
const SELECT_ATTRIBUTION: &str = "SELECT CASE \
     WHEN EXISTS (SELECT 1 FROM payment_link_clicks k WHERE k.invoice = d.invoice_id AND k.clicked_at <= d.closed_at) \
       THEN 'after_click' \
     WHEN EXISTS (SELECT 1 FROM outbox o WHERE o.case_key = 'dunning:' || d.invoice_id AND o.sent_at IS NOT NULL \
       AND o.sent_at <= d.closed_at) THEN 'after_email' \
     ELSE 'before_email' END AS attribution, COUNT(*), CAST(COALESCE(SUM(d.recovered_amount), 0) AS BIGINT) \
     FROM dunning_cases d WHERE d.status = 'recovered' AND d.closed_at >= $1 AND d.closed_at < $2 \
     AND LOWER(COALESCE(d.currency, '')) = $3 GROUP BY attribution";

/// Recovered payments of one attribution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    pub cases: i64,
    /// Minor units.
    pub amount: i64,
}

/// Recovered payments by what preceded the payment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryAttribution {
    /// Paid before any dunning email was sent (Stripe's retry, or the customer on their own).
    pub before_email: Recovered,
    /// Paid after an email was sent, without a recorded click on its link.
    pub after_email: Recovered,
    /// Paid after the customer clicked an update-payment link.
    pub after_click: Recovered,
}

impl Store {
    /// Record the first click on an update-payment link for `invoice` from email `email_ref`.
    pub async fn record_payment_link_click(&self, invoice: &str, email_ref: &str, at: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => { sqlx::query(RECORD_CLICK).bind(invoice).bind(email_ref).bind(at).execute(pool).await?; });
        Ok(())
    }

    /// Dunning cases recovered in `[from_ts, to_ts)` in `currency`, by attribution.
    pub async fn recovery_attribution(
        &self,
        from_ts: i64,
        to_ts: i64,
        currency: &str,
    ) -> Result<RecoveryAttribution, StoreError> {
        let rows: Vec<(String, i64, i64)> = on_pool!(self, pool => sqlx::query_as(SELECT_ATTRIBUTION)
            .bind(from_ts).bind(to_ts).bind(currency.to_ascii_lowercase()).fetch_all(pool).await?);
        let mut out = RecoveryAttribution::default();
        for (attribution, cases, amount) in rows {
            let slot = match attribution.as_str() {
                "after_click" => &mut out.after_click,
                "after_email" => &mut out.after_email,
                _ => &mut out.before_email,
            };
            *slot = Recovered { cases, amount };
        }
        Ok(out)
    }
}
