//! What the lifecycle campaigns read, built once at start (by `ingest::react`): the campaign
//! settings, the email composer and link policy they share with dunning, the monthly recap's
//! and the NPS survey's settings with the survey's signed links. The deciders, the
//! scheduler's campaigns and the lifecycle pages (comeback, unsubscribe, NPS, annual offer)
//! take this part.

use std::sync::Arc;

use crate::lifecycle::config::LifecycleSettings;
use crate::lifecycle::nps::NpsLinks;
use crate::lifecycle::recap::config::{NpsSettings, RecapSettings};
use crate::mail::composer::Composer;
use crate::mail::links::Links;
use crate::store::reactions::OutboxWake;

/// The lifecycle campaigns' part of the settings, shared by their deciders, the scheduler
/// and their pages.
#[derive(Debug)]
pub struct Lifecycle {
    /// Lifecycle campaign settings.
    pub campaigns: LifecycleSettings,
    pub composer: Arc<Composer>,
    pub links: Links,
    /// The monthly value recap.
    pub recap: RecapSettings,
    /// The NPS survey, its signed links, and the product it asks about.
    pub nps: NpsSettings,
    pub nps_links: NpsLinks,
    pub nps_product: String,
    /// Wakes the outbox worker when a page enqueued mail.
    pub outbox: OutboxWake,
}
