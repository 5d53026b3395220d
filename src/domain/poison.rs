//! Events that must never reach the projected tables. A correctly signed event is always
//! stored and acknowledged (refusing it would make Stripe retry it for days), but one whose
//! shape no real Stripe object has — nesting deeper than any parser should follow, ids or
//! strings of absurd length, NUL characters Postgres text cannot hold — is quarantined by
//! the projector instead of projected: a single such event must not break a table, an index
//! or a report.
//!
//! The check is one pass over the raw bytes, without recursion and without building a tree,
//! so it is safe on exactly the bodies it exists for.

/// Deepest nesting of objects and arrays accepted, counting the event's own envelope (a real
/// Stripe event is well under 20 deep).
pub const MAX_DEPTH: usize = 128;
/// Longest id accepted: Stripe's ids are well under 255 bytes, and a longer one would break
/// index entries (Postgres refuses index rows above a few kilobytes).
pub const MAX_ID_BYTES: usize = 255;
/// Longest string accepted, in bytes as sent (escapes included).
pub const MAX_STRING_BYTES: usize = 64 * 1024;

/// Fields holding an id the projector may store and index (the object's own `id` at any depth,
/// and references to other objects).
const ID_KEYS: [&str; 10] =
    ["id", "customer", "subscription", "invoice", "price", "product", "coupon", "promotion_code", "discount", "plan"];

/// Why an event is quarantined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("`{key}` is longer than {MAX_ID_BYTES} bytes")]
    LongId { key: String },
    #[error("a string is longer than {MAX_STRING_BYTES} bytes")]
    LongString,
    #[error("a string contains a NUL character")]
    Nul,
}

/// Whether `raw` is nested deeper than [`MAX_DEPTH`] (brackets outside strings; the body need
/// not be valid JSON).
pub fn too_deep(raw: &[u8]) -> bool {
    let mut depth = 0_usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in raw {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The first reason `raw` (a stored event body) must not be projected, if any.
pub fn check(raw: &[u8]) -> Option<Poison> {
    if too_deep(raw) {
        return Some(Poison::TooDeep);
    }
    let mut i = 0;
    // The last object key seen, while its value is pending.
    let mut key: Option<&[u8]> = None;
    while i < raw.len() {
        match raw[i] {
            b'"' => {
                let start = i + 1;
                let (end, has_nul) = string_end(raw, start);
                let text = &raw[start..end.min(raw.len())];
                if has_nul {
                    return Some(Poison::Nul);
                }
                if text.len() > MAX_STRING_BYTES {
                    return Some(Poison::LongString);
                }
                i = end + 1;
                if next_significant(raw, i) == Some(b':') {
                    key = Some(text);
                    continue;
                }
                if let Some(k) = key.take()
                    && text.len() > MAX_ID_BYTES
                    && ID_KEYS.iter().any(|id| id.as_bytes() == k)
                {
                    return Some(Poison::LongId { key: String::from_utf8_lossy(k).into_owned() });
                }
            }
            b'{' | b'[' | b',' => {
                key = None;
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// The index of the quote closing the string that starts at `start`, and whether it holds an
/// escaped NUL (`\u0000`; a raw NUL byte is not valid JSON at all).
fn string_end(raw: &[u8], start: usize) -> (usize, bool) {
    let mut i = start;
    let mut nul = false;
    while i < raw.len() {
        match raw[i] {
            b'\\' => {
                if raw.get(i + 1) == Some(&b'u') && raw.get(i + 2..i + 6) == Some(b"0000") {
                    nul = true;
                }
                i += 2;
            }
            b'"' => return (i, nul),
            0 => {
                nul = true;
                i += 1;
            }
            _ => i += 1,
        }
    }
    (raw.len(), nul)
}

fn next_significant(raw: &[u8], from: usize) -> Option<u8> {
    raw.get(from..)?.iter().copied().find(|b| !b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!(
            r#"{{"id":"evt_1","object":"event","type":"x","created":1,"data":{{"object":{{"id":"cus_1","deep":{}1{}}}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    }

    #[test]
    fn ordinary_events_pass() {
        let body = br#"{"id":"evt_1","object":"event","type":"customer.created","created":10,
            "data":{"object":{"id":"cus_1","name":"A \"quoted\" name \\u0000 not a NUL","metadata":{"id_like":"x"}}}}"#;
        assert_eq!(check(body), None);
        // Three levels of envelope around the field.
        assert_eq!(check(nested(MAX_DEPTH - 3).as_bytes()), None);
    }

    #[test]
    fn each_poison_is_named() {
        assert_eq!(check(nested(MAX_DEPTH).as_bytes()), Some(Poison::TooDeep));
        assert_eq!(check(nested(1000).as_bytes()), Some(Poison::TooDeep));
        let long_id = format!(r#"{{"data":{{"object":{{"customer" : "{}"}}}}}}"#, "c".repeat(10_000));
        assert_eq!(check(long_id.as_bytes()), Some(Poison::LongId { key: "customer".into() }));
        let long_note = format!(r#"{{"data":{{"object":{{"description":"{}"}}}}}}"#, "d".repeat(10_000));
        assert_eq!(check(long_note.as_bytes()), None, "a long text that is not an id is fine");
        let huge = format!(r#"{{"data":{{"object":{{"description":"{}"}}}}}}"#, "d".repeat(MAX_STRING_BYTES + 1));
        assert_eq!(check(huge.as_bytes()), Some(Poison::LongString));
        assert_eq!(check(br#"{"data":{"object":{"name":"a\u0000b"}}}"#), Some(Poison::Nul));
        assert_eq!(check(br#"{"data":{"object":{"a\u0000":"b"}}}"#), Some(Poison::Nul));
    }

    #[test]
    fn a_long_array_element_after_an_id_key_is_not_an_id() {
        let body = format!(r#"{{"id":["x","{}"]}}"#, "y".repeat(1000));
        assert_eq!(check(body.as_bytes()), None);
    }
}
