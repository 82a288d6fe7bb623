//! cxrelay-sim: an HTTP simulator of the tutorials' "Data Action" API (client-credentials token
//! endpoint, per-item execute endpoint, CSV export executions with signed completion callbacks or
//! polling) and of the real targets' shapes (NICE CXone: discovery, access-key password grant with
//! JWTs, flat-body execute, report jobs; Genesys Cloud: flat-body execute), with an idempotency
//! ledger, GCRA rate limiting, injectable faults (latency, spikes, 5xx, connection resets, forced
//! status windows, echoed request headers, rate-limit headers), per-item `_sim` directives (poison,
//! fail-K-times and slow items), a request log, `/_sim/*` introspection and a Standard Webhooks
//! receiver (`/_sim/webhooks`).
//!
//! Used in-process from integration tests through [`SimServer`] and as the `cxrelay sim` subcommand
//! through [`SimArgs`] and [`run`].

#![warn(missing_docs)]

mod admin;
mod auth;
mod callback;
mod cli;
mod config;
mod cxone_auth;
mod directive;
mod discovery;
mod envelope;
mod error;
mod execute;
mod export_settings;
mod export_store;
mod export_validate;
mod exports;
mod jwt;
mod ledger;
mod reply;
mod report_jobs;
mod reqlog;
mod server;
mod shape;
mod state;
mod stats;
mod timer;
mod webhooks;

pub use cli::{run, SimArgs};
pub use config::{FaultUpdate, ForceStatus, SimConfig, DEFAULT_SCOPES};
pub use error::SimError;
pub use execute::IDEMPOTENCY_KEY;
pub use export_settings::{ExportCompletion, ExportSettings, ExportSettingsUpdate, ExportStatus, MAX_EXPORT_DURATION};
pub use export_store::{ExecutionState, ExportExecution, Exports};
pub use ledger::{Ledger, LedgerEntry};
pub use reqlog::{RecordedHeaders, RequestRecord, RequestRoute, MAX_LOGGED_REQUESTS};
pub use server::SimServer;
pub use stats::{Arrival, Arrivals, SimStats, MAX_ARRIVALS};
pub use webhooks::{ReceivedWebhook, WebhookLog};
