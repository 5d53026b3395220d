//! Where the reactions meet the projector's transaction. The reactions are deciders: they
//! say which facts a run of events needs ([`FactsQuery`]), and from those facts and the
//! events alone they return what should be written ([`ReactionPlan`]). The projector loads
//! the facts and writes the plan (`ingest::plan_writes`), on the transaction's connection,
//! right after the run's projection is applied. The projector knows the reactions only
//! through [`ReactionHook`] and the types of this module and [`crate::store::plan`]; the
//! reactions never see a connection.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::domain::event::Event;
use crate::mail::NewEmail;

pub use crate::store::plan::{Card, Closing, Contact, DunningCase, NewDelivery};

/// What the reactions want to know before deciding on a run of events. Every set names the
/// rows to read; rows that don't exist are simply absent from [`Facts`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FactsQuery {
    /// Invoices: their dunning case and their projected status.
    pub invoices: BTreeSet<String>,
    /// Subscriptions: their projected status.
    pub subscriptions: BTreeSet<String>,
    /// Subscriptions that ended: their open dunning cases (to close). Apart from
    /// `subscriptions` because a subscription whose payments keep failing can hold many
    /// open cases, and a failed payment needs none of them.
    pub ended_subscriptions: BTreeSet<String>,
    /// Customers: contact, cards on file, live subscriptions, open at-risk episode, live
    /// win-back series.
    pub customers: BTreeSet<String>,
    /// Cards by id (the run stores them).
    pub cards: BTreeSet<String>,
    /// Customers whose first paid invoice matters (onboarding).
    pub first_paid_of: BTreeSet<String>,
    /// Lifecycle series (by case key) that may start: whether each exists already.
    pub series: BTreeSet<String>,
    /// Customers whose MRR matters at an instant (customer, unix time).
    pub customer_mrr: BTreeSet<(String, i64)>,
}

/// A card as stored: whose it is and the event time of its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCard {
    pub customer: Option<String>,
    pub src_created: i64,
}

/// The stored state a [`FactsQuery`] asked for, read in the projection transaction after the
/// run's projection is applied.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// Dunning cases by invoice: those of the queried invoices, and the open ones of the
    /// ended subscriptions queried.
    pub cases: HashMap<String, DunningCase>,
    pub invoice_status: HashMap<String, String>,
    pub subscription_status: HashMap<String, String>,
    pub contacts: HashMap<String, Contact>,
    /// Cards by id: the queried ones and every card of the queried customers.
    pub cards: HashMap<String, StoredCard>,
    /// Live subscriptions (active, trialing, past due, unpaid) of each queried customer.
    pub live_subscriptions: HashMap<String, Vec<String>>,
    /// Open at-risk episodes: customer → when it began.
    pub at_risk: HashMap<String, i64>,
    /// Queried customers with a win-back series running.
    pub winbacks: HashSet<String>,
    /// Each queried customer's first paid invoice with money (id, paid time).
    pub first_paid: HashMap<String, (String, i64)>,
    /// Queried series keys that exist already.
    pub series: HashSet<String>,
    /// Each queried (customer, instant): the customer's MRR just before it by currency
    /// (minor units, as the maintained figures count it: discounts, tiers and every
    /// subscription included). A currency is absent when no subscription of the customer in
    /// it was active then.
    pub customer_mrr: HashMap<(String, i64), HashMap<String, f64>>,
}

/// A lifecycle series that begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub case_key: String,
    pub campaign: &'static str,
    pub customer: String,
    pub subscription: Option<String>,
    pub started_at: i64,
    /// `treated` or `holdout` when the campaign has a holdout.
    pub arm: Option<&'static str>,
}

/// One write of a plan. The store applies them in order.
#[derive(Debug, Clone)]
pub enum Write {
    /// Open a dunning case (nothing if the invoice has one).
    OpenCase(DunningCase),
    /// A further failure of an open case (its failure fields as given).
    RecordFailure(DunningCase),
    /// Close an open case; the emails delivered under `case_key` are counted at write time.
    CloseCase { invoice: String, case_key: String, closing: Closing },
    /// Keep the newest snapshot of a card.
    UpsertCard { card: Card, created: i64, event_id: String },
    /// Queue an email (nothing if its dedupe key is known).
    Enqueue(NewEmail),
    /// Queue an email; if its dedupe key is known and it was never tried, move it to the
    /// new time with the new content.
    EnqueueOrReschedule(NewEmail),
    /// Cancel one pending email by dedupe key.
    CancelEmail(String),
    /// Cancel a case's pending emails.
    CancelCase(String),
    /// Cancel a case's pending emails but one.
    CancelCaseExcept { case_key: String, keep: String },
    /// Record a lifecycle series (nothing if it exists).
    StartSeries(Series),
    /// Stop a customer's live series of a campaign (but one tied to subscription `except`)
    /// and cancel their pending emails.
    StopSeries { customer: String, campaign: &'static str, except: Option<String>, reason: &'static str },
    /// Stop one series by key and cancel its pending emails.
    StopOne { case_key: String, reason: &'static str },
    /// Close a customer's open at-risk episode: they stopped paying.
    EndRisk { customer: String, at: i64 },
    /// Queue an alert to Slack or the signed webhook (nothing if its dedupe key is known).
    Deliver(NewDelivery),
}

/// What the reactions decided for a run of events.
#[derive(Debug, Clone, Default)]
pub struct ReactionPlan {
    pub writes: Vec<Write>,
}

/// What the projector runs after applying a run of events (dunning, lifecycle emails).
pub trait ReactionHook: Send + Sync + std::fmt::Debug {
    /// The facts deciding on `events` needs.
    fn wants(&self, events: &[&Event], notify: bool) -> FactsQuery;

    /// Decide on `events` (in log order) from `facts`; with `notify` false (imported
    /// history) state is recorded but nothing is sent. An error rolls the batch back.
    fn decide(
        &self,
        facts: Facts,
        events: &[&Event],
        now: i64,
        notify: bool,
    ) -> Result<ReactionPlan, Box<dyn std::error::Error + Send + Sync>>;

    /// Emails were enqueued and are durable: wake the outbox worker.
    fn notify_outbox(&self);
}

/// A failure of the hook: the whole batch's transaction is rolled back.
#[derive(Debug, thiserror::Error)]
pub enum ReactError {
    #[error(transparent)]
    Render(#[from] crate::mail::templates::RenderError),
}

/// The decision in progress for one run of events: the facts as the run's earlier
/// decisions left them, and the writes decided so far (applied later, in this order). Each
/// feature's deciders add their writes to it.
#[derive(Debug)]
pub struct Deciding {
    pub facts: Facts,
    pub writes: Vec<Write>,
}

impl Deciding {
    pub fn push(&mut self, w: Write) {
        self.writes.push(w);
    }
}

/// The installed hook, shared by the store's clones.
pub type Hook = std::sync::Arc<dyn ReactionHook>;

/// Wakes the outbox worker after a commit that enqueued mail, so it doesn't wait a poll.
#[derive(Debug, Clone, Default)]
pub struct OutboxWake(pub std::sync::Arc<tokio::sync::Notify>);

impl OutboxWake {
    /// Wake the outbox worker (after the commit).
    pub fn notify(&self) {
        self.0.notify_one();
    }
}
