//! Outgoing email: templates rendered to `EmailContent`, the signed update-payment link, and
//! the transport that delivers an outbox row (SMTP or `.eml` files). Mail is data until the
//! outbox worker's last step: rows are rendered when enqueued, sent later.

pub mod composer;
pub mod links;
pub mod templates;
pub mod transport;
pub mod unsubscribe;

/// A rendered email: what an outbox row stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Whether an email may be blocked by a marketing unsubscribe. Dunning and receipts are
/// transactional; lifecycle campaigns are marketing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Transactional,
    Marketing,
}

impl Category {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transactional => "transactional",
            Self::Marketing => "marketing",
        }
    }
}

/// An email to enqueue: recipient, rendered content and its idempotency key.
#[derive(Debug, Clone)]
pub struct NewEmail {
    /// Unique per logical email, e.g. `dunning:in_123:day3`; a second enqueue is a no-op.
    pub dedupe_key: String,
    /// Groups rows that are cancelled together (`dunning:in_123`).
    pub case_key: Option<String>,
    pub category: Category,
    pub customer: Option<String>,
    pub recipient: String,
    pub template: String,
    pub content: EmailContent,
    /// Not sent before this instant (unix seconds).
    pub send_at: i64,
    /// Marketing email: the one-click unsubscribe URL (body link and `List-Unsubscribe`).
    pub unsubscribe_url: Option<String>,
}
