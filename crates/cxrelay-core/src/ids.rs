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
        if let Some((i, c)) = s
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
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

/// The `Idempotency-Key` of one item: `{run}:{index}`, stable across retries and re-deliveries.
pub fn idempotency_key(run: &RunId, index: u64) -> String {
    format!("{}:{}", run.0, index)
}

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
    fn key_is_run_and_index() {
        let run = RunId::parse("abc").unwrap();
        assert_eq!(idempotency_key(&run, 42), "abc:42");
    }
}
