//! The listener: binds, serves each connection with hyper's HTTP/1 server (so a handler can make its
//! connection task drop the socket with an RST), routes requests, and shuts down gracefully.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use crate::config::{FaultUpdate, SimConfig};
use crate::export_settings::{ExportSettings, ExportSettingsUpdate};
use crate::export_store::Exports;
use crate::ledger::Ledger;
use crate::reqlog::RequestRecord;
use crate::state::SimState;
use crate::stats::{Arrival, SimStats};
use crate::webhooks::{self, WebhookLog};
use crate::{admin, auth, cxone_auth, discovery, execute, exports, report_jobs, shape};

/// How long `shutdown` waits for in-flight requests before giving up on them.
const GRACE: Duration = Duration::from_secs(5);

/// Per-connection handle a handler uses to ask for the connection to be reset.
#[derive(Clone, Default)]
pub(crate) struct ConnHandle(Arc<Notify>);

impl ConnHandle {
    /// Asks the connection task to drop the socket with an RST and without answering.
    pub fn reset(&self) {
        self.0.notify_one();
    }
}

/// A running simulator; dropping it stops accepting connections (like [`SimServer::shutdown`] without waiting).
pub struct SimServer {
    addr: SocketAddr,
    state: Arc<SimState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl SimServer {
    /// Validates `config`, binds `addr` (port 0 picks a free port) and starts serving in the background.
    pub async fn start(config: SimConfig, addr: SocketAddr) -> io::Result<SimServer> {
        config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState::new(config, base_url(addr)));
        let router = router(state.clone());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, router, stopped));
        tracing::info!(%addr, "cxrelay-sim started");
        Ok(SimServer { addr, state, stop: Some(stop), task: Some(task) })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` to reach the simulator (loopback when bound to an unspecified address).
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Current counters.
    pub fn stats(&self) -> SimStats {
        self.state.counters.snapshot()
    }

    /// Every access token the simulator has issued (tests scan for leaks with it).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.tokens.issued()
    }

    /// Current idempotency ledger.
    pub fn ledger(&self) -> Ledger {
        self.state.ledger.snapshot()
    }

    /// Every execute request so far, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.arrivals.snapshot()
    }

    /// Applies a fault update; out-of-range values are clamped (use [`SimServer::try_set_faults`] to refuse them).
    pub fn set_faults(&self, f: FaultUpdate) {
        self.state.update_faults(f);
    }

    /// Applies a fault update, refusing out-of-range values; returns the effective settings.
    pub fn try_set_faults(&self, f: FaultUpdate) -> Result<FaultUpdate, crate::SimError> {
        self.state.try_update_faults(&f)
    }

    /// The effective fault settings.
    pub fn faults(&self) -> FaultUpdate {
        self.state.faults().effective(Instant::now())
    }

    /// Clears stats, ledger, arrivals, `_sim.fail_times` counts, received webhooks, the request log,
    /// export executions and report jobs (like `POST /_sim/reset`).
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Snapshot of the webhook receiver: received events in arrival order and its counters.
    pub fn webhooks(&self) -> WebhookLog {
        self.state.webhooks.snapshot()
    }

    /// Turns the webhook receiver's down switch on (every delivery gets 503) or off.
    pub fn set_webhooks_down(&self, down: bool) {
        self.state.webhooks.set_down(down);
    }

    /// `http://IP:PORT/_sim/webhooks`, the URL to send Standard Webhooks deliveries to.
    pub fn webhook_url(&self) -> String {
        format!("{}/_sim/webhooks", self.base_url())
    }

    /// The last 10,000 requests to the token, discovery, execute and export routes, oldest first
    /// (like `GET /_sim/requests`).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.requests.snapshot()
    }

    /// Export executions and their submission statistics (like `GET /_sim/exports`).
    pub fn exports(&self) -> Exports {
        self.state.exports.snapshot(Instant::now())
    }

    /// The export settings new submissions get.
    pub fn export_settings(&self) -> ExportSettings {
        self.state.exports.settings()
    }

    /// Changes the export settings for later submissions; returns the new settings.
    pub fn set_export_settings(&self, u: ExportSettingsUpdate) -> Result<ExportSettings, crate::SimError> {
        self.state.exports.update_settings(&u)
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s) and closes idle connections;
    /// pending export callbacks are not sent.
    pub async fn shutdown(mut self) {
        self.state.exports.invalidate();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "simulator accept task failed");
            }
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.state.exports.invalidate();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `http://IP:PORT` for a bound address (loopback when bound to an unspecified address).
fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// All routes of the simulator.
fn router(state: Arc<SimState>) -> Router {
    Router::new()
        // The tutorials' shape.
        .route("/oauth/token", post(auth::token))
        .route("/api/v1/datapoint/actions/{action_id}/execute", post(execute::execute))
        .route("/api/v2/dataprep/dataactions/{data_action_id}/executions", post(exports::submit))
        .route("/api/v2/dataprep/dataactions/{data_action_id}/executions/{execution_id}", get(exports::status))
        // Real NICE CXone.
        .route("/.well-known/openid-configuration", get(discovery::openid))
        .route("/.well-known/cxone-configuration", get(discovery::cxone))
        .route("/auth/token", post(cxone_auth::token))
        .route("/incontactapi/services/{version}/data-actions/{action_id}/execute", post(shape::cxone_execute))
        // The same segment is a report id for POST and a job id for GET.
        .route("/incontactapi/services/{version}/report-jobs/{id}", post(report_jobs::submit).get(report_jobs::status))
        // Genesys Cloud.
        .route("/api/v2/integrations/actions/{action_id}/execute", post(shape::genesys_execute))
        // Simulator controls.
        .route("/_sim/requests", get(admin::requests))
        .route("/_sim/exports", get(exports::snapshot))
        .route("/_sim/exports/settings", get(exports::get_settings).post(exports::set_settings))
        .route("/_sim/exports/{execution_id}/callback", post(exports::resend))
        .route("/_sim/report-jobs/{job_id}/file", get(report_jobs::file))
        .route("/_sim/stats", get(admin::stats))
        .route("/_sim/ledger", get(admin::ledger))
        .route("/_sim/arrivals", get(admin::arrivals))
        .route("/_sim/faults", get(admin::get_faults).post(admin::set_faults))
        .route("/_sim/reset", post(admin::reset))
        .route("/_sim/webhooks", get(webhooks::log).post(webhooks::receive))
        .route("/_sim/webhooks/down", post(webhooks::down))
        .route("/_sim/webhooks/up", post(webhooks::up))
        .with_state(state)
}

async fn accept_loop(listener: TcpListener, router: Router, mut stopped: oneshot::Receiver<()>) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => serve_connection(stream, router.clone(), &graceful),
                Err(e) => {
                    // Typically EMFILE; back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            // A send or a dropped sender both mean stop.
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("simulator shutdown: connections still busy after grace period");
    }
}

/// Spawns the task serving one connection.
fn serve_connection(stream: TcpStream, router: Router, graceful: &GracefulShutdown) {
    let _ = stream.set_nodelay(true);
    // A second descriptor of the same socket lets us set SO_LINGER 0 after hyper owns the stream.
    let (stream, control) = match split_control(stream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "cannot prepare connection");
            return;
        }
    };
    let handle = ConnHandle::default();
    let for_requests = handle.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(for_requests.clone());
        let router = router.clone();
        async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|never| match never {})) }
    });
    let conn = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        tokio::select! {
            biased;
            () = handle.0.notified() => {
                if let Err(e) = socket2::SockRef::from(&control).set_linger(Some(Duration::ZERO)) {
                    tracing::debug!(error = %e, "cannot set SO_LINGER 0; connection closes with FIN");
                }
            }
            res = conn => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with error");
                }
            }
        }
        // Dropping both descriptors closes the socket (with RST when linger was set to 0).
        drop(control);
    });
}

/// Returns the stream plus a duplicate descriptor of the same socket for socket options.
fn split_control(stream: TcpStream) -> io::Result<(TcpStream, std::net::TcpStream)> {
    let std_stream = stream.into_std()?;
    let control = std_stream.try_clone()?;
    Ok((TcpStream::from_std(std_stream)?, control))
}
