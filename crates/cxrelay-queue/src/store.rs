//! `Store`: every Redis operation on runs, behind one small type. Each method is one round
//! trip (a script call or a short pipeline); callers decide what to retry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cxrelay_core::latency::bucket_of;
use cxrelay_core::report::{RunReport, RunSnapshot};
use cxrelay_core::{OutcomeKind, RunId};
use redis::AsyncCommands;

use crate::conn::{connect, RedisConn};
use crate::job::{Checkpoint, ItemJob, RunMeta};
use crate::keys::{RunKeys, ACTIVE_RUNS, GROUP};
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
}

impl From<redis::ParsingError> for QueueError {
    fn from(e: redis::ParsingError) -> Self {
        QueueError::Corrupt(e.to_string())
    }
}

/// What `create_run` found or made.
#[derive(Debug, Clone)]
pub struct CreatedRun {
    /// True when this call created the run.
    pub created: bool,
    /// Status after the call.
    pub status: String,
    /// Indexes below this were enqueued by an earlier producer with the same run id.
    pub next_index: u64,
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
    /// Item JSON.
    pub item: String,
    /// Lease take-overs so far.
    pub redeliveries: u32,
}

impl Delivery {
    /// Turns the delivery into a job of run `meta`.
    pub fn into_job(self, meta: &Arc<RunMeta>) -> ItemJob {
        ItemJob {
            run: meta.clone(),
            entry_id: self.entry_id,
            index: self.index,
            attempts: self.attempts,
            item: self.item,
            redeliveries: self.redeliveries,
        }
    }
}

/// Result of a fetch: the run's status and what was delivered.
#[derive(Debug)]
pub struct Fetched {
    /// The run's status (`active`, `loading`, `finished`, `missing`).
    pub status: String,
    /// Entries delivered to this consumer.
    pub deliveries: Vec<Delivery>,
}

/// Handle to the queue in Redis.
#[derive(Clone)]
pub struct Store {
    conn: RedisConn,
    retention_secs: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Store {
    /// Connects to Redis at `url`.
    pub async fn connect(url: &str, retention_secs: u64) -> Result<Self, QueueError> {
        Ok(Self { conn: connect(url, Duration::from_secs(10)).await?, retention_secs })
    }

    /// A store over an existing connection.
    pub fn with_conn(conn: RedisConn, retention_secs: u64) -> Self {
        Self { conn, retention_secs }
    }

    /// The underlying connection (for callers that need a raw command).
    pub fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Creates a run in `loading` state, or finds the existing one with the same id.
    pub async fn create_run(&self, run: &RunId, action: &str, source: &str, max_items: Option<u64>) -> Result<CreatedRun, QueueError> {
        let keys = RunKeys::new(run);
        let mut conn = self.conn.clone();
        let (created, status, existing_action, next_index): (u8, String, String, u64) = scripts::CREATE_RUN
            .key(&keys.state)
            .key(&keys.items)
            .arg(run.as_str())
            .arg(action)
            .arg(source)
            .arg(GROUP)
            .arg(max_items.map(|m| m.to_string()).unwrap_or_default())
            .invoke_async(&mut conn)
            .await?;
        if created == 0 && existing_action != action {
            return Err(QueueError::ActionMismatch { run: run.clone(), existing: existing_action, requested: action.to_owned() });
        }
        // Listed before it is sealed: workers skip loading runs, and a run cannot be sealed
        // without being listed, so no crash between two steps can strand a run.
        let _: () = conn.sadd(ACTIVE_RUNS, run.as_str()).await?;
        Ok(CreatedRun { created: created == 1, status, next_index })
    }

    /// Appends one chunk (all or nothing) starting at index `first`.
    pub async fn enqueue_chunk(&self, run: &RunId, first: u64, items: &[ChunkItem]) -> Result<ChunkCounts, QueueError> {
        let keys = RunKeys::new(run);
        let mut inv = scripts::ENQUEUE.prepare_invoke();
        inv.key(&keys.state).key(&keys.items).key(&keys.invalid).key(&keys.finished);
        inv.arg(first).arg(items.len());
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
    pub async fn seal(&self, run: &RunId, beyond_max: u64, break_condition: Option<&str>) -> Result<String, QueueError> {
        let keys = RunKeys::new(run);
        let mut inv = scripts::SEAL.prepare_invoke();
        inv.key(&keys.state).key(&keys.finished);
        inv.arg(beyond_max).arg(break_condition.unwrap_or("")).arg(self.retention_secs);
        for k in keys.all() {
            inv.arg(k);
        }
        Ok(inv.invoke_async(&mut self.conn.clone()).await?)
    }

    /// Deletes every key of a run (used when its input turned out malformed).
    pub async fn discard_run(&self, run: &RunId) -> Result<(), QueueError> {
        let keys = RunKeys::new(run);
        let mut conn = self.conn.clone();
        let _: () = conn.del(&keys.all()[..]).await?;
        let _: () = conn.srem(ACTIVE_RUNS, run.as_str()).await?;
        Ok(())
    }

    /// The run's state matrix, if the run exists.
    pub async fn snapshot(&self, run: &RunId) -> Result<Option<RunSnapshot>, QueueError> {
        let keys = RunKeys::new(run);
        let fields: HashMap<String, String> = self.conn.clone().hgetall(&keys.state).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        RunSnapshot::from_fields(&fields).map(Some).ok_or_else(|| QueueError::Corrupt(format!("state of run {run}")))
    }

    /// The run's report (counters, rates, latency percentiles).
    pub async fn report(&self, run: &RunId) -> Result<RunReport, QueueError> {
        let keys = RunKeys::new(run);
        let mut pipe = redis::pipe();
        pipe.hgetall(&keys.state).hgetall(&keys.latency);
        let (fields, latency): (HashMap<String, String>, HashMap<u32, u64>) = pipe.query_async(&mut self.conn.clone()).await?;
        if fields.is_empty() {
            return Err(QueueError::RunNotFound(run.clone()));
        }
        let snap = RunSnapshot::from_fields(&fields).ok_or_else(|| QueueError::Corrupt(format!("state of run {run}")))?;
        let buckets: Vec<(u32, u64)> = latency.into_iter().collect();
        Ok(RunReport::new(&snap, &buckets, now_ms()))
    }

    /// Validation failures of a run: (index, reason), up to `limit`.
    pub async fn invalid_items(&self, run: &RunId, limit: usize) -> Result<Vec<(u64, String)>, QueueError> {
        let keys = RunKeys::new(run);
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

    /// Run ids listed as active (including loading runs, which workers skip).
    pub async fn active_runs(&self) -> Result<Vec<String>, QueueError> {
        Ok(self.conn.clone().smembers(ACTIVE_RUNS).await?)
    }

    /// Removes a run from the active list (it finished or vanished).
    pub async fn deactivate(&self, run: &str) -> Result<(), QueueError> {
        let _: () = self.conn.clone().srem(ACTIVE_RUNS, run).await?;
        Ok(())
    }

    /// What a worker needs to know about a run, if it exists.
    pub async fn run_meta(&self, run: &RunId) -> Result<Option<RunMeta>, QueueError> {
        let keys = RunKeys::new(run);
        let (action, source): (Option<String>, Option<String>) =
            redis::cmd("HMGET").arg(&keys.state).arg("action").arg("source").query_async(&mut self.conn.clone()).await?;
        Ok(action.map(|action| RunMeta { run: run.clone(), keys, action, source: source.unwrap_or_default() }))
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
            .arg(500)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let mut it = reply.into_iter();
        let status: String = match it.next() {
            Some(v) => redis::from_redis_value(v)?,
            None => return Err(QueueError::Corrupt("empty fetch reply".into())),
        };
        let rest: Vec<redis::Value> = it.collect();
        Ok(Fetched { status, deliveries: parse_deliveries(rest, 4)? })
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
        parse_deliveries(reply, 5)
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

    /// Records a batch of outcomes of one run and acknowledges their deliveries, atomically.
    pub async fn checkpoint(&self, meta: &RunMeta, batch: &[Checkpoint]) -> Result<CheckpointCounts, QueueError> {
        let k = &meta.keys;
        let mut inv = scripts::CHECKPOINT.prepare_invoke();
        inv.key(&k.state).key(&k.items).key(&k.done).key(&k.finished).key(&k.results).key(&k.failures).key(&k.latency).key(&k.delayed);
        let all = k.all();
        inv.arg(GROUP).arg(self.retention_secs).arg(all.len());
        for key in all {
            inv.arg(key);
        }
        for cp in batch {
            let o = &cp.outcome;
            let (kind, delay) = match o.kind {
                OutcomeKind::Succeeded => ("S", 0),
                OutcomeKind::Failed => ("F", 0),
                OutcomeKind::Retry { delay_ms } => ("R", delay_ms),
                OutcomeKind::Deferred { delay_ms } => ("D", delay_ms),
                OutcomeKind::AlreadyDone => ("A", 0),
            };
            let bucket = if o.latency_us > 0 { bucket_of(o.latency_us).to_string() } else { String::new() };
            inv.arg(cp.entry_id.as_str())
                .arg(cp.index)
                .arg(kind)
                .arg(o.attempts)
                .arg(o.status.map(|s| s.to_string()).unwrap_or_default())
                .arg(o.latency_us)
                .arg(bucket)
                .arg(delay)
                .arg(o.error.as_deref().unwrap_or(""));
        }
        let (succeeded, failed, requeued, ignored, finished): (u64, u64, u64, u64, u8) =
            inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(CheckpointCounts { succeeded, failed, requeued, ignored, run_finished: finished == 1 })
    }
}

fn parse_deliveries(values: Vec<redis::Value>, width: usize) -> Result<Vec<Delivery>, QueueError> {
    if !values.len().is_multiple_of(width) {
        return Err(QueueError::Corrupt(format!("delivery reply of {} values", values.len())));
    }
    let mut out = Vec::with_capacity(values.len() / width);
    let mut it = values.into_iter();
    while let Some(id) = it.next() {
        let entry_id: String = redis::from_redis_value(id)?;
        let index: i64 = redis::from_redis_value(it.next().expect("width checked"))?;
        let attempts: u32 = redis::from_redis_value(it.next().expect("width checked"))?;
        let item: String = redis::from_redis_value(it.next().expect("width checked"))?;
        let redeliveries: u32 = if width == 5 { redis::from_redis_value(it.next().expect("width checked"))? } else { 0 };
        // An entry without a valid index was not written by us; deliver it as index u64::MAX so
        // the handler fails it with a clear reason instead of the worker choking on it.
        let index = u64::try_from(index).unwrap_or(u64::MAX);
        out.push(Delivery { entry_id, index, attempts, item, redeliveries });
    }
    Ok(out)
}
