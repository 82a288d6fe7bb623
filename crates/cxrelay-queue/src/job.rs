//! The values that travel through apalis: an item delivery in, its checkpoint out.

use std::sync::Arc;

use cxrelay_core::{ItemOutcome, RunId};

use crate::keys::RunKeys;

/// Per-run facts a worker needs to send its items; read once per run and shared.
#[derive(Debug)]
pub struct RunMeta {
    /// The run.
    pub run: RunId,
    /// Its keys.
    pub keys: RunKeys,
    /// Target action id.
    pub action: String,
    /// Where the input came from (goes into the envelope's metadata).
    pub source: String,
}

/// One delivery of one item to this worker.
#[derive(Clone, Debug)]
pub struct ItemJob {
    /// The run it belongs to.
    pub run: Arc<RunMeta>,
    /// Stream entry id (what is acknowledged).
    pub entry_id: String,
    /// Index in the run's input.
    pub index: u64,
    /// Attempts already made before this delivery.
    pub attempts: u32,
    /// The item's JSON text.
    pub item: String,
    /// Times this item was taken over after a worker's lease expired.
    pub redeliveries: u32,
}

/// The handler's answer for one delivery: recorded and acknowledged in one script call.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The run it belongs to.
    pub run: Arc<RunMeta>,
    /// Stream entry id to acknowledge.
    pub entry_id: String,
    /// Index in the run's input.
    pub index: u64,
    /// What happened.
    pub outcome: ItemOutcome,
}

impl Checkpoint {
    /// The checkpoint for `job` with `outcome`.
    pub fn of(job: &ItemJob, outcome: ItemOutcome) -> Self {
        Self { run: job.run.clone(), entry_id: job.entry_id.clone(), index: job.index, outcome }
    }
}
