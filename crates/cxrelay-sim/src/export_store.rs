//! The export executions a simulator holds: their creation (with `Idempotency-Key` de-duplication
//! per data action), their state over time, the per-data-action submission statistics (peak
//! concurrent submit requests, spacing violations) and the [`Exports`] snapshot of
//! `GET /_sim/exports`. HTTP handlers are in [`crate::exports`], callback delivery in
//! [`crate::callback`].
//!
//! An execution's state is a function of time and of the settings it was submitted under: running
//! until `duration` has passed since submission, then the configured outcome (never, in `never` mode).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use cxrelay_core::oncall::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SimError;
use crate::export_settings::{ExportCompletion, ExportSettings, ExportSettingsUpdate, ExportStatus};
use crate::export_validate::Submission;

/// Snapshot of the export executions (`GET /_sim/exports`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exports {
    /// Every execution, in submission order.
    pub executions: Vec<ExportExecution>,
    /// Submissions closer than `min_spacing_ms` to the previous one of the same data action, in total.
    pub spacing_violations: u64,
    /// The same, per data action.
    pub spacing_violations_per_action: BTreeMap<String, u64>,
    /// Most submit requests in flight at once, per data action.
    pub peak_concurrent_per_action: BTreeMap<String, u64>,
    /// The settings new submissions get.
    pub settings: ExportSettings,
}

/// State of an export execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionState {
    /// Not finished yet (forever, in `never` mode).
    Running,
    /// Finished with its rows.
    Completed,
    /// Finished without rows.
    Failed,
}

/// One export execution as `GET /_sim/exports` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportExecution {
    /// `exec-<random>`.
    pub execution_id: String,
    /// The data action of the path.
    pub data_action_id: String,
    /// The exported dataset.
    pub dataset_id: String,
    /// `export.maxRows` as asked.
    pub max_rows: u64,
    /// Where the completion callback goes, if anywhere.
    pub callback_url: Option<String>,
    /// The `Idempotency-Key` of the submission, if it had one.
    pub idempotency_key: Option<String>,
    /// Milliseconds since simulator start at submission.
    pub submitted_at_ms: u64,
    /// Submission time, RFC 3339 (UTC, milliseconds); also the `createdAt` and `startTime`.
    pub submitted_at: String,
    /// Completion mode it was submitted under.
    pub completion: ExportCompletion,
    /// Current state.
    pub state: ExecutionState,
    /// Rows exported, once finished.
    pub rows_exported: Option<u64>,
    /// Start of the export, RFC 3339.
    pub start_time: String,
    /// End of the export, RFC 3339, once finished.
    pub end_time: Option<String>,
    /// Callback delivery attempts so far (retries and re-sends included).
    pub callbacks_sent: u64,
    /// The receiver's status for each attempt, in order (0: no answer).
    pub callback_statuses: Vec<u16>,
    /// The `webhook-id` its callback carries (on every attempt and re-send), in callback mode with a URL.
    pub webhook_id: Option<String>,
    /// The `export` settings object as submitted.
    pub export: Value,
}

/// A stored execution.
struct Execution {
    id: String,
    data_action_id: String,
    submission: Submission,
    idempotency_key: Option<String>,
    submitted_at_ms: u64,
    submitted_wall_ms: u64,
    submitted: Instant,
    settings: ExportSettings,
    webhook_id: String,
    callback_statuses: Vec<u16>,
}

impl Execution {
    fn state(&self, now: Instant) -> ExecutionState {
        let done = self.settings.completion != ExportCompletion::Never && now >= self.submitted + self.settings.duration();
        match (done, self.settings.status) {
            (false, _) => ExecutionState::Running,
            (true, ExportStatus::Completed) => ExecutionState::Completed,
            (true, ExportStatus::Failed) => ExecutionState::Failed,
        }
    }

    fn rows_exported(&self) -> u64 {
        match self.settings.status {
            ExportStatus::Completed => self.submission.max_rows.min(self.settings.rows),
            ExportStatus::Failed => 0,
        }
    }

    fn start_time(&self) -> String {
        rfc3339(self.submitted_wall_ms)
    }

    fn end_time(&self) -> String {
        rfc3339(self.submitted_wall_ms.saturating_add(self.settings.duration_ms))
    }

    fn sends_callbacks(&self) -> bool {
        self.settings.completion == ExportCompletion::Callback && self.submission.callback_url.is_some()
    }

    fn view(&self, now: Instant) -> ExportExecution {
        let state = self.state(now);
        let done = state != ExecutionState::Running;
        ExportExecution {
            execution_id: self.id.clone(),
            data_action_id: self.data_action_id.clone(),
            dataset_id: self.submission.dataset_id.clone(),
            max_rows: self.submission.max_rows,
            callback_url: self.submission.callback_url.clone(),
            idempotency_key: self.idempotency_key.clone(),
            submitted_at_ms: self.submitted_at_ms,
            submitted_at: self.start_time(),
            completion: self.settings.completion,
            state,
            rows_exported: done.then(|| self.rows_exported()),
            start_time: self.start_time(),
            end_time: done.then(|| self.end_time()),
            callbacks_sent: self.callback_statuses.len() as u64,
            callback_statuses: self.callback_statuses.clone(),
            webhook_id: self.sends_callbacks().then(|| self.webhook_id.clone()),
            export: self.submission.export.clone(),
        }
    }
}

/// Submission statistics of one data action.
#[derive(Default)]
struct ActionStats {
    in_flight: u64,
    peak: u64,
    last_submit_ms: Option<u64>,
    violations: u64,
}

#[derive(Default)]
struct Inner {
    executions: Vec<Execution>,
    by_id: HashMap<String, usize>,
    /// (data action, idempotency key) → execution id.
    by_key: HashMap<(String, String), String>,
    actions: HashMap<String, ActionStats>,
}

/// What a submission turned into.
pub(crate) struct Created {
    pub execution_id: String,
    pub created_at: String,
    /// False when an earlier submission with the same idempotency key was returned.
    pub new: bool,
    /// When its callback is due, if it sends one.
    pub callback_due: Option<Instant>,
}

/// Everything needed to send one callback.
pub(crate) struct CallbackJob {
    pub url: String,
    pub webhook_id: String,
    pub body: Vec<u8>,
}

/// Why a callback cannot be re-sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoCallback {
    UnknownExecution,
    NoUrl,
    NotCallbackMode,
    Running,
}

/// The completion callback's body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallbackBody<'a> {
    execution_id: &'a str,
    status: &'static str,
    rows_exported: u64,
    start_time: String,
    end_time: String,
}

/// All executions and statistics, behind one lock (exports are rare next to executes).
pub(crate) struct ExportStore {
    settings: RwLock<ExportSettings>,
    inner: Mutex<Inner>,
    /// Bumped by a reset or shutdown: callbacks scheduled before it are not sent.
    epoch: AtomicU64,
}

impl ExportStore {
    /// An empty store with the start-up settings.
    pub fn new(settings: ExportSettings) -> ExportStore {
        ExportStore { settings: RwLock::new(settings), inner: Mutex::new(Inner::default()), epoch: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The settings new submissions get.
    pub fn settings(&self) -> ExportSettings {
        *self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies an update and returns the new settings.
    pub fn update_settings(&self, u: &ExportSettingsUpdate) -> Result<ExportSettings, SimError> {
        let mut guard = self.settings.write().unwrap_or_else(|e| e.into_inner());
        *guard = guard.apply(u)?;
        Ok(*guard)
    }

    /// The current epoch (see [`ExportStore::invalidate`]).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Relaxed)
    }

    /// Stops every scheduled callback from being sent.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Relaxed);
    }

    /// Marks one submit request for `action` in flight until the guard drops.
    pub fn enter<'a>(&'a self, action: &str) -> SubmitGuard<'a> {
        let mut inner = self.lock();
        let stats = inner.actions.entry(action.to_owned()).or_default();
        stats.in_flight += 1;
        stats.peak = stats.peak.max(stats.in_flight);
        SubmitGuard { store: self, action: action.to_owned() }
    }

    /// Creates an execution, or returns the one an earlier submission with the same key created.
    /// `arrived_ms` (simulator clock) is what spacing is measured on.
    pub fn create(&self, action: &str, submission: Submission, key: Option<&str>, arrived_ms: u64, arrived: Instant) -> Created {
        let settings = self.settings();
        let mut inner = self.lock();
        let key = key.map(|k| (action.to_owned(), k.to_owned()));
        if let Some(existing) = key.as_ref().and_then(|k| inner.by_key.get(k)).and_then(|id| inner.by_id.get(id)) {
            let e = &inner.executions[*existing];
            return Created { execution_id: e.id.clone(), created_at: e.start_time(), new: false, callback_due: None };
        }
        let stats = inner.actions.entry(action.to_owned()).or_default();
        if stats.last_submit_ms.is_some_and(|last| arrived_ms.abs_diff(last) < settings.min_spacing_ms) {
            stats.violations += 1;
        }
        stats.last_submit_ms = Some(stats.last_submit_ms.map_or(arrived_ms, |last| last.max(arrived_ms)));

        let id = format!("exec-{:016x}", rand::random::<u64>());
        let execution = Execution {
            id: id.clone(),
            data_action_id: action.to_owned(),
            idempotency_key: key.as_ref().map(|(_, k)| k.clone()),
            submission,
            submitted_at_ms: arrived_ms,
            submitted_wall_ms: cxrelay_core::now_ms(),
            submitted: arrived,
            settings,
            webhook_id: format!("msg_{:032x}", rand::random::<u128>()),
            callback_statuses: Vec::new(),
        };
        let created = Created {
            execution_id: id.clone(),
            created_at: execution.start_time(),
            new: true,
            callback_due: execution.sends_callbacks().then(|| arrived + settings.duration()),
        };
        let index = inner.executions.len();
        inner.executions.push(execution);
        inner.by_id.insert(id.clone(), index);
        if let Some(key) = key {
            inner.by_key.insert(key, id);
        }
        created
    }

    /// One execution of `action` as seen at `now`.
    pub fn get(&self, action: &str, id: &str, now: Instant) -> Option<ExportExecution> {
        let inner = self.lock();
        let e = &inner.executions[*inner.by_id.get(id)?];
        (e.data_action_id == action).then(|| e.view(now))
    }

    /// The callback of a finished execution in callback mode with a URL.
    pub fn callback(&self, id: &str, now: Instant) -> Result<CallbackJob, NoCallback> {
        let inner = self.lock();
        let e = inner.by_id.get(id).map(|i| &inner.executions[*i]).ok_or(NoCallback::UnknownExecution)?;
        let url = e.submission.callback_url.clone().ok_or(NoCallback::NoUrl)?;
        if e.settings.completion != ExportCompletion::Callback {
            return Err(NoCallback::NotCallbackMode);
        }
        if e.state(now) == ExecutionState::Running {
            return Err(NoCallback::Running);
        }
        let body = CallbackBody {
            execution_id: &e.id,
            status: e.settings.status.as_str(),
            rows_exported: e.rows_exported(),
            start_time: e.start_time(),
            end_time: e.end_time(),
        };
        Ok(CallbackJob { url, webhook_id: e.webhook_id.clone(), body: serde_json::to_vec(&body).expect("callback body serializes") })
    }

    /// Records one callback attempt's answer (0: none) on its execution, if it still exists.
    pub fn record_callback(&self, id: &str, status: u16) {
        let mut inner = self.lock();
        if let Some(i) = inner.by_id.get(id).copied() {
            inner.executions[i].callback_statuses.push(status);
        }
    }

    /// The snapshot at `now`.
    pub fn snapshot(&self, now: Instant) -> Exports {
        let settings = self.settings();
        let inner = self.lock();
        let executions = inner.executions.iter().map(|e| e.view(now)).collect();
        let spacing_violations_per_action: BTreeMap<String, u64> = inner.actions.iter().map(|(a, s)| (a.clone(), s.violations)).collect();
        Exports {
            executions,
            spacing_violations: spacing_violations_per_action.values().sum(),
            spacing_violations_per_action,
            peak_concurrent_per_action: inner.actions.iter().map(|(a, s)| (a.clone(), s.peak)).collect(),
            settings,
        }
    }

    /// Forgets every execution and statistic (requests in flight stay counted) and cancels pending callbacks.
    pub fn reset(&self) {
        self.invalidate();
        let mut inner = self.lock();
        let actions = std::mem::take(&mut inner.actions);
        *inner = Inner::default();
        for (action, stats) in actions.into_iter().filter(|(_, s)| s.in_flight > 0) {
            inner.actions.insert(action, ActionStats { in_flight: stats.in_flight, peak: stats.in_flight, ..ActionStats::default() });
        }
    }
}

/// Guard returned by [`ExportStore::enter`].
pub(crate) struct SubmitGuard<'a> {
    store: &'a ExportStore,
    action: String,
}

impl Drop for SubmitGuard<'_> {
    fn drop(&mut self) {
        if let Some(stats) = self.store.lock().actions.get_mut(&self.action) {
            stats.in_flight = stats.in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::config::SimConfig;

    fn submission(callback: bool) -> Submission {
        Submission {
            dataset_id: "ds".into(),
            max_rows: 10,
            callback_url: callback.then(|| "http://127.0.0.1:9/cb".to_owned()),
            export: json!({"delimiter": ","}),
        }
    }

    #[test]
    fn keys_deduplicate_and_spacing_is_counted() {
        let store = ExportStore::new(ExportSettings::from_config(&SimConfig::default()));
        let t0 = Instant::now();
        let a = store.create("da", submission(true), Some("k"), 0, t0);
        let again = store.create("da", submission(true), Some("k"), 10, t0);
        assert!(a.new && !again.new && a.execution_id == again.execution_id && a.created_at == again.created_at);
        assert_eq!(a.callback_due, Some(t0 + Duration::from_millis(200)));
        let b = store.create("da", submission(false), Some("k2"), 1500, t0);
        assert!(b.callback_due.is_none());
        store.create("da", submission(false), None, 4000, t0);
        store.create("other", submission(false), Some("k"), 4000, t0);
        let snap = store.snapshot(t0);
        assert_eq!(snap.executions.len(), 4);
        assert_eq!((snap.spacing_violations, snap.spacing_violations_per_action["da"]), (1, 1));
        assert_eq!(snap.executions[0].state, ExecutionState::Running);
        assert_eq!(snap.executions[0].end_time, None);
        let later = store.snapshot(t0 + Duration::from_millis(250));
        assert_eq!((later.executions[0].state, later.executions[0].rows_exported), (ExecutionState::Completed, Some(10)));
        store.reset();
        assert!(store.snapshot(t0).executions.is_empty());
    }

    #[test]
    fn callbacks_only_for_finished_callback_mode_executions() {
        let store = ExportStore::new(ExportSettings::from_config(&SimConfig::default()));
        let t0 = Instant::now();
        let a = store.create("da", submission(true), None, 0, t0);
        assert_eq!(store.callback(&a.execution_id, t0).err(), Some(NoCallback::Running));
        assert_eq!(store.callback("nope", t0).err(), Some(NoCallback::UnknownExecution));
        let job = store.callback(&a.execution_id, t0 + Duration::from_secs(1)).unwrap();
        let body: Value = serde_json::from_slice(&job.body).unwrap();
        assert_eq!((body["status"].as_str(), body["rowsExported"].as_u64()), (Some("completed"), Some(10)));
        store.update_settings(&ExportSettingsUpdate { completion: Some(ExportCompletion::Never), ..Default::default() }).unwrap();
        let n = store.create("da", submission(true), None, 5000, t0);
        assert_eq!(store.callback(&n.execution_id, t0 + Duration::from_secs(9)).err(), Some(NoCallback::NotCallbackMode));
        assert_eq!(store.get("da", &n.execution_id, t0 + Duration::from_secs(9)).map(|e| e.state), Some(ExecutionState::Running));
        assert!(store.get("other", &n.execution_id, t0).is_none());
        {
            let _one = store.enter("da");
            let _two = store.enter("da");
        }
        assert_eq!(store.snapshot(t0).peak_concurrent_per_action["da"], 2);
    }
}
