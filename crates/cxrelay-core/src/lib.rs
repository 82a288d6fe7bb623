//! Pure domain logic of cxrelay: no I/O lives here.
//!
//! Everything that decides *what* happens to a record — its identity, the payload sent for it,
//! how an HTTP answer is classified, when a retry is due, how a run's counters read as a
//! report, what the configuration means — is here, unit tested, and shared by the queue,
//! the worker, the CLI and (later) the HTTP server.

#![warn(missing_docs)]

pub mod capacity;
pub mod classify;
pub mod config;
pub mod csv_quotes;
pub mod export;
pub mod ids;
pub mod input;
pub mod latency;
pub mod metric;
pub mod oncall;
pub mod outcome;
pub mod payload;
pub mod profile;
pub mod ratelimit;
pub mod redact;
pub mod report;
pub mod retry;
pub mod secret;
pub mod webhook;

pub use classify::{classify, Disposition};
pub use ids::{IdempotencyKey, RunId, RunIdError};
pub use outcome::{ItemOutcome, OutcomeKind};
pub use payload::{PayloadError, MAX_PAYLOAD_BYTES};
pub use secret::Secret;

/// Wall-clock time in ms since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
