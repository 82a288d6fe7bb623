//! `ItemOutcome`: what one delivery of an item came to, as the checkpoint records it, and the
//! `AttemptRecord` kept in an item's history.

use serde::{Deserialize, Serialize};

use crate::classify::FailureClass;
use crate::redact::{bound_bytes, redact};

/// Longest error text kept for an item, in bytes (response excerpt or transport error).
pub const MAX_ERROR_BYTES: usize = 512;
/// Longest failure reason counted in a run's summary, in bytes.
pub const MAX_REASON_BYTES: usize = 120;

/// An error text as it may be stored: secrets redacted, at most [`MAX_ERROR_BYTES`].
pub fn error_text(text: &str) -> String {
    bound_bytes(&redact(text), MAX_ERROR_BYTES)
}

/// The reason a failed item is counted under in the run's summary: the first line of its error
/// text, shortened, so that items failing the same way group together.
pub fn reason_of(error: &str) -> String {
    bound_bytes(error.lines().next().unwrap_or("").trim(), MAX_REASON_BYTES)
}

/// The fate of one delivery of an item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The target accepted the item.
    Succeeded,
    /// The item failed permanently (permanent status, or attempts exhausted).
    Failed,
    /// A retryable failure: try again after `delay_ms` (counts as an attempt).
    Retry {
        /// Milliseconds until the retry is due.
        delay_ms: u64,
    },
    /// Not sent (circuit open, fleet paused): try again after `delay_ms` (not an attempt).
    Deferred {
        /// Milliseconds until the item is due again.
        delay_ms: u64,
    },
}

impl OutcomeKind {
    /// The name used in attempt histories.
    pub fn as_str(&self) -> &'static str {
        match self {
            OutcomeKind::Succeeded => "succeeded",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Retry { .. } => "retry",
            OutcomeKind::Deferred { .. } => "deferred",
        }
    }
}

/// One delivery's result, checkpointed atomically with its acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemOutcome {
    /// What happens to the item next.
    pub kind: OutcomeKind,
    /// Attempts made so far that count against the attempt budget (429s do not), this one included.
    pub attempts: u32,
    /// 429 answers met so far, this one included (their own, larger budget).
    pub throttled: u32,
    /// Last HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// What kind of failure this was (`None` for a success, or a wait for a rate-limit slot).
    pub class: Option<FailureClass>,
    /// Latency of this attempt in microseconds (0 when nothing was sent).
    pub latency_us: u64,
    /// Why it did not succeed: redacted, at most [`MAX_ERROR_BYTES`].
    pub error: Option<String>,
}

/// One entry of an item's attempt history (kept for items that did not succeed at once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    /// When the outcome was recorded, ms since the epoch (worker clock).
    pub at_ms: u64,
    /// Attempt number (attempts that count against the budget; a 429 or deferral repeats it).
    pub attempt: u32,
    /// `succeeded`, `retry`, `failed` or `deferred`.
    pub outcome: String,
    /// HTTP status, if a response arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Failure class (`4xx`, `5xx`, `429`, `transport`, `auth`, `permission`, `poison`, `local`, `deferred`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Latency of the request in microseconds (0 when nothing was sent).
    pub latency_us: u64,
    /// The worker process (consumer name) that made it.
    pub worker: String,
    /// The redacted, bounded error text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AttemptRecord {
    /// The record of `outcome`, made by `worker` at `at_ms`.
    pub fn of(outcome: &ItemOutcome, worker: &str, at_ms: u64) -> Self {
        Self {
            at_ms,
            attempt: outcome.attempts,
            outcome: outcome.kind.as_str().to_owned(),
            status: outcome.status,
            class: outcome.class.map(|c| c.as_str().to_owned()),
            latency_us: outcome.latency_us,
            worker: worker.to_owned(),
            error: outcome.error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_are_redacted_and_bounded() {
        let long = format!("HTTP 500: Authorization: Bearer abc.def.ghi {}", "é".repeat(1000));
        let e = error_text(&long);
        assert!(e.len() <= MAX_ERROR_BYTES, "{}", e.len());
        assert!(!e.contains("abc.def.ghi"), "{e}");
        assert!(e.starts_with("HTTP 500"));
        assert_eq!(reason_of("HTTP 400: bad\nsecond line"), "HTTP 400: bad");
    }

    #[test]
    fn attempt_records_serialize_compactly() {
        let o = ItemOutcome {
            kind: OutcomeKind::Retry { delay_ms: 5 },
            attempts: 2,
            throttled: 0,
            status: Some(503),
            class: Some(FailureClass::Server),
            latency_us: 1200,
            error: Some("HTTP 503: busy".into()),
        };
        let json = serde_json::to_string(&AttemptRecord::of(&o, "w1", 7)).unwrap();
        assert_eq!(
            json,
            r#"{"at_ms":7,"attempt":2,"outcome":"retry","status":503,"class":"5xx","latency_us":1200,"worker":"w1","error":"HTTP 503: busy"}"#
        );
    }
}
