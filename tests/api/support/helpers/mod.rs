//! `spawn_app()`, a signed-event builder on Stripe's own example objects, and a per-test
//! database on whichever backend `TEST_DATABASE` names. Test modules import everything from
//! here (`crate::support::helpers::…`); the parts live in the files below.

mod app;
mod cli;
mod config;
mod database;
mod owner;
mod stripe_objects;

pub use app::*;
pub use cli::*;
pub use config::Config;
pub use database::*;
pub use owner::*;
pub use stripe_objects::*;
