//! Validation of the execute request envelope `{index, action, inputs, metadata?}` without building a
//! JSON tree: fields are borrowed as raw JSON and only `index` and `action` are decoded.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Why an envelope was refused; `field` names the offending field (`body` for the whole document).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub(crate) struct EnvelopeError {
    pub field: &'static str,
    pub message: &'static str,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    index: Option<&'a RawValue>,
    #[serde(borrow, default)]
    action: Option<&'a RawValue>,
    #[serde(borrow, default)]
    inputs: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
}

fn err(field: &'static str, message: &'static str) -> EnvelopeError {
    EnvelopeError { field, message }
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('{')
}

/// Checks the envelope of an execute body addressed to `action_id`.
pub(crate) fn validate(body: &[u8], action_id: &str) -> Result<(), EnvelopeError> {
    let not_object = || err("body", "body must be a JSON object");
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(not_object());
    }
    let env: RawEnvelope<'_> = serde_json::from_slice(body).map_err(|_| not_object())?;

    let index_ok = env.index.is_some_and(|raw| serde_json::from_str::<u64>(raw.get()).is_ok());
    if !index_ok {
        return Err(err("index", "index must be a non-negative integer"));
    }
    let action_ok = env.action.is_some_and(|raw| match serde_json::from_str::<&str>(raw.get()) {
        Ok(s) => s == action_id,
        // Escaped strings cannot be borrowed; decode them.
        Err(_) => serde_json::from_str::<String>(raw.get()).is_ok_and(|s| s == action_id),
    });
    if !action_ok {
        return Err(err("action", "action must be a string equal to the actionId in the path"));
    }
    if !env.inputs.is_some_and(is_object) {
        return Err(err("inputs", "inputs must be a JSON object"));
    }
    if env.metadata.is_some_and(|raw| !is_object(raw)) {
        return Err(err("metadata", "metadata must be a JSON object when present"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(body: &str) -> Option<&'static str> {
        validate(body.as_bytes(), "act-1").err().map(|e| e.field)
    }

    #[test]
    fn accepts_valid_envelopes() {
        assert_eq!(field(r#"{"index":0,"action":"act-1","inputs":{}}"#), None);
        assert_eq!(field(r#" {"index":7,"action":"act\u002d1","inputs":{"a":[1]},"metadata":{"source":"x"},"extra":1}"#), None);
        assert_eq!(field(r#"{"index":1,"action":"act-1","inputs":{},"metadata":null}"#), None);
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(field("[1,2]"), Some("body"));
        assert_eq!(field("{not json"), Some("body"));
        assert_eq!(field(r#"{"action":"act-1","inputs":{}}"#), Some("index"));
        assert_eq!(field(r#"{"index":-1,"action":"act-1","inputs":{}}"#), Some("index"));
        assert_eq!(field(r#"{"index":1.5,"action":"act-1","inputs":{}}"#), Some("index"));
        assert_eq!(field(r#"{"index":"1","action":"act-1","inputs":{}}"#), Some("index"));
        assert_eq!(field(r#"{"index":1,"action":"other","inputs":{}}"#), Some("action"));
        assert_eq!(field(r#"{"index":1,"action":5,"inputs":{}}"#), Some("action"));
        assert_eq!(field(r#"{"index":1,"action":"act-1","inputs":[]}"#), Some("inputs"));
        assert_eq!(field(r#"{"index":1,"action":"act-1"}"#), Some("inputs"));
        assert_eq!(field(r#"{"index":1,"action":"act-1","inputs":{},"metadata":"x"}"#), Some("metadata"));
    }
}
