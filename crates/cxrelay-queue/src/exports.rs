//! The export side of the [`Store`]: CSV export executions are runs of kind `export` with one
//! item (the execution payload), so they share the queue, retries, rate budget and breaker of
//! every run. What is theirs alone lives here: the submission slot per data action
//! (`export_slot.lua`), recording the execution id (`export_submitted.lua`), completion and
//! overdue (`export_finish.lua`), polling claims (`export_claim.lua`), and the tenant's indexes
//! (exports by creation time, execution id → run, polls and deadlines due).
//!
//! The tenant's indexes and a run's keys live in different hash slots, so they are written
//! one after the other: each index write is idempotent, and every reader tolerates an index
//! entry whose run says otherwise (the run's state is the truth).

use std::time::Duration;

use cxrelay_core::export::{Completion, ExportState};
use cxrelay_core::RunId;
use redis::AsyncCommands;
use serde::Serialize;

use crate::job::RunMeta;
use crate::oncall::not_allowed;
use crate::scripts;
use crate::store::{QueueError, Store};

/// Run state fields an export listing reads, in this order.
const FIELDS: [&str; 16] = [
    "action",
    "dataset",
    "export_state",
    "execution_id",
    "rows",
    "latency_ms",
    "created_ms",
    "submitted_ms",
    "completed_ms",
    "deadline_ms",
    "export_status",
    "completion_source",
    "failed",
    "max_rows",
    "callback",
    "completion",
];

/// One export execution as listed (`cxrelay exports`, `GET /v1/exports`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExportRow {
    /// The export's id (its run id).
    pub id: String,
    /// The data action that runs it.
    pub data_action: String,
    /// The dataset exported.
    pub dataset: String,
    /// Where it stands.
    pub state: ExportState,
    /// The target's execution id, once submitted.
    pub execution_id: Option<String>,
    /// The target's final status word, once completed.
    pub status: Option<String>,
    /// Rows exported, when reported.
    pub rows: Option<u64>,
    /// Start to end on the target, ms (from the completion's times), when reported.
    pub latency_ms: Option<u64>,
    /// Rows asked for at most.
    pub max_rows: Option<u64>,
    /// How completion is learned: `callback` or `poll`.
    pub completion: Option<String>,
    /// Where its completion came from: `callback` or `poll`.
    pub completion_source: Option<String>,
    /// When it was asked for, ms since the epoch.
    pub created_ms: Option<u64>,
    /// When the target accepted it.
    pub submitted_ms: Option<u64>,
    /// When its completion was recorded.
    pub completed_ms: Option<u64>,
    /// When it becomes overdue without a completion.
    pub deadline_ms: Option<u64>,
    /// Whether a callback URL was sent with it.
    pub callback: bool,
}

/// What recording a completion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The state changed to this.
    Changed(ExportState),
    /// It had already ended in this state (a repeated callback): nothing changed.
    Duplicate(ExportState),
    /// Nothing to do (an overdue check of an execution that is not submitted).
    Unchanged(ExportState),
}

fn state_of(s: &str) -> Result<ExportState, QueueError> {
    ExportState::parse(s).ok_or_else(|| QueueError::Corrupt(format!("export state {s:?}")))
}

impl Store {
    /// Takes the submission slot of `data_action` for `holder` for at most `lease`; `Some(wait)`
    /// when another submission holds it or the spacing after the last one has not passed.
    pub async fn export_slot(&self, tenant: &str, data_action: &str, holder: &str, lease: Duration) -> Result<Option<Duration>, QueueError> {
        let wait: u64 = scripts::EXPORT_SLOT
            .key(self.keys().export_slot(tenant, data_action))
            .arg("acquire")
            .arg(holder)
            .arg(lease.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn())
            .await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }

    /// Gives the slot back after a submission, keeping it closed for `spacing`.
    pub async fn export_slot_release(&self, tenant: &str, data_action: &str, holder: &str, spacing: Duration) -> Result<(), QueueError> {
        let _: u64 = scripts::EXPORT_SLOT
            .key(self.keys().export_slot(tenant, data_action))
            .arg("release")
            .arg(holder)
            .arg(spacing.as_millis() as u64)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Lists an export run in its tenant's index (before its run exists: a listing skips ids
    /// whose run is gone).
    pub async fn index_export(&self, tenant: &str, run: &RunId, created_ms: u64) -> Result<(), QueueError> {
        let _: () = self.conn().zadd(self.keys().exports(tenant), run.as_str(), created_ms).await?;
        Ok(())
    }

    /// Records the target's execution id for an export run, then indexes it for callbacks, its
    /// deadline and (`poll_at`) polling.
    pub async fn export_submitted(
        &self,
        meta: &RunMeta,
        execution_id: &str,
        deadline_ms: u64,
        poll_at: Option<u64>,
    ) -> Result<ExportState, QueueError> {
        let keys = self.keys();
        // The id first: a callback that comes before the run's record still finds its run.
        let _: () = self.conn().hset(keys.export_ids(&meta.tenant), execution_id, meta.run.as_str()).await?;
        let mut inv = scripts::EXPORT_SUBMITTED.prepare_invoke();
        for k in meta.keys.all() {
            inv.key(k);
        }
        inv.arg(execution_id).arg(deadline_ms).arg(self.options().audit_len);
        let state: String = inv.invoke_async(&mut self.conn()).await.map_err(not_allowed)?;
        let state = state_of(&state)?;
        if matches!(state, ExportState::Submitted) {
            let _: () = self.conn().zadd(keys.export_deadlines(&meta.tenant), meta.run.as_str(), deadline_ms).await?;
            if let Some(at) = poll_at {
                let _: () = self.conn().zadd(keys.export_polls(&meta.tenant), meta.run.as_str(), at).await?;
            }
        }
        Ok(state)
    }

    /// The run of a tenant's export execution, if it is known.
    pub async fn export_run(&self, tenant: &str, execution_id: &str) -> Result<Option<RunId>, QueueError> {
        let run: Option<String> = self.conn().hget(self.keys().export_ids(tenant), execution_id).await?;
        Ok(run.and_then(|r| RunId::parse(&r).ok()))
    }

    /// Records a completion (`source`: `callback` or `poll`) on an export run; a repeated one
    /// changes nothing. Takes the run off the poll and deadline indexes once it has ended.
    pub async fn export_complete(&self, run: &RunId, tenant: &str, c: &Completion, source: &str) -> Result<Finish, QueueError> {
        let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
        let args = [
            "complete".to_owned(),
            c.status.clone(),
            if c.succeeded { "1" } else { "0" }.to_owned(),
            opt(c.rows),
            opt(c.latency_ms()),
            c.execution_id.clone(),
            source.to_owned(),
        ];
        self.finish(run, tenant, &args).await
    }

    /// Marks a submitted export run overdue (its deadline passed without a completion).
    pub async fn export_overdue(&self, run: &RunId, tenant: &str) -> Result<Finish, QueueError> {
        let args = ["overdue".to_owned(), String::new(), "0".to_owned(), String::new(), String::new(), String::new(), "deadline".to_owned()];
        self.finish(run, tenant, &args).await
    }

    async fn finish(&self, run: &RunId, tenant: &str, args: &[String; 7]) -> Result<Finish, QueueError> {
        let keys = self.keys().run(run);
        let mut inv = scripts::EXPORT_FINISH.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        inv.arg(self.options().audit_len).arg(&self.options().events_wanted);
        let (what, state): (String, String) = inv.invoke_async(&mut self.conn()).await.map_err(|e| match not_allowed(e) {
            QueueError::NotAllowed(m) if m.contains("not an export") => QueueError::RunNotFound(run.clone()),
            e => e,
        })?;
        let state = state_of(&state)?;
        let finish = match what.as_str() {
            "changed" => Finish::Changed(state),
            "duplicate" => Finish::Duplicate(state),
            _ => Finish::Unchanged(state),
        };
        // An overdue execution is still polled: a late completion lands.
        let k = self.keys();
        if matches!(state, ExportState::Completed | ExportState::Failed) {
            let _: () = self.conn().zrem(k.export_polls(tenant), run.as_str()).await?;
        }
        if !matches!(state, ExportState::Submitted | ExportState::Queued) {
            let _: () = self.conn().zrem(k.export_deadlines(tenant), run.as_str()).await?;
        }
        if let Finish::Changed(state) = finish {
            record_metrics(state, args);
            if !self.options().events_wanted.is_empty() {
                self.hint_outbox(tenant, run.as_str()).await?;
            }
        }
        Ok(finish)
    }

    /// Takes up to `limit` polled export runs that are due, pushing their next poll out by
    /// `interval` (so two workers do not poll one execution at once).
    pub async fn due_export_polls(&self, tenant: &str, interval: Duration, limit: usize) -> Result<Vec<String>, QueueError> {
        let ids: Vec<String> = scripts::EXPORT_CLAIM
            .key(self.keys().export_polls(tenant))
            .arg(cxrelay_core::now_ms())
            .arg(interval.as_millis() as u64)
            .arg(limit)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(ids)
    }

    /// Up to `limit` export runs whose deadline has passed.
    pub async fn due_export_deadlines(&self, tenant: &str, limit: usize) -> Result<Vec<String>, QueueError> {
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys().export_deadlines(tenant))
            .arg("-inf")
            .arg(cxrelay_core::now_ms())
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn())
            .await?;
        Ok(ids)
    }

    /// Forgets an index entry whose run is gone or over.
    pub async fn drop_export_schedule(&self, tenant: &str, run: &str) -> Result<(), QueueError> {
        let k = self.keys();
        let _: () = self.conn().zrem(k.export_polls(tenant), run).await?;
        let _: () = self.conn().zrem(k.export_deadlines(tenant), run).await?;
        Ok(())
    }

    /// One export run as listed; `None` when the run does not exist or is not an export.
    pub async fn export_row(&self, run: &RunId) -> Result<Option<ExportRow>, QueueError> {
        let v: Vec<Option<String>> = redis::cmd("HMGET").arg(self.keys().run(run).state).arg(&FIELDS).query_async(&mut self.conn()).await?;
        Ok(row(run.as_str(), v))
    }

    /// A tenant's export runs, newest first, at most `limit`.
    pub async fn list_exports(&self, tenant: &str, limit: usize) -> Result<Vec<ExportRow>, QueueError> {
        Ok(self.export_page(tenant, limit, None).await?.0)
    }

    /// A page of the tenant's exports, newest first, after the export `after` (its creation time
    /// and id, from the previous page), with where the next page starts when there is one.
    /// Exports created since the first page do not shift later pages: a page starts after its
    /// cursor's export, or, once that export has expired, after its creation time.
    pub async fn export_page(
        &self,
        tenant: &str,
        limit: usize,
        after: Option<(u64, &str)>,
    ) -> Result<(Vec<ExportRow>, Option<(u64, String)>), QueueError> {
        let key = self.keys().exports(tenant);
        let start: usize = match after {
            None => 0,
            Some((created_ms, id)) => match self.conn().zrevrank::<_, _, Option<usize>>(&key, id).await? {
                Some(rank) => rank + 1,
                None => self.conn().zcount(&key, format!("({created_ms}"), "+inf").await?,
            },
        };
        let limit = limit.max(1);
        // One more than the page, to tell whether another page follows.
        let mut found: Vec<(String, f64)> = self.conn().zrevrange_withscores(&key, start as isize, (start + limit) as isize).await?;
        let next = (found.len() > limit).then(|| {
            found.truncate(limit);
            found.last().map(|(id, score)| (*score as u64, id.clone()))
        });
        let ids: Vec<String> = found.into_iter().map(|(id, _)| id).collect();
        if ids.is_empty() {
            return Ok((Vec::new(), None));
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            let Ok(run) = RunId::parse(id) else { continue };
            pipe.cmd("HMGET").arg(self.keys().run(&run).state).arg(&FIELDS);
        }
        let rows: Vec<Vec<Option<String>>> = pipe.query_async(&mut self.conn()).await?;
        Ok((ids.iter().filter(|id| RunId::parse(id).is_ok()).zip(rows).filter_map(|(id, v)| row(id, v)).collect(), next.flatten()))
    }
}

/// Completed and failed executions this process recorded, for the completion ratio.
static ENDED: [std::sync::atomic::AtomicU64; 2] = [std::sync::atomic::AtomicU64::new(0), std::sync::atomic::AtomicU64::new(0)];

/// The export metrics of one state change made by this process (`args` as given to the script).
fn record_metrics(state: ExportState, args: &[String; 7]) {
    use cxrelay_core::metric;
    use std::sync::atomic::Ordering::Relaxed;
    metrics::counter!(metric::EXPORTS, "state" => state.as_str()).increment(1);
    if let Ok(rows) = args[3].parse::<u64>() {
        metrics::counter!(metric::EXPORT_ROWS).increment(rows);
    }
    if let Ok(ms) = args[4].parse::<u64>() {
        metrics::histogram!(metric::EXPORT_LATENCY).record(ms as f64 / 1000.0);
    }
    let slot = match state {
        ExportState::Completed => 0,
        ExportState::Failed => 1,
        _ => return,
    };
    ENDED[slot].fetch_add(1, Relaxed);
    let (done, failed) = (ENDED[0].load(Relaxed) as f64, ENDED[1].load(Relaxed) as f64);
    metrics::gauge!(metric::EXPORT_COMPLETION).set(done / (done + failed));
}

/// An export row from the state fields ([`FIELDS`] order); `None` if the run is not an export.
fn row(id: &str, v: Vec<Option<String>>) -> Option<ExportRow> {
    let get = |i: usize| v.get(i).cloned().flatten().filter(|s| !s.is_empty());
    let num = |i: usize| get(i).and_then(|s| s.parse::<u64>().ok());
    let mut state = ExportState::parse(&get(2)?)?;
    // A submission that failed for good never reached the target: the run's item failed.
    if state == ExportState::Queued && num(12).unwrap_or(0) > 0 {
        state = ExportState::Failed;
    }
    Some(ExportRow {
        id: id.to_owned(),
        data_action: get(0).unwrap_or_default(),
        dataset: get(1).unwrap_or_default(),
        state,
        execution_id: get(3),
        rows: num(4),
        latency_ms: num(5),
        created_ms: num(6),
        submitted_ms: num(7),
        completed_ms: num(8),
        deadline_ms: num(9),
        status: get(10),
        completion_source: get(11),
        max_rows: num(13),
        callback: get(14).is_some(),
        completion: get(15),
    })
}
