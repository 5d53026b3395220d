//! The stable update-payment link: `{public_url}/billing/update?token=<signed>`. Billing
//! Portal sessions expire within minutes, so an email carries this link and the session is
//! created when the customer clicks it. The token names the customer and invoice, expires,
//! and is signed with a key derived from `STRIPE_SECRET_KEY` (no extra secret to manage).

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// How long an emailed link stays valid: longer than the whole dunning series.
pub const LINK_TTL_SECS: i64 = 45 * 86_400;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    pub customer: String,
    /// The invoice that prompted the email (its hosted page is the fallback), or `-`.
    pub invoice: String,
    pub expires_at: i64,
}

/// Signs and checks link tokens.
#[derive(Clone)]
pub struct LinkSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner([redacted])")
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link has expired")]
    Expired,
}

/// The per-email token an update-payment link carries (`&m=…`): the first 16 hex digits of
/// SHA-256 of the email's dedupe key. It names the email, not the customer; the click itself
/// is authenticated by the signed `token`.
pub fn email_ref(dedupe_key: &str) -> String {
    use sha2::Digest;
    hex::encode(&Sha256::digest(dedupe_key.as_bytes())[..8])
}

/// A per-email token as received: 16 lowercase hex digits, else `None` (never stored raw).
pub fn parse_email_ref(m: &str) -> Option<&str> {
    (m.len() == 16 && m.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(m)
}

impl LinkSigner {
    /// A signer whose key is derived from the Stripe secret key.
    pub fn from_stripe_key(secret: &SecretString) -> Self {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose_secret().as_bytes()).expect("any key length");
        mac.update(b"holdfast billing links v1");
        Self { key: mac.finalize().into_bytes().into() }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload.as_bytes());
        mac
    }

    /// `customer.invoice.expires.signature` (Stripe ids never contain dots).
    pub fn sign(&self, customer: &str, invoice: Option<&str>, expires_at: i64) -> String {
        let payload = format!("{customer}.{}.{expires_at}", invoice.unwrap_or("-"));
        let sig = hex::encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// Check a token's signature (constant time) and expiry.
    pub fn verify(&self, token: &str, now: i64) -> Result<LinkClaims, LinkError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [customer, invoice, expires, sig] = parts[..] else { return Err(LinkError::Malformed) };
        let expires_at: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| LinkError::Malformed)?;
        self.mac(&format!("{customer}.{invoice}.{expires}")).verify_slice(&sig).map_err(|_| LinkError::BadSignature)?;
        if expires_at < now {
            return Err(LinkError::Expired);
        }
        Ok(LinkClaims { customer: customer.to_owned(), invoice: invoice.to_owned(), expires_at })
    }
}

/// What an annual-offer link's token carries before the subscription id, where an
/// update-payment link names its invoice.
pub const ANNUAL_LINK_PREFIX: &str = "annual-";

/// What a pause link's token carries where an update-payment link names its invoice, so a
/// token made for one page is never taken by another.
pub const PAUSE_LINK_MARK: &str = "pause";

/// A win-back link must outlive the whole series (90 days by default).
pub const COMEBACK_TTL_SECS: i64 = 180 * 86_400;

/// The link policy of emails: how update-payment, win-back, pause and annual-offer links are
/// made.
#[derive(Debug, Clone)]
pub struct Links {
    public_url: String,
    signer: Option<LinkSigner>,
}

impl Links {
    /// Links under `public_url`, signed with a key derived from the Stripe secret key when
    /// there is one.
    pub fn new(public_url: &str, stripe_key: Option<&SecretString>) -> Self {
        Self { public_url: public_url.to_owned(), signer: stripe_key.map(LinkSigner::from_stripe_key) }
    }

    /// The update-payment link for `customer`: the signed Holdfast link when a Stripe key is
    /// configured (it opens a Billing Portal session at click time), else `fallback` (the
    /// invoice's hosted page).
    pub fn update_payment(
        &self,
        customer: Option<&str>,
        invoice: Option<&str>,
        fallback: Option<&str>,
        now: i64,
    ) -> Option<String> {
        match (&self.signer, customer) {
            (Some(signer), Some(customer)) => {
                let token = signer.sign(customer, invoice, now + LINK_TTL_SECS);
                Some(format!("{}/billing/update?token={token}", self.public_url))
            }
            _ => fallback.map(str::to_owned),
        }
    }

    /// `link` marked as sent in the email keyed `dedupe_key` (`&m=<email_ref>`), when it is
    /// Holdfast's own update-payment link (a click on it is recorded); other links unchanged.
    pub fn for_email(&self, link: &str, dedupe_key: &str) -> String {
        match link.starts_with(&format!("{}/billing/update?", self.public_url)) {
            true => format!("{link}&m={}", email_ref(dedupe_key)),
            false => link.to_owned(),
        }
    }

    /// The one-click way back after a cancellation: a signed link that opens a prefilled
    /// Stripe Checkout for the ended subscription's plan (needs `STRIPE_SECRET_KEY`), else
    /// `fallback` (the product).
    pub fn come_back(&self, customer: &str, subscription: &str, fallback: Option<&str>, now: i64) -> Option<String> {
        match &self.signer {
            Some(signer) => {
                let token = signer.sign(customer, Some(subscription), now + COMEBACK_TTL_SECS);
                Some(format!("{}/comeback?token={token}", self.public_url))
            }
            None => fallback.map(str::to_owned),
        }
    }

    /// The re-engagement series' pause link: signed for `customer` with the mark
    /// `PAUSE_LINK_MARK` in place of an invoice, valid as long as an update-payment link. It
    /// opens the cancel flow's pause offer; `None` without a Stripe key (nothing could pause).
    pub fn pause(&self, customer: &str, now: i64) -> Option<String> {
        let signer = self.signer.as_ref()?;
        let token = signer.sign(customer, Some(PAUSE_LINK_MARK), now + LINK_TTL_SECS);
        Some(format!("{}/pause?token={token}", self.public_url))
    }

    /// The annual-plan offer's confirm link for `customer`'s `subscription` (valid as long as
    /// an update-payment link); `None` without a Stripe key.
    pub fn annual(&self, customer: &str, subscription: &str, now: i64) -> Option<String> {
        let signer = self.signer.as_ref()?;
        let token = signer.sign(customer, Some(&format!("{ANNUAL_LINK_PREFIX}{subscription}")), now + LINK_TTL_SECS);
        Some(format!("{}/annual?token={token}", self.public_url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(key: &str) -> LinkSigner {
        LinkSigner::from_stripe_key(&SecretString::from(key.to_owned()))
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let s = signer("sk_test_1");
        let token = s.sign("cus_1", Some("in_1"), 1_000);
        assert_eq!(s.verify(&token, 999).map(|c| c.customer), Ok("cus_1".into()));
        assert_eq!(s.verify(&token, 1_001), Err(LinkError::Expired));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let token = signer("sk_test_1").sign("cus_1", None, 1_000);
        assert_eq!(signer("sk_test_2").verify(&token, 0), Err(LinkError::BadSignature));
        assert_eq!(signer("sk_test_1").verify(&token.replace("cus_1", "cus_2"), 0), Err(LinkError::BadSignature));
        assert_eq!(signer("sk_test_1").verify("nonsense", 0), Err(LinkError::Malformed));
    }

    fn token_of(link: &str) -> &str {
        link.split_once("token=").map_or("", |(_, t)| t.split('&').next().unwrap_or(""))
    }

    #[test]
    fn each_link_carries_its_own_mark_and_outlives_its_use() {
        let key = SecretString::from("sk_test_1".to_owned());
        let links = Links::new("https://h.example", Some(&key));
        let s = signer("sk_test_1");
        let now = 1_000;
        let pause = links.pause("cus_1", now).expect("signed");
        assert!(pause.starts_with("https://h.example/pause?token="));
        let claims = s.verify(token_of(&pause), now).expect("valid");
        assert_eq!((claims.invoice.as_str(), claims.expires_at), (PAUSE_LINK_MARK, now + LINK_TTL_SECS));
        let annual = links.annual("cus_1", "sub_1", now).expect("signed");
        assert_eq!(s.verify(token_of(&annual), now).expect("valid").invoice, format!("{ANNUAL_LINK_PREFIX}sub_1"));
        let back = links.come_back("cus_1", "sub_1", None, now).expect("signed");
        assert_eq!(s.verify(token_of(&back), now).expect("valid").expires_at, now + COMEBACK_TTL_SECS);
        let update = links.update_payment(Some("cus_1"), Some("in_1"), None, now).expect("signed");
        assert_eq!(links.for_email(&update, "k"), format!("{update}&m={}", email_ref("k")));
        assert_eq!(links.for_email("https://pay.stripe.com/i", "k"), "https://pay.stripe.com/i");
    }

    #[test]
    fn without_a_stripe_key_links_fall_back_or_are_absent() {
        let links = Links::new("https://h.example", None);
        assert_eq!(
            links.update_payment(Some("cus_1"), Some("in_1"), Some("https://pay.stripe.com/i"), 0).as_deref(),
            Some("https://pay.stripe.com/i")
        );
        assert_eq!(
            links.come_back("cus_1", "sub_1", Some("https://product.example"), 0).as_deref(),
            Some("https://product.example")
        );
        assert_eq!((links.pause("cus_1", 0), links.annual("cus_1", "sub_1", 0)), (None, None));
    }
}
