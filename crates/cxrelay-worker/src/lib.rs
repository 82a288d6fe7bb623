//! The worker: what happens to one item ([`handler`]) and the process that runs many of them
//! concurrently on apalis ([`runtime`]), configured from [`cxrelay_core::config::Settings`]
//! ([`setup`]), and the webhook dispatcher that runs beside them ([`webhooks`]).

#![warn(missing_docs)]

pub mod export;
pub mod gate;
pub mod handler;
pub mod runtime;
pub mod setup;
pub mod webhooks;

pub use handler::ItemHandler;
pub use runtime::{run_worker, WorkerError};
