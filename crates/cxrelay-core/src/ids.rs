//! Identities: `RunId` and the per-item idempotency key.

use std::fmt;

/// The id of a run (one input array): 1–64 characters of `[A-Za-z0-9_.-]`.
///
/// The restriction keeps ids safe inside Redis key hash tags (`{run:ID}`), URLs and file names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(String);

/// Why a string is not a valid run id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunIdError {
    /// The id was empty.
    #[error("run id is empty")]
    Empty,
    /// The id was longer than 64 characters.
    #[error("run id is {0} characters long; at most 64 are allowed")]
    TooLong(usize),
    /// The id contained a character outside `[A-Za-z0-9_.-]`.
    #[error("run id contains {0:?} at position {1}; only letters, digits, '_', '.' and '-' are allowed")]
    BadChar(char, usize),
}

impl RunId {
    /// Validates and wraps a run id.
    pub fn parse(s: &str) -> Result<Self, RunIdError> {
        if s.is_empty() {
            return Err(RunIdError::Empty);
        }
        if s.len() > 64 {
            return Err(RunIdError::TooLong(s.len()));
        }
        if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
            return Err(RunIdError::BadChar(c, i));
        }
        Ok(Self(s.to_owned()))
    }

    /// A fresh id: `r` + UTC milliseconds since the epoch in base 36 + 6 random base-36 digits,
    /// so ids sort by creation time and two producers in the same millisecond do not collide.
    pub fn generate(now_ms: u64) -> Self {
        let mut s = String::from("r");
        s.push_str(&base36(now_ms));
        s.push('-');
        let r: u64 = rand::random::<u64>() % 36u64.pow(6);
        let tail = base36(r);
        s.push_str(&"0".repeat(6 - tail.len()));
        s.push_str(&tail);
        Self(s)
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("ascii digits")
}

/// Checks a tenant or namespace name: 1–64 characters of `[A-Za-z0-9_.-]` (safe inside Redis
/// hash tags and key names); the error says what is wrong.
pub fn check_name(s: &str) -> Result<(), String> {
    RunId::parse(s).map(|_| ()).map_err(|e| e.to_string().replacen("run id", "name", 1))
}

/// A random token drawn when a run is created: part of every Idempotency-Key of that run, so a
/// run id reused after its data expired never repeats a key the target may have cached.
pub fn run_nonce() -> String {
    let mut s = String::with_capacity(10);
    for _ in 0..10 {
        s.push(char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[rand::random_range(0..36)]));
    }
    s
}

/// Where an item's `Idempotency-Key` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyKey {
    /// `{run}:{nonce}:{index}`: one key per item of one run incarnation, the same across
    /// retries, take-overs and restarts.
    PerRun {
        /// The run's nonce ([`run_nonce`]).
        nonce: String,
    },
    /// `{action}:{value}` of an item field: the same record gets the same key across runs, so
    /// the target de-duplicates it.
    Field(String),
}

impl IdempotencyKey {
    /// The key of item `index` of `run` for `action`; `item` is its JSON (only read for `Field`).
    /// `None` when the field is missing or not a string or number.
    /// `generation` > 0 (an item replayed with `--new-idempotency-key`) appends `:r{generation}`,
    /// so a target that cached the item's failed answer sees a new request.
    pub fn key(&self, run: &RunId, action: &str, index: u64, item: &str, generation: u32) -> Option<String> {
        let key = match self {
            IdempotencyKey::PerRun { nonce } => Some(format!("{}:{nonce}:{index}", run.0)),
            IdempotencyKey::Field(name) => field_value(item, name).map(|v| format!("{action}:{v}")),
        }?;
        Some(if generation > 0 { format!("{key}:r{generation}") } else { key })
    }
}

/// The string form of a top-level string or number field of a JSON object.
pub fn field_value(item: &str, name: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Any(std::collections::HashMap<String, serde_json::Value>);
    let Any(map) = serde_json::from_str(item).ok()?;
    match map.get(name)? {
        serde_json::Value::String(s) if !s.is_empty() && s.len() <= 200 => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// FNV-1a of `parts` (a zero byte between them) from `seed`: a hash that is the same in every
/// process and release (std's SipHash keys are not), for ids derived from names.
pub fn fnv1a(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = seed;
    for (n, part) in parts.iter().enumerate() {
        let sep: &[u8] = if n > 0 { &[0] } else { &[] };
        for b in sep.iter().chain(part.iter()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// FNV-1a's standard offset basis, the usual seed of [`fnv1a`].
pub const FNV_OFFSET: u64 = 0xcbf29ce484222325;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_and_rejects_invalid() {
        assert!(RunId::parse("run-1_a.b").is_ok());
        assert_eq!(RunId::parse(""), Err(RunIdError::Empty));
        assert_eq!(RunId::parse(&"a".repeat(65)), Err(RunIdError::TooLong(65)));
        assert_eq!(RunId::parse("a{b"), Err(RunIdError::BadChar('{', 1)));
    }

    #[test]
    fn generated_ids_are_valid_and_sort_by_time() {
        let a = RunId::generate(1_700_000_000_000);
        let b = RunId::generate(1_700_000_000_999);
        assert!(RunId::parse(a.as_str()).is_ok());
        assert!(a.as_str()[..9] <= b.as_str()[..9]);
        assert_ne!(RunId::generate(5), RunId::generate(5));
    }

    #[test]
    fn keys_are_per_incarnation_or_per_field() {
        let run = RunId::parse("abc").unwrap();
        let a = IdempotencyKey::PerRun { nonce: run_nonce() };
        let b = IdempotencyKey::PerRun { nonce: run_nonce() };
        assert_eq!(a.key(&run, "x", 42, "{}", 0), a.key(&run, "x", 42, "{}", 0), "stable for one incarnation");
        assert_ne!(a.key(&run, "x", 42, "{}", 0), b.key(&run, "x", 42, "{}", 0), "a reused run id gets new keys");
        assert!(a.key(&run, "x", 42, "{}", 0).unwrap().starts_with("abc:") && a.key(&run, "x", 42, "{}", 0).unwrap().ends_with(":42"));
        let f = IdempotencyKey::Field("id".into());
        assert_eq!(f.key(&run, "act", 1, r#"{"id":"c-7"}"#, 0).as_deref(), Some("act:c-7"));
        assert_eq!(f.key(&run, "act", 1, r#"{"id":7}"#, 0).as_deref(), Some("act:7"));
        assert_eq!(f.key(&run, "act", 1, r#"{"id":null}"#, 0), None);
        assert_eq!(f.key(&run, "act", 1, r#"{"other":1}"#, 0), None);
        // A replay with a new key: same item, a different key, stable across its retries.
        assert_eq!(a.key(&run, "x", 42, "{}", 2), a.key(&run, "x", 42, "{}", 2));
        assert_eq!(a.key(&run, "x", 42, "{}", 2).unwrap(), format!("{}:r2", a.key(&run, "x", 42, "{}", 0).unwrap()));
        assert_eq!(f.key(&run, "act", 1, r#"{"id":7}"#, 1).as_deref(), Some("act:7:r1"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("tenant-a").is_ok());
        assert!(check_name("").unwrap_err().contains("empty"));
        assert!(check_name("a b").unwrap_err().contains("name contains"));
    }
}
