//! The cancel flow's capabilities: links, offer selection over the store, Stripe actions and
//! the confirmation email. The pages that use them are in `web::cancel`.

pub mod email;
pub mod links;
pub mod offers;
pub mod stripe_actions;
