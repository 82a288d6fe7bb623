//! Small text helpers shared by the token and execute paths: bounded excerpts of response
//! bodies, secret redaction, reading a response body within a byte budget, and describing a
//! transport error by its cause chain.
//!
//! Every text built from something the network sent us (a body, a transport error) goes
//! through [`scrub`] before it becomes an error, an [`crate::Attempt`] field or a log line:
//! targets echo requests back, and an echoed request carries our credentials.

use std::borrow::Cow;
use std::error::Error as _;

use cxrelay_core::redact::redact;

/// Most characters an error excerpt may hold (the ellipsis included).
pub(crate) const MAX_EXCERPT_CHARS: usize = 300;

/// Bytes of a response body kept for an excerpt (enough for 300 four-byte characters).
pub(crate) const EXCERPT_BYTES: usize = MAX_EXCERPT_CHARS * 4;

/// Bytes of an unread response body drained so the connection can go back to the pool;
/// past this the response is dropped and the connection closed instead.
pub(crate) const DRAIN_LIMIT: usize = 256 * 1024;

/// Cuts `text` to at most [`MAX_EXCERPT_CHARS`] characters, turning control characters
/// (newlines included) into spaces and trimming surrounding whitespace.
pub(crate) fn excerpt(text: &str) -> String {
    let text = text.trim();
    let clean = |c: char| if c.is_control() { ' ' } else { c };
    if text.chars().nth(MAX_EXCERPT_CHARS).is_none() {
        return text.chars().map(clean).collect();
    }
    let mut out: String = text.chars().take(MAX_EXCERPT_CHARS - 1).map(clean).collect();
    out.push('…');
    out
}

/// `text` with every occurrence of each non-empty `known` secret (the client secret, the token
/// just sent) replaced by `***`, then whatever else looks secret (`Bearer …`, `"access_token":
/// "…"`, URL passwords, …) replaced by `[redacted]` ([`cxrelay_core::redact::redact`]).
///
/// Known values go first: a secret echoed in a harmless-looking field (`"detail": "bad secret
/// s3cr3t"`) has no shape the patterns could recognise.
pub(crate) fn scrub(text: &str, known: &[&str]) -> String {
    let mut text = Cow::Borrowed(text);
    for secret in known {
        if !secret.is_empty() && text.contains(secret) {
            text = Cow::Owned(text.replace(secret, "***"));
        }
    }
    let redacted = match redact(&text) {
        Cow::Owned(redacted) => Some(redacted),
        Cow::Borrowed(_) => None,
    };
    redacted.unwrap_or_else(|| text.into_owned())
}

/// Reads up to `keep` bytes of the body and drains the rest (up to [`DRAIN_LIMIT`]) so the
/// connection can be reused. Read errors end the read quietly: the status is what matters.
pub(crate) async fn read_prefix(mut resp: reqwest::Response, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Ok(Some(chunk)) = resp.chunk().await {
        if kept.len() < keep {
            let take = chunk.len().min(keep - kept.len());
            kept.extend_from_slice(&chunk[..take]);
        }
        seen += chunk.len();
        if seen > DRAIN_LIMIT {
            break;
        }
    }
    kept
}

/// Drains and discards the body (up to [`DRAIN_LIMIT`]) without buffering it.
pub(crate) async fn drain(mut resp: reqwest::Response) {
    let mut seen = 0usize;
    while let Ok(Some(chunk)) = resp.chunk().await {
        seen += chunk.len();
        if seen > DRAIN_LIMIT {
            break;
        }
    }
}

/// "error sending request: client error (Connect): tcp connect error: Connection refused"
/// — the error and its causes, without the URL, repeated messages dropped.
pub(crate) fn describe(err: &reqwest::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    let mut push = |msg: String| {
        if msg.is_empty() || msg == last || last.ends_with(&msg) {
            return;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
        last = msg;
    };
    // The top-level message names the URL; the URL is in the caller's hands already.
    let top = err.to_string();
    let top = match top.find(" for url (") {
        Some(i) => top[..i].to_owned(),
        None => top,
    };
    push(top);
    let mut source = err.source();
    while let Some(e) = source {
        push(e.to_string());
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_bounded() {
        let long = "é".repeat(1000);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), MAX_EXCERPT_CHARS);
        assert!(e.ends_with('…'));
        let exact = "a".repeat(MAX_EXCERPT_CHARS);
        assert_eq!(excerpt(&exact), exact);
        assert_eq!(excerpt("  line1\nline2  "), "line1 line2");
        assert_eq!(excerpt(""), "");
    }

    #[test]
    fn scrubs_known_secrets_and_secret_shapes() {
        assert_eq!(scrub("bad secret s3cr3t!", &["s3cr3t", ""]), "bad secret ***!");
        assert_eq!(
            scrub(r#"{"error":"denied","echo":"Bearer tok-1","access_token":"tok-1"}"#, &[]),
            r#"{"error":"denied","echo":"Bearer [redacted]","access_token":"[redacted]"}"#
        );
        assert_eq!(scrub(r#"{"client_secret":"s3cr3t","x":"s3cr3t"}"#, &["s3cr3t"]), r#"{"client_secret":"***","x":"***"}"#);
        assert_eq!(scrub("HTTP 503: upstream busy", &["s3cr3t"]), "HTTP 503: upstream busy");
    }
}
