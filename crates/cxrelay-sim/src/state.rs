//! Shared state of one simulator instance, handed to every handler as `Arc<SimState>`.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::auth::TokenStore;
use crate::callback::CallbackSender;
use crate::config::{sanitize, FaultUpdate, Faults, SimConfig};
use crate::directive::FailCounts;
use crate::error::SimError;
use crate::export_settings::ExportSettings;
use crate::export_store::ExportStore;
use crate::jwt::JwtSigner;
use crate::ledger::LedgerStore;
use crate::report_jobs::ReportJobs;
use crate::reqlog::RequestLog;
use crate::stats::{ArrivalLog, Counters, SimClock};
use crate::webhooks::WebhookReceiver;

/// Everything the handlers share; counters are atomics, maps are locked only briefly.
pub(crate) struct SimState {
    pub config: SimConfig,
    /// `http://IP:PORT` of this instance, known once bound (discovery documents and tokens name it).
    pub base_url: String,
    pub clock: SimClock,
    pub tokens: TokenStore,
    pub counters: Counters,
    pub ledger: LedgerStore,
    pub arrivals: ArrivalLog,
    /// Failures answered so far per idempotency key for `_sim.fail_times` directives.
    pub fail_counts: FailCounts,
    /// The Standard Webhooks receiver behind `/_sim/webhooks`.
    pub webhooks: WebhookReceiver,
    /// The request log behind `/_sim/requests`.
    pub requests: RequestLog,
    /// Signs the JWTs of `/auth/token`.
    pub jwt: JwtSigner,
    /// Export executions, their statistics and settings.
    pub exports: ExportStore,
    /// Sends export completion callbacks.
    pub callbacks: CallbackSender,
    /// CXone report jobs.
    pub report_jobs: ReportJobs,
    faults: RwLock<Arc<Faults>>,
}

impl SimState {
    pub fn new(config: SimConfig, base_url: String) -> SimState {
        let faults = Faults::from_config(&config);
        let webhooks = WebhookReceiver::new(config.webhook_secret.as_ref());
        SimState {
            base_url,
            requests: RequestLog::new(config.log_requests),
            jwt: JwtSigner::new(),
            exports: ExportStore::new(ExportSettings::from_config(&config)),
            callbacks: CallbackSender::new(config.export_callback_secret.as_ref()),
            report_jobs: ReportJobs::default(),
            config,
            clock: SimClock::new(),
            tokens: TokenStore::default(),
            counters: Counters::default(),
            ledger: LedgerStore::default(),
            arrivals: ArrivalLog::default(),
            fail_counts: FailCounts::default(),
            webhooks,
            faults: RwLock::new(Arc::new(faults)),
        }
    }

    /// Current fault settings (a cheap `Arc` clone; the lock is released at once).
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies a validated update and returns the new effective settings.
    pub fn try_update_faults(&self, u: &FaultUpdate) -> Result<FaultUpdate, SimError> {
        let now = Instant::now();
        let mut guard = self.faults.write().unwrap_or_else(|e| e.into_inner());
        let next = guard.apply(u, now)?;
        let effective = next.effective(now);
        *guard = Arc::new(next);
        Ok(effective)
    }

    /// Applies an update after clamping it into range; never fails.
    pub fn update_faults(&self, u: FaultUpdate) -> FaultUpdate {
        let u = sanitize(u);
        match self.try_update_faults(&u) {
            Ok(effective) => effective,
            Err(e) => {
                tracing::warn!(error = %e, "fault update ignored");
                self.faults().effective(Instant::now())
            }
        }
    }

    /// Clears counters, ledger, arrivals, directive failure counts, received webhooks, the request
    /// log, export executions (pending callbacks are dropped) and report jobs (tokens, faults, export
    /// settings and the webhook down switch stay).
    pub fn reset(&self) {
        self.counters.reset();
        self.ledger.clear();
        self.arrivals.clear();
        self.fail_counts.clear();
        self.webhooks.reset();
        self.requests.clear();
        self.exports.reset();
        self.report_jobs.clear();
    }
}
