//! Redis key names. Every key of a run shares the `{run:ID}` hash tag, so a run's scripts touch
//! one hash slot: atomic on a single Redis and valid on Redis Cluster.

use cxrelay_core::RunId;

/// Consumer group every worker reads a run's stream through.
pub const GROUP: &str = "workers";

/// Set of runs workers should look at (loading runs are skipped until sealed).
pub const ACTIVE_RUNS: &str = "cxr:runs:active";

/// The keys of one run.
#[derive(Clone, Debug)]
pub struct RunKeys {
    /// Hash: the run's state matrix and counters.
    pub state: String,
    /// Stream: one entry per deliverable item (`i` index, `a` attempts, `d` item JSON).
    pub items: String,
    /// Bitmap: indexes that succeeded.
    pub done: String,
    /// Bitmap: indexes that succeeded, failed or were rejected by validation.
    pub finished: String,
    /// Hash: index → `status|attempts|http|latency_us` of the last delivery.
    pub results: String,
    /// Hash: index → last error text.
    pub failures: String,
    /// Hash: latency bucket → count.
    pub latency: String,
    /// Sorted set: retries and deferred items by due time.
    pub delayed: String,
    /// Hash: index → validation failure reason.
    pub invalid: String,
    /// Hash: index → times the item was taken over from a worker whose lease expired.
    pub redeliveries: String,
}

impl RunKeys {
    /// The keys of run `run`.
    pub fn new(run: &RunId) -> Self {
        let k = |suffix: &str| format!("cxr:{{run:{run}}}:{suffix}");
        Self {
            state: k("state"),
            items: k("items"),
            done: k("done"),
            finished: k("finished"),
            results: k("results"),
            failures: k("failures"),
            latency: k("latency"),
            delayed: k("delayed"),
            invalid: k("invalid"),
            redeliveries: k("redeliveries"),
        }
    }

    /// Every key of the run, state last: what expires after the retention period.
    pub fn all(&self) -> [&str; 10] {
        [
            &self.items,
            &self.done,
            &self.finished,
            &self.results,
            &self.failures,
            &self.latency,
            &self.delayed,
            &self.invalid,
            &self.redeliveries,
            &self.state,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_keys_share_the_runs_hash_tag() {
        let keys = RunKeys::new(&RunId::parse("r1").unwrap());
        for k in keys.all() {
            assert!(k.starts_with("cxr:{run:r1}:"), "{k}");
        }
    }
}
