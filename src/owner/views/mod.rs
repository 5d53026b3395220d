//! What the owner reads about customers: one customer whole, search, and the "who" lists
//! (cancellations, saves, dunning now, recovered payments, new customers, at risk, what
//! customers told us). Reads the projected tables; every statement is the same text on both
//! backends (flags read through `CASE`, since SQLite stores them as integers and Postgres as
//! booleans). Also the record of changes Holdfast made in Stripe (`stripe_changes`).
//!
//! `customer`: one customer whole, and search; `lists`: the "who" lists; `changes`: the
//! record of Stripe changes; `counts`: the raw counts behind the owner's figures.

mod counts;
mod customer;
mod lists;

pub use self::counts::{COHORT_MONTHS, ChannelGroup, FigureCounts, MONTH_SECS, PlanGroup};
pub use self::customer::{
    ActivityView, AtRiskView, CancelView, ChangeView, CustomerRecord, CustomerRow, DunningView, EmailView, Found, InvoiceView,
    MrrPoint, NpsView, PlanItem, SeriesView, SubscriptionView,
};
pub use self::lists::{ListKind, ListRow, MAX_PER_PAGE, Paging};
