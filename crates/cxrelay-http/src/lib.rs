//! The HTTP API of cxrelay (`cxrelay serve`): the same application API as the CLI
//! ([`cxrelay_app::App`]) over axum, under `/v1`, with bearer tokens and roles ([`auth`]), one
//! error shape ([`error`]), bounded JSON bodies and request timeouts; run bodies are streamed
//! through the producer, never buffered whole. Stateless: every replica serves the same Redis.

#![warn(missing_docs)]

pub mod auth;
mod dashboard;
pub mod error;
mod exports;
pub mod openapi;
mod routes;
pub mod session;

pub use metrics_exporter_prometheus::PrometheusHandle as MetricsHandle;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cxrelay_app::App;
use cxrelay_core::config::Settings;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::auth::{Role, Tokens};
use crate::error::ApiError;

/// What every handler shares.
pub struct ApiState {
    /// The application API.
    pub app: App,
    /// The accepted tokens.
    pub tokens: Tokens,
    /// Signs dashboard sessions and CSRF tokens.
    pub signer: session::Signer,
    /// The attributes of the session cookie (`Secure` when served over TLS).
    pub cookie_attributes: &'static str,
}

/// Shared handler state.
pub type Shared = Arc<ApiState>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `serve.api_tokens` is malformed.
    #[error("{0} (CXRELAY_API_TOKENS)")]
    Tokens(String),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Installs the process's Prometheus recorder, with the explicit buckets of
/// [`metric::BUCKETS`](cxrelay_core::metric::BUCKETS) for every histogram.
pub fn install_metrics() -> PrometheusHandle {
    use cxrelay_core::metric::{Kind, ALL, BUCKETS};
    let handle = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .expect("the buckets are not empty")
        // A gauge no longer set (a finished run's completion) leaves the output after a
        // minute, so series do not pile up in a long-lived worker.
        .idle_timeout(metrics_util::MetricKindMask::GAUGE, Some(std::time::Duration::from_secs(60)))
        .install_recorder()
        .expect("one recorder per process");
    for (name, kind, help) in ALL {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
    handle
}

/// Binds a worker's probe and metrics address (before the worker starts: an address that cannot
/// be bound stops the worker with that error, instead of leaving it without probes).
pub async fn bind_probes(addr: &str) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr: addr.to_owned(), source })
}

/// A worker's probe and metrics server on `listener`: `/metrics`, `/healthz` and `/readyz`
/// (Redis reachable), until the process ends.
pub async fn serve_probes(settings: &Settings, listener: tokio::net::TcpListener, metrics: PrometheusHandle) -> Result<(), ServeError> {
    let app = Arc::new(App::new(settings));
    let router = Router::new().route("/metrics", get(move || std::future::ready(metrics.render()))).route("/healthz", get(|| async { "ok" })).route(
        "/readyz",
        get(move || {
            let app = app.clone();
            async move { app.ping().await.map(|_| "ready").map_err(ApiError::from) }
        }),
    );
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, router).await.map_err(|source| ServeError::Bind { addr, source })
}

/// The router for `settings` (also what the tests drive), with `/metrics` when given a handle.
pub fn router(settings: &Settings, metrics: Option<PrometheusHandle>) -> Result<Router, ServeError> {
    let tokens = Tokens::parse(&settings.serve.api_tokens).map_err(ServeError::Tokens)?;
    if tokens.is_empty() {
        tracing::warn!("no API tokens configured (CXRELAY_API_TOKENS): every /v1 request will be refused");
    }
    let signer = session::Signer::new(settings.serve.api_tokens.expose());
    let cookie_attributes =
        if settings.serve.secure_cookies { "Path=/; HttpOnly; Secure; SameSite=Strict" } else { "Path=/; HttpOnly; SameSite=Strict" };
    let state: Shared = Arc::new(ApiState { app: App::new(settings), tokens, signer, cookie_attributes });
    let timeout = Duration::from_millis(settings.serve.request_timeout_ms);
    let limited = Router::new()
        .route("/v1/runs", get(routes::list_runs))
        .route("/v1/runs/{id}", get(routes::report).delete(routes::purge))
        .route("/v1/runs/{id}/failed", get(routes::failed))
        .route("/v1/runs/{id}/items/{index}", get(routes::item))
        .route("/v1/runs/{id}/replay", post(routes::replay))
        .route("/v1/runs/{id}/pause", post(routes::pause))
        .route("/v1/runs/{id}/resume", post(routes::resume))
        .route("/v1/runs/{id}/cancel", post(routes::cancel))
        .route("/v1/runs/{id}/audit", get(routes::audit))
        .route("/v1/workers", get(routes::workers))
        .route("/v1/webhooks", get(routes::webhooks))
        .route("/v1/exports", get(exports::list).post(exports::create))
        .route("/v1/exports/{id}", get(exports::get_one))
        .route("/v1/callbacks/export", post(exports::callback))
        .route("/v1/callbacks/export/{secret}", post(exports::callback_at_secret_path))
        .layer(DefaultBodyLimit::max(settings.serve.max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout));
    // A run body is streamed to the producer however large it is, and takes as long as it takes.
    let ingest = Router::new().route("/v1/runs", post(routes::create_run)).layer(DefaultBodyLimit::disable());
    let mut router = limited
        .merge(ingest)
        .route("/healthz", get(routes::health))
        .route("/readyz", get(routes::ready))
        .route("/openapi.json", get(|| async { axum::Json(<openapi::ApiDoc as utoipa::OpenApi>::openapi()) }));
    // The dashboard: HTML, its own sign-in (a session cookie), no /v1 token; bounded like the API.
    let dashboard = Router::new()
        .route("/", get(dashboard::runs))
        .route("/login", get(dashboard::login_form).post(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .route("/runs/{id}", get(dashboard::run))
        .route("/runs/{id}/items/{index}", get(dashboard::item))
        .route("/runs/{id}/replay", post(dashboard::replay_confirm))
        .route("/runs/{id}/replay/confirm", post(dashboard::replay_do))
        .route("/runs/{id}/control", post(dashboard::control))
        .route("/workers", get(dashboard::workers))
        .route("/exports", get(dashboard::exports))
        .route("/webhooks", get(dashboard::webhooks))
        .layer(DefaultBodyLimit::max(settings.serve.max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout));
    router = router.merge(dashboard);
    if let Some(handle) = metrics {
        router = router.route("/metrics", get(move || std::future::ready(handle.render())));
    }
    Ok(router
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see /v1/runs") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(axum::middleware::from_fn(measure))
        .with_state(state))
}

/// Serves until `shutdown` resolves.
pub async fn serve(settings: &Settings, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    let router = router(settings, Some(install_metrics()))?;
    sample_tenant_load(App::new(settings));
    let addr = settings.serve.addr.clone();
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|source| ServeError::Bind { addr: addr.clone(), source })?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    tracing::info!(addr = %local, "serving the HTTP API on http://{local}");
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await.map_err(|source| ServeError::Bind { addr: local, source })
}

/// Samples the tenant's load into the tenant gauges every few seconds, so they exist while no
/// worker runs: what scales workers up from zero, and what the no-worker alert watches.
fn sample_tenant_load(app: App) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            match app.tenant_load().await {
                Ok(sample) => cxrelay_queue::load::record(app.tenant(), &sample),
                Err(e) => tracing::debug!(error = %e, "could not sample the tenant's load; will retry"),
            }
        }
    });
}

/// Counts every request by method, route (the pattern, never the run id in it) and status, and
/// records its latency.
async fn measure(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(cxrelay_core::metric::HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!(cxrelay_core::metric::HTTP_DURATION, "method" => method, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

/// The role an operation needs, by method and path (health and readiness need none).
fn needed(method: &axum::http::Method, path: &str) -> Option<Role> {
    if !path.starts_with("/v1/") {
        return None;
    }
    Some(match (method.as_str(), path) {
        // The target calls back with a signature (or a secret path), not an API token.
        ("POST", p) if p.starts_with("/v1/callbacks/") => return None,
        ("POST", "/v1/runs" | "/v1/exports") => Role::Ingest,
        ("GET" | "HEAD", _) => Role::Read,
        _ => Role::Operate,
    })
}

/// Checks the bearer token against the role the request needs: 401 without a valid token, 403
/// with a token of the wrong role. Tokens never reach a log.
async fn authenticate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let Some(need) = needed(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(role) = presented.and_then(|t| state.tokens.role_of(t)) else {
        metrics::counter!(cxrelay_core::metric::AUTH_FAILURES).increment(1);
        tracing::info!(path = %request.uri().path(), "refused a request without a valid API token");
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid API token is required: Authorization: Bearer TOKEN").into_response();
    };
    if !role.allows(need) {
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("this token's role is {}; this needs {}", role.as_str(), need.as_str()))
            .into_response();
    }
    next.run(request).await
}
