//! End-to-end tests of the token cache and the execute path against a small axum stub of the
//! target API (token endpoint + execute endpoint) on 127.0.0.1:0.
//!
//! Token ageing is driven by a manual clock ([`Clock::manual`]), not by sleeping.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use cxrelay_cxone::{AuthConfig, AuthError, ClientConfig, Clock, ManualClock, Secret, TargetClient, TokenCache, TransportError};
use tokio::task::JoinSet;

const CLIENT_SECRET: &str = "sup3r-s3cret-VALUE";
const SCOPE: &str = "datapoint:actions:execute datapoint:actions:read";

#[derive(Default)]
struct Stub {
    token_calls: AtomicU64,
    execute_calls: AtomicU64,
    expires_in: AtomicU64,
    token_delay_ms: AtomicU64,
    /// Token endpoint answers 401 with a body echoing the client secret.
    token_fail: AtomicBool,
    /// Token endpoint answers 400 with a body echoing the request (Authorization header and
    /// body) and a stale `access_token`.
    token_echo: AtomicBool,
    /// Execute answers 401 to tokens `tok-N` with N below this.
    reject_below: AtomicU64,
    /// Execute always answers 401.
    always_401: AtomicBool,
    last_token_request: Mutex<Option<(HeaderMap, Bytes)>>,
    last_execute: Mutex<Option<(String, HeaderMap, Bytes)>>,
}

async fn token_endpoint(State(stub): State<Arc<Stub>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = stub.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
    *stub.last_token_request.lock().unwrap() = Some((headers.clone(), body.clone()));
    let delay = stub.token_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if stub.token_echo.load(Ordering::SeqCst) {
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        let sent = serde_json::to_string(&String::from_utf8_lossy(&body)).unwrap();
        let body = format!(
            r#"{{"error":"invalid_scope","error_description":"scope not allowed","access_token":"tok-stale","received":{{"authorization":"{authorization}","body":{sent}}}}}"#
        );
        return (StatusCode::BAD_REQUEST, body).into_response();
    }
    if stub.token_fail.load(Ordering::SeqCst) {
        let body = format!("{{\"error\":\"invalid_client\",\"detail\":\"bad secret {CLIENT_SECRET}\"}}");
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    let body = serde_json::json!({
        "access_token": format!("tok-{n}"),
        "token_type": "Bearer",
        "expires_in": stub.expires_in.load(Ordering::SeqCst),
    });
    axum::Json(body).into_response()
}

async fn execute_endpoint(State(stub): State<Arc<Stub>>, Path(action): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    stub.execute_calls.fetch_add(1, Ordering::SeqCst);
    *stub.last_execute.lock().unwrap() = Some((action.clone(), headers.clone(), body));
    match action.as_str() {
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            return StatusCode::OK.into_response();
        }
        "limited" => {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")], "x".repeat(5000)).into_response();
        }
        _ => {}
    }
    let token_no: u64 = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer tok-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if stub.always_401.load(Ordering::SeqCst) || token_no < stub.reject_below.load(Ordering::SeqCst) {
        return (StatusCode::UNAUTHORIZED, "{\"error\":\"invalid_token\"}").into_response();
    }
    // Echo the request's credentials back in an error, as some gateways do.
    if action == "echo-json" || action == "echo-text" {
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        let token = authorization.strip_prefix("Bearer ").unwrap_or("");
        if action == "echo-json" {
            let body = format!(
                r#"{{"error":"invalid_envelope","field":"inputs","access_token":"{token}","request":{{"headers":{{"Authorization":"{authorization}"}}}}}}"#
            );
            return (StatusCode::BAD_REQUEST, body).into_response();
        }
        let body = format!(
            "upstream rejected the request\nPOST /execute HTTP/1.1\nAuthorization: {authorization}\n\nerror=quota_exceeded access_token={token} echoed={token}"
        );
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    (StatusCode::OK, "{\"ok\":true}").into_response()
}

/// Starts the stub; returns its state and base URL.
async fn start_stub() -> (Arc<Stub>, String) {
    let stub = Arc::new(Stub { expires_in: AtomicU64::new(3600), ..Stub::default() });
    let app = Router::new()
        .route("/oauth/token", post(token_endpoint))
        .route("/api/v1/datapoint/actions/{action}/execute", post(execute_endpoint))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (stub, format!("http://{addr}"))
}

fn form_auth(base: &str) -> AuthConfig {
    AuthConfig::ClientCredentialsForm {
        token_url: format!("{base}/oauth/token"),
        client_id: "my-client".into(),
        client_secret: Secret::new(CLIENT_SECRET),
        scope: SCOPE.into(),
    }
}

fn json_auth(base: &str) -> AuthConfig {
    AuthConfig::ClientCredentialsJson {
        token_url: format!("{base}/oauth/token"),
        client_id: "my-client".into(),
        client_secret: Secret::new(CLIENT_SECRET),
        scope: SCOPE.into(),
    }
}

fn client(base: &str, auth: AuthConfig) -> TargetClient {
    TargetClient::new(ClientConfig::new(base, auth)).unwrap()
}

fn cache(auth: AuthConfig, margin: Duration) -> TokenCache {
    TokenCache::new(reqwest::Client::new(), auth, margin).unwrap()
}

/// A cache reading a manual clock, and the clock's handle.
fn manual_cache(auth: AuthConfig, margin: Duration) -> (TokenCache, Arc<ManualClock>) {
    let (clock, manual) = Clock::manual();
    let tokens = TokenCache::with_clock(reqwest::Client::new(), auth, margin, clock).unwrap();
    (tokens, manual)
}

fn body() -> bytes::Bytes {
    bytes::Bytes::from_static(br#"{"index":0,"action":"act-1","inputs":{"a":1}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_cache_100_concurrent_callers_cause_one_token_request() {
    let (stub, base) = start_stub().await;
    stub.token_delay_ms.store(100, Ordering::SeqCst);
    let tokens = cache(form_auth(&base), Duration::from_secs(30));
    let mut set = JoinSet::new();
    for _ in 0..100 {
        let tokens = tokens.clone();
        set.spawn(async move { tokens.token().await });
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        ids.push(r.unwrap().unwrap().id());
    }
    assert_eq!(ids.len(), 100);
    assert!(ids.iter().all(|&id| id == ids[0]));
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 1);
    assert_eq!(tokens.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_within_the_margin_and_not_before() {
    let (stub, base) = start_stub().await;
    stub.expires_in.store(31, Ordering::SeqCst);
    let (tokens, clock) = manual_cache(form_auth(&base), Duration::from_secs(30));
    let t1 = tokens.token().await.unwrap();
    assert_eq!(t1.refresh_at(), Some(clock.now() + Duration::from_secs(1)));
    assert_eq!(t1.expires_at(), Some(clock.now() + Duration::from_secs(31)));
    clock.advance(Duration::from_millis(999));
    let t2 = tokens.token().await.unwrap();
    assert_eq!(t1, t2, "still outside the margin: cached");
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_millis(1)); // exactly 30 s before expiry
    let t3 = tokens.token().await.unwrap();
    assert_ne!(t1, t3, "inside the margin: refreshed");
    assert_eq!(t3.secret().expose(), "tok-2");
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 2);
    assert_eq!(tokens.token().await.unwrap(), t3);
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_token_is_refreshed_30_s_before_expiry() {
    let (stub, base) = start_stub().await; // expires_in 3600
    let (tokens, clock) = manual_cache(form_auth(&base), cxrelay_cxone::DEFAULT_REFRESH_MARGIN);
    let t1 = tokens.token().await.unwrap();
    clock.advance(Duration::from_secs(3569));
    assert_eq!(tokens.token().await.unwrap(), t1);
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(1));
    let t2 = tokens.token().await.unwrap();
    assert_ne!(t2, t1);
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 2);
    // The new token's lifetime counts from its own request.
    clock.advance(Duration::from_secs(3569));
    assert_eq!(tokens.token().await.unwrap(), t2);
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lifetime_is_used_for_half_of_it() {
    let (stub, base) = start_stub().await;
    stub.expires_in.store(2, Ordering::SeqCst); // shorter than the 30 s margin
    let (tokens, clock) = manual_cache(form_auth(&base), Duration::from_secs(30));
    let t1 = tokens.token().await.unwrap();
    for _ in 0..10 {
        assert_eq!(tokens.token().await.unwrap(), t1);
    }
    clock.advance(Duration::from_millis(999));
    assert_eq!(tokens.token().await.unwrap(), t1);
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_millis(1)); // half of the 2 s lifetime
    assert_ne!(tokens.token().await.unwrap(), t1);
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_causes_one_refresh_and_one_retry() {
    let (stub, base) = start_stub().await;
    stub.reject_below.store(2, Ordering::SeqCst); // tok-1 is "expired" at the target
    let c = client(&base, form_auth(&base));
    let a = c.execute("act-1", "run1:0", body()).await;
    assert_eq!(a.status, Some(200), "{a:?}");
    assert!(a.is_success() && a.reauthenticated && !a.auth_failed);
    assert_eq!(a.error, None);
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 2);
    assert_eq!(stub.execute_calls.load(Ordering::SeqCst), 2);
    // The next call uses the fresh token directly.
    let a = c.execute("act-1", "run1:1", body()).await;
    assert_eq!((a.status, a.reauthenticated), (Some(200), false));
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 2);
    assert_eq!(stub.execute_calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_401_is_returned_after_one_retry() {
    let (stub, base) = start_stub().await;
    stub.always_401.store(true, Ordering::SeqCst);
    let c = client(&base, form_auth(&base));
    let a = c.execute("act-1", "run1:0", body()).await;
    assert_eq!(a.status, Some(401));
    assert!(a.reauthenticated && !a.auth_failed && !a.is_success());
    assert_eq!(a.error.as_deref(), Some("{\"error\":\"invalid_token\"}"));
    assert_eq!(stub.execute_calls.load(Ordering::SeqCst), 2);
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 2);
    assert_eq!(c.tokens().token_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_token_is_not_retried_on_401() {
    let (stub, base) = start_stub().await;
    stub.always_401.store(true, Ordering::SeqCst);
    let c = client(&base, AuthConfig::StaticBearer { token: Secret::new("tok-9") });
    let a = c.execute("act-1", "k", body()).await;
    assert_eq!((a.status, a.reauthenticated), (Some(401), false));
    assert_eq!(stub.execute_calls.load(Ordering::SeqCst), 1);
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_401s_cause_few_refreshes() {
    let (stub, base) = start_stub().await;
    stub.token_delay_ms.store(50, Ordering::SeqCst);
    let c = client(&base, form_auth(&base));
    c.tokens().token().await.unwrap(); // warm: tok-1
    stub.reject_below.store(2, Ordering::SeqCst); // now tok-1 is rejected
    let mut set = JoinSet::new();
    for i in 0..50 {
        let c = c.clone();
        set.spawn(async move { c.execute("act-1", &format!("run:{i}"), body()).await });
    }
    while let Some(r) = set.join_next().await {
        let a = r.unwrap();
        assert_eq!(a.status, Some(200), "{a:?}");
    }
    let refreshes = stub.token_calls.load(Ordering::SeqCst) - 1;
    assert!(refreshes <= 2, "{refreshes} refreshes");
    assert!(refreshes >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_sends_the_expected_headers_and_body() {
    let (stub, base) = start_stub().await;
    let c = client(&base, form_auth(&base));
    let a = c.execute("act 1/x", "run-7:42", body()).await;
    assert_eq!(a.status, Some(200), "{a:?}");
    let (action, headers, sent) = stub.last_execute.lock().unwrap().clone().unwrap();
    assert_eq!(action, "act 1/x", "action id is percent-encoded as one path segment");
    assert_eq!(headers["idempotency-key"], "run-7:42");
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["authorization"], "Bearer tok-1");
    assert_eq!(sent, body());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_token_request_has_basic_auth_and_form_body() {
    let (stub, base) = start_stub().await;
    let tokens = cache(form_auth(&base), Duration::from_secs(30));
    tokens.token().await.unwrap();
    let (headers, body) = stub.last_token_request.lock().unwrap().clone().unwrap();
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(headers["accept"], "application/json");
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("my-client:{CLIENT_SECRET}"));
    assert_eq!(headers["authorization"], format!("Basic {expected}").as_str());
    assert_eq!(std::str::from_utf8(&body).unwrap(), "grant_type=client_credentials&scope=datapoint%3Aactions%3Aexecute+datapoint%3Aactions%3Aread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_token_request_has_json_body_and_no_basic_auth() {
    let (stub, base) = start_stub().await;
    let tokens = cache(json_auth(&base), Duration::from_secs(30));
    assert_eq!(tokens.token().await.unwrap().secret().expose(), "tok-1");
    let (headers, body) = stub.last_token_request.lock().unwrap().clone().unwrap();
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.get("authorization").is_none());
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": "my-client",
            "client_secret": CLIENT_SECRET,
            "scope": SCOPE,
        })
    );
}

/// A port nothing listens on.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_connect_failure() {
    let base = closed_port().await;
    let c = client(&base, AuthConfig::StaticBearer { token: Secret::new("t") });
    let a = c.execute("act-1", "k", body()).await;
    assert_eq!(a.status, None);
    assert_eq!(a.transport, Some(TransportError::Connect), "{a:?}");
    assert!(!a.auth_failed);
    let err = a.error.unwrap();
    assert!(err.to_ascii_lowercase().contains("refused"), "{err}");
    assert!(err.chars().count() <= 300);

    // The token endpoint refusing connections is an auth failure with the transport class.
    let c = client(&base, form_auth(&base));
    let a = c.execute("act-1", "k", body()).await;
    assert!(a.auth_failed);
    assert_eq!((a.status, a.transport), (None, Some(TransportError::Connect)));
    assert!(a.error.unwrap().starts_with("token request failed: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_is_a_timeout() {
    let (_stub, base) = start_stub().await;
    let mut cfg = ClientConfig::new(&base, AuthConfig::StaticBearer { token: Secret::new("t") });
    cfg.request_timeout = Duration::from_millis(300);
    let c = TargetClient::new(cfg).unwrap();
    let a = c.execute("slow", "k", body()).await;
    assert_eq!((a.status, a.transport), (None, Some(TransportError::Timeout)), "{a:?}");
    assert!(a.latency >= Duration::from_millis(300) && a.latency < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_mid_request_is_a_reset() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            drop(sock); // close without answering
        }
    });
    let c = client(&base, AuthConfig::StaticBearer { token: Secret::new("t") });
    let a = c.execute("act-1", "k", body()).await;
    assert_eq!((a.status, a.transport), (None, Some(TransportError::Reset)), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_2xx_reports_retry_after_and_a_bounded_excerpt() {
    let (_stub, base) = start_stub().await;
    let c = client(&base, form_auth(&base));
    let a = c.execute("limited", "k", body()).await;
    assert_eq!(a.status, Some(429));
    assert_eq!(a.retry_after.as_deref(), Some("7"));
    let err = a.error.unwrap();
    assert_eq!(err.chars().count(), 300);
    assert!(err.ends_with('…'));
    assert_eq!(a.transport, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_is_not_hammered() {
    let (stub, base) = start_stub().await;
    stub.token_fail.store(true, Ordering::SeqCst);
    stub.token_delay_ms.store(50, Ordering::SeqCst);
    let (tokens, clock) = manual_cache(form_auth(&base), Duration::from_secs(30));
    let mut set = JoinSet::new();
    for _ in 0..20 {
        let tokens = tokens.clone();
        set.spawn(async move { tokens.token().await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().unwrap_err().status(), Some(401));
    }
    // Right after a failure, callers get the failure without a new request.
    assert!(tokens.token().await.is_err());
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 1);
    // Until the cooldown is over, even once the endpoint recovers.
    stub.token_fail.store(false, Ordering::SeqCst);
    clock.advance(cxrelay_cxone::FAILURE_COOLDOWN - Duration::from_millis(1));
    assert!(tokens.token().await.is_err());
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 1);
    // After the cooldown a token is obtained again.
    clock.advance(Duration::from_millis(1));
    assert!(tokens.token().await.is_ok());
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_debug_output_or_errors() {
    let (stub, base) = start_stub().await;
    let mut cfg = ClientConfig::new(&base, form_auth(&base));
    cfg.refresh_margin = Duration::from_secs(5);
    let dbg = format!("{cfg:?} {cfg:#?}");
    assert!(!dbg.contains(CLIENT_SECRET), "{dbg}");
    assert!(dbg.contains("***"));
    let static_cfg = ClientConfig::new(&base, AuthConfig::StaticBearer { token: Secret::new(CLIENT_SECRET) });
    assert!(!format!("{static_cfg:?}").contains(CLIENT_SECRET));
    let static_client = TargetClient::new(static_cfg).unwrap();
    let t = static_client.tokens().token().await.unwrap();
    assert!(!format!("{static_client:?} {t:?} {:?}", t.authorization()).contains(CLIENT_SECRET));

    let c = TargetClient::new(cfg).unwrap();
    let t = c.tokens().token().await.unwrap();
    let dbg = format!("{c:?} {t:?} {:?}", c.tokens());
    assert!(!dbg.contains("tok-1"), "{dbg}");

    // The token endpoint echoes the secret in its error body: it is redacted.
    stub.token_fail.store(true, Ordering::SeqCst);
    c.tokens().invalidate(&t);
    let a = c.execute("act-1", "k", body()).await;
    assert!(a.auth_failed);
    assert_eq!(a.status, Some(401));
    let err = a.error.clone().unwrap();
    assert!(err.starts_with("token request failed: token endpoint answered HTTP 401"), "{err}");
    assert!(!err.contains(CLIENT_SECRET), "{err}");
    assert!(err.contains("***"), "{err}");
    assert!(!format!("{a:?}").contains(CLIENT_SECRET));

    let e = TokenCache::new(reqwest::Client::new(), form_auth(&base), Duration::ZERO).unwrap().token().await.unwrap_err();
    assert!(matches!(e, AuthError::Rejected { status: 401, .. }));
    assert!(!e.to_string().contains(CLIENT_SECRET) && !format!("{e:?}").contains(CLIENT_SECRET));

    // Invalid configuration errors do not print the secret either.
    let bad = AuthConfig::ClientCredentialsJson {
        token_url: "::nope".into(),
        client_id: "id".into(),
        client_secret: Secret::new(CLIENT_SECRET),
        scope: String::new(),
    };
    let e = TargetClient::new(ClientConfig::new(&base, bad)).unwrap_err();
    assert!(!e.to_string().contains(CLIENT_SECRET) && !format!("{e:?}").contains(CLIENT_SECRET));

    // Refused connection to the token endpoint: no secret in the transport description.
    let closed = closed_port().await;
    let c = client(&closed, json_auth(&closed));
    let a = c.execute("act-1", "k", body()).await;
    assert!(!format!("{a:?}").contains(CLIENT_SECRET));
}

/// Asserts that an attempt's error names no credential: neither the token sent (`tok-N`), nor
/// the client secret, nor the Basic credentials built from it.
#[track_caller]
fn assert_no_credentials(a: &cxrelay_cxone::Attempt) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("my-client:{CLIENT_SECRET}"));
    let all = format!("{:?} {a:?}", a.error);
    for secret in ["tok-1", "tok-2", "tok-stale", CLIENT_SECRET, basic.as_str()] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execute_error_echoing_the_token_is_redacted() {
    let (_stub, base) = start_stub().await;
    let c = client(&base, form_auth(&base));

    // JSON body quoting the Authorization header and the token as `access_token`.
    let a = c.execute("echo-json", "k", body()).await;
    assert_eq!(a.status, Some(400));
    assert_no_credentials(&a);
    let err = a.error.clone().unwrap();
    assert!(err.starts_with(r#"{"error":"invalid_envelope","field":"inputs","access_token":"#), "{err}");
    assert!(err.contains(r#""Authorization":"[redacted]""#), "{err}");

    // Plain-text body with a header dump and logfmt pairs (a 5xx, retried by the caller).
    let a = c.execute("echo-text", "k", body()).await;
    assert_eq!(a.status, Some(503));
    assert_no_credentials(&a);
    let err = a.error.clone().unwrap();
    assert!(err.starts_with("upstream rejected the request POST /execute HTTP/1.1"), "{err}");
    assert!(err.contains("Authorization: [redacted]"), "{err}");
    assert!(err.contains("error=quota_exceeded"), "{err}");
    // The token sent is known, so it is replaced by value (`***`) wherever it appears, even in
    // a field with no secret-looking name.
    assert!(err.ends_with("access_token=*** echoed=***"), "{err}");

    // After a 401 and a refresh, the echoed token is the new one: redacted as well.
    let (stub, base) = start_stub().await;
    stub.reject_below.store(2, Ordering::SeqCst); // tok-1 is rejected, tok-2 echoed
    let c = client(&base, form_auth(&base));
    let a = c.execute("echo-text", "k", body()).await;
    assert_eq!((a.status, a.reauthenticated), (Some(503), true));
    assert_no_credentials(&a);
    assert!(a.error.unwrap().ends_with("echoed=***"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_error_echoing_the_request_is_redacted() {
    let (stub, base) = start_stub().await;
    stub.token_echo.store(true, Ordering::SeqCst);

    // Form profile: the client secret travels as Basic credentials, echoed back.
    let c = client(&base, form_auth(&base));
    let a = c.execute("act-1", "k", body()).await;
    assert!(a.auth_failed);
    assert_eq!(a.status, Some(400));
    assert_no_credentials(&a);
    let err = a.error.clone().unwrap();
    assert!(
        err.starts_with(
            r#"token request failed: token endpoint answered HTTP 400: {"error":"invalid_scope","error_description":"scope not allowed","access_token":"[redacted]""#
        ),
        "{err}"
    );
    assert!(err.contains(r#""authorization":"[redacted]""#), "{err}");
    assert!(err.contains("grant_type=client_credentials"), "{err}");
    assert_eq!(stub.execute_calls.load(Ordering::SeqCst), 0);

    // JSON profile: the client secret travels in the body, echoed back as a JSON string.
    let tokens = cache(json_auth(&base), Duration::from_secs(30));
    let e = tokens.token().await.unwrap_err();
    assert!(matches!(e, AuthError::Rejected { status: 400, .. }), "{e:?}");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
    assert!(!shown.contains("tok-stale"), "{shown}");
    assert!(shown.contains("invalid_scope"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_urls_are_shown_redacted() {
    let e =
        TargetClient::new(ClientConfig::new("ftp://user:url-pw@api.example.com", AuthConfig::StaticBearer { token: Secret::new("t") })).unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("url-pw"), "{shown}");
    assert!(shown.contains("ftp://user:[redacted]@api.example.com"), "{shown}");

    let e = TargetClient::new(ClientConfig::new(
        "https://api.example.com",
        AuthConfig::ClientCredentialsForm {
            token_url: "ftp://auth.example.com/token?client_secret=url-pw".into(),
            client_id: "id".into(),
            client_secret: Secret::new(CLIENT_SECRET),
            scope: String::new(),
        },
    ))
    .unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("url-pw"), "{shown}");
    assert!(shown.contains("client_secret=[redacted]"), "{shown}");
}
