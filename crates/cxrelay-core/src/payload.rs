//! The request body for one item, and the checks an item must pass before it is ever sent.
//!
//! Items travel through the queue as their raw JSON text; the body is assembled from that text
//! by concatenation (no parse and re-encode), which keeps the hot path cheap and byte-exact.

/// Largest request body we send: the seed's 256 KB "memory verification" limit (the API answers 413).
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Why an item cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Each item must be a JSON object (it becomes the action's `inputs`).
    #[error("item must be a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type that was found instead.
        found: &'static str,
    },
    /// The constructed body exceeds the target's limit ([`MAX_PAYLOAD_BYTES`] unless the profile
    /// says otherwise).
    #[error("payload is {bytes} bytes ({kib:.1} KB), over the {limit}-byte ({limit_kib} KB) limit", kib = *bytes as f64 / 1024.0, limit_kib = *limit / 1024)]
    TooLarge {
        /// Size of the constructed body.
        bytes: usize,
        /// The limit it exceeded.
        limit: usize,
    },
}

/// How the request body wraps an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyShape {
    /// The seed's envelope: `{"index", "action", "inputs", "metadata"}`.
    #[default]
    Envelope,
    /// The item itself is the body (Genesys Cloud Data Actions).
    Flat,
}

/// Builds bodies for one run: the parts that are the same for every item are encoded once.
#[derive(Clone, Debug)]
pub struct BodyTemplate {
    shape: BodyShape,
    /// `,"action":"…","inputs":` — everything between the index and the item.
    middle: String,
    /// `,"metadata":{…}}` — everything after the item.
    tail: String,
    /// Largest body allowed, bytes.
    limit: usize,
}

impl BodyTemplate {
    /// A template for `action`, with `metadata = {"source": source, "batch": batch}`.
    pub fn new(shape: BodyShape, action: &str, source: &str, batch: &str) -> Self {
        let json = |s: &str| serde_json::to_string(s).expect("strings always encode");
        Self {
            shape,
            middle: format!(",\"action\":{},\"inputs\":", json(action)),
            tail: format!(",\"metadata\":{{\"source\":{},\"batch\":{}}}}}", json(source), json(batch)),
            limit: MAX_PAYLOAD_BYTES,
        }
    }

    /// The same template with another body size limit (the target profile's).
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Size in bytes of the body for item `index` whose JSON text is `item_len` bytes long.
    pub fn body_len(&self, index: u64, item_len: usize) -> usize {
        match self.shape {
            BodyShape::Flat => item_len,
            BodyShape::Envelope => "{\"index\":".len() + digits(index) + self.middle.len() + item_len + self.tail.len(),
        }
    }

    /// Checks an item's JSON text: it must be an object and its body must fit the limit.
    pub fn check(&self, index: u64, item: &str) -> Result<(), PayloadError> {
        let found = json_type(item);
        if found != "object" {
            return Err(PayloadError::NotAnObject { found });
        }
        let bytes = self.body_len(index, item.len());
        if bytes > self.limit {
            return Err(PayloadError::TooLarge { bytes, limit: self.limit });
        }
        Ok(())
    }

    /// The request body for item `index`; `item` must already have passed [`check`](Self::check).
    pub fn body(&self, index: u64, item: &str) -> Vec<u8> {
        match self.shape {
            BodyShape::Flat => item.as_bytes().to_vec(),
            BodyShape::Envelope => {
                let mut out = Vec::with_capacity(self.body_len(index, item.len()));
                out.extend_from_slice(b"{\"index\":");
                out.extend_from_slice(index.to_string().as_bytes());
                out.extend_from_slice(self.middle.as_bytes());
                out.extend_from_slice(item.as_bytes());
                out.extend_from_slice(self.tail.as_bytes());
                out
            }
        }
    }
}

fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// The JSON type of a (valid) JSON text, judged by its first significant character.
pub fn json_type(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(_) => "a number",
        None => "nothing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl() -> BodyTemplate {
        BodyTemplate::new(BodyShape::Envelope, "act\"1", "cxrelay", "run-1")
    }

    #[test]
    fn envelope_is_valid_json_with_all_fields() {
        let body = tpl().body(7, r#"{"a":1}"#);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["index"], 7);
        assert_eq!(v["action"], "act\"1");
        assert_eq!(v["inputs"]["a"], 1);
        assert_eq!(v["metadata"]["source"], "cxrelay");
        assert_eq!(v["metadata"]["batch"], "run-1");
        assert_eq!(tpl().body_len(7, 7), body.len());
        assert_eq!(tpl().body_len(123456, 7), tpl().body(123456, r#"{"a":1}"#).len());
    }

    #[test]
    fn flat_body_is_the_item() {
        let t = BodyTemplate::new(BodyShape::Flat, "a", "s", "b");
        assert_eq!(t.body(1, r#"{"x":2}"#), br#"{"x":2}"#);
    }

    #[test]
    fn rejects_non_objects_naming_the_type() {
        assert_eq!(tpl().check(0, "[1]"), Err(PayloadError::NotAnObject { found: "an array" }));
        assert_eq!(tpl().check(0, "\"s\""), Err(PayloadError::NotAnObject { found: "a string" }));
        assert_eq!(tpl().check(0, "12"), Err(PayloadError::NotAnObject { found: "a number" }));
        assert_eq!(tpl().check(0, "null"), Err(PayloadError::NotAnObject { found: "null" }));
        assert!(tpl().check(0, "{}").is_ok());
    }

    #[test]
    fn size_limit_counts_the_whole_body() {
        let overhead = tpl().body_len(0, 0);
        let fits = format!("{{\"k\":\"{}\"}}", "x".repeat(MAX_PAYLOAD_BYTES - overhead - 8));
        assert_eq!(tpl().body_len(0, fits.len()), MAX_PAYLOAD_BYTES);
        assert!(tpl().check(0, &fits).is_ok());
        let over = format!("{{\"k\":\"{}\"}}", "x".repeat(MAX_PAYLOAD_BYTES - overhead - 7));
        let err = tpl().check(0, &over).unwrap_err();
        assert!(matches!(err, PayloadError::TooLarge { bytes, .. } if bytes == MAX_PAYLOAD_BYTES + 1));
        assert!(err.to_string().contains("256 KB"));
    }
}
