//! A tenant's load as Redis holds it, sampled into the tenant gauges that autoscaling and alerts
//! read: pending and delayed items, each active run's completion, live workers, the budget's
//! rate and ceiling, and the workers the tenant can use ([`cxrelay_core::capacity`]).
//!
//! Workers and `cxrelay serve` both sample it, so the gauges exist while no worker runs (an
//! autoscaler scaling from zero, an alert on a backlog nobody serves). Every process reports the
//! same tenant-wide values: aggregate them with `max`, never `sum`.

use cxrelay_core::capacity::{usable_workers, TenantLoad};
use cxrelay_core::{metric, now_ms, RunId};

use crate::limits::FleetLimits;
use crate::oncall::WorkerInfo;
use crate::store::{QueueError, Store};

/// One sample of a tenant's load.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadSample {
    /// What the usable-workers figure was computed from.
    pub load: TenantLoad,
    /// Items waiting for a retry or deferred.
    pub delayed: u64,
    /// Worker processes with a live heartbeat.
    pub workers_alive: u64,
    /// The budget's learned ceiling (requests/s), once one is known.
    pub ceiling: Option<f64>,
    /// Completion (0 to 1) of each active run.
    pub completions: Vec<(String, f64)>,
}

impl LoadSample {
    /// Worker processes the tenant can keep busy.
    pub fn usable_workers(&self) -> u64 {
        usable_workers(self.load)
    }
}

/// What a sample assumes where Redis does not say: the settings' side of the tenant.
#[derive(Clone, Copy, Debug)]
pub struct Assumed {
    /// Items per process while no worker is alive to say its own concurrency.
    pub concurrency: usize,
    /// The budget's rate before the budget has stored one (a fixed rate is never stored;
    /// discovery's start rate); `None`: no limit.
    pub rate: Option<f64>,
}

impl Assumed {
    /// From the settings (and the profile's default rate).
    pub fn from_settings(settings: &cxrelay_core::config::Settings) -> Self {
        use cxrelay_core::config::RateMode;
        let rate = match cxrelay_core::profile::rate_mode(settings) {
            RateMode::Unlimited => None,
            RateMode::Fixed(r) => Some(r),
            RateMode::Discover { initial, .. } => Some(initial),
        };
        Self { concurrency: settings.worker.concurrency, rate }
    }
}

/// Reads the tenant's load.
pub async fn sample(store: &Store, limits: &FleetLimits, tenant: &str, assumed: Assumed) -> Result<LoadSample, QueueError> {
    let (mut pending, mut delayed) = (0u64, 0u64);
    // The median latency of the runs, weighted by what each still has to do.
    let (mut weighted_ms, mut weight) = (0.0f64, 0.0f64);
    let mut completions = Vec::new();
    for id in store.active_runs(tenant).await? {
        let Ok(run) = RunId::parse(&id) else { continue };
        let Ok(report) = store.report(&run).await else { continue };
        pending += report.pending;
        if let Some(p50) = report.latency_p50_ms {
            let w = report.pending.max(1) as f64;
            weighted_ms += p50 * w;
            weight += w;
        }
        completions.push((id, report.completion_rate));
        delayed += store.delayed_items(&run).await.unwrap_or(0);
    }
    let now = now_ms();
    let live: Vec<WorkerInfo> = store
        .heartbeats(tenant)
        .await?
        .values()
        .filter_map(|json| serde_json::from_str::<WorkerInfo>(json).ok())
        .filter(|w| w.expires_ms > now)
        .collect();
    let concurrency = if live.is_empty() { assumed.concurrency } else { live.iter().map(|w| w.concurrency).sum::<usize>() / live.len() };
    let (stored, ceiling) = limits.budget_state().await?;
    let rate = stored.or(assumed.rate);
    let latency_ms = (weight > 0.0).then(|| weighted_ms / weight);
    Ok(LoadSample { load: TenantLoad { pending, rate, latency_ms, concurrency }, delayed, workers_alive: live.len() as u64, ceiling, completions })
}

/// Sets the tenant gauges from `sample`.
pub fn record(tenant: &str, sample: &LoadSample) {
    let t = || ("tenant", tenant.to_owned());
    metrics::gauge!(metric::PENDING, &[t()]).set(sample.load.pending as f64);
    metrics::gauge!(metric::DELAYED, &[t()]).set(sample.delayed as f64);
    metrics::gauge!(metric::WORKERS_ALIVE, &[t()]).set(sample.workers_alive as f64);
    metrics::gauge!(metric::WORKERS_USABLE, &[t()]).set(sample.usable_workers() as f64);
    if let Some(r) = sample.load.rate {
        metrics::gauge!(metric::RATE, &[t()]).set(r);
    }
    if let Some(c) = sample.ceiling {
        metrics::gauge!(metric::CEILING, &[t()]).set(c);
    }
    for (run, completion) in &sample.completions {
        // A run-level series (bounded by the active runs), not a per-item one.
        metrics::gauge!(metric::RUN_COMPLETION, "run" => run.clone()).set(*completion);
    }
}
