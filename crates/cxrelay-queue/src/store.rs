//! `Store`: every Redis operation on runs, behind one small type. Each method is one round
//! trip (a script call or a short pipeline); callers decide what to retry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cxrelay_core::latency::bucket_of;
use cxrelay_core::now_ms;
use cxrelay_core::outcome::{reason_of, AttemptRecord};
use cxrelay_core::report::{FailureSummary, RunReport, RunSnapshot, RunStatus, MAX_DISTINCT_REASONS, OTHER_REASONS};
use cxrelay_core::{IdempotencyKey, OutcomeKind, RunId};
use redis::AsyncCommands;
use serde::Serialize;

use crate::conn::{connect, RedisConn, RedisTarget};
use crate::job::{Checkpoint, ItemJob, RunMeta};
use crate::keys::{Keyspace, GROUP};
use crate::scripts;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis answered with an error or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No run with that id exists (or it expired after its retention period).
    #[error("run {0} not found")]
    RunNotFound(RunId),
    /// A run id was reused for another tenant.
    #[error("run {run} already exists for tenant {existing:?}, not {requested:?}")]
    TenantMismatch {
        /// The run.
        run: RunId,
        /// Its tenant.
        existing: String,
        /// The tenant asked for now.
        requested: String,
    },
    /// A run id was reused for another action.
    #[error("run {run} already exists for action {existing:?}, not {requested:?}")]
    ActionMismatch {
        /// The run.
        run: RunId,
        /// Its action.
        existing: String,
        /// The action asked for now.
        requested: String,
    },
    /// Redis holds something we did not write.
    #[error("unexpected data in redis: {0}")]
    Corrupt(String),
    /// The operation does not apply to the run as it is (e.g. resuming a run that is not paused).
    #[error("{0}")]
    NotAllowed(String),
}

impl From<redis::ParsingError> for QueueError {
    fn from(e: redis::ParsingError) -> Self {
        QueueError::Corrupt(e.to_string())
    }
}

/// Due retries moved back into a run's stream by one fetch, at most (members)…
pub const PROMOTE_MEMBERS: usize = 500;
/// … and about this many bytes (the member crossing the line is the last one moved).
pub const PROMOTE_BYTES: usize = 4 << 20;

/// What `create_run` found or made.
#[derive(Debug, Clone)]
pub struct CreatedRun {
    /// True when this call created the run.
    pub created: bool,
    /// Status after the call.
    pub status: RunStatus,
    /// Indexes below this were enqueued by an earlier producer with the same run id.
    pub next_index: u64,
}

/// What a new run is: its action, tenant and where its input came from.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// Target action id.
    pub action: &'a str,
    /// The tenant the run belongs to (only that tenant's workers deliver it).
    pub tenant: &'a str,
    /// Where the input came from.
    pub source: &'a str,
    /// The seed's max-iterations break.
    pub max_items: Option<u64>,
    /// Key items on this field instead of a per-run key (`--idempotency-field`).
    pub idempotency_field: Option<&'a str>,
    /// Failure-rate guard: pause when more than this percent of the last N finished items failed.
    pub guard: Option<(f64, u32)>,
    /// Fields set on the run's state at creation (its kind, an export's parameters).
    pub extra: &'a [(String, String)],
}

/// One item of a producer chunk: valid JSON to deliver, or the reason it was rejected.
#[derive(Debug, Clone)]
pub enum ChunkItem {
    /// Deliverable item JSON.
    Valid(String),
    /// Validation failure reason.
    Invalid(String),
}

/// Counts from one enqueue chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkCounts {
    /// Items added to the stream.
    pub accepted: u64,
    /// Items recorded as validation failures.
    pub invalid: u64,
    /// Items skipped because an earlier producer already enqueued them.
    pub skipped: u64,
}

/// Counts from one checkpoint batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointCounts {
    /// Items newly recorded as succeeded.
    pub succeeded: u64,
    /// Items newly recorded as failed.
    pub failed: u64,
    /// Items put back for a later retry.
    pub requeued: u64,
    /// Outcomes ignored because their delivery was no longer pending.
    pub ignored: u64,
    /// The batch finished the run.
    pub run_finished: bool,
    /// The batch tripped the run's failure-rate guard: it paused itself.
    pub run_paused: bool,
}

/// An entry delivered by `fetch` or `reclaim`, before it becomes an [`ItemJob`].
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Stream entry id.
    pub entry_id: String,
    /// Item index.
    pub index: u64,
    /// Attempts made before.
    pub attempts: u32,
    /// 429s met before.
    pub throttled: u32,
    /// Deferrals before.
    pub deferrals: u32,
    /// Item JSON.
    pub item: String,
    /// Lease take-overs so far.
    pub redeliveries: u32,
    /// Replay generation when the item was replayed with a new Idempotency-Key (0: never).
    pub generation: u32,
    /// 1 when an operator replayed the item.
    pub replays: u32,
}

impl Delivery {
    /// Turns the delivery into a job of run `meta`.
    pub fn into_job(self, meta: &Arc<RunMeta>) -> ItemJob {
        ItemJob {
            run: meta.clone(),
            entry_id: self.entry_id,
            index: self.index,
            attempts: self.attempts,
            throttled: self.throttled,
            deferrals: self.deferrals,
            item: self.item,
            redeliveries: self.redeliveries,
            generation: self.generation,
            replays: self.replays,
        }
    }
}

/// Result of a fetch: the run's status and what was delivered.
#[derive(Debug)]
pub struct Fetched {
    /// The run's status; `None` when the run is gone (expired or discarded).
    pub status: Option<RunStatus>,
    /// The run's nonce: differs from a cached [`RunMeta`]'s when the run id was reused.
    pub nonce: String,
    /// Entries delivered to this consumer.
    pub deliveries: Vec<Delivery>,
}

/// Where the store keeps things and for how long.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Key layout (namespace).
    pub keys: Keyspace,
    /// Seconds a finished run's data is kept.
    pub retention_secs: u64,
    /// Attempts kept per item history.
    pub history_len: u32,
    /// Seconds a run still loading lives without a new chunk (its producer died).
    pub loading_ttl_secs: u64,
    /// Events kept in a run's audit stream (about).
    pub audit_len: u64,
    /// Webhook event types some endpoint wants, comma-wrapped, then the outbox's length cap
    /// (`,run.completed,item.failed,;100000`); empty: no webhooks, no outbox events.
    pub events_wanted: String,
}

impl StoreOptions {
    /// What the settings say (namespace, retention, history length, loading TTL).
    pub fn from_settings(settings: &cxrelay_core::config::Settings) -> Self {
        let q = &settings.queue;
        Self {
            keys: Keyspace::new(&q.namespace),
            retention_secs: q.retention_secs,
            history_len: q.history_len,
            loading_ttl_secs: q.loading_ttl_secs,
            audit_len: q.audit_len,
            events_wanted: events_wanted(&settings.webhooks, q.outbox_len),
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            keys: Keyspace::default(),
            retention_secs: 7 * 24 * 3600,
            history_len: 10,
            loading_ttl_secs: 24 * 3600,
            audit_len: 10_000,
            events_wanted: String::new(),
        }
    }
}

/// The event types any of `endpoints` wants and the outbox's length cap, as the scripts read
/// them (`,a,b,;CAP`; empty: none).
pub fn events_wanted(endpoints: &[cxrelay_core::webhook::WebhookEndpoint], outbox_len: u64) -> String {
    let wanted: Vec<&str> = cxrelay_core::webhook::EVENTS.iter().copied().filter(|e| endpoints.iter().any(|w| w.wants(e))).collect();
    if wanted.is_empty() {
        String::new()
    } else {
        format!(",{},;{outbox_len}", wanted.join(","))
    }
}

/// The summary kept for a failed item (its last failure), as stored in the run's `failed` hash.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FailedItem {
    /// Failure class (`4xx`, `5xx`, `429`, `transport`, `auth`, `permission`, `poison`, `local`).
    pub class: String,
    /// Last HTTP status, if any.
    pub status: Option<u16>,
    /// Why it failed (redacted, bounded).
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it failed, ms since the epoch.
    pub at_ms: u64,
}

/// Handle to the queue in Redis.
#[derive(Clone)]
pub struct Store {
    conn: RedisConn,
    opts: StoreOptions,
}

impl Store {
    /// Connects to Redis at `target`.
    pub async fn connect(target: &RedisTarget, opts: StoreOptions) -> Result<Self, QueueError> {
        Ok(Self { conn: connect(target, Duration::from_secs(10)).await?, opts })
    }

    /// A store over an existing connection.
    pub fn with_conn(conn: RedisConn, opts: StoreOptions) -> Self {
        Self { conn, opts }
    }

    /// The options it was made with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// The key layout.
    pub fn keys(&self) -> &Keyspace {
        &self.opts.keys
    }

    /// The underlying connection (for callers that need a raw command).
    pub fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Creates a run in `loading` state, or finds the existing one with the same id.
    pub async fn create_run(&self, run: &RunId, new: &NewRun<'_>) -> Result<CreatedRun, QueueError> {
        let keys = self.opts.keys.run(run);
        let mut conn = self.conn.clone();
        let (created, status, existing_action, next_index, existing_tenant): (u8, String, String, u64, String) = scripts::CREATE_RUN
            .key(&keys.state)
            .key(&keys.items)
            .arg(run.as_str())
            .arg(new.action)
            .arg(new.source)
            .arg(GROUP)
            .arg(new.max_items.map(|m| m.to_string()).unwrap_or_default())
            .arg(new.tenant)
            .arg(cxrelay_core::ids::run_nonce())
            .arg(new.idempotency_field.unwrap_or(""))
            .arg(self.opts.loading_ttl_secs)
            .arg(new.guard.map(|(rate, _)| rate.to_string()).unwrap_or_default())
            .arg(new.guard.map(|(_, window)| window.to_string()).unwrap_or_default())
            .arg(new.extra.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]).collect::<Vec<_>>())
            .invoke_async(&mut conn)
            .await?;
        if created == 0 && existing_tenant != new.tenant {
            return Err(QueueError::TenantMismatch { run: run.clone(), existing: existing_tenant, requested: new.tenant.to_owned() });
        }
        if created == 0 && existing_action != new.action {
            return Err(QueueError::ActionMismatch { run: run.clone(), existing: existing_action, requested: new.action.to_owned() });
        }
        // Listed before it is sealed: workers skip loading runs, and a run cannot be sealed
        // without being listed, so no crash between two steps can strand a run.
        let _: () = conn.sadd(self.opts.keys.active_runs(new.tenant), run.as_str()).await?;
        if created == 1 {
            let _: () = conn.zadd(self.opts.keys.runs_index(new.tenant), run.as_str(), now_ms()).await?;
        }
        Ok(CreatedRun { created: created == 1, status: status_of(&status)?, next_index })
    }

    /// Appends one chunk (all or nothing) starting at index `first`.
    pub async fn enqueue_chunk(&self, run: &RunId, first: u64, items: &[ChunkItem]) -> Result<ChunkCounts, QueueError> {
        let keys = self.opts.keys.run(run);
        let mut inv = scripts::ENQUEUE.prepare_invoke();
        inv.key(&keys.state).key(&keys.items).key(&keys.invalid).key(&keys.finished);
        inv.arg(first).arg(items.len()).arg(self.opts.loading_ttl_secs);
        for it in items {
            match it {
                ChunkItem::Valid(json) => inv.arg("v").arg(json.as_str()),
                ChunkItem::Invalid(reason) => inv.arg("x").arg(reason.as_str()),
            };
        }
        let (accepted, invalid, skipped): (u64, u64, u64) = inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(ChunkCounts { accepted, invalid, skipped })
    }

    /// Marks a loaded run active (or finished, when nothing is left to deliver).
    pub async fn seal(&self, run: &RunId, beyond_max: u64, break_condition: Option<&str>) -> Result<RunStatus, QueueError> {
        let keys = self.opts.keys.run(run);
        let mut inv = scripts::SEAL.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        inv.arg(beyond_max).arg(break_condition.unwrap_or("")).arg(self.opts.retention_secs).arg(&self.opts.events_wanted);
        let status: String = inv.invoke_async(&mut self.conn.clone()).await?;
        let status = status_of(&status)?;
        if !self.opts.events_wanted.is_empty() {
            let tenant: Option<String> = self.conn.clone().hget(&keys.state, "tenant").await?;
            self.hint_outbox(tenant.as_deref().unwrap_or("default"), run.as_str()).await?;
        }
        Ok(status)
    }

    /// Deletes every key of a run (used when its input turned out malformed).
    pub async fn discard_run(&self, run: &RunId, tenant: &str) -> Result<(), QueueError> {
        let keys = self.opts.keys.run(run);
        let mut conn = self.conn.clone();
        let _: () = conn.del(&keys.all()[..]).await?;
        let _: () = conn.srem(self.opts.keys.active_runs(tenant), run.as_str()).await?;
        let _: () = conn.zrem(self.opts.keys.runs_index(tenant), run.as_str()).await?;
        Ok(())
    }

    /// The run's report (counters, rates, latency percentiles, how its failures failed).
    pub async fn report(&self, run: &RunId) -> Result<RunReport, QueueError> {
        let keys = self.opts.keys.run(run);
        let mut pipe = redis::pipe();
        pipe.hgetall(&keys.state).hgetall(&keys.latency).hgetall(&keys.failstats);
        let (fields, latency, failstats): (HashMap<String, String>, HashMap<u32, u64>, HashMap<String, String>) =
            pipe.query_async(&mut self.conn.clone()).await?;
        if fields.is_empty() {
            return Err(QueueError::RunNotFound(run.clone()));
        }
        let snap = RunSnapshot::from_fields(&fields).ok_or_else(|| QueueError::Corrupt(format!("state of run {run}")))?;
        let buckets: Vec<(u32, u64)> = latency.into_iter().collect();
        Ok(RunReport::new(&snap, &buckets, FailureSummary::from_fields(&failstats), now_ms()))
    }

    /// A failed item's summary, payload and attempt history (oldest first), if it failed.
    pub async fn failed_item(&self, run: &RunId, index: u64) -> Result<Option<(FailedItem, Option<String>, Vec<AttemptRecord>)>, QueueError> {
        let keys = self.opts.keys.run(run);
        let mut pipe = redis::pipe();
        pipe.hget(&keys.failed, index).hget(&keys.payloads, index);
        let (summary, payload): (Option<String>, Option<String>) = pipe.query_async(&mut self.conn.clone()).await?;
        let Some(summary) = summary else { return Ok(None) };
        let summary: FailedItem = serde_json::from_str(&summary).map_err(|e| QueueError::Corrupt(format!("failed item {index}: {e}")))?;
        Ok(Some((summary, payload, self.history(run, index).await?)))
    }

    /// An item's attempt history, oldest first (empty for an item that succeeded at once).
    pub async fn history(&self, run: &RunId, index: u64) -> Result<Vec<AttemptRecord>, QueueError> {
        let keys = self.opts.keys.run(run);
        let text: Option<String> = self.conn.clone().hget(&keys.history, index).await?;
        text.unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).map_err(|e| QueueError::Corrupt(format!("history of item {index}: {e}"))))
            .collect()
    }

    /// Failed items of a run: (index, summary), up to `limit`, by index.
    pub async fn failed_items(&self, run: &RunId, limit: usize) -> Result<Vec<(u64, FailedItem)>, QueueError> {
        let keys = self.opts.keys.run(run);
        let mut out = Vec::new();
        let mut conn = self.conn.clone();
        let mut iter: redis::AsyncIter<(u64, String)> = conn.hscan(&keys.failed).await?;
        while let Some(item) = futures::StreamExt::next(&mut iter).await {
            let (index, json) = item?;
            let summary = serde_json::from_str(&json).map_err(|e| QueueError::Corrupt(format!("failed item {index}: {e}")))?;
            out.push((index, summary));
            if out.len() >= limit {
                break;
            }
        }
        out.sort_unstable_by_key(|(i, _)| *i);
        Ok(out)
    }

    /// Validation failures of a run: (index, reason), up to `limit`.
    pub async fn invalid_items(&self, run: &RunId, limit: usize) -> Result<Vec<(u64, String)>, QueueError> {
        let keys = self.opts.keys.run(run);
        let mut out: Vec<(u64, String)> = Vec::new();
        let mut conn = self.conn.clone();
        let mut iter: redis::AsyncIter<(u64, String)> = conn.hscan(&keys.invalid).await?;
        while let Some(item) = futures::StreamExt::next(&mut iter).await {
            out.push(item?);
            if out.len() >= limit {
                break;
            }
        }
        out.sort_unstable_by_key(|(i, _)| *i);
        Ok(out)
    }

    /// A run's status (`None`: no such run).
    pub async fn run_status(&self, run: &RunId) -> Result<Option<RunStatus>, QueueError> {
        let s: Option<String> = self.conn.clone().hget(self.opts.keys.run(run).state, "status").await?;
        s.map(|s| status_of(&s)).transpose()
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Notes that a run's outbox has events to deliver (see [`Keyspace::outbox_runs`]).
    pub async fn hint_outbox(&self, tenant: &str, run: &str) -> Result<(), QueueError> {
        let _: () = self.conn.clone().sadd(self.opts.keys.outbox_runs(tenant), run).await?;
        Ok(())
    }

    /// Ids of a tenant's active runs (including loading runs, which workers skip).
    pub async fn active_runs(&self, tenant: &str) -> Result<Vec<String>, QueueError> {
        Ok(self.conn.clone().smembers(self.opts.keys.active_runs(tenant)).await?)
    }

    /// Removes a run from its tenant's active list (it finished or vanished).
    pub async fn deactivate(&self, tenant: &str, run: &str) -> Result<(), QueueError> {
        let _: () = self.conn.clone().srem(self.opts.keys.active_runs(tenant), run).await?;
        Ok(())
    }

    /// What a worker needs to know about a run, if it exists.
    pub async fn run_meta(&self, run: &RunId) -> Result<Option<RunMeta>, QueueError> {
        let keys = self.opts.keys.run(run);
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&keys.state)
            .arg(&["action", "source", "tenant", "nonce", "idem_field", "kind"])
            .query_async(&mut self.conn.clone())
            .await?;
        let [action, source, tenant, nonce, field, kind]: [Option<String>; 6] =
            fields.try_into().map_err(|_| QueueError::Corrupt(format!("state of run {run}")))?;
        let idempotency = match field.filter(|f| !f.is_empty()) {
            Some(f) => IdempotencyKey::Field(f),
            None => IdempotencyKey::PerRun { nonce: nonce.clone().unwrap_or_default() },
        };
        Ok(action.map(|action| RunMeta {
            run: run.clone(),
            keys,
            action,
            source: source.unwrap_or_default(),
            tenant: tenant.unwrap_or_else(|| "default".into()),
            nonce: nonce.clone().unwrap_or_default(),
            idempotency,
            kind: crate::job::RunKind::parse(kind.as_deref()),
        }))
    }

    /// Promotes due retries and delivers up to `count` new items of one run to `consumer`.
    pub async fn fetch(&self, meta: &RunMeta, consumer: &str, count: usize) -> Result<Fetched, QueueError> {
        let k = &meta.keys;
        let reply: Vec<redis::Value> = scripts::FETCH
            .key(&k.state)
            .key(&k.items)
            .key(&k.done)
            .key(&k.delayed)
            .arg(GROUP)
            .arg(consumer)
            .arg(count)
            .arg(PROMOTE_MEMBERS)
            .arg(PROMOTE_BYTES)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let mut it = reply.into_iter();
        let (Some(status), Some(nonce)) = (it.next(), it.next()) else {
            return Err(QueueError::Corrupt("short fetch reply".into()));
        };
        let (status, nonce): (String, String) = (redis::from_redis_value(status)?, redis::from_redis_value(nonce)?);
        let status = if status == "missing" { None } else { Some(status_of(&status)?) };
        let rest: Vec<redis::Value> = it.collect();
        Ok(Fetched { status, nonce, deliveries: parse_deliveries(rest, false)? })
    }

    /// Takes over up to `count` items of one run whose lease (idle time) exceeded `lease`.
    pub async fn reclaim(&self, meta: &RunMeta, consumer: &str, lease: Duration, count: usize) -> Result<Vec<Delivery>, QueueError> {
        let k = &meta.keys;
        let reply: Vec<redis::Value> = scripts::RECLAIM
            .key(&k.state)
            .key(&k.items)
            .key(&k.done)
            .key(&k.redeliveries)
            .arg(GROUP)
            .arg(consumer)
            .arg(lease.as_millis() as u64)
            .arg(count)
            .invoke_async(&mut self.conn.clone())
            .await?;
        parse_deliveries(reply, true)
    }

    /// Removes consumers of `meta`'s group idle for longer than `idle` that hold nothing (their
    /// workers are gone); returns how many.
    pub async fn prune_consumers(&self, meta: &RunMeta, idle: Duration) -> Result<u64, QueueError> {
        Ok(scripts::PRUNE.key(&meta.keys.items).arg(GROUP).arg(idle.as_millis() as u64).invoke_async(&mut self.conn.clone()).await?)
    }

    /// Resets the idle time of entries this consumer still works on, so no one takes them over.
    pub async fn renew(&self, meta: &RunMeta, consumer: &str, entry_ids: &[String]) -> Result<(), QueueError> {
        self.claim(meta, consumer, entry_ids, None).await
    }

    /// Hands entries this consumer fetched but will not run back to the fleet at once, by
    /// marking them idle for longer than any lease.
    pub async fn release(&self, meta: &RunMeta, consumer: &str, entry_ids: &[String], lease: Duration) -> Result<(), QueueError> {
        self.claim(meta, consumer, entry_ids, Some(lease + Duration::from_secs(60))).await
    }

    /// `XCLAIM … JUSTID` to `consumer`, setting the entries' idle time to `idle` (default 0).
    async fn claim(&self, meta: &RunMeta, consumer: &str, entry_ids: &[String], idle: Option<Duration>) -> Result<(), QueueError> {
        for chunk in entry_ids.chunks(500) {
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(&meta.keys.items).arg(GROUP).arg(consumer).arg(0).arg(chunk);
            if let Some(idle) = idle {
                cmd.arg("IDLE").arg(idle.as_millis() as u64);
            }
            let _: redis::Value = cmd.arg("JUSTID").query_async(&mut self.conn.clone()).await?;
        }
        Ok(())
    }

    /// Records a batch of outcomes of one run and acknowledges their deliveries, atomically;
    /// `worker` (the consumer name) goes into the attempt histories.
    pub async fn checkpoint(&self, meta: &RunMeta, batch: &[Checkpoint], worker: &str) -> Result<CheckpointCounts, QueueError> {
        let mut inv = scripts::CHECKPOINT.prepare_invoke();
        for key in meta.keys.all() {
            inv.key(key);
        }
        inv.arg(GROUP)
            .arg(self.opts.retention_secs)
            .arg(self.opts.history_len)
            .arg(MAX_DISTINCT_REASONS)
            .arg(OTHER_REASONS)
            .arg(self.opts.audit_len)
            .arg(&self.opts.events_wanted);
        let now = now_ms();
        for cp in batch {
            let o = &cp.outcome;
            let (kind, delay) = match o.kind {
                OutcomeKind::Succeeded => ("S", 0),
                OutcomeKind::Failed => ("F", 0),
                OutcomeKind::Retry { delay_ms } => ("R", delay_ms),
                OutcomeKind::Deferred { delay_ms } => ("D", delay_ms),
            };
            let bucket = if o.latency_us > 0 { bucket_of(o.latency_us).to_string() } else { String::new() };
            // A first-try success writes no history: the success path stays as cheap as it was;
            // neither does waiting for a rate-limit slot (no class), which is routine.
            let quiet = match o.kind {
                OutcomeKind::Succeeded => cp.fresh,
                OutcomeKind::Deferred { .. } => o.class.is_none(),
                _ => false,
            };
            let record = if quiet { String::new() } else { serde_json::to_string(&AttemptRecord::of(o, worker, now)).expect("records serialize") };
            let (class, reason, summary) = if o.kind == OutcomeKind::Failed {
                let class = o.class.map(|c| c.as_str()).unwrap_or("local");
                let reason = reason_of(o.error.as_deref().unwrap_or("failed"));
                let summary = FailedItem {
                    class: class.to_owned(),
                    status: o.status,
                    reason: o.error.clone().unwrap_or_default(),
                    attempts: o.attempts,
                    at_ms: now,
                };
                (class, reason, serde_json::to_string(&summary).expect("summaries serialize"))
            } else {
                ("", String::new(), String::new())
            };
            inv.arg(cp.entry_id.as_str())
                .arg(cp.index)
                .arg(kind)
                .arg(o.attempts)
                .arg(o.throttled)
                .arg(o.status.map(|s| s.to_string()).unwrap_or_default())
                .arg(o.latency_us)
                .arg(bucket)
                .arg(delay)
                .arg(record)
                .arg(class)
                .arg(reason)
                .arg(summary);
        }
        let (succeeded, failed, requeued, ignored, finished, paused): (u64, u64, u64, u64, u8, u8) = inv.invoke_async(&mut self.conn.clone()).await?;
        let counts = CheckpointCounts { succeeded, failed, requeued, ignored, run_finished: finished == 1, run_paused: paused == 1 };
        if !self.opts.events_wanted.is_empty()
            && (counts.failed > 0
                || counts.run_finished
                || counts.run_paused
                || (counts.succeeded > 0 && self.opts.events_wanted.contains(",item.succeeded,")))
        {
            self.hint_outbox(&meta.tenant, meta.run.as_str()).await?;
        }
        Ok(counts)
    }
}

/// A status as the scripts store it.
pub(crate) fn status_of(s: &str) -> Result<RunStatus, QueueError> {
    RunStatus::parse(s).ok_or_else(|| QueueError::Corrupt(format!("run status {s:?}")))
}

/// Parses `{id, index, attempts, 429s, deferrals, item[, redeliveries]}` groups.
fn parse_deliveries(values: Vec<redis::Value>, with_redeliveries: bool) -> Result<Vec<Delivery>, QueueError> {
    let width = if with_redeliveries { 9 } else { 8 };
    if !values.len().is_multiple_of(width) {
        return Err(QueueError::Corrupt(format!("delivery reply of {} values", values.len())));
    }
    let mut out = Vec::with_capacity(values.len() / width);
    let mut it = values.into_iter();
    while let Some(id) = it.next() {
        let entry_id: String = redis::from_redis_value(id)?;
        let index: i64 = redis::from_redis_value(it.next().expect("width checked"))?;
        let attempts: u32 = redis::from_redis_value(it.next().expect("width checked"))?;
        let throttled: u32 = redis::from_redis_value(it.next().expect("width checked"))?;
        let deferrals: u32 = redis::from_redis_value(it.next().expect("width checked"))?;
        let item: String = redis::from_redis_value(it.next().expect("width checked"))?;
        let generation: u32 = redis::from_redis_value(it.next().expect("width checked"))?;
        let replays: u32 = redis::from_redis_value(it.next().expect("width checked"))?;
        let redeliveries: u32 = if with_redeliveries { redis::from_redis_value(it.next().expect("width checked"))? } else { 0 };
        // An entry without a valid index was not written by us; deliver it as index u64::MAX so
        // the handler fails it with a clear reason instead of the worker choking on it.
        let index = u64::try_from(index).unwrap_or(u64::MAX);
        out.push(Delivery { entry_id, index, attempts, throttled, deferrals, item, redeliveries, generation, replays });
    }
    Ok(out)
}
