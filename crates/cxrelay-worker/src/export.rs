//! Export executions in the worker: submitting one (the single item of an export run) and the
//! watcher that polls executions and marks overdue ones.
//!
//! A submission goes the way every item goes (same delivery, retry policy, rate budget and
//! breaker, in [`ItemHandler`]); what it adds is the seed's rule of one submission in flight per
//! data action with a gap between two (`exports.min_spacing_ms`), and recording the execution id
//! the target answers with. Completion comes by callback (`cxrelay serve`) or, for profiles that
//! have none, by the [`spawn_watch`] task polling the status endpoint; the same task flags
//! executions past their deadline as overdue.

use std::time::Duration;

use bytes::Bytes;
use cxrelay_core::classify::FailureClass;
use cxrelay_core::export::{read_completion, ExportState};
use cxrelay_core::outcome::error_text;
use cxrelay_core::profile::{ExportCompletion, ExportTarget, Target};
use cxrelay_core::{ItemOutcome, OutcomeKind, RunId};
use cxrelay_cxone::{fill_path, Method, TargetClient};
use cxrelay_queue::{ItemJob, Store};

use crate::gate::Admission;
use crate::handler::{judge, record_attempt, ItemHandler};

/// How export executions are submitted and watched.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// Paths, fields and states of the target's export API.
    pub target: ExportTarget,
    /// Least time between two submissions for one data action.
    pub spacing: Duration,
    /// An execution not completed this long after submission is overdue.
    pub deadline: Duration,
    /// How often a polled execution is asked about.
    pub poll_interval: Duration,
    /// Longest a submission may hold its data action's slot (a worker that dies holding it
    /// frees it after this).
    pub slot_lease: Duration,
}

impl ExportConfig {
    /// The export configuration of `settings` for `target`.
    pub fn new(settings: &cxrelay_core::config::Settings, target: &Target) -> Self {
        let e = &settings.exports;
        Self {
            target: target.exports.clone(),
            spacing: Duration::from_millis(e.min_spacing_ms),
            deadline: Duration::from_secs(e.deadline_secs),
            poll_interval: Duration::from_millis(e.poll_interval_ms),
            slot_lease: Duration::from_millis(target.request_timeout_ms) * 2 + Duration::from_secs(5),
        }
    }
}

/// What an export submission needs beside the handler's client and gate.
pub struct Exports {
    /// Where runs and indexes live.
    pub store: Store,
    /// How to submit.
    pub config: ExportConfig,
}

/// A deferral of an export submission that is nobody's failure (like waiting for a rate slot).
fn wait(job: &ItemJob, delay: Duration, why: &str) -> ItemOutcome {
    ItemOutcome {
        kind: OutcomeKind::Deferred { delay_ms: delay.as_millis().max(1) as u64 },
        attempts: job.attempts,
        throttled: job.throttled,
        status: None,
        class: None,
        latency_us: 0,
        error: Some(why.to_owned()),
    }
}

impl ItemHandler {
    /// Submits the export execution of an export run's item (`key` is its Idempotency-Key).
    pub(crate) async fn submit_export(&self, job: &ItemJob, key: &str) -> ItemOutcome {
        let Some(exports) = self.exports() else {
            return wait(job, Duration::from_secs(1), "deferred: this worker does not submit exports");
        };
        let (store, config) = (&exports.store, &exports.config);
        let meta = &job.run;
        let holder = format!("{}:{}", meta.run, job.entry_id);
        match store.export_slot(&meta.tenant, &meta.action, &holder, config.slot_lease).await {
            Ok(None) => {}
            Ok(Some(busy)) => return wait(job, busy, "deferred: another export of this data action is in flight or too recent"),
            Err(_) => return wait(job, Duration::from_secs(1), "deferred: redis unavailable"),
        }
        let _ = self.client().tokens().token().await;
        let probe = match self.gate().admit(&meta.action).await {
            Admission::Send { probe } => probe,
            Admission::Defer(delay, reason) => {
                // Nothing was sent: the slot is free again at once.
                let _ = store.export_slot_release(&meta.tenant, &meta.action, &holder, Duration::ZERO).await;
                return wait(job, delay, reason.as_str());
            }
        };
        let path = fill_path(&config.target.submit_path, &[("dataAction", &meta.action)]);
        let (mut attempt, body) = self.client().call(Method::POST, &path, Some(key), Some(Bytes::from(job.item.clone()))).await;
        let _ = store.export_slot_release(&meta.tenant, &meta.action, &holder, config.spacing).await;
        self.believe_retry_after(&mut attempt);
        record_attempt(&attempt);
        self.gate().observe(&attempt, probe, job.attempts == 0).await;
        let outcome = judge(self.policy(), job.attempts, job.throttled, &attempt, rand::random::<f64>());
        if outcome.kind != OutcomeKind::Succeeded {
            return outcome;
        }
        let execution =
            serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|doc| match doc.pointer(&config.target.execution_id_field) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            });
        let Some(execution) = execution else {
            return ItemOutcome {
                kind: OutcomeKind::Failed,
                class: Some(FailureClass::Client),
                error: Some(error_text(&format!(
                    "the target accepted the export (HTTP {}) but its answer has no execution id at {}",
                    attempt.status.unwrap_or(0),
                    config.target.execution_id_field
                ))),
                ..outcome
            };
        };
        let now = cxrelay_core::now_ms();
        let deadline = now + config.deadline.as_millis() as u64;
        let poll_at = (config.target.completion == ExportCompletion::Poll).then(|| now + config.poll_interval.as_millis() as u64);
        match store.export_submitted(meta, &execution, deadline, poll_at).await {
            Ok(_) => {
                tracing::info!(run = %meta.run, data_action = %meta.action, execution = %execution, "export submitted");
                outcome
            }
            // Sent again later with the same Idempotency-Key: the target answers with the same id.
            Err(e) => ItemOutcome {
                kind: OutcomeKind::Retry { delay_ms: 1000 },
                class: Some(FailureClass::Transport),
                error: Some(error_text(&format!("export {execution} submitted but not recorded: {e}"))),
                ..outcome
            },
        }
    }
}

/// Polls due executions (poll profiles) and flags overdue ones, for the tenant, until the process
/// ends. Several workers may run it: claims and state changes are atomic in Redis.
pub fn spawn_watch(store: Store, client: TargetClient, config: ExportConfig, tenant: String) {
    tokio::spawn(async move {
        let tick = config.poll_interval.min(Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if config.target.completion == ExportCompletion::Poll {
                poll_due(&store, &client, &config, &tenant).await;
            }
            flag_overdue(&store, &tenant).await;
        }
    });
}

async fn poll_due(store: &Store, client: &TargetClient, config: &ExportConfig, tenant: &str) {
    let Ok(due) = store.due_export_polls(tenant, config.poll_interval, 50).await else { return };
    for id in due {
        let Ok(run) = RunId::parse(&id) else { continue };
        let row = match store.export_row(&run).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                let _ = store.drop_export_schedule(tenant, &id).await;
                continue;
            }
            Err(_) => continue,
        };
        let (ExportState::Submitted | ExportState::Overdue, Some(execution)) = (row.state, row.execution_id.as_deref()) else {
            let _ = store.drop_export_schedule(tenant, &id).await;
            continue;
        };
        let path = fill_path(&config.target.status_path, &[("execution", execution), ("dataAction", &row.data_action)]);
        let (attempt, body) = client.call(Method::GET, &path, None, None).await;
        if !attempt.is_success() {
            tracing::warn!(run = %id, execution, status = attempt.status, error = attempt.error.as_deref(), "export status poll failed");
            continue;
        }
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&body) else {
            tracing::warn!(run = %id, execution, "export status answer is not JSON");
            continue;
        };
        let t = &config.target;
        let pointers = [t.execution_id_field.as_str(), t.status_field.as_str(), t.rows_field.as_str(), t.start_field.as_str(), t.end_field.as_str()];
        // Not final yet (or not readable): asked again at the next interval.
        match read_completion(&doc, pointers, Some(execution), |s| t.terminal(s)) {
            Ok(c) => match store.export_complete(&run, tenant, &c, "poll").await {
                Ok(finish) => tracing::info!(run = %id, execution, ?finish, "export completion polled"),
                Err(e) => tracing::warn!(run = %id, error = %e, "cannot record a polled export completion"),
            },
            Err(why) => tracing::debug!(run = %id, execution, %why, "export not finished"),
        }
    }
}

async fn flag_overdue(store: &Store, tenant: &str) {
    let Ok(due) = store.due_export_deadlines(tenant, 100).await else { return };
    for id in due {
        let Ok(run) = RunId::parse(&id) else { continue };
        match store.export_overdue(&run, tenant).await {
            Ok(finish) => tracing::info!(run = %id, ?finish, "export deadline passed"),
            Err(cxrelay_queue::QueueError::RunNotFound(_)) => {
                let _ = store.drop_export_schedule(tenant, &id).await;
            }
            Err(e) => tracing::warn!(run = %id, error = %e, "cannot flag an overdue export"),
        }
    }
}
