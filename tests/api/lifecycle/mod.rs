//! Lifecycle email end to end: webhooks and product activity → series in the outbox →
//! the outbox worker → a real SMTP server; every stop condition; one-click unsubscribe; A/B.
//! Time moves by passing a clock to the workers, never by sleeping.

mod experiments;
mod holdouts;
mod onboarding;
mod reengagement;
mod winback;
