//! Tolerant readers for Stripe JSON: a missing, null or oddly typed field is `None`, never an
//! error, because the same event type changes shape across API versions.

use serde_json::Value;

/// A string field.
pub fn str_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An integer field (Stripe sends unix seconds and minor units as integers).
pub fn int_at(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// A boolean field, `false` when absent.
pub fn flag_at(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The id of a field that is either an id string or an expanded object (`"cus_1"` or
/// `{"id": "cus_1", …}`).
pub fn id_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(id_of)
}

/// The id of a value that is either an id string or an expanded object.
pub fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// Follow a path of object keys.
pub fn path<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |cur, key| cur.get(key)).filter(|v| !v.is_null())
}

/// The elements of a Stripe list (`{"data": [...]}`) or a plain array.
pub fn list(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(items)) => items,
        Some(obj @ Value::Object(_)) => obj.get("data").and_then(Value::as_array).map_or(&[], |a| a),
        _ => &[],
    }
}
