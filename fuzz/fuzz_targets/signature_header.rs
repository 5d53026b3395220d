//! `Stripe-Signature` parsing and verification on arbitrary input.
//! Input layout: the header up to the first `\n`, the payload after it.
//! Invariants: never panics; whatever `parse` accepts has a timestamp >= 0 and 1..=16 v1
//! signatures of 32 bytes; `verify` never accepts a header we did not sign, and always
//! accepts the one we sign for the same payload.

#![no_main]

/// Holdfast's verifier, compiled from its source file.
#[path = "../../src/ingest/signature.rs"]
#[allow(dead_code)]
mod signature;

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use signature::{SignatureHeader, sign, verify};

const SECRET: &str = "whsec_fuzz_secret";

fuzz_target!(|data: &[u8]| {
    let (header, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(header) = std::str::from_utf8(header) else { return };
    let secrets = [SecretString::from(SECRET)];

    if let Ok(parsed) = SignatureHeader::parse(header) {
        assert!(parsed.timestamp >= 0);
        assert!(!parsed.v1.is_empty() && parsed.v1.len() <= 16);
        assert!(parsed.v1.iter().all(|s| s.len() == 32));
        // The fuzzer cannot know the secret: any header it writes must be refused, unless it
        // replays the exact signature of this payload (only possible from a seed we made).
        let ours = sign(payload, SECRET, parsed.timestamp);
        let ours_v1 = SignatureHeader::parse(&ours).expect("our own header parses").v1.remove(0);
        let genuine = parsed.v1.contains(&ours_v1);
        let got = verify(payload, header, &secrets, 300, parsed.timestamp);
        assert_eq!(got.is_ok(), genuine, "header {header:?}: {got:?}");
    } else {
        assert!(verify(payload, header, &secrets, 300, 0).is_err());
    }

    // Signing then verifying any payload round-trips, and the time window holds both ways.
    let t = 1_700_000_000;
    let header = sign(payload, SECRET, t);
    assert_eq!(verify(payload, &header, &secrets, 300, t + 300), Ok(()));
    assert!(verify(payload, &header, &secrets, 300, t + 301).is_err());
    assert!(verify(payload, &header, &secrets, 300, t - 301).is_err());
});
