//! The cancel flow through the real server: links, survey, offers, Stripe calls (answered by
//! wiremock with Stripe's example subscription), session records.

mod choices;
mod intervals;
mod links;
mod offers;
mod session_states;
mod stripe_calls;
