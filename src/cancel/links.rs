//! Cancel links. A signed link carries `sig` = hex HMAC-SHA256 of the customer id under
//! `HOLDFAST_LINK_SECRET` (the product computes it; see the README). A minted link carries a
//! random one-time token, stored only as its SHA-256.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

fn mac(customer: &str, secret: &SecretString) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(customer.as_bytes());
    mac
}

/// The `sig` of a signed link for `customer`.
pub fn sign(customer: &str, secret: &SecretString) -> String {
    hex::encode(mac(customer, secret).finalize().into_bytes())
}

/// Check a presented `sig` in constant time; malformed hex is simply invalid.
pub fn verify(customer: &str, sig_hex: &str, secret: &SecretString) -> bool {
    match hex::decode(sig_hex.trim()) {
        Ok(sig) if !secret.expose_secret().is_empty() => mac(customer, secret).verify_slice(&sig).is_ok(),
        _ => false,
    }
}

/// A fresh unguessable token (244 random bits, hex): session ids, one-time links, CSRF tokens.
pub fn random_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// How a one-time token is stored: its SHA-256, hex. A database leak yields no usable link.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Customer ids as Stripe makes them (`cus_` + letters and digits); anything else is refused
/// before it reaches a query or a page.
pub fn plausible_customer_id(id: &str) -> bool {
    id.len() <= 255 && id.starts_with("cus_") && id.len() > 4 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_documented_recipe() {
        // python3 -c "import hmac,hashlib;print(hmac.new(b'link-secret-0123456789',b'cus_123',hashlib.sha256).hexdigest())"
        let secret = SecretString::from("link-secret-0123456789");
        let sig = sign("cus_123", &secret);
        assert_eq!(sig, "c7bd0a0ef151d59290ce20691c75fd7855d5a2c61634c0cde9abe2f33b7cf9c7");
        assert!(verify("cus_123", &sig, &secret));
        assert!(!verify("cus_124", &sig, &secret));
        assert!(!verify("cus_123", "zz", &secret));
        assert!(!verify("cus_123", &sig[..10], &secret));
    }

    #[test]
    fn only_stripe_shaped_customer_ids_pass() {
        assert!(plausible_customer_id("cus_NffrFeUfNV2Hib"));
        assert!(!plausible_customer_id("cus_"));
        assert!(!plausible_customer_id("cus_a<script>"));
        assert!(!plausible_customer_id("sub_123"));
    }
}
