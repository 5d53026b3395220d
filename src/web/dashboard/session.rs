//! The dashboard's session cookie: `v1.<expires>.<hmac>`, signed with a key derived from the
//! owner token, so the cookie never holds the token itself and rotating the token logs
//! every browser out.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Name of the session cookie.
pub const COOKIE: &str = "holdfast_session";
/// How long a login lasts.
pub const TTL_SECS: i64 = 12 * 3600;

fn key(token: &SecretString) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"holdfast-dashboard-session\0");
    h.update(token.expose_secret().as_bytes());
    h.finalize().into()
}

fn mac(token: &SecretString, expires: i64) -> String {
    let mut m = HmacSha256::new_from_slice(&key(token)).expect("HMAC accepts keys of any length");
    m.update(format!("owner.{expires}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A session value valid until `now + TTL_SECS`.
pub fn issue(token: &SecretString, now: i64) -> String {
    let expires = now + TTL_SECS;
    format!("v1.{expires}.{}", mac(token, expires))
}

/// Whether a presented value is a live session signed for this token (constant-time).
pub fn verify(token: &SecretString, value: &str, now: i64) -> bool {
    let mut parts = value.splitn(3, '.');
    let (Some("v1"), Some(expires), Some(sig)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let Ok(expires) = expires.parse::<i64>() else { return false };
    expires > now && bool::from(mac(token, expires).as_bytes().ct_eq(sig.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_verifies_until_it_expires_and_only_for_its_token() {
        let token = SecretString::from("owner-token");
        let s = issue(&token, 1000);
        assert!(!s.contains("owner-token"));
        assert!(verify(&token, &s, 1001));
        assert!(!verify(&token, &s, 1000 + TTL_SECS));
        assert!(!verify(&SecretString::from("other"), &s, 1001));
        assert!(!verify(&token, &s.replace("v1.", "v1.9"), 1001));
        assert!(!verify(&token, "garbage", 1001));
    }
}
