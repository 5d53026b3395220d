//! The dashboard's session cookie: `v1.<expires>.<nonce>.<hmac>`, signed with a key derived from the
//! owner token, so the cookie never holds the token itself and rotating the token logs
//! every browser out. Logging out records the session (its SHA-256) as revoked until it
//! expires, so a copied cookie stops working too.

use actix_web::HttpRequest;
use actix_web::http::header;
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

fn mac(token: &SecretString, expires: i64, nonce: &str) -> String {
    let mut m = HmacSha256::new_from_slice(&key(token)).expect("HMAC accepts keys of any length");
    m.update(format!("owner.{expires}.{nonce}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A session value valid until `now + TTL_SECS`. The random nonce makes every login's value
/// its own, so logging one out never revokes another issued in the same second.
pub fn issue(token: &SecretString, now: i64) -> String {
    let expires = now + TTL_SECS;
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("v1.{expires}.{nonce}.{}", mac(token, expires, &nonce))
}

/// Whether a presented value is a live session signed for this token (constant-time).
pub fn verify(token: &SecretString, value: &str, now: i64) -> bool {
    let mut parts = value.splitn(4, '.');
    let (Some("v1"), Some(expires), Some(nonce), Some(sig)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(expires) = expires.parse::<i64>() else { return false };
    expires > now && bool::from(mac(token, expires, nonce).as_bytes().ct_eq(sig.as_bytes()))
}

/// When a session value expires (its signature is not checked here).
pub fn expires_of(value: &str) -> Option<i64> {
    value.strip_prefix("v1.")?.split('.').next()?.parse().ok()
}

/// What a revoked session is recorded as: the SHA-256 of its value (the value is a credential).
pub fn revocation_hash(value: &str) -> String {
    let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
    hex::encode(digest)
}

/// The request's session cookie, if one verifies for `token` at `now` (revocation is checked
/// by the caller, against the store).
pub fn presented<'r>(req: &'r HttpRequest, token: &SecretString, now: i64) -> Option<&'r str> {
    // Parsed by hand: actix-web is built without its `cookies` feature.
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && verify(token, value, now))
        .map(|(_, value)| value)
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
        assert_eq!(expires_of(&s), Some(1000 + TTL_SECS));
        assert_ne!(issue(&token, 1000), s, "two logins in one second get different sessions");
        assert_eq!(revocation_hash(&s).len(), 64);
        assert!(!revocation_hash(&s).contains(&s[3..12]));
    }
}
