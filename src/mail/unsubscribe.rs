//! One-click unsubscribe links (RFC 8058): `{public_url}/unsubscribe?token=<hex email>.<hmac>`.
//! The token names the address it was sent to and never expires (an old email's link must
//! still work). It is signed with a key derived from `HOLDFAST_LINK_SECRET` when set, else from
//! the webhook secret; every configured secret verifies, so rolling the webhook secret (old
//! and new listed together) keeps earlier links working while the old one is listed.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::mail::links::LinkError;

/// Signs and checks unsubscribe tokens.
#[derive(Clone)]
pub struct UnsubscribeLinks {
    public_url: String,
    /// The first key signs; all verify.
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for UnsubscribeLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsubscribeLinks").field("public_url", &self.public_url).field("keys", &"[redacted]").finish()
    }
}

fn derive(secret: &SecretString) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose_secret().as_bytes()).expect("any key length");
    mac.update(b"holdfast unsubscribe links v1");
    mac.finalize().into_bytes().into()
}

impl UnsubscribeLinks {
    /// Keys from the link secret (if any) and then each webhook secret.
    pub fn new(public_url: &str, link_secret: Option<&SecretString>, webhook_secrets: &[SecretString]) -> Self {
        let keys = link_secret.into_iter().chain(webhook_secrets).map(derive).collect();
        Self { public_url: public_url.to_owned(), keys }
    }

    fn mac(key: &[u8; 32], payload: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
        mac.update(payload.as_bytes());
        mac
    }

    /// The token for `email` (lower-cased: suppressions are by lower-case address).
    pub fn token(&self, email: &str) -> String {
        let payload = hex::encode(email.trim().to_lowercase());
        let key = self.keys.first().copied().unwrap_or([0; 32]);
        format!("{payload}.{}", hex::encode(Self::mac(&key, &payload).finalize().into_bytes()))
    }

    /// The link for `email`.
    pub fn url(&self, email: &str) -> String {
        format!("{}/unsubscribe?token={}", self.public_url, self.token(email))
    }

    /// The address a token was made for, if any configured key signed it (constant time).
    pub fn verify(&self, token: &str) -> Result<String, LinkError> {
        let (payload, sig) = token.split_once('.').ok_or(LinkError::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| LinkError::Malformed)?;
        let email = hex::decode(payload).ok().and_then(|b| String::from_utf8(b).ok()).ok_or(LinkError::Malformed)?;
        let ok = self.keys.iter().fold(false, |ok, key| Self::mac(key, payload).verify_slice(&sig).is_ok() | ok);
        if ok && email.contains('@') { Ok(email) } else { Err(LinkError::BadSignature) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn a_token_names_its_address_and_survives_a_secret_roll() {
        let old = UnsubscribeLinks::new("https://h.example", None, &[secret("whsec_old")]);
        let token = old.token("Ada@Example.com");
        assert_eq!(old.verify(&token), Ok("ada@example.com".into()));
        let rolled = UnsubscribeLinks::new("https://h.example", None, &[secret("whsec_new"), secret("whsec_old")]);
        assert_eq!(rolled.verify(&token), Ok("ada@example.com".into()));
        let gone = UnsubscribeLinks::new("https://h.example", None, &[secret("whsec_new")]);
        assert_eq!(gone.verify(&token), Err(LinkError::BadSignature));
        assert!(old.url("a@b.c").starts_with("https://h.example/unsubscribe?token="));
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let l = UnsubscribeLinks::new("https://h.example", Some(&secret("a-long-link-secret-1234")), &[secret("whsec_x")]);
        let token = l.token("ada@example.com");
        let other = format!("{}.{}", hex::encode("eve@example.com"), token.split_once('.').map(|t| t.1).unwrap_or_default());
        assert_eq!(l.verify(&other), Err(LinkError::BadSignature));
        assert_eq!(l.verify("nonsense"), Err(LinkError::Malformed));
    }
}
