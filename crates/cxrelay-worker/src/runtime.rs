//! The worker process: an apalis `Monitor` running one worker with N items in flight on our
//! Redis Streams backend, until a shutdown signal; then it stops fetching, lets in-flight items
//! finish (up to the shutdown timeout), flushes their checkpoints and returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_core::error::BoxDynError;
use cxrelay_core::config::Settings;
use cxrelay_cxone::TargetClient;
use cxrelay_queue::{Checkpoint, FleetLimits, ItemJob, StreamBackend};

use crate::gate::Gate;
use crate::handler::ItemHandler;
use crate::setup::{client_config, gate_config, stream_config};

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The HTTP client could not be built from the settings.
    #[error("target client: {0}")]
    Client(#[from] cxrelay_cxone::ClientError),
    /// The settings do not describe a usable target (a profile's required setting is missing).
    #[error("{0}")]
    Config(String),
    /// The apalis monitor failed.
    #[error("worker runtime: {0}")]
    Runtime(String),
}

async fn handle(job: ItemJob, handler: Data<Arc<ItemHandler>>) -> Result<Checkpoint, BoxDynError> {
    Ok(handler.handle(&job).await)
}

/// Samples what no single item reports into the metrics, every few seconds: token requests,
/// the breaker as this process sees it, and the tenant's load ([`cxrelay_queue::load`]). Once a
/// minute it also puts back on the active list any active run missing from it (a replay or a
/// resume whose process died between its script and listing the run).
fn observe(handler: Arc<ItemHandler>, store: cxrelay_queue::Store, tenant: String, assumed: cxrelay_queue::load::Assumed) {
    use cxrelay_core::metric;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            ticks += 1;
            if ticks % 30 == 1 {
                relist_active_runs(&store, &tenant).await;
            }
            metrics::counter!(metric::TOKEN_REFRESHES).absolute(handler.client().tokens().token_requests());
            metrics::gauge!(metric::BREAKER_OPEN, "tenant" => tenant.clone()).set(if handler.gate().breaker_open() { 1.0 } else { 0.0 });
            match cxrelay_queue::load::sample(&store, handler.gate().limits(), &tenant, assumed).await {
                Ok(sample) => cxrelay_queue::load::record(&tenant, &sample),
                Err(e) => tracing::debug!(error = %e, "could not sample the tenant's load; will retry"),
            }
        }
    });
}

/// Lists again the tenant's active runs that are missing from its active set.
async fn relist_active_runs(store: &cxrelay_queue::Store, tenant: &str) {
    let (Ok(listed), Ok(active)) = (store.listed_runs(tenant).await, store.active_runs(tenant).await) else { return };
    for id in listed.iter().filter(|id| !active.contains(id)) {
        let Ok(run) = cxrelay_core::RunId::parse(id) else { continue };
        if let Ok(Some(cxrelay_core::report::RunStatus::Active)) = store.run_status(&run).await {
            tracing::info!(run = %id, "an active run was missing from the active list; listing it again");
            let _ = store.activate(tenant, &run).await;
        }
    }
}

/// Runs a worker process until `shutdown` resolves.
pub async fn run_worker<F>(settings: &Settings, shutdown: F) -> Result<(), WorkerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let target = cxrelay_core::profile::resolve(settings).map_err(|e| WorkerError::Config(e.to_string()))?;
    let client = TargetClient::new(client_config(&target))?;
    let config = stream_config(settings);
    let backend = StreamBackend::connect(config.clone()).await;
    let limits = FleetLimits::new(backend.store().conn(), config.store.keys.clone(), &settings.target.tenant);
    let gate = Gate::new(limits, gate_config(settings, &target));
    // Webhook deliveries run beside the items, on tasks of their own.
    crate::webhooks::Dispatcher::new(backend.store().clone(), &config.tenant, &config.consumer, config.lease, &settings.webhooks).spawn();
    let exports = crate::export::ExportConfig::new(settings, &target);
    crate::export::spawn_watch(backend.store().clone(), client.clone(), exports.clone(), config.tenant.clone());
    let exports = crate::export::Exports { store: backend.store().clone(), config: exports };
    let handler = Arc::new(ItemHandler::new(client, gate, settings.retry.policy(), &target, config.max_redeliveries).with_exports(exports));
    observe(handler.clone(), backend.store().clone(), config.tenant.clone(), cxrelay_queue::load::Assumed::from_settings(settings));
    let concurrency = settings.worker.concurrency;
    tracing::info!(
        consumer = %config.consumer,
        tenant = %config.tenant,
        namespace = config.store.keys.namespace(),
        concurrency,
        lease_ms = config.lease.as_millis() as u64,
        "worker started"
    );
    let name = config.consumer.clone();
    Monitor::new()
        .register(move |i| {
            WorkerBuilder::new(format!("{name}-{i}")).backend(backend.clone()).concurrency(concurrency).data(handler.clone()).build(handle)
        })
        // A worker only ends on a backend error, which ours never raises; if apalis ends one
        // anyway, start it again rather than leave the process idle.
        .should_restart(|ctx, err| {
            tracing::error!(worker = %ctx.name(), error = %err, "worker stopped with an error; restarting it");
            true
        })
        .shutdown_timeout(Duration::from_millis(settings.worker.shutdown_timeout_ms))
        .run_with_signal(async move {
            shutdown.await;
            tracing::info!("shutdown requested: no new items; finishing the ones in flight");
            Ok(())
        })
        .await
        .map_err(|e| WorkerError::Runtime(e.to_string()))?;
    tracing::info!("worker stopped");
    Ok(())
}
