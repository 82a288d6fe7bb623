//! The values that travel through apalis: an item delivery in, its checkpoint out.

use std::sync::Arc;

use cxrelay_core::{IdempotencyKey, ItemOutcome, RunId};

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
    /// The tenant the run belongs to.
    pub tenant: String,
    /// The incarnation of the run id (drawn at creation).
    pub nonce: String,
    /// How the run's items are keyed for the target's idempotency.
    pub idempotency: IdempotencyKey,
    /// What its items are.
    pub kind: RunKind,
}

/// What a run's items are, and so which handler sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Records, each executed as one data action call.
    Items,
    /// One CSV export execution to submit.
    Export,
}

impl RunKind {
    /// The kind stored in a run's `kind` field (absent: items).
    pub fn parse(stored: Option<&str>) -> Self {
        match stored {
            Some("export") => RunKind::Export,
            _ => RunKind::Items,
        }
    }
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
    /// Attempts already made before this delivery (429s excluded).
    pub attempts: u32,
    /// 429 answers met before this delivery.
    pub throttled: u32,
    /// Times the item was deferred (not sent) before this delivery.
    pub deferrals: u32,
    /// The item's JSON text.
    pub item: String,
    /// Times this item was taken over after a worker's lease expired.
    pub redeliveries: u32,
    /// Replay generation when it was replayed with a new Idempotency-Key (0: never).
    pub generation: u32,
    /// 1 when an operator replayed it.
    pub replays: u32,
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
    /// The delivery was the item's first ([`ItemJob::is_fresh`]): a success then keeps no history.
    pub fresh: bool,
}

impl ItemJob {
    /// True when this is the item's first delivery: it never failed, waited, changed hands or
    /// was replayed.
    /// Such an item keeps no history when it succeeds, and a failure of it is news about the
    /// target rather than about the item.
    pub fn is_fresh(&self) -> bool {
        self.attempts == 0 && self.throttled == 0 && self.deferrals == 0 && self.redeliveries == 0 && self.replays == 0
    }
}

impl Checkpoint {
    /// The checkpoint for `job` with `outcome`.
    pub fn of(job: &ItemJob, outcome: ItemOutcome) -> Self {
        Self { run: job.run.clone(), entry_id: job.entry_id.clone(), index: job.index, outcome, fresh: job.is_fresh() }
    }
}
