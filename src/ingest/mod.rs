//! The path of a Stripe webhook: size limit → signature → envelope → group-commit writer;
//! then the projector's transaction, which applies the log to the projected tables and runs
//! the reactions (`project`, `parking`, `reproject`, `plan_writes`).

pub mod error;
pub mod handler;
pub mod parking;
pub mod plan_writes;
pub mod project;
pub mod projector;
pub mod react;
pub mod read_ahead;
pub mod refetch;
pub mod replay;
pub mod reproject;
pub mod signature;

pub use handler::{Intake, WebhookState, receive};
