//! Redis key names. Every key starts with the deployment's namespace (`cxr` by default), so two
//! deployments sharing one Redis never see each other. Every key of a run shares the `{run:ID}`
//! hash tag, so a run's scripts touch one hash slot: atomic on a single Redis and valid on
//! Redis Cluster. A tenant's rate budget and breaker live under `{rl:TENANT}` / `{brk:TENANT}`.

use cxrelay_core::RunId;

/// Consumer group every worker reads a run's stream through.
pub const GROUP: &str = "workers";

/// The key layout of one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyspace {
    ns: String,
}

impl Default for Keyspace {
    fn default() -> Self {
        Self::new("cxr")
    }
}

impl Keyspace {
    /// Keys under `namespace` (validated by the settings: `[A-Za-z0-9_.-]`).
    pub fn new(namespace: &str) -> Self {
        Self { ns: namespace.to_owned() }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The keys of run `run`.
    pub fn run(&self, run: &RunId) -> RunKeys {
        RunKeys::new(&self.ns, run)
    }

    /// Set of a tenant's runs that workers should look at (loading runs are skipped until sealed).
    pub fn active_runs(&self, tenant: &str) -> String {
        format!("{}:active:{{t:{tenant}}}", self.ns)
    }

    /// Sorted set of a tenant's runs by creation time (ms): what `runs` lists, newest first;
    /// members whose run expired are dropped when listed.
    pub fn runs_index(&self, tenant: &str) -> String {
        format!("{}:runs:{{t:{tenant}}}", self.ns)
    }

    /// Set of a tenant's runs whose outbox may hold undelivered webhook events (a hint the
    /// dispatchers read; a periodic sweep over the runs index catches a hint lost in a crash).
    pub fn outbox_runs(&self, tenant: &str) -> String {
        format!("{}:outbox:{{t:{tenant}}}", self.ns)
    }

    /// Hash of a tenant's webhook endpoints' delivery status: endpoint id → JSON.
    pub fn webhook_status(&self, tenant: &str) -> String {
        format!("{}:webhooks:{{t:{tenant}}}", self.ns)
    }

    /// Hash of a tenant's live worker processes: consumer name → heartbeat JSON (with the time it
    /// was last written; entries older than their expiry are dropped when listed).
    pub fn workers(&self, tenant: &str) -> String {
        format!("{}:workers:{{t:{tenant}}}", self.ns)
    }

    /// Sorted set of a tenant's export runs by creation time (ms): what `exports` lists.
    pub fn exports(&self, tenant: &str) -> String {
        format!("{}:exports:{{t:{tenant}}}", self.ns)
    }

    /// Hash of a tenant's export executions: the target's execution id → run id.
    pub fn export_ids(&self, tenant: &str) -> String {
        format!("{}:export-ids:{{t:{tenant}}}", self.ns)
    }

    /// Sorted set of a tenant's polled export runs by next poll time (ms).
    pub fn export_polls(&self, tenant: &str) -> String {
        format!("{}:export-polls:{{t:{tenant}}}", self.ns)
    }

    /// Sorted set of a tenant's submitted export runs by deadline (ms).
    pub fn export_deadlines(&self, tenant: &str) -> String {
        format!("{}:export-deadlines:{{t:{tenant}}}", self.ns)
    }

    /// The submission slot of one data action of a tenant (see `export_slot.lua`).
    pub fn export_slot(&self, tenant: &str, data_action: &str) -> String {
        format!("{}:export-slot:{{t:{tenant}}}:{data_action}", self.ns)
    }

    /// Rate budget of a tenant (`action` = None) or of one action's sub-limit.
    pub fn budget(&self, tenant: &str, action: Option<&str>) -> String {
        match action {
            None => format!("{}:{{rl:{tenant}}}", self.ns),
            Some(a) => format!("{}:{{rl:{tenant}:{a}}}", self.ns),
        }
    }

    /// Circuit breaker hash of a tenant.
    pub fn breaker(&self, tenant: &str) -> String {
        format!("{}:{{brk:{tenant}}}", self.ns)
    }

    /// Breaker events stream of a tenant (same slot as the breaker).
    pub fn breaker_events(&self, tenant: &str) -> String {
        format!("{}:{{brk:{tenant}}}:events", self.ns)
    }
}

/// The keys of one run.
#[derive(Clone, Debug)]
pub struct RunKeys {
    /// Hash: the run's state matrix and counters.
    pub state: String,
    /// Stream: one entry per deliverable item (`i` index, `a` attempts, `t` 429s, `n` deferrals, `d` item JSON).
    pub items: String,
    /// Bitmap: indexes that succeeded.
    pub done: String,
    /// Bitmap: indexes that succeeded, failed or were rejected by validation.
    pub finished: String,
    /// Hash: index → JSON of a failed item's last failure (class, status, reason, attempts, time).
    pub failed: String,
    /// Hash: index → item JSON of a failed item, kept for replay.
    pub payloads: String,
    /// Hash: index → JSON array of the item's last attempts (items that did not succeed at once).
    pub history: String,
    /// Hash: failure counters: `c:CLASS`, `s:STATUS`, `r:REASON` → failed items.
    pub failstats: String,
    /// Hash: latency bucket → count.
    pub latency: String,
    /// Sorted set: retries and deferred items by due time.
    pub delayed: String,
    /// Hash: index → validation failure reason.
    pub invalid: String,
    /// Hash: index → times the item was taken over from a worker whose lease expired.
    pub redeliveries: String,
    /// Stream (capped): the run's audit trail — operator actions, state changes and every
    /// attempt that did not succeed.
    pub audit: String,
    /// Stream (capped): webhook events waiting for delivery, written by the scripts that make them.
    pub outbox: String,
    /// Hash: per 10-second bucket `B`, `n:B` items finished, `l:B` latency sum (ms) and `c:B`
    /// latencies counted — the run's throughput and latency over time.
    pub series: String,
}

impl RunKeys {
    fn new(ns: &str, run: &RunId) -> Self {
        let k = |suffix: &str| format!("{ns}:{{run:{run}}}:{suffix}");
        Self {
            state: k("state"),
            items: k("items"),
            done: k("done"),
            finished: k("finished"),
            failed: k("failed"),
            payloads: k("payloads"),
            history: k("history"),
            failstats: k("failstats"),
            latency: k("latency"),
            delayed: k("delayed"),
            invalid: k("invalid"),
            redeliveries: k("redeliveries"),
            audit: k("audit"),
            outbox: k("outbox"),
            series: k("series"),
        }
    }

    /// Every key of the run, state last: what expires after the retention period.
    pub fn all(&self) -> [&str; 15] {
        [
            &self.items,
            &self.done,
            &self.finished,
            &self.failed,
            &self.payloads,
            &self.history,
            &self.failstats,
            &self.latency,
            &self.delayed,
            &self.invalid,
            &self.redeliveries,
            &self.audit,
            &self.outbox,
            &self.series,
            &self.state,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_keys_share_the_runs_hash_tag_under_the_namespace() {
        let keys = Keyspace::new("ns1").run(&RunId::parse("r1").unwrap());
        for k in keys.all() {
            assert!(k.starts_with("ns1:{run:r1}:"), "{k}");
        }
        let ks = Keyspace::default();
        assert_eq!(ks.budget("t", None), "cxr:{rl:t}");
        assert_eq!(ks.budget("t", Some("a")), "cxr:{rl:t:a}");
        assert!(ks.breaker_events("t").starts_with(&ks.breaker("t")));
        assert_ne!(ks.active_runs("a"), ks.active_runs("b"));
    }
}
