//! Everything Redis for cxrelay.
//!
//! - [`keys`]: key names under a namespace (one `{run:ID}` hash tag per run, so a run lives in
//!   one cluster slot).
//! - [`scripts`]: the Lua scripts, one per atomic operation.
//! - [`store`]: the [`Store`]: runs, reports and the producer's chunked writes.
//! - [`oncall`]: the store's on-call operations: failed items, replay, run controls, audit.
//! - [`outbox`]: webhook outboxes, cursors, delivery leases and endpoint status.
//! - [`load`]: a tenant's load sampled into the tenant gauges (backlog, live and usable workers).
//! - [`producer`]: streams an input file into a run without holding it in memory.
//! - [`backend`]: the apalis [`StreamBackend`]: batched fetch from a Redis Stream consumer
//!   group, lease-based recovery (`XAUTOCLAIM`), and checkpoints folded into the acknowledgement.
//!
//! Data model (chosen because it satisfies every
//! durability point with one script call per batch): a stream per run with consumer group
//! `workers`, a state hash with the run's counters, bitmaps of succeeded and finished indexes,
//! and a sorted set of delayed retries promoted back into the stream in bounded slices.

#![warn(missing_docs)]

pub mod backend;
pub mod conn;
pub mod exports;
pub mod job;
pub mod keys;
pub mod limits;
pub mod load;
pub mod oncall;
pub mod outbox;
pub mod producer;
pub mod scripts;
pub mod store;

pub use backend::{StreamBackend, StreamConfig};
pub use conn::{connect, RedisConn, RedisTarget};
pub use job::{Checkpoint, ItemJob, RunKind, RunMeta};
pub use keys::Keyspace;
pub use limits::{BreakerConfig, BreakerReply, BudgetConfig, FleetLimits, ProbeResult};
pub use producer::{EnqueueError, EnqueueRequest, EnqueueSummary, Rejection};
pub use store::{QueueError, Store};
