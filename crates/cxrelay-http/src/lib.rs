//! The HTTP API of cxrelay (`cxrelay serve`): the same application API as the CLI
//! ([`cxrelay_app::App`]) over axum, under `/v1`, with bearer tokens and roles ([`auth`]), one
//! error shape ([`error`]), bounded JSON bodies and request timeouts; run bodies are streamed
//! through the producer, never buffered whole. Stateless: every replica serves the same Redis.

#![warn(missing_docs)]

pub mod auth;
pub mod error;
mod routes;

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

use crate::auth::{Role, Tokens};
use crate::error::ApiError;

/// What every handler shares.
pub struct ApiState {
    /// The application API.
    pub app: App,
    /// The accepted tokens.
    pub tokens: Tokens,
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

/// The router for `settings` (also what the tests drive).
pub fn router(settings: &Settings) -> Result<Router, ServeError> {
    let tokens = Tokens::parse(&settings.serve.api_tokens).map_err(ServeError::Tokens)?;
    if tokens.is_empty() {
        tracing::warn!("no API tokens configured (CXRELAY_API_TOKENS): every /v1 request will be refused");
    }
    let state: Shared = Arc::new(ApiState { app: App::new(settings), tokens });
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
        .layer(DefaultBodyLimit::max(settings.serve.max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout));
    // A run body is streamed to the producer however large it is, and takes as long as it takes.
    let ingest = Router::new().route("/v1/runs", post(routes::create_run)).layer(DefaultBodyLimit::disable());
    Ok(limited
        .merge(ingest)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(routes::ready))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see /v1/runs") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state))
}

/// Serves until `shutdown` resolves.
pub async fn serve(settings: &Settings, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    let router = router(settings)?;
    let addr = settings.serve.addr.clone();
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|source| ServeError::Bind { addr: addr.clone(), source })?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    tracing::info!(addr = %local, "serving the HTTP API on http://{local}");
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await.map_err(|source| ServeError::Bind { addr: local, source })
}

/// The role an operation needs, by method and path (health and readiness need none).
fn needed(method: &axum::http::Method, path: &str) -> Option<Role> {
    if !path.starts_with("/v1/") {
        return None;
    }
    Some(match (method.as_str(), path) {
        ("POST", "/v1/runs") => Role::Ingest,
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
        tracing::info!(path = %request.uri().path(), "refused a request without a valid API token");
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid API token is required: Authorization: Bearer TOKEN").into_response();
    };
    if !role.allows(need) {
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("this token's role is {}; this needs {}", role.as_str(), need.as_str()))
            .into_response();
    }
    next.run(request).await
}
