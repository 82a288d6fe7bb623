//! Per-item directives: an item carrying `"_sim": {...}` tells the simulator how to treat every
//! request for it ("poison" items that always fail, items that fail K times then succeed, slow
//! items). This module owns the directive's wire form, its parsing from a raw execute body, and the
//! per-key counters behind `fail_times`.
//!
//! Wire form, inside the item (`inputs` of an envelope, or the top-level object of a flat body):
//! `"_sim": {"status": 503, "fail_times": 2, "retry_after_secs": 1, "delay_ms": 250}`, every field
//! optional. A `_sim` value that is not an object is ordinary item data.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The key that marks a directive inside an item.
const MARKER: &[u8] = br#""_sim""#;

/// Longest accepted `delay_ms` (10 minutes); larger values are refused rather than overflowing.
const MAX_DELAY_MS: u64 = 600_000;

/// A parsed directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    /// Status to answer instead of applying the item.
    pub status: Option<StatusCode>,
    /// `Retry-After` seconds sent with `status`.
    pub retry_after_secs: Option<u64>,
    /// Extra time before answering.
    pub delay: Duration,
    /// Answer `status` only for the first this-many requests per idempotency key.
    pub fail_times: Option<u64>,
}

/// Why a `_sim` object was refused; `field` names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub(crate) struct DirectiveError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> DirectiveError {
    DirectiveError { field, message: message.into() }
}

/// The `_sim` object as sent; unknown fields are refused so that a typo does not silently apply.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    retry_after_secs: Option<u64>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    fail_times: Option<u64>,
}

/// The top level of a body: envelope fields plus a flat item's own `_sim`.
#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow, default)]
    index: Option<&'a RawValue>,
    #[serde(borrow, default)]
    action: Option<&'a RawValue>,
    #[serde(borrow, default)]
    inputs: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "_sim")]
    sim: Option<&'a RawValue>,
}

/// The item of an envelope (its `inputs`).
#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow, default, rename = "_sim")]
    sim: Option<&'a RawValue>,
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('{')
}

/// The directive of an execute body, if its item carries one.
///
/// A body is an envelope when it has `index`, `action` and an object `inputs` (what the envelope
/// check requires); then only `inputs._sim` counts, never a top-level or `metadata` one. Otherwise
/// the body is a flat item and its top-level `_sim` counts. Bodies without the bytes `"_sim"`
/// return at once without parsing, which keeps ordinary items off this path.
pub(crate) fn find(body: &[u8]) -> Result<Option<Directive>, DirectiveError> {
    if !body.windows(MARKER.len()).any(|w| w == MARKER) {
        return Ok(None);
    }
    // The envelope check owns body validity; a body it let through but that does not parse here
    // (e.g. a repeated key) simply has no directive.
    let Ok(top) = serde_json::from_slice::<Top<'_>>(body) else {
        return Ok(None);
    };
    let raw = match top.inputs {
        Some(inputs) if top.index.is_some() && top.action.is_some() && is_object(inputs) => match serde_json::from_str::<Item<'_>>(inputs.get()) {
            Ok(item) => item.sim,
            Err(_) => None,
        },
        _ => top.sim,
    };
    match raw {
        Some(raw) if is_object(raw) => parse(raw.get()).map(Some),
        _ => Ok(None),
    }
}

/// Parses and checks one `_sim` object.
fn parse(json: &str) -> Result<Directive, DirectiveError> {
    let wire: Wire = serde_json::from_str(json).map_err(|e| err("_sim", e.to_string()))?;
    let status = match wire.status {
        None => None,
        Some(s) if (400..=599).contains(&s) => Some(StatusCode::from_u16(s).map_err(|e| err("_sim.status", e.to_string()))?),
        Some(s) => return Err(err("_sim.status", format!("{s} is not in 400..=599"))),
    };
    if status.is_none() {
        if wire.fail_times.is_some() {
            return Err(err("_sim.fail_times", "fail_times needs a status"));
        }
        if wire.retry_after_secs.is_some() {
            return Err(err("_sim.retry_after_secs", "retry_after_secs needs a status"));
        }
    }
    let delay_ms = wire.delay_ms.unwrap_or(0);
    if delay_ms > MAX_DELAY_MS {
        return Err(err("_sim.delay_ms", format!("{delay_ms} is over the {MAX_DELAY_MS} ms limit")));
    }
    Ok(Directive { status, retry_after_secs: wire.retry_after_secs, delay: Duration::from_millis(delay_ms), fail_times: wire.fail_times })
}

impl Directive {
    /// The status to answer for this request of `key`, counting it against `fail_times`.
    pub fn failure(&self, key: &str, counts: &FailCounts) -> Option<StatusCode> {
        let status = self.status?;
        match self.fail_times {
            None => Some(status),
            Some(times) => counts.take(key, times).then_some(status),
        }
    }
}

/// How many `fail_times` failures each idempotency key has been answered; cleared by a reset.
///
/// One lock is enough: only requests whose item carries a `fail_times` directive touch it.
#[derive(Debug, Default)]
pub(crate) struct FailCounts {
    failed: Mutex<HashMap<String, u64>>,
}

impl FailCounts {
    /// Whether `key` has failed fewer than `times` times so far; if so, counts one more failure.
    pub fn take(&self, key: &str, times: u64) -> bool {
        if times == 0 {
            return false;
        }
        let mut map = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(key) {
            if *n >= times {
                return false;
            }
            *n += 1;
            return true;
        }
        map.insert(key.to_owned(), 1);
        true
    }

    pub fn clear(&self) {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(body: &str) -> Option<Directive> {
        find(body.as_bytes()).unwrap()
    }

    fn refused(body: &str) -> &'static str {
        find(body.as_bytes()).unwrap_err().field
    }

    #[test]
    fn ordinary_items_have_no_directive() {
        assert_eq!(found(r#"{"index":0,"action":"a","inputs":{"name":"x"}}"#), None);
        // `_sim` as a value, or with a non-object value, is data.
        assert_eq!(found(r#"{"index":0,"action":"a","inputs":{"k":"_sim"}}"#), None);
        assert_eq!(found(r#"{"index":0,"action":"a","inputs":{"_sim":"x"}}"#), None);
        assert_eq!(found(r#"{"_sim":[1]}"#), None);
        assert_eq!(found(r#"{"_sim": {"#), None);
    }

    #[test]
    fn envelope_directive_is_read_from_inputs_only() {
        let d = found(r#"{"index":0,"action":"a","inputs":{"x":1,"_sim":{"status":503,"fail_times":2}}}"#).unwrap();
        assert_eq!(d.status, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(d.fail_times, Some(2));
        assert_eq!(d.delay, Duration::ZERO);
        // A top-level or metadata `_sim` of an envelope is not the item's.
        assert_eq!(found(r#"{"index":0,"action":"a","inputs":{},"_sim":{"status":500}}"#), None);
        assert_eq!(found(r#"{"index":0,"action":"a","inputs":{},"metadata":{"_sim":{"status":500}}}"#), None);
    }

    #[test]
    fn flat_directive_is_read_from_the_top_level() {
        let d = found(r#"{"name":"x","_sim":{"status":429,"retry_after_secs":3,"delay_ms":20}}"#).unwrap();
        assert_eq!(d.status, Some(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(d.retry_after_secs, Some(3));
        assert_eq!(d.delay, Duration::from_millis(20));
        let d = found(r#"{"_sim":{"delay_ms":5}}"#).unwrap();
        assert_eq!((d.status, d.fail_times), (None, None));
    }

    #[test]
    fn bad_directives_name_the_field() {
        assert_eq!(refused(r#"{"_sim":{"status":200}}"#), "_sim.status");
        assert_eq!(refused(r#"{"_sim":{"status":600}}"#), "_sim.status");
        assert_eq!(refused(r#"{"_sim":{"fail_times":2}}"#), "_sim.fail_times");
        assert_eq!(refused(r#"{"_sim":{"retry_after_secs":2}}"#), "_sim.retry_after_secs");
        assert_eq!(refused(r#"{"_sim":{"delay_ms":600001}}"#), "_sim.delay_ms");
        assert_eq!(refused(r#"{"_sim":{"stauts":503}}"#), "_sim");
        assert_eq!(refused(r#"{"_sim":{"status":"503"}}"#), "_sim");
    }

    #[test]
    fn fail_times_counts_per_key_and_clears() {
        let counts = FailCounts::default();
        let d = parse(r#"{"status":503,"fail_times":2}"#).unwrap();
        let s = Some(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(d.failure("a", &counts), s);
        assert_eq!(d.failure("b", &counts), s);
        assert_eq!(d.failure("a", &counts), s);
        assert_eq!(d.failure("a", &counts), None);
        assert_eq!(d.failure("a", &counts), None);
        counts.clear();
        assert_eq!(d.failure("a", &counts), s);
        let always = parse(r#"{"status":422}"#).unwrap();
        for _ in 0..3 {
            assert_eq!(always.failure("a", &counts), Some(StatusCode::UNPROCESSABLE_ENTITY));
        }
        let never = parse(r#"{"status":500,"fail_times":0}"#).unwrap();
        assert_eq!(never.failure("c", &counts), None);
        assert_eq!(parse(r#"{"delay_ms":1}"#).unwrap().failure("d", &counts), None);
    }
}
