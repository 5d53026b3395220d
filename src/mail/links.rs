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
}
