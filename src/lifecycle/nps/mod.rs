//! NPS ("How likely are you to recommend …?", 0–10): the survey email with one link per
//! score, the signed survey tokens those links carry, the schedule (day 30 of a paying
//! customer's life, then every six months) and the score (promoters 9–10 minus detractors
//! 0–6, as a percentage of the answers).
//!
//! A link never records anything on GET (mail scanners open links): it opens a page whose
//! button POSTs the score. The token names the survey (`nps:<customer>:w<wave>`) and is a
//! capability: signed (HMAC-SHA256 under a key derived from `HOLDFAST_LINK_SECRET`, else the
//! webhook secret), compared in constant time, never logged.

pub mod pages;
pub mod storage;

use hmac::{Hmac, KeyInit, Mac};
use minijinja::context;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::lifecycle::context::Lifecycle;
use crate::lifecycle::nps::storage::NpsCandidate;
use crate::mail::NewEmail;
use crate::mail::composer::EmailTo;
use crate::mail::links::LinkError;
use crate::store::reactions::ReactError;
use crate::store::{Store, StoreError};

const DAY: i64 = 86_400;
/// A survey missed on its day (the service was down, or NPS was just turned on) still goes
/// this many days later; older ones wait for the next wave.
pub const CATCH_UP_DAYS: i64 = 7;

/// One survey: the customer and which of their surveys (0 = the first, at day 30).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    pub customer: String,
    pub wave: i64,
}

impl Survey {
    /// The survey's key: its outbox row's and its answer's.
    pub fn key(&self) -> String {
        format!("nps:{}:w{}", self.customer, self.wave)
    }
}

/// Signs and checks survey tokens.
#[derive(Clone)]
pub struct NpsLinks {
    public_url: String,
    /// The first key signs; all verify (a rolled secret keeps older links working).
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for NpsLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpsLinks").field("public_url", &self.public_url).field("keys", &"[redacted]").finish()
    }
}

fn derive(secret: &SecretString) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose_secret().as_bytes()).expect("any key length");
    mac.update(b"holdfast nps links v1");
    mac.finalize().into_bytes().into()
}

fn mac(key: &[u8; 32], payload: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(payload.as_bytes());
    mac
}

impl NpsLinks {
    /// Keys from the link secret (if any) and then each webhook secret.
    pub fn new(public_url: &str, link_secret: Option<&SecretString>, webhook_secrets: &[SecretString]) -> Self {
        Self { public_url: public_url.to_owned(), keys: link_secret.into_iter().chain(webhook_secrets).map(derive).collect() }
    }

    /// `<hex survey key>.<hex signature>`.
    pub fn token(&self, survey: &Survey) -> String {
        let payload = hex::encode(survey.key());
        let key = self.keys.first().copied().unwrap_or([0; 32]);
        format!("{payload}.{}", hex::encode(mac(&key, &payload).finalize().into_bytes()))
    }

    /// The page of `survey` with `score` preselected.
    pub fn url(&self, survey: &Survey, score: u8) -> String {
        format!("{}/nps/{}?score={score}", self.public_url, self.token(survey))
    }

    /// The survey a token names, if a configured key signed it (constant time).
    pub fn verify(&self, token: &str) -> Result<Survey, LinkError> {
        let (payload, sig) = token.split_once('.').ok_or(LinkError::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| LinkError::Malformed)?;
        let key = hex::decode(payload).ok().and_then(|b| String::from_utf8(b).ok()).ok_or(LinkError::Malformed)?;
        let ok = self.keys.iter().fold(false, |ok, k| mac(k, payload).verify_slice(&sig).is_ok() | ok);
        if !ok {
            return Err(LinkError::BadSignature);
        }
        let (customer, wave) = key.strip_prefix("nps:").and_then(|k| k.rsplit_once(":w")).ok_or(LinkError::Malformed)?;
        let wave = wave.parse().map_err(|_| LinkError::Malformed)?;
        Ok(Survey { customer: customer.to_owned(), wave })
    }
}

/// A score as posted: 0–10, else `None`.
pub fn parse_score(s: &str) -> Option<u8> {
    s.trim().parse::<u8>().ok().filter(|n| *n <= 10)
}

/// `promoter` (9–10), `passive` (7–8) or `detractor` (0–6).
pub fn category(score: i64) -> &'static str {
    match score {
        9.. => "promoter",
        7 | 8 => "passive",
        _ => "detractor",
    }
}

/// Answers counted by category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
}

impl Tally {
    pub fn of(scores: impl IntoIterator<Item = i64>) -> Self {
        let mut t = Self::default();
        for s in scores {
            match category(s) {
                "promoter" => t.promoters += 1,
                "passive" => t.passives += 1,
                _ => t.detractors += 1,
            }
        }
        t
    }

    pub fn n(&self) -> u64 {
        self.promoters + self.passives + self.detractors
    }

    /// NPS from −100 to 100 (one decimal); `None` without answers.
    pub fn score(&self) -> Option<f64> {
        let n = self.n();
        (n > 0).then(|| ((self.promoters as f64 - self.detractors as f64) * 1000.0 / n as f64).round() / 10.0)
    }
}

/// The survey due at `now` for a customer whose paying life began at `start`: wave k is due
/// `first_day + k × every_days` days in, and goes within `CATCH_UP_DAYS` of that.
pub fn due_wave(start: i64, first_day: i64, every_days: i64, now: i64) -> Option<i64> {
    let first = start + first_day * DAY;
    if now < first {
        return None;
    }
    let wave = (now - first) / (every_days * DAY);
    (now - (first + wave * every_days * DAY) < CATCH_UP_DAYS * DAY).then_some(wave)
}

/// Why the survey check failed.
#[derive(Debug, thiserror::Error)]
pub enum NpsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Render(#[from] ReactError),
}

/// The surveys due at `now`, rendered (not yet enqueued; the outbox key keeps each once).
pub async fn due_surveys(store: &Store, r: &Lifecycle, now: i64) -> Result<Vec<NewEmail>, NpsError> {
    if !r.nps.enabled {
        return Ok(Vec::new());
    }
    let mut emails = Vec::new();
    for c in store.nps_candidates().await? {
        let Some(wave) = due_wave(c.started_at, r.nps.first_day, r.nps.every_days, now) else { continue };
        emails.push(survey_email(r, &c, wave, now)?);
    }
    Ok(emails)
}

fn survey_email(r: &Lifecycle, c: &NpsCandidate, wave: i64, now: i64) -> Result<NewEmail, ReactError> {
    let survey = Survey { customer: c.customer.clone(), wave };
    let scores: Vec<_> = (0..=10u8).map(|s| context! { score => s, url => r.nps_links.url(&survey, s) }).collect();
    let ctx = context! {
        customer => context! { name => c.name.clone(), email => c.email.clone() },
        product => r.nps_product.clone(),
        scores => scores,
    };
    let to = EmailTo { dedupe_key: survey.key(), case_key: None, customer: Some(&c.customer), recipient: &c.email, send_at: now };
    Ok(r.composer.marketing_email("nps_survey", ctx, to)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nps_is_promoters_minus_detractors_in_percent() {
        let t = Tally::of([10, 9, 9, 8, 7, 6, 0, 3, 10, 9]);
        assert_eq!((t.promoters, t.passives, t.detractors, t.n()), (5, 2, 3, 10));
        assert_eq!(t.score(), Some(20.0));
        assert_eq!(Tally::of([6, 6, 10]).score(), Some(-33.3));
        assert_eq!(Tally::default().score(), None);
    }

    #[test]
    fn tokens_name_their_survey_and_refuse_tampering() {
        let secret = SecretString::from("whsec_nps_test".to_owned());
        let links = NpsLinks::new("https://h.example", None, std::slice::from_ref(&secret));
        let survey = Survey { customer: "cus_1".into(), wave: 2 };
        let token = links.token(&survey);
        assert_eq!(links.verify(&token), Ok(survey.clone()));
        assert!(links.url(&survey, 7).ends_with(&format!("/nps/{token}?score=7")));
        let other = format!("{}.{}", hex::encode("nps:cus_2:w2"), token.split_once('.').map(|t| t.1).unwrap_or_default());
        assert_eq!(links.verify(&other), Err(LinkError::BadSignature));
        assert_eq!(links.verify("nonsense"), Err(LinkError::Malformed));
        let foreign = NpsLinks::new("https://h.example", None, &[SecretString::from("whsec_other".to_owned())]);
        assert_eq!(foreign.verify(&token), Err(LinkError::BadSignature));
        assert_eq!((parse_score("10"), parse_score("11"), parse_score("-1"), parse_score("x")), (Some(10), None, None, None));
    }

    #[test]
    fn surveys_go_at_day_30_and_every_six_months_within_the_catch_up_days() {
        let start = 1_800_000_000;
        assert_eq!(due_wave(start, 30, 182, start + 29 * DAY), None);
        assert_eq!(due_wave(start, 30, 182, start + 30 * DAY), Some(0));
        assert_eq!(due_wave(start, 30, 182, start + 36 * DAY), Some(0));
        assert_eq!(due_wave(start, 30, 182, start + 37 * DAY), None);
        assert_eq!(due_wave(start, 30, 182, start + 212 * DAY + 5), Some(1));
    }
}
