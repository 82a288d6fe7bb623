//! End-to-end tests of the token cache and the execute path against a small axum stub of the
//! target API (token endpoint + execute endpoint) on 127.0.0.1:0.

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
use cxrelay_cxone::{
    AuthConfig, AuthError, ClientConfig, Secret, TargetClient, TokenCache, TransportError,
};
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
    /// Execute answers 401 to tokens `tok-N` with N below this.
    reject_below: AtomicU64,
    /// Execute always answers 401.
    always_401: AtomicBool,
    last_token_request: Mutex<Option<(HeaderMap, Bytes)>>,
    last_execute: Mutex<Option<(String, HeaderMap, Bytes)>>,
}

async fn token_endpoint(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = stub.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
    *stub.last_token_request.lock().unwrap() = Some((headers, body));
    let delay = stub.token_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if stub.token_fail.load(Ordering::SeqCst) {
        let body =
            format!("{{\"error\":\"invalid_client\",\"detail\":\"bad secret {CLIENT_SECRET}\"}}");
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    let body = serde_json::json!({
        "access_token": format!("tok-{n}"),
        "token_type": "Bearer",
        "expires_in": stub.expires_in.load(Ordering::SeqCst),
    });
    axum::Json(body).into_response()
}

async fn execute_endpoint(
    State(stub): State<Arc<Stub>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    stub.execute_calls.fetch_add(1, Ordering::SeqCst);
    *stub.last_execute.lock().unwrap() = Some((action.clone(), headers.clone(), body));
    match action.as_str() {
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            return StatusCode::OK.into_response();
        }
        "limited" => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "7")],
                "x".repeat(5000),
            )
                .into_response();
        }
        _ => {}
    }
    let token_no: u64 = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer tok-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if stub.always_401.load(Ordering::SeqCst) || token_no < stub.reject_below.load(Ordering::SeqCst)
    {
        return (StatusCode::UNAUTHORIZED, "{\"error\":\"invalid_token\"}").into_response();
    }
    (StatusCode::OK, "{\"ok\":true}").into_response()
}

/// Starts the stub; returns its state and base URL.
async fn start_stub() -> (Arc<Stub>, String) {
    let stub = Arc::new(Stub {
        expires_in: AtomicU64::new(3600),
        ..Stub::default()
    });
    let app = Router::new()
        .route("/oauth/token", post(token_endpoint))
        .route(
            "/api/v1/datapoint/actions/{action}/execute",
            post(execute_endpoint),
        )
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
    let tokens = cache(form_auth(&base), Duration::from_secs(30));
    let t1 = tokens.token().await.unwrap();
    let t2 = tokens.token().await.unwrap();
    assert_eq!(t1, t2, "still outside the margin: cached");
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t3 = tokens.token().await.unwrap();
    assert_ne!(t1, t3, "inside the margin: refreshed");
    assert_eq!(t3.secret().expose(), "tok-2");
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 2);
    assert_eq!(tokens.token().await.unwrap(), t3);
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lifetime_is_used_for_half_of_it() {
    let (stub, base) = start_stub().await;
    stub.expires_in.store(2, Ordering::SeqCst); // shorter than the 30 s margin
    let tokens = cache(form_auth(&base), Duration::from_secs(30));
    let t1 = tokens.token().await.unwrap();
    for _ in 0..10 {
        assert_eq!(tokens.token().await.unwrap(), t1);
    }
    assert_eq!(stub.token_calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
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
    let c = client(
        &base,
        AuthConfig::StaticBearer {
            token: Secret::new("tok-9"),
        },
    );
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
    assert_eq!(
        action, "act 1/x",
        "action id is percent-encoded as one path segment"
    );
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
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("my-client:{CLIENT_SECRET}"));
    assert_eq!(
        headers["authorization"],
        format!("Basic {expected}").as_str()
    );
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        "grant_type=client_credentials&scope=datapoint%3Aactions%3Aexecute+datapoint%3Aactions%3Aread"
    );
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
    let c = client(
        &base,
        AuthConfig::StaticBearer {
            token: Secret::new("t"),
        },
    );
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
    assert_eq!(
        (a.status, a.transport),
        (None, Some(TransportError::Connect))
    );
    assert!(a.error.unwrap().starts_with("token request failed: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_is_a_timeout() {
    let (_stub, base) = start_stub().await;
    let mut cfg = ClientConfig::new(
        &base,
        AuthConfig::StaticBearer {
            token: Secret::new("t"),
        },
    );
    cfg.request_timeout = Duration::from_millis(300);
    let c = TargetClient::new(cfg).unwrap();
    let a = c.execute("slow", "k", body()).await;
    assert_eq!(
        (a.status, a.transport),
        (None, Some(TransportError::Timeout)),
        "{a:?}"
    );
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
    let c = client(
        &base,
        AuthConfig::StaticBearer {
            token: Secret::new("t"),
        },
    );
    let a = c.execute("act-1", "k", body()).await;
    assert_eq!(
        (a.status, a.transport),
        (None, Some(TransportError::Reset)),
        "{a:?}"
    );
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
    let tokens = cache(form_auth(&base), Duration::from_secs(30));
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
    // After the cooldown, and once the endpoint recovers, a token is obtained again.
    stub.token_fail.store(false, Ordering::SeqCst);
    tokio::time::sleep(cxrelay_cxone::FAILURE_COOLDOWN + Duration::from_millis(50)).await;
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
    let static_cfg = ClientConfig::new(
        &base,
        AuthConfig::StaticBearer {
            token: Secret::new(CLIENT_SECRET),
        },
    );
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
    assert!(
        err.starts_with("token request failed: token endpoint answered HTTP 401"),
        "{err}"
    );
    assert!(!err.contains(CLIENT_SECRET), "{err}");
    assert!(err.contains("***"), "{err}");
    assert!(!format!("{a:?}").contains(CLIENT_SECRET));

    let e = TokenCache::new(reqwest::Client::new(), form_auth(&base), Duration::ZERO)
        .unwrap()
        .token()
        .await
        .unwrap_err();
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
