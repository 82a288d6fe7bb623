//! The on-call side of the [`Store`]: a run's failed items and one item's whole story, replay,
//! run controls (pause, resume, cancel, purge), the audit stream, the runs index and worker
//! heartbeats. The atomic steps are Lua scripts (`replay.lua`, `control.lua`); listing streams
//! through Redis in pages so a run with 100,000 failures is read with flat memory.

use std::collections::HashMap;

use cxrelay_core::outcome::AttemptRecord;
use cxrelay_core::report::RunStatus;
use cxrelay_core::RunId;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::scripts;
use crate::store::{status_of, FailedItem, QueueError, Store};

/// Indexes per `HMGET` page when reading failed items, and per replay script call.
pub const PAGE: usize = 500;

/// Where one item of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Succeeded (never sent again).
    Succeeded,
    /// Failed for good (replayable).
    Failed,
    /// Rejected by validation before it was queued.
    Invalid,
    /// Queued, waiting for a retry, or in flight.
    Pending,
    /// Its run was cancelled before it was delivered.
    Cancelled,
}

/// One item: where it stands, its payload (kept for failed items), its last failure and its
/// attempt history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemView {
    /// The run.
    pub run_id: String,
    /// Index in the run's input.
    pub index: u64,
    /// Where it stands.
    pub state: ItemState,
    /// The item's JSON, when kept (failed items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// The last failure of a failed item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailedItem>,
    /// Why validation rejected it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    /// Its attempts, oldest first (empty for an item that succeeded at once).
    pub history: Vec<AttemptRecord>,
}

/// A live worker process, from the heartbeat it writes every third of a lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct WorkerInfo {
    /// Consumer name (`host-pid-startms`).
    pub consumer: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// The tenant it serves.
    pub tenant: String,
    /// Items it may hold in flight.
    pub concurrency: usize,
    /// Items it holds now (running or buffered).
    pub in_flight: usize,
    /// When it started, ms since the epoch.
    pub started_ms: u64,
    /// Its last heartbeat, ms since the epoch.
    pub last_seen_ms: u64,
    /// When its heartbeat expires unless renewed, ms since the epoch.
    pub expires_ms: u64,
}

/// One failed item offered to a replay, with the counters its failure was counted under.
#[derive(Debug, Clone)]
pub struct ReplayCandidate {
    /// Index.
    pub index: u64,
    /// Failure class.
    pub class: String,
    /// The `s:` counter: HTTP status, or the class when no answer arrived.
    pub status_key: String,
    /// The `r:` counter (the shortened reason).
    pub reason_key: String,
    /// When the failure these counters belong to was recorded (0: the item was not failed when
    /// read); the script replays the item only if its failure is still that one.
    pub failed_at_ms: u64,
}

/// Who replays, why, and how.
#[derive(Debug, Clone)]
pub struct ReplayRequest<'a> {
    /// The operator.
    pub by: &'a str,
    /// Why.
    pub reason: &'a str,
    /// The selection as typed, for the audit record.
    pub selection: &'a str,
    /// Give the items a new Idempotency-Key.
    pub new_idempotency_key: bool,
    /// Change nothing; answer what would happen.
    pub dry_run: bool,
    /// Emit `replay.started` if this batch replays anything (until one batch did).
    pub announce: bool,
    /// Items the whole replay asks for (in the event).
    pub requested: usize,
}

/// What one replay batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayBatch {
    /// Indexes put back in the queue (or that would be, in a dry run).
    pub replayed: Vec<u64>,
    /// Indexes refused, with why.
    pub refused: Vec<(u64, String)>,
}

/// An operator's action on a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop sending new items; in-flight ones finish.
    Pause,
    /// Send again.
    Resume,
    /// Stop for good; pending items are cancelled.
    Cancel,
}

impl Control {
    /// What the run became: `paused`, `resumed`, `cancelled` (for messages and default reasons).
    pub fn past_tense(self) -> &'static str {
        match self {
            Control::Pause => "paused",
            Control::Resume => "resumed",
            Control::Cancel => "cancelled",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Cancel => "cancel",
        }
    }
}

/// One event of a run's audit stream.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Stream entry id (`ms-seq`): orders events and resumes `--follow`.
    pub id: String,
    /// When it was written, ms since the epoch (from the id).
    pub at_ms: u64,
    /// `attempt`, `replay`, `run.paused`, `run.resumed`, `run.cancelled`, `run.finished`, `run.purged`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's other fields (an attempt's record is parsed JSON).
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl AuditEvent {
    fn from_entry(id: String, pairs: Vec<(String, String)>) -> Self {
        let at_ms = id.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or(0);
        let mut kind = String::new();
        let mut fields = serde_json::Map::new();
        for (k, v) in pairs {
            if k == "type" {
                kind = v;
            } else if k == "record" {
                fields.insert(k, serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v)));
            } else {
                fields.insert(k, serde_json::Value::String(v));
            }
        }
        Self { id, at_ms, kind, fields }
    }

    /// The item index the event is about, if any.
    pub fn index(&self) -> Option<u64> {
        self.fields.get("index").and_then(|v| v.as_str()).and_then(|s| s.parse().ok())
    }
}

pub(crate) fn not_allowed(e: redis::RedisError) -> QueueError {
    // Scripts refuse transitions with `ERR <message>`; the message is for the operator.
    match e.detail() {
        Some(detail) if e.code() == Some("ERR") => QueueError::NotAllowed(detail.trim().to_owned()),
        _ => QueueError::Redis(e),
    }
}

impl Store {
    /// Every failed index of a run, sorted (the index list is all that is held in memory:
    /// 8 bytes per failed item; summaries are then read a page at a time).
    pub async fn failed_indexes(&self, run: &RunId) -> Result<Vec<u64>, QueueError> {
        let keys = self.keys().run(run);
        let mut conn = self.conn();
        let mut iter: redis::AsyncIter<(u64, redis::Value)> = conn.hscan(&keys.failed).await?;
        let mut out = Vec::new();
        while let Some(pair) = futures::StreamExt::next(&mut iter).await {
            out.push(pair?.0);
        }
        // HSCAN may return a field twice (the hash can change while it is scanned).
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The failure summaries of `indexes` (items no longer failed are left out), in order.
    pub async fn failed_summaries(&self, run: &RunId, indexes: &[u64]) -> Result<Vec<(u64, FailedItem)>, QueueError> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.keys().run(run);
        let values: Vec<Option<String>> = redis::cmd("HMGET").arg(&keys.failed).arg(indexes).query_async(&mut self.conn()).await?;
        let mut out = Vec::with_capacity(indexes.len());
        for (index, json) in indexes.iter().zip(values) {
            let Some(json) = json else { continue };
            let summary = serde_json::from_str(&json).map_err(|e| QueueError::Corrupt(format!("failed item {index}: {e}")))?;
            out.push((*index, summary));
        }
        Ok(out)
    }

    /// The run's throughput and latency over time: (bucket start ms, items finished, mean
    /// latency ms if any), oldest first, one per 10-second bucket that saw a checkpoint.
    pub async fn series(&self, run: &RunId) -> Result<Vec<(u64, u64, Option<f64>)>, QueueError> {
        let fields: HashMap<String, u64> = self.conn().hgetall(self.keys().run(run).series).await?;
        let mut by_slot: std::collections::BTreeMap<u64, (u64, u64, u64)> = std::collections::BTreeMap::new();
        for (k, v) in fields {
            let Some((kind, slot)) = k.split_once(':') else { continue };
            let Ok(slot) = slot.parse::<u64>() else { continue };
            let e = by_slot.entry(slot).or_default();
            match kind {
                "n" => e.0 = v,
                "l" => e.1 = v,
                "c" => e.2 = v,
                _ => {}
            }
        }
        Ok(by_slot.into_iter().map(|(slot, (n, l, c))| (slot * 10_000, n, (c > 0).then(|| l as f64 / c as f64))).collect())
    }

    /// Items of a run waiting for a retry (or deferred).
    pub async fn delayed_items(&self, run: &RunId) -> Result<u64, QueueError> {
        Ok(self.conn().zcard(self.keys().run(run).delayed).await?)
    }

    /// When each of `indexes` was first attempted (its history's oldest record), in order.
    pub async fn first_attempts(&self, run: &RunId, indexes: &[u64]) -> Result<Vec<Option<u64>>, QueueError> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.keys().run(run);
        let histories: Vec<Option<String>> = redis::cmd("HMGET").arg(&keys.history).arg(indexes).query_async(&mut self.conn()).await?;
        Ok(histories
            .into_iter()
            .map(|h| h.and_then(|h| h.lines().next().and_then(|l| serde_json::from_str::<AttemptRecord>(l).ok())).map(|r| r.at_ms))
            .collect())
    }

    /// One item's state, payload, last failure and history; `None` if the run has no such index.
    pub async fn item(&self, run: &RunId, index: u64) -> Result<Option<ItemView>, QueueError> {
        let keys = self.keys().run(run);
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(&keys.state)
            .arg("status")
            .arg("next_index")
            .getbit(&keys.done, index as usize)
            .hget(&keys.failed, index)
            .hget(&keys.payloads, index)
            .hget(&keys.invalid, index);
        #[allow(clippy::type_complexity)]
        let ((status, next_index), done, failed, payload, invalid): (
            (Option<String>, Option<u64>),
            bool,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = pipe.query_async(&mut self.conn()).await?;
        let Some(status) = status else { return Err(QueueError::RunNotFound(run.clone())) };
        if index >= next_index.unwrap_or(0) {
            return Ok(None);
        }
        let failure: Option<FailedItem> =
            failed.map(|j| serde_json::from_str(&j).map_err(|e| QueueError::Corrupt(format!("failed item {index}: {e}")))).transpose()?;
        let state = if done {
            ItemState::Succeeded
        } else if failure.is_some() {
            ItemState::Failed
        } else if invalid.is_some() {
            ItemState::Invalid
        } else if status_of(&status)? == RunStatus::Cancelled {
            ItemState::Cancelled
        } else {
            ItemState::Pending
        };
        let payload = payload.map(|p| serde_json::from_str(&p).unwrap_or(serde_json::Value::String(p)));
        Ok(Some(ItemView {
            run_id: run.to_string(),
            index,
            state,
            payload,
            failure,
            invalid_reason: invalid,
            history: self.history(run, index).await?,
        }))
    }

    /// Replays one batch (at most [`PAGE`] candidates) in one script call.
    pub async fn replay_batch(&self, run: &RunId, batch: &[ReplayCandidate], req: &ReplayRequest<'_>) -> Result<ReplayBatch, QueueError> {
        let keys = self.keys().run(run);
        let mut inv = scripts::REPLAY.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        inv.arg(if req.dry_run { "1" } else { "0" })
            .arg(self.options().audit_len)
            .arg(req.by)
            .arg(req.reason)
            .arg(req.selection)
            // A new key generation is drawn by the replay's first batch that replays anything
            // (announce is still set then); later batches reuse it.
            .arg(match (req.new_idempotency_key, req.announce) {
                (false, _) => "0",
                (true, true) => "1",
                (true, false) => "2",
            })
            .arg(if req.announce { self.options().events_wanted.as_str() } else { "" })
            .arg(req.requested)
            .arg(cxrelay_core::report::OTHER_REASONS);
        for c in batch {
            inv.arg(c.index).arg(&c.class).arg(&c.status_key).arg(&c.reason_key).arg(c.failed_at_ms);
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn()).await.map_err(|e| match not_allowed(e) {
            QueueError::NotAllowed(m) if m.contains("does not exist") => QueueError::RunNotFound(run.clone()),
            e => e,
        })?;
        let n: usize = reply.first().and_then(|s| s.parse().ok()).ok_or_else(|| QueueError::Corrupt("short replay reply".into()))?;
        let parse = |s: &str| s.parse::<u64>().map_err(|_| QueueError::Corrupt(format!("replay reply index {s:?}")));
        let replayed = reply[1..=n].iter().map(|s| parse(s)).collect::<Result<Vec<_>, _>>()?;
        let refused =
            reply[n + 1..].chunks(2).map(|p| Ok((parse(&p[0])?, p.get(1).cloned().unwrap_or_default()))).collect::<Result<Vec<_>, QueueError>>()?;
        Ok(ReplayBatch { replayed, refused })
    }

    /// Pauses, resumes or cancels a run; returns (status before, status after).
    pub async fn control(&self, run: &RunId, action: Control, by: &str, reason: &str) -> Result<(RunStatus, RunStatus), QueueError> {
        let keys = self.keys().run(run);
        let mut inv = scripts::CONTROL.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        inv.arg(action.as_str())
            .arg(by)
            .arg(reason)
            .arg(self.options().retention_secs)
            .arg(self.options().audit_len)
            .arg(&self.options().events_wanted);
        let (from, to): (String, String) = inv.invoke_async(&mut self.conn()).await.map_err(|e| match not_allowed(e) {
            QueueError::NotAllowed(m) if m.contains("does not exist") => QueueError::RunNotFound(run.clone()),
            e => e,
        })?;
        if !self.options().events_wanted.is_empty() {
            let tenant: Option<String> = self.conn().hget(&keys.state, "tenant").await?;
            self.hint_outbox(tenant.as_deref().unwrap_or("default"), run.as_str()).await?;
        }
        Ok((status_of(&from)?, status_of(&to)?))
    }

    /// Deletes every key of a run and its index entries.
    pub async fn purge(&self, run: &RunId, tenant: &str) -> Result<(), QueueError> {
        let keys = self.keys().run(run);
        let mut conn = self.conn();
        let _: () = conn.del(&keys.all()[..]).await?;
        let _: () = conn.srem(self.keys().active_runs(tenant), run.as_str()).await?;
        let _: () = conn.zrem(self.keys().runs_index(tenant), run.as_str()).await?;
        Ok(())
    }

    /// Up to `count` audit events after entry id `after` (`"0"`: from the start), oldest first.
    pub async fn audit(&self, run: &RunId, after: &str, count: usize) -> Result<Vec<AuditEvent>, QueueError> {
        let keys = self.keys().run(run);
        let start = if after == "0" { "-".to_owned() } else { format!("({after}") };
        let entries: Vec<(String, Vec<(String, String)>)> =
            redis::cmd("XRANGE").arg(&keys.audit).arg(start).arg("+").arg("COUNT").arg(count).query_async(&mut self.conn()).await?;
        Ok(entries.into_iter().map(|(id, pairs)| AuditEvent::from_entry(id, pairs)).collect())
    }

    /// Lists a run in its tenant's runs index (and active set, so workers look at it again).
    pub async fn activate(&self, tenant: &str, run: &RunId) -> Result<(), QueueError> {
        let _: () = self.conn().sadd(self.keys().active_runs(tenant), run.as_str()).await?;
        Ok(())
    }

    /// A tenant's run ids, newest first.
    pub async fn listed_runs(&self, tenant: &str) -> Result<Vec<String>, QueueError> {
        Ok(self.conn().zrevrange(self.keys().runs_index(tenant), 0, -1).await?)
    }

    /// Drops a run that expired from its tenant's runs index.
    pub async fn unlist(&self, tenant: &str, run: &str) -> Result<(), QueueError> {
        let _: () = self.conn().zrem(self.keys().runs_index(tenant), run).await?;
        Ok(())
    }

    /// Writes a worker's heartbeat (JSON with its `last_seen_ms`).
    pub async fn heartbeat(&self, tenant: &str, consumer: &str, json: &str) -> Result<(), QueueError> {
        let _: () = self.conn().hset(self.keys().workers(tenant), consumer, json).await?;
        Ok(())
    }

    /// Every heartbeat of a tenant's workers (consumer → JSON), stale ones included.
    pub async fn heartbeats(&self, tenant: &str) -> Result<HashMap<String, String>, QueueError> {
        Ok(self.conn().hgetall(self.keys().workers(tenant)).await?)
    }

    /// Removes workers' heartbeats (stopped or expired).
    pub async fn forget_workers(&self, tenant: &str, consumers: &[String]) -> Result<(), QueueError> {
        if consumers.is_empty() {
            return Ok(());
        }
        let _: () = self.conn().hdel(self.keys().workers(tenant), consumers).await?;
        Ok(())
    }
}
