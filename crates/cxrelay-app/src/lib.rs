//! The operations API of cxrelay: what a front end (the CLI today, the HTTP server next) may ask
//! of the queue, with typed errors, and no argument parsing, printing or HTTP.
//!
//! [`App`] owns enqueueing a run, reading a run's report, listing a tenant's runs and a run's
//! failed items. It connects to Redis on first use, so a front end can build one before knowing
//! whether Redis is up, and an input can still be judged (malformed or not) when it is down.

#![warn(missing_docs)]

mod exports;
mod oncall;

pub use cxrelay_core::export::{ExportRequest, ExportState};
pub use cxrelay_core::oncall::{FailedFilter, StatusFilter};
pub use cxrelay_queue::exports::ExportRow;
pub use cxrelay_queue::oncall::{AuditEvent, Control, ItemState, ItemView, WorkerInfo};
pub use exports::{CallbackDelivery, CallbackOutcome, CALLBACK_FIELDS};
pub use oncall::{FailedPages, FailedRow, FailureGroup, Refusal, Replay, ReplayOutcome, RunsFilter, Selection, WebhookStatus};

use std::io::Read;

use cxrelay_core::config::Settings;
use cxrelay_core::input::{read_items, InputError, InputFormat};
use cxrelay_core::payload::BodyShape;
use cxrelay_core::{now_ms, RunId};
use cxrelay_queue::producer::enqueue;
use cxrelay_queue::store::StoreOptions;
use cxrelay_queue::{EnqueueError, EnqueueRequest, EnqueueSummary, QueueError, RedisTarget, Store};
use tokio::sync::OnceCell;

/// Why an operation failed, in the terms a front end maps to exit codes or HTTP statuses.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// An argument is unusable (a front end answers: bad request, nothing changed).
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The input is malformed; nothing was enqueued.
    #[error("{0}; nothing was enqueued")]
    Input(InputError),
    /// The input holds no items; nothing was enqueued.
    #[error("input contains no items (an empty array); nothing was enqueued")]
    Empty,
    /// No run with that id (or it expired after its retention period).
    #[error("run {0} not found")]
    RunNotFound(RunId),
    /// The run id is taken by a run of another tenant or action.
    #[error("{0}")]
    Conflict(QueueError),
    /// Redis could not be reached at the (masked) URL.
    #[error("connecting to redis at {url}: {source}")]
    Unreachable {
        /// The Redis URL, password masked.
        url: String,
        /// Why.
        source: QueueError,
    },
    /// The operation does not apply to the run as it is (resume a run that is not paused…).
    #[error("{0}")]
    NotAllowed(String),
    /// Redis failed during the operation.
    #[error(transparent)]
    Queue(QueueError),
    /// An export breaks one of the seed's rules (the message names the field and what is
    /// allowed); nothing was queued.
    #[error("{0}")]
    InvalidExport(cxrelay_core::export::ExportError),
    /// The caller could not be authenticated (an export callback's signature, age or path).
    #[error("{0}")]
    Unauthorized(String),
    /// An export callback's body is unusable; nothing changed.
    #[error("invalid callback: {0}")]
    BadCallback(String),
    /// An export callback names an execution this tenant does not know; nothing changed.
    #[error("unknown execution id {0:?}")]
    UnknownExecution(String),
}

impl From<QueueError> for AppError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::RunNotFound(run) => AppError::RunNotFound(run),
            QueueError::NotAllowed(m) => AppError::NotAllowed(m),
            e @ (QueueError::TenantMismatch { .. } | QueueError::ActionMismatch { .. }) => AppError::Conflict(e),
            e => AppError::Queue(e),
        }
    }
}

impl From<EnqueueError> for AppError {
    fn from(e: EnqueueError) -> Self {
        match e {
            EnqueueError::Input { source } => AppError::Input(source),
            EnqueueError::Empty => AppError::Empty,
            EnqueueError::Queue(q) => q.into(),
        }
    }
}

/// What to enqueue, as a front end received it.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Run id; `None` draws one. Re-using an id resumes that run without duplicates.
    pub run_id: Option<String>,
    /// Target action id.
    pub action: String,
    /// Tenant; `None` is the settings' tenant.
    pub tenant: Option<String>,
    /// Key items on this field instead of a per-run key.
    pub idempotency_field: Option<String>,
    /// Where the input comes from (file name or `stdin`).
    pub source: String,
    /// Input format.
    pub format: InputFormat,
    /// The seed's max-iterations break.
    pub max_items: Option<u64>,
    /// Failure-rate guard, as typed (`20%` or `20`); `None`: the settings' default.
    pub pause_on_failure_rate: Option<String>,
    /// Finished items the guard looks at; `None`: the settings' default.
    pub failure_window: Option<u32>,
}

/// A run whose arguments were checked: its id is known before anything is read.
#[derive(Debug, Clone)]
pub struct CheckedRun {
    run: RunId,
    request: EnqueueRequest,
}

impl CheckedRun {
    /// The run's id (drawn now when none was given), to show before loading starts.
    pub fn run_id(&self) -> &RunId {
        &self.run
    }
}

/// The operations API (see the module docs).
pub struct App {
    target: RedisTarget,
    options: StoreOptions,
    tenant: String,
    body: BodyShape,
    payload_limit: usize,
    exports: exports::ExportOptions,
    guard_rate: Option<f64>,
    guard_window: u32,
    webhooks: Vec<cxrelay_core::webhook::WebhookEndpoint>,
    assumed: cxrelay_queue::load::Assumed,
    store: OnceCell<Store>,
}

impl App {
    /// Checks that Redis answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), AppError> {
        self.store().await?.ping().await.map_err(|source| AppError::Unreachable { url: self.target.masked(), source })
    }

    /// An app for `settings`; nothing is connected yet.
    pub fn new(settings: &Settings) -> Self {
        Self {
            target: RedisTarget::from_settings(settings),
            options: StoreOptions::from_settings(settings),
            tenant: settings.target.tenant.clone(),
            body: settings.target.body_shape(),
            payload_limit: settings.target.payload_limit(),
            exports: exports::ExportOptions::from_settings(settings),
            guard_rate: settings.queue.pause_on_failure_rate,
            guard_window: settings.queue.failure_window,
            webhooks: settings.webhooks.clone(),
            assumed: cxrelay_queue::load::Assumed::from_settings(settings),
            store: OnceCell::new(),
        }
    }

    /// The settings' tenant's load: backlog, live workers, budget and the workers it can use.
    pub async fn tenant_load(&self) -> Result<cxrelay_queue::load::LoadSample, AppError> {
        let store = self.store().await?;
        let limits = cxrelay_queue::FleetLimits::new(store.conn(), store.keys().clone(), &self.tenant);
        cxrelay_queue::load::sample(store, &limits, &self.tenant, self.assumed).await.map_err(AppError::Queue)
    }

    /// The tenant this app serves (the settings' `target.tenant`).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The store, connecting on first use.
    pub async fn store(&self) -> Result<&Store, AppError> {
        self.store
            .get_or_try_init(|| Store::connect(&self.target, self.options.clone()))
            .await
            .map_err(|source| AppError::Unreachable { url: self.target.masked(), source })
    }

    /// Checks a new run's arguments (nothing is read or written).
    pub fn check(&self, new: NewRun) -> Result<CheckedRun, AppError> {
        let invalid = |what, value: &str, reason: String| AppError::InvalidArgument { what, value: value.to_owned(), reason };
        let run = match &new.run_id {
            Some(id) => RunId::parse(id).map_err(|e| invalid("run id", id, e.to_string()))?,
            None => RunId::generate(now_ms()),
        };
        if new.action.trim().is_empty() {
            return Err(invalid("action", &new.action, "must not be empty".into()));
        }
        let tenant = new.tenant.unwrap_or_else(|| self.tenant.clone());
        cxrelay_core::ids::check_name(&tenant).map_err(|reason| invalid("tenant", &tenant, reason))?;
        if let Some(f) = new.idempotency_field.as_deref().filter(|f| f.trim().is_empty()) {
            return Err(invalid("idempotency field", f, "must name a field".into()));
        }
        let rate = match new.pause_on_failure_rate.as_deref() {
            Some(typed) => Some(
                typed
                    .trim()
                    .trim_end_matches('%')
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|r| *r > 0.0 && *r <= 100.0)
                    .ok_or_else(|| invalid("failure rate", typed, "expected a percentage above 0 and at most 100, e.g. 20%".into()))?,
            ),
            None => self.guard_rate,
        };
        let window = new.failure_window.unwrap_or(self.guard_window);
        if !(1..=10_000).contains(&window) {
            return Err(invalid("failure window", &window.to_string(), "expected 1 to 10000 finished items".into()));
        }
        let request = EnqueueRequest {
            run_id: Some(run.clone()),
            action: new.action,
            tenant,
            idempotency_field: new.idempotency_field,
            source: new.source,
            format: new.format,
            max_items: new.max_items,
            body: self.body,
            payload_limit: self.payload_limit,
            guard: rate.map(|r| (r, window)),
            extra: Vec::new(),
        };
        Ok(CheckedRun { run, request })
    }

    /// Streams `input` into the run; `on_progress` is called with the items read so far. With
    /// Redis unreachable the input is still read to the end, so a malformed one is reported as
    /// such ([`AppError::Input`]) rather than as the Redis failure.
    pub async fn enqueue<R>(&self, run: CheckedRun, input: R, on_progress: impl Fn(u64)) -> Result<EnqueueSummary, AppError>
    where
        R: Read + Send + 'static,
    {
        let store = match self.store().await {
            Ok(store) => store,
            Err(unreachable) => {
                let format = run.request.format;
                let checked = tokio::task::spawn_blocking(move || read_items(input, format, |_| Ok(()))).await.expect("input check panicked");
                return Err(match checked {
                    Err(e) => AppError::Input(e),
                    Ok(0) => AppError::Empty,
                    Ok(_) => unreachable,
                });
            }
        };
        Ok(enqueue(store, run.request, input, on_progress).await?)
    }
}

pub(crate) fn parse_run(run: &str) -> Result<RunId, AppError> {
    RunId::parse(run).map_err(|e| AppError::InvalidArgument { what: "run id", value: run.to_owned(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_run() -> NewRun {
        NewRun {
            run_id: Some("r1".into()),
            action: "act".into(),
            tenant: None,
            idempotency_field: None,
            source: "x.json".into(),
            format: InputFormat::JsonArray,
            max_items: None,
            pause_on_failure_rate: None,
            failure_window: None,
        }
    }

    #[test]
    fn arguments_are_checked_before_anything_else() {
        let app = App::new(&Settings::default());
        let ok = app.check(new_run()).unwrap();
        assert_eq!(ok.run_id().as_str(), "r1");
        assert_eq!(ok.request.tenant, "default");
        let generated = app.check(NewRun { run_id: None, ..new_run() }).unwrap();
        assert!(RunId::parse(generated.run_id().as_str()).is_ok());
        let e = app.check(NewRun { run_id: Some("x{y".into()), ..new_run() }).unwrap_err().to_string();
        assert!(e.starts_with("invalid run id \"x{y\""), "{e}");
        let e = app.check(NewRun { tenant: Some("a b".into()), ..new_run() }).unwrap_err().to_string();
        assert!(e.starts_with("invalid tenant \"a b\""), "{e}");
        let e = app.check(NewRun { action: " ".into(), ..new_run() }).unwrap_err().to_string();
        assert!(e.contains("action"), "{e}");
        let e = app.check(NewRun { idempotency_field: Some("".into()), ..new_run() }).unwrap_err().to_string();
        assert!(e.contains("idempotency field"), "{e}");
    }

    #[tokio::test]
    async fn a_malformed_input_is_told_apart_when_redis_is_down() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let settings = Settings { redis_url: Some(format!("redis://:secret-pw@{closed}")), ..Settings::default() };
        let app = App::new(&settings);
        let run = app.check(new_run()).unwrap();
        let e = app.enqueue(run.clone(), std::io::Cursor::new(b"[1, oops".to_vec()), |_| {}).await.unwrap_err();
        assert!(matches!(e, AppError::Input(_)), "{e}");
        let e = app.enqueue(run, std::io::Cursor::new(b"[{\"a\": 1}]".to_vec()), |_| {}).await.unwrap_err();
        assert!(matches!(e, AppError::Unreachable { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("redis://:****@") && !text.contains("secret-pw"), "{text}");
    }
}
