//! `StreamBackend`: our apalis backend on Redis Streams.
//!
//! It implements apalis-core's [`Persistence`] and drives it through [`Persisted`], so finished
//! tasks reach [`Persistence::handle_events`] in batches: one `checkpoint` script call per run
//! per batch records outcomes, updates counters and acknowledges (`XACK` + `XDEL`) together.
//!
//! Rules that keep a worker alive and the data exact:
//! - `fetch_next`, `handle_events` and `heartbeat` never return an error: a Redis error is
//!   logged and retried with backoff (apalis ends a worker on the first backend error).
//! - Items are decoded here, not by an apalis codec, so an undecodable entry cannot kill a
//!   worker: the codec is the identity.
//! - `fetch_next` returns an empty batch only while something is in flight; with nothing in
//!   flight it waits for work itself, blocking on Redis. After an empty batch `Persisted` parks
//!   the worker until something wakes it, and it drains finished tasks' events only when woken;
//!   a task that finished *during* the fetch will not wake it again. [`CompletionLayer`] counts
//!   finished tasks whose events are not drained yet, and `poll_next` wakes the worker itself
//!   when an empty fetch leaves such events behind.
//! - A spawned task renews the leases of in-flight entries every third of the lease, because
//!   `Persisted` only heartbeats between fetches; entries whose lease lapses (their worker died)
//!   are taken over by any worker with `XAUTOCLAIM`, no worker names involved.
//! - Fetches are sized to free concurrency plus a small prefetch, so one worker never hoards a run.
//! - Checkpoints run in the background (at most [`BACKGROUND_CHECKPOINTS`] at a time), so a slot
//!   that frees up waits for one fetch round trip at most, not for a checkpoint first. Their
//!   entries stay leased and pending until the checkpoint lands; closing waits for all of them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis_core::backend::codec::Codec;
use apalis_core::backend::finalize::Durable;
use apalis_core::backend::persistence::{Persisted, Persistence, State, TaskEvent, TaskPersistLayer};
use apalis_core::backend::{Backend, BackendConfig, WireFormatBackend};
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use cxrelay_core::now_ms;
use cxrelay_core::report::RunStatus;
use cxrelay_core::{ItemOutcome, OutcomeKind, RunId};
use tokio::sync::{oneshot, Semaphore};
use tokio_util::task::TaskTracker;

use crate::conn::{connect, RedisConn, RedisTarget};
use crate::job::{Checkpoint, ItemJob, RunMeta};
use crate::oncall::WorkerInfo;
use crate::store::{QueueError, Store, StoreOptions};

/// Checkpoint batches that may be written in the background at once; one more waits in
/// `handle_events`, which holds the worker back while Redis is slow (backpressure).
pub const BACKGROUND_CHECKPOINTS: u32 = 2;

/// A consumer idle this many leases and holding nothing belongs to a worker that is gone; runs
/// are checked for such consumers as often.
pub const PRUNE_EVERY_LEASES: u32 = 3;

/// How a worker uses the queue.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// Where Redis is.
    pub redis: RedisTarget,
    /// What the store writes: key layout (namespace), retention, history and audit lengths,
    /// webhook events wanted.
    pub store: StoreOptions,
    /// The tenant whose runs this worker delivers (and no other).
    pub tenant: String,
    /// Items in flight at most (the worker's concurrency); fetches never exceed what is free.
    pub concurrency: usize,
    /// Largest fetch.
    pub fetch_batch: usize,
    /// An unacknowledged delivery idle this long is taken over by another worker.
    pub lease: Duration,
    /// A delivery taken over more than this many times is failed as poison.
    pub max_redeliveries: u32,
    /// How long an idle worker blocks waiting for new items before looking again.
    pub idle_wait: Duration,
    /// Consumer name (unique per process): shows who holds what in `XPENDING`.
    pub consumer: String,
}

impl StreamConfig {
    /// Defaults for Redis at `redis` with `concurrency` items in flight.
    pub fn new(redis: RedisTarget, concurrency: usize) -> Self {
        Self {
            redis,
            store: StoreOptions::default(),
            tenant: "default".into(),
            concurrency,
            fetch_batch: 100,
            lease: Duration::from_millis(cxrelay_core::config::DEFAULT_LEASE_MS),
            max_redeliveries: 5,
            idle_wait: Duration::from_millis(200),
            consumer: default_consumer_name(),
        }
    }
}

/// `host-pid-startms`: unique per process and readable in `XPENDING`.
pub fn default_consumer_name() -> String {
    let host = hostname();
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("{host}-{}-{start}", std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "host".into())
}

/// The identity codec: jobs and checkpoints stay typed end to end, so decoding cannot fail.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl<T: Clone> Codec<T> for Identity {
    type Error = std::convert::Infallible;
    type Compact = T;
    fn encode(&self, val: &T) -> Result<T, Self::Error> {
        Ok(val.clone())
    }
    fn decode(&self, val: &T) -> Result<T, Self::Error> {
        Ok(val.clone())
    }
}

/// Runs this process knows, with when each was last checked for expired leases.
#[derive(Default)]
struct RunCache {
    runs: Vec<(Arc<RunMeta>, Instant)>,
    refreshed: Option<Instant>,
    cursor: usize,
}

/// Entries this process holds, per run, for lease renewal and release.
#[derive(Default)]
struct InFlight {
    by_run: HashMap<RunId, (Arc<RunMeta>, HashSet<String>)>,
}

struct Shared {
    config: StreamConfig,
    store: Store,
    /// Separate connection for blocking reads, so they never stall checkpoints.
    blocking: RedisConn,
    runs: Mutex<RunCache>,
    inflight: Mutex<InFlight>,
    /// Items fetched and not finished yet (running or buffered): what the fetch budget counts.
    unfinished: AtomicUsize,
    /// Permits for background checkpoints; all of them free means none is running.
    checkpoints: Arc<Semaphore>,
    renewer_started: AtomicBool,
    /// When this process last pruned dead consumers from each run's group.
    pruned: Mutex<HashMap<RunId, Instant>>,
    closing: AtomicBool,
    /// Tasks that finished and whose completion events were not drained yet.
    undrained: Arc<AtomicUsize>,
    /// Detached fetches and releases: closing waits for them, so entries fetched for a worker
    /// that is stopping are handed back before the process exits, not after a lease.
    background: TaskTracker,
}

/// apalis-core `Persistence` over Redis Streams (see the module docs).
#[derive(Clone)]
pub struct StreamPersistence {
    shared: Arc<Shared>,
}

/// The apalis backend handed to `WorkerBuilder::backend`.
pub struct StreamBackend {
    persist: Persisted<StreamPersistence>,
    config: StreamConfig,
    /// While closing: resolves once every background checkpoint has landed (in a `Mutex` only
    /// because apalis wants the backend `Sync`; it is reached through `&mut self`, never locked).
    checkpoints_landed: Option<Mutex<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl Clone for StreamBackend {
    fn clone(&self) -> Self {
        Self { persist: self.persist.clone(), config: self.config.clone(), checkpoints_landed: None }
    }
}

impl StreamBackend {
    /// Connects (retrying until Redis answers) and builds the backend.
    pub async fn connect(config: StreamConfig) -> Self {
        let mut delay = Duration::from_millis(100);
        let (store, blocking) = loop {
            let main = connect(&config.redis, Duration::from_secs(10)).await;
            let blocking = connect(&config.redis, config.idle_wait + Duration::from_secs(10)).await;
            match (main, blocking) {
                (Ok(m), Ok(b)) => {
                    break (Store::with_conn(m, config.store.clone()), b);
                }
                (Err(e), _) | (_, Err(e)) => {
                    let url = config.redis.masked();
                    tracing::warn!(error = %cxrelay_core::redact::redact(&e.to_string()), %url, "redis not reachable; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        let shared = Arc::new(Shared {
            config: config.clone(),
            store,
            blocking,
            runs: Mutex::default(),
            inflight: Mutex::default(),
            unfinished: AtomicUsize::new(0),
            checkpoints: Arc::new(Semaphore::new(BACKGROUND_CHECKPOINTS as usize)),
            renewer_started: AtomicBool::new(false),
            pruned: Mutex::default(),
            closing: AtomicBool::new(false),
            undrained: Arc::new(AtomicUsize::new(0)),
            background: TaskTracker::new(),
        });
        Self { persist: Persisted::new(StreamPersistence { shared }), config, checkpoints_landed: None }
    }

    /// The store the backend uses (shares its connection).
    pub fn store(&self) -> &Store {
        &self.persist.shared.store
    }
}

/// The receiving end of a detached fetch. Dropped before it took the answer (the worker is
/// stopping), it closes the channel and hands back whatever had already arrived.
struct Handoff {
    rx: Option<oneshot::Receiver<Result<Vec<ItemJob>, QueueError>>>,
    shared: Arc<Shared>,
}

impl Drop for Handoff {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        // After close() the sender's send fails (and it releases); an answer sent before is here.
        rx.close();
        if let Ok(Ok(jobs)) = rx.try_recv() {
            if !jobs.is_empty() {
                let shared = self.shared.clone();
                self.shared.background.spawn(async move { shared.release_jobs(jobs).await });
            }
        }
    }
}

impl Backend for StreamBackend {
    type Task = Task<ItemJob>;
    type Error = QueueError;

    fn poll_ready(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        self.persist.poll_ready(cx, worker, self.config.lease / 3)
    }

    fn poll_next(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        let poll = self.persist.poll_next(cx, worker);
        // An empty fetch parks the worker; if finished tasks' events wait to be drained, no
        // completion is coming to wake it, so wake it now and let poll_ready drain them.
        if poll.is_pending() && matches!(self.persist.state(), State::Ready) && self.persist.shared.undrained.load(Ordering::Acquire) > 0 {
            cx.waker().wake_by_ref();
        }
        poll
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        self.persist.shared.closing.store(true, Ordering::Relaxed);
        std::task::ready!(self.persist.poll_close(cx, worker))?;
        // The last events were checkpointed inline; earlier batches may still be in the background.
        let checkpoints = self.persist.shared.checkpoints.clone();
        let background = self.persist.shared.background.clone();
        let (store, tenant, consumer) = (self.persist.shared.store.clone(), self.config.tenant.clone(), self.config.consumer.clone());
        let landed = self.checkpoints_landed.get_or_insert_with(|| {
            Mutex::new(Box::pin(async move {
                // Taking every permit means no background checkpoint is left.
                let _all = checkpoints.acquire_many(BACKGROUND_CHECKPOINTS).await;
                // Fetches under way when the worker stopped hand their entries back.
                background.close();
                background.wait().await;
                // A stopped worker leaves the list at once, not when its heartbeat expires.
                let _ = store.forget_workers(&tenant, &[consumer]).await;
            }))
        });
        landed.get_mut().expect("close future").as_mut().poll(cx).map(Ok)
    }
}

impl BackendConfig for StreamBackend {
    type Args = ItemJob;
    type Id = String;
    type Kind = Durable;
    type Config = StreamConfig;
    type Layer = tower_layer::Stack<CompletionLayer, TaskPersistLayer<Identity, Checkpoint>>;

    fn config(&self) -> &Self::Config {
        &self.config
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        let persist = self.persist.layer(Identity, self.config.fetch_batch).persist_results(true);
        // CompletionLayer sits inside the persist layer: a task is counted just before its event
        // is sent, so the count never lags the events `handle_events` subtracts.
        tower_layer::Stack::new(CompletionLayer { undrained: self.persist.shared.undrained.clone() }, persist)
    }
}

impl WireFormatBackend for StreamBackend {
    type Codec = Identity;
    type Compact = ItemJob;
    fn codec(&self) -> &Self::Codec {
        &Identity
    }
}

/// Counts finished tasks whose completion events `handle_events` has not drained yet.
#[derive(Clone, Debug)]
pub struct CompletionLayer {
    undrained: Arc<AtomicUsize>,
}

impl<S> tower_layer::Layer<S> for CompletionLayer {
    type Service = CompletionService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CompletionService { inner, undrained: self.undrained.clone() }
    }
}

/// The service of [`CompletionLayer`].
#[derive(Clone, Debug)]
pub struct CompletionService<S> {
    inner: S,
    undrained: Arc<AtomicUsize>,
}

impl<S, Req> tower_service::Service<Req> for CompletionService<S>
where
    S: tower_service::Service<Req>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fut = self.inner.call(req);
        let undrained = self.undrained.clone();
        Box::pin(async move {
            let out = fut.await;
            undrained.fetch_add(1, Ordering::Release);
            out
        })
    }
}

/// Task id: run and entry, so a failed handler's delivery can still be found.
fn task_id(job: &ItemJob) -> TaskId {
    TaskId::String(format!("{}\u{1f}{}\u{1f}{}", job.run.run, job.entry_id, job.index))
}

fn parse_task_id(id: &TaskId) -> Option<(RunId, String, u64)> {
    let s = id.as_string()?;
    let mut parts = s.split('\u{1f}');
    let run = RunId::parse(parts.next()?).ok()?;
    let entry = parts.next()?.to_owned();
    let index = parts.next()?.parse().ok()?;
    Some((run, entry, index))
}

async fn backoff_sleep(delay: &mut Duration) {
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(Duration::from_secs(2));
}

impl Shared {
    /// Re-reads the active run list at most once a second.
    async fn refresh_runs(&self) -> Result<(), QueueError> {
        let fresh = self.runs.lock().expect("run cache").refreshed.is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        if fresh {
            return Ok(());
        }
        let tenant = &self.config.tenant;
        let ids = self.store.active_runs(tenant).await?;
        let known: HashSet<String> = self.runs.lock().expect("run cache").runs.iter().map(|(m, _)| m.run.to_string()).collect();
        let mut new_runs = Vec::new();
        for id in ids.iter().filter(|id| !known.contains(*id)) {
            let Ok(run) = RunId::parse(id) else {
                tracing::warn!(run = %id, "ignoring malformed run id in the active set");
                continue;
            };
            match self.store.run_meta(&run).await? {
                Some(meta) if &meta.tenant == tenant => new_runs.push(Arc::new(meta)),
                Some(meta) => {
                    tracing::warn!(run = %id, run_tenant = %meta.tenant, "a run of another tenant is listed under this tenant; skipping it")
                }
                // The run expired or was discarded; drop it from the active set.
                None => self.store.deactivate(tenant, id).await?,
            }
        }
        let listed: HashSet<&String> = ids.iter().collect();
        self.pruned.lock().expect("pruned").retain(|run, _| listed.contains(&run.to_string()));
        let mut cache = self.runs.lock().expect("run cache");
        cache.runs.retain(|(m, _)| listed.contains(&m.run.to_string()));
        let long_ago = Instant::now() - self.config.lease;
        cache.runs.extend(new_runs.into_iter().map(|m| (m, long_ago)));
        cache.refreshed = Some(Instant::now());
        Ok(())
    }

    /// One pass over the runs, starting at the rotation cursor: reclaim expired leases where due,
    /// then fetch new items, until `budget` deliveries are collected.
    async fn fetch_pass(&self, budget: usize) -> Result<Vec<ItemJob>, QueueError> {
        self.refresh_runs().await?;
        let (runs, start) = {
            let mut cache = self.runs.lock().expect("run cache");
            let n = cache.runs.len();
            let start = if n == 0 { 0 } else { cache.cursor % n };
            cache.cursor = cache.cursor.wrapping_add(1);
            (cache.runs.clone(), start)
        };
        let mut jobs = Vec::new();
        let consumer = &self.config.consumer;
        for k in 0..runs.len() {
            if jobs.len() >= budget {
                break;
            }
            let (meta, last_reclaim) = &runs[(start + k) % runs.len()];
            if last_reclaim.elapsed() >= self.config.lease / 4 {
                self.prune_if_due(meta).await;
                let asked = budget - jobs.len();
                let reclaimed = self.store.reclaim(meta, consumer, self.config.lease, asked).await?;
                // A full answer may leave more expired entries behind (a dead worker held more
                // than this worker has room for): the run stays due, so the next passes take the
                // rest first, as slots free up, instead of a quarter lease later.
                if reclaimed.len() < asked {
                    self.mark_reclaimed(&meta.run);
                }
                for d in reclaimed {
                    if d.redeliveries > 1 {
                        tracing::info!(run = %meta.run, index = d.index, redeliveries = d.redeliveries, "took over an item whose lease expired");
                    }
                    jobs.push(d.into_job(meta));
                }
            }
            if jobs.len() >= budget {
                break;
            }
            let fetched = self.store.fetch(meta, consumer, budget - jobs.len()).await?;
            match fetched.status {
                Some(RunStatus::Active) if fetched.nonce != meta.nonce => {
                    // The run id was reused (the old run expired, a new one was created) since this
                    // process read the run: its items must go out with the new run's keys.
                    let fresh = match self.store.run_meta(&meta.run).await? {
                        Some(m) => Arc::new(m),
                        None => continue,
                    };
                    tracing::info!(run = %meta.run, "the run id was reused; reading the new run");
                    let mut cache = self.runs.lock().expect("run cache");
                    if let Some(entry) = cache.runs.iter_mut().find(|(m, _)| m.run == meta.run) {
                        entry.0 = fresh.clone();
                    }
                    drop(cache);
                    jobs.extend(fetched.deliveries.into_iter().map(|d| d.into_job(&fresh)));
                }
                Some(RunStatus::Active) => jobs.extend(fetched.deliveries.into_iter().map(|d| d.into_job(meta))),
                // Not yet, or not now: looked at again on the next pass.
                Some(RunStatus::Loading | RunStatus::Paused) => {}
                Some(RunStatus::Finished | RunStatus::Cancelled) | None => {
                    // Finished, cancelled or gone: nothing more to deliver from it (a replay or a
                    // resume lists it again).
                    self.store.deactivate(&meta.tenant, meta.run.as_str()).await?;
                    self.runs.lock().expect("run cache").runs.retain(|(m, _)| m.run != meta.run);
                    // A replay or a resume may have made it active again between the fetch and
                    // the removal: then it goes back on the list (they list it before this reads).
                    if self.store.run_status(&meta.run).await? == Some(RunStatus::Active) {
                        self.store.activate(&meta.tenant, &meta.run).await?;
                    }
                }
            }
        }
        Ok(jobs)
    }

    /// Every few leases, removes consumers of dead workers from the run's group (see prune.lua).
    async fn prune_if_due(&self, meta: &RunMeta) {
        let every = self.config.lease * PRUNE_EVERY_LEASES;
        let due = {
            let mut pruned = self.pruned.lock().expect("pruned");
            let last = pruned.entry(meta.run.clone()).or_insert_with(Instant::now);
            let due = last.elapsed() >= every;
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            match self.store.prune_consumers(meta, every).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(run = %meta.run, removed = n, "removed consumers of workers that are gone"),
                Err(e) => tracing::warn!(run = %meta.run, error = %e, "could not prune consumers; will retry"),
            }
        }
    }

    /// [`fetch_pass`](Self::fetch_pass) on a task of its own: apalis drops a fetch that is under
    /// way when the worker shuts down, and entries Redis had already handed to this consumer would
    /// then sit unseen until their lease lapsed. Run apart, a fetch whose caller is gone hands its
    /// entries straight back to the fleet — whether the caller went before the fetch answered or
    /// after, while the answer waited in the channel ([`Handoff`]).
    async fn fetch_detached(self: Arc<Self>, budget: usize) -> Result<Vec<ItemJob>, QueueError> {
        let (tx, rx) = oneshot::channel();
        let shared = self.clone();
        self.background.spawn(async move {
            let fetched = shared.fetch_pass(budget).await;
            if let Err(Ok(orphans)) = tx.send(fetched) {
                shared.release_jobs(orphans).await;
            }
        });
        let mut handoff = Handoff { rx: Some(rx), shared: self };
        let fetched = handoff.rx.as_mut().expect("set above").await;
        handoff.rx = None;
        fetched.unwrap_or_else(|_| Ok(Vec::new()))
    }

    /// Says this worker is alive (`cxrelay workers`), until a lease from now.
    async fn heartbeat(&self, started_ms: u64) {
        let c = &self.config;
        let now = now_ms();
        let info = WorkerInfo {
            consumer: c.consumer.clone(),
            host: hostname(),
            pid: std::process::id(),
            tenant: c.tenant.clone(),
            concurrency: c.concurrency,
            in_flight: self.unfinished.load(Ordering::Relaxed),
            started_ms,
            last_seen_ms: now,
            expires_ms: now + c.lease.as_millis() as u64,
        };
        metrics::gauge!(cxrelay_core::metric::IN_FLIGHT, "tenant" => c.tenant.clone()).set(info.in_flight as f64);
        let json = serde_json::to_string(&info).expect("worker info serializes");
        if let Err(e) = self.store.heartbeat(&c.tenant, &c.consumer, &json).await {
            tracing::warn!(error = %e, "could not write the worker heartbeat; will retry");
        }
    }

    /// Hands fetched entries that will not run here back to the fleet at once.
    async fn release_jobs(&self, jobs: Vec<ItemJob>) {
        let mut by_run: HashMap<RunId, (Arc<RunMeta>, Vec<String>)> = HashMap::new();
        for job in jobs {
            by_run.entry(job.run.run.clone()).or_insert_with(|| (job.run.clone(), Vec::new())).1.push(job.entry_id);
        }
        for (run, (meta, ids)) in by_run {
            if let Err(e) = self.store.release(&meta, &self.config.consumer, &ids, self.config.lease).await {
                tracing::warn!(run = %run, error = %e, "could not release unstarted items; they return after the lease");
            }
            self.untrack(&run, ids);
        }
    }

    fn mark_reclaimed(&self, run: &RunId) {
        let mut cache = self.runs.lock().expect("run cache");
        if let Some(entry) = cache.runs.iter_mut().find(|(m, _)| &m.run == run) {
            entry.1 = Instant::now();
        }
    }

    /// Waits for new items without holding any: a short blocking read on one run's stream.
    async fn wait_for_work(&self) -> Result<(), QueueError> {
        let stream = {
            let cache = self.runs.lock().expect("run cache");
            cache.runs.get(cache.cursor % cache.runs.len().max(1)).map(|(m, _)| m.keys.items.clone())
        };
        match stream {
            Some(items) => {
                let _: redis::Value = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(1)
                    .arg("BLOCK")
                    .arg(self.config.idle_wait.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(items)
                    .arg("$")
                    .query_async(&mut self.blocking.clone())
                    .await?;
            }
            None => tokio::time::sleep(self.config.idle_wait).await,
        }
        Ok(())
    }

    fn track(&self, jobs: &[ItemJob]) {
        let mut inflight = self.inflight.lock().expect("inflight");
        for job in jobs {
            inflight.by_run.entry(job.run.run.clone()).or_insert_with(|| (job.run.clone(), HashSet::new())).1.insert(job.entry_id.clone());
        }
        self.unfinished.fetch_add(jobs.len(), Ordering::Relaxed);
    }

    /// `n` fetched items finished (or were handed back): they no longer count against fetches.
    fn finished(&self, n: usize) {
        let _ = self.unfinished.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(n)));
    }

    /// Stops renewing the leases of entries that were acknowledged or released.
    fn untrack(&self, run: &RunId, entry_ids: impl IntoIterator<Item = String>) {
        let mut inflight = self.inflight.lock().expect("inflight");
        if let Some((_, set)) = inflight.by_run.get_mut(run) {
            for id in entry_ids {
                set.remove(&id);
            }
            if set.is_empty() {
                inflight.by_run.remove(run);
            }
        }
    }

    /// Records each run's batch with one `checkpoint` call, retrying until Redis takes it.
    async fn checkpoint_batches(&self, by_run: HashMap<RunId, (Arc<RunMeta>, Vec<Checkpoint>)>) {
        for (run, (meta, batch)) in by_run {
            let mut delay = Duration::from_millis(50);
            let counts = loop {
                match self.store.checkpoint(&meta, &batch, &self.config.consumer).await {
                    Ok(c) => break c,
                    // The deliveries stay pending in Redis until this succeeds, so retrying is
                    // always safe; if the process dies meanwhile, another worker takes them over.
                    Err(e) => {
                        tracing::warn!(run = %run, error = %e, "checkpoint failed; retrying in {delay:?}");
                        backoff_sleep(&mut delay).await;
                    }
                }
            };
            if counts.run_finished {
                tracing::info!(run = %run, "run finished");
                if let Err(e) = self.store.deactivate(&meta.tenant, run.as_str()).await {
                    tracing::warn!(run = %run, error = %e, "could not remove finished run from the active set");
                }
            }
            self.untrack(&run, batch.into_iter().map(|cp| cp.entry_id));
        }
    }

    fn meta_of(&self, run: &RunId) -> Option<Arc<RunMeta>> {
        self.inflight.lock().expect("inflight").by_run.get(run).map(|(m, _)| m.clone())
    }

    /// Renews the leases of everything in flight, every third of the lease, until closed.
    fn start_renewer(self: &Arc<Self>) {
        if self.renewer_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        let period = self.config.lease / 3;
        let started_ms = now_ms();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                if shared.closing.load(Ordering::Relaxed) {
                    return;
                }
                shared.heartbeat(started_ms).await;
                let held: Vec<(Arc<RunMeta>, Vec<String>)> = {
                    let inflight = shared.inflight.lock().expect("inflight");
                    inflight.by_run.values().map(|(m, ids)| (m.clone(), ids.iter().cloned().collect())).collect()
                };
                for (meta, ids) in held {
                    if let Err(e) = shared.store.renew(&meta, &shared.config.consumer, &ids).await {
                        tracing::warn!(run = %meta.run, error = %e, "lease renewal failed; will retry");
                    }
                }
            }
        });
    }
}

impl Persistence for StreamPersistence {
    type Compact = ItemJob;
    type Response = Checkpoint;
    type Error = QueueError;

    async fn register(&mut self, _worker: &WorkerContext) -> Result<(), QueueError> {
        self.shared.start_renewer();
        Ok(())
    }

    async fn heartbeat(&mut self, _worker: &WorkerContext) -> Result<(), QueueError> {
        Ok(())
    }

    async fn fetch_next(&mut self, worker: &WorkerContext) -> Result<Vec<Task<ItemJob>>, QueueError> {
        let shared = &self.shared;
        let mut delay = Duration::from_millis(50);
        loop {
            if worker.is_shutting_down() || shared.closing.load(Ordering::Relaxed) {
                return Ok(Vec::new());
            }
            let inflight = shared.unfinished.load(Ordering::Relaxed);
            // A small prefetch (a quarter of the concurrency) waits in apalis's buffer, so a slot
            // that frees up starts its next item at once instead of after a fetch round trip;
            // more would hoard items another worker could run.
            let prefetch = (shared.config.concurrency / 4).max(1);
            let budget = (shared.config.concurrency + prefetch).saturating_sub(inflight).clamp(1, shared.config.fetch_batch);
            match shared.clone().fetch_detached(budget).await {
                Ok(jobs) if !jobs.is_empty() => {
                    shared.track(&jobs);
                    return Ok(jobs.into_iter().map(|job| TaskBuilder::new(job.clone()).task_id(task_id(&job)).build()).collect());
                }
                // Something is in flight: its completion wakes the worker, which fetches again.
                Ok(_) if inflight > 0 => return Ok(Vec::new()),
                Ok(_) => {
                    if let Err(e) = shared.wait_for_work().await {
                        tracing::warn!(error = %e, "waiting for work failed; retrying");
                        backoff_sleep(&mut delay).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fetch failed; retrying in {delay:?}");
                    backoff_sleep(&mut delay).await;
                }
            }
        }
    }

    async fn reenqueue_abandoned(&mut self, tasks: Vec<Task<ItemJob>>, _worker: &WorkerContext) -> Result<u64, QueueError> {
        // Fetched but never started (shutdown): hand them to the fleet now instead of after a lease.
        let shared = &self.shared;
        let count = tasks.len();
        shared.release_jobs(tasks.into_iter().map(|t| t.args).collect()).await;
        shared.finished(count);
        Ok(count as u64)
    }

    async fn handle_events(&mut self, events: Vec<TaskEvent<Checkpoint>>, _worker: &WorkerContext) -> Result<(), QueueError> {
        let shared = &self.shared;
        let completions = events.iter().filter(|e| matches!(e, TaskEvent::Complete(_))).count();
        // Every drained event was counted first (CompletionLayer runs inside the persist layer).
        let _ = shared.undrained.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(completions)));
        shared.finished(completions);
        let mut by_run: HashMap<RunId, (Arc<RunMeta>, Vec<Checkpoint>)> = HashMap::new();
        for event in events {
            let TaskEvent::Complete(result) = event else { continue };
            let cp = match result.result {
                Ok(cp) => cp,
                Err(error) => {
                    // The handler failed without an outcome (it should not): put the item back
                    // for a later try rather than lose or fail it.
                    let Some((run, entry_id, index)) = parse_task_id(&result.task_id) else { continue };
                    let Some(meta) = shared.meta_of(&run) else { continue };
                    tracing::error!(run = %run, index, %error, "handler failed without an outcome; deferring the item");
                    let outcome = ItemOutcome {
                        kind: OutcomeKind::Deferred { delay_ms: 1000 },
                        attempts: 0,
                        throttled: 0,
                        status: None,
                        class: Some(cxrelay_core::classify::FailureClass::Deferred),
                        latency_us: 0,
                        error: Some(cxrelay_core::outcome::error_text(&error.to_string())),
                    };
                    Checkpoint { run: meta, entry_id, index, outcome, fresh: false }
                }
            };
            by_run.entry(cp.run.run.clone()).or_insert_with(|| (cp.run.clone(), Vec::new())).1.push(cp);
        }
        if by_run.is_empty() {
            return Ok(());
        }
        if shared.closing.load(Ordering::Relaxed) {
            shared.checkpoint_batches(by_run).await;
            return Ok(());
        }
        // Waiting here while two batches are still being written holds the worker back.
        let permit = shared.checkpoints.clone().acquire_owned().await.expect("the checkpoint semaphore is never closed");
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.checkpoint_batches(by_run).await;
            drop(permit);
        });
        Ok(())
    }

    async fn push_tasks(&mut self, _tasks: Vec<Task<ItemJob>>) -> Result<(), QueueError> {
        Err(QueueError::Corrupt("items are enqueued through the producer, not pushed through apalis".into()))
    }
}
