//! The path of a Stripe webhook: size limit → signature → envelope → group-commit writer.

pub mod error;
pub mod handler;
pub mod projector;
pub mod react;
pub mod refetch;
pub mod replay;
pub mod signature;

pub use handler::{Intake, WebhookState, receive};
