//! `ItemOutcome`: what one delivery of an item came to, as the checkpoint records it.

use serde::{Deserialize, Serialize};

/// Longest error text kept for an item (response excerpt or transport error).
pub const MAX_ERROR_LEN: usize = 300;

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
    /// Already recorded as succeeded: acknowledged without sending.
    AlreadyDone,
}

/// One delivery's result, checkpointed atomically with its acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemOutcome {
    /// What happens to the item next.
    pub kind: OutcomeKind,
    /// Attempts made so far (HTTP calls that reached a verdict), this one included.
    pub attempts: u32,
    /// Last HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// Latency of this attempt in microseconds (0 when nothing was sent).
    pub latency_us: u64,
    /// Why it did not succeed, bounded to [`MAX_ERROR_LEN`] characters.
    pub error: Option<String>,
}

/// Cuts `text` to at most `max` characters (on a char boundary), marking the cut with `…`.
pub fn bound_text(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => {
            let mut s = text[..cut].to_owned();
            s.push('…');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_on_char_boundaries() {
        assert_eq!(bound_text("short", 10), "short");
        assert_eq!(bound_text("ééééé", 2), "éé…");
        assert_eq!(bound_text(&"x".repeat(1000), MAX_ERROR_LEN).chars().count(), MAX_ERROR_LEN + 1);
    }
}
