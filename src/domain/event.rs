//! The envelope of a verified Stripe event: the few fields we index, plus the raw body.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::poison;

/// A Stripe event, parsed just enough to store and project it.
#[derive(Debug, Clone)]
pub struct Event {
    /// `evt_…`; the event log's primary key.
    pub id: String,
    /// `customer.subscription.updated`, …
    pub kind: String,
    /// When Stripe created the event (unix seconds): the effective time of its snapshot.
    pub created: i64,
    pub livemode: bool,
    pub api_version: Option<String>,
    /// Connected account, when the event came through Connect.
    pub account: Option<String>,
    /// `data.object`: the object's snapshot as of `created`.
    pub object: Value,
    /// The exact body Stripe signed, kept verbatim.
    pub raw: String,
}

/// Why a body is not a Stripe event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct NotAnEvent(pub String);

#[derive(Deserialize)]
struct Wire {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    created: Option<i64>,
    #[serde(default)]
    livemode: Option<bool>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    account: Option<String>,
    object: Option<String>,
    data: Option<WireData>,
}

#[derive(Deserialize)]
struct WireData {
    object: Option<Value>,
}

/// The envelope of a body too deep for `Wire`: `data` is skipped, not built.
#[derive(Deserialize)]
struct Envelope {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    created: Option<i64>,
    #[serde(default)]
    livemode: Option<bool>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    account: Option<String>,
    object: Option<String>,
    data: Option<SkippedData>,
}

#[derive(Deserialize)]
struct SkippedData {
    object: Option<serde::de::IgnoredAny>,
}

impl Event {
    /// Parse a verified body. Only the envelope is checked; the object is kept as JSON so
    /// that API-version drift in its fields can never reject an event.
    pub fn parse(body: &[u8]) -> Result<Self, NotAnEvent> {
        let raw = std::str::from_utf8(body).map_err(|_| NotAnEvent("body is not UTF-8".into()))?.to_owned();
        let wire: Wire = match serde_json::from_str(&raw) {
            Ok(wire) => wire,
            // Nested past the parser's limit: the envelope alone is read so that the event is
            // stored and acknowledged; the projector quarantines it (see `poison`) and never
            // looks at its object, which stands here as an empty one.
            Err(_) if poison::too_deep(raw.as_bytes()) => {
                let envelope: Envelope =
                    serde_json::from_str(&raw).map_err(|e| NotAnEvent(format!("body is not a JSON event: {e}")))?;
                if envelope.data.is_none_or(|d| d.object.is_none()) {
                    return Err(NotAnEvent("missing `data.object`".into()));
                }
                Wire {
                    id: envelope.id,
                    kind: envelope.kind,
                    created: envelope.created,
                    livemode: envelope.livemode,
                    api_version: envelope.api_version,
                    account: envelope.account,
                    object: envelope.object,
                    data: Some(WireData { object: Some(Value::Object(serde_json::Map::new())) }),
                }
            }
            Err(e) => return Err(NotAnEvent(format!("body is not a JSON event: {e}"))),
        };
        if wire.object.as_deref().is_some_and(|o| o != "event") {
            return Err(NotAnEvent("`object` is not \"event\"".into()));
        }
        let id = wire.id.filter(|id| !id.is_empty() && id.len() <= 255).ok_or_else(|| NotAnEvent("missing event `id`".into()))?;
        let kind =
            wire.kind.filter(|k| !k.is_empty() && k.len() <= 255).ok_or_else(|| NotAnEvent("missing event `type`".into()))?;
        // Stripe never puts NUL in these, and Postgres text can't hold one: refused alike on
        // both databases instead of failing only one at storage.
        let has_nul = |v: &Option<String>| v.as_deref().is_some_and(|v| v.contains('\0'));
        if id.contains('\0') || kind.contains('\0') || has_nul(&wire.api_version) || has_nul(&wire.account) {
            return Err(NotAnEvent("a NUL character in `id`, `type`, `api_version` or `account`".into()));
        }
        let created = wire.created.ok_or_else(|| NotAnEvent("missing or non-integer `created`".into()))?;
        let object = wire
            .data
            .and_then(|d| d.object)
            .filter(Value::is_object)
            .ok_or_else(|| NotAnEvent("missing `data.object`".into()))?;
        Ok(Self {
            id,
            kind,
            created,
            livemode: wire.livemode.unwrap_or(false),
            api_version: wire.api_version,
            account: wire.account,
            object,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_event_parses() {
        let body = br#"{"id":"evt_1","object":"event","type":"customer.created","created":10,"data":{"object":{"id":"cus_1"}}}"#;
        let event = Event::parse(body).expect("valid event");
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.kind, "customer.created");
        assert_eq!(event.created, 10);
        assert_eq!(event.object["id"], "cus_1");
    }

    #[test]
    fn bodies_that_are_not_events_are_refused_with_a_reason() {
        let cases: [(&[u8], &str); 7] = [
            (br#"{"id":"evt_\u0000","type":"x","created":1,"data":{"object":{}}}"#, "NUL"),
            (br#"{"id":"evt_1","type":"x","account":"acct_\u0000","created":1,"data":{"object":{}}}"#, "NUL"),
            (b"not json", "not a JSON event"),
            (br#"{"type":"x","created":1,"data":{"object":{}}}"#, "`id`"),
            (br#"{"id":"evt_1","created":1,"data":{"object":{}}}"#, "`type`"),
            (br#"{"id":"evt_1","type":"x","created":"soon","data":{"object":{}}}"#, "not a JSON event"),
            (br#"{"id":"evt_1","type":"x","created":1,"data":{}}"#, "`data.object`"),
        ];
        for (body, reason) in cases {
            let err = Event::parse(body).expect_err("must be refused");
            assert!(err.0.contains(reason), "{} should mention {reason}", err.0);
        }
    }

    #[test]
    fn an_event_nested_past_the_limit_is_still_an_event() {
        let depth = 1000;
        let body = format!(
            r#"{{"id":"evt_deep","object":"event","type":"customer.updated","created":7,"data":{{"object":{{"id":"cus_1","x":{}1{}}}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let event = Event::parse(body.as_bytes()).expect("stored and acknowledged, then quarantined");
        assert_eq!((event.id.as_str(), event.kind.as_str(), event.created), ("evt_deep", "customer.updated", 7));
        assert_eq!(event.raw, body);
        let no_object =
            format!(r#"{{"id":"evt_deep","type":"x","created":7,"data":{{}},"x":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
        assert!(Event::parse(no_object.as_bytes()).is_err());
    }
}
