//! The cancel flow, whole: the product's cancel button links here. A signed link opens an exit
//! survey, then the offer that fits the customer and the reason (pause, downgrade, discount,
//! or undoing a scheduled cancellation), carried out in Stripe, with a confirmation email.
//!
//! - `rules`: reasons, segments and which offer fits, without I/O;
//! - `config`: the `[cancel_flow]` settings; `links`: signed cancel links;
//! - `offers`: a session's offers over the store; `stripe_actions`: the chosen offer in Stripe;
//! - `storage`: sessions and the reads the flow needs; `email`: the confirmation email;
//! - `http`: the public pages and the owner's link-minting endpoint;
//! - `saves` / `saves_storage`: whether a save kept the customer paying, checked against billing.

pub mod changes;
pub mod config;
pub mod email;
pub mod http;
pub mod links;
pub mod offers;
pub mod rules;
pub mod saves;
pub mod saves_storage;
pub mod storage;
pub mod stripe_actions;

// What the other features use of this one.
pub use self::changes::NewStripeChange;
pub(crate) use self::changes::record_change;
pub(crate) use self::config::offers as parse_offers;
pub use self::http::CancelState;
pub use self::offers::SaveOfferExperiment;
pub use self::rules::{OfferKind, Outcome, Reason};
pub use self::saves::SaveState;
pub use self::saves_storage::{ArmCounts, Recovered};
pub use self::stripe_actions::Sent;
