//! CXone access-key auth against a small axum stub of the issuer: the token endpoint from OpenID
//! discovery, the password grant's form (URL-encoded key, client as Basic), the tenant's API base
//! from the token's `tenantId` claim, and every way discovery fails, each with its message and
//! no secret in it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use cxrelay_cxone::{AuthConfig, AuthError, Secret, TokenCache};

const KEY_SECRET: &str = "k3y-s3cret-ends-with==";
const CLIENT_SECRET: &str = "cl1ent-s3cret";

/// What the stub answers; each test sets one way to fail (or none).
#[derive(Default, Clone, Copy, PartialEq)]
enum Fault {
    #[default]
    None,
    OpenidDown,
    NoTokenEndpoint,
    OpaqueToken,
    UnknownTenant,
}

#[derive(Default)]
struct Stub {
    base: Mutex<String>,
    fault: Mutex<Fault>,
    token_request: Mutex<Option<(HeaderMap, Bytes)>>,
    tenant_asked: Mutex<Option<String>>,
}

fn jwt(claims: serde_json::Value) -> String {
    let enc = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!("{}.{}.c2ln", enc(br#"{"alg":"HS256","typ":"JWT"}"#), enc(claims.to_string().as_bytes()))
}

async fn openid(State(s): State<Arc<Stub>>) -> Response {
    let base = s.base.lock().unwrap().clone();
    match *s.fault.lock().unwrap() {
        Fault::OpenidDown => (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
        Fault::NoTokenEndpoint => axum::Json(serde_json::json!({"issuer": base})).into_response(),
        _ => axum::Json(serde_json::json!({"issuer": base, "token_endpoint": format!("{base}/auth/token")})).into_response(),
    }
}

async fn token(State(s): State<Arc<Stub>>, headers: HeaderMap, body: Bytes) -> Response {
    *s.token_request.lock().unwrap() = Some((headers, body));
    let access_token = match *s.fault.lock().unwrap() {
        Fault::OpaqueToken => "opaque-token".to_owned(),
        _ => jwt(serde_json::json!({"tenantId": "tenant-42", "exp": 4_000_000_000u64})),
    };
    axum::Json(serde_json::json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 3600})).into_response()
}

async fn tenant_config(State(s): State<Arc<Stub>>, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    *s.tenant_asked.lock().unwrap() = q.get("tenantId").cloned();
    if *s.fault.lock().unwrap() == Fault::UnknownTenant {
        return (StatusCode::NOT_FOUND, r#"{"error":"tenant_not_found"}"#).into_response();
    }
    axum::Json(serde_json::json!({"api_endpoint": "https://api-na1.example.test/"})).into_response()
}

async fn start(fault: Fault) -> (Arc<Stub>, TokenCache) {
    let stub = Arc::new(Stub::default());
    *stub.fault.lock().unwrap() = fault;
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(openid))
        .route("/.well-known/cxone-configuration", get(tenant_config))
        .route("/auth/token", post(token))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *stub.base.lock().unwrap() = base.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let auth = AuthConfig::CxoneAccessKey {
        issuer: base,
        token_url: None,
        client_id: "app-1".into(),
        client_secret: Secret::new(CLIENT_SECRET),
        access_key_id: "AK-1".into(),
        access_key_secret: Secret::new(KEY_SECRET),
        discover_api_base: true,
    };
    (stub, TokenCache::new(reqwest::Client::new(), auth, Duration::from_secs(30)).unwrap())
}

#[tokio::test]
async fn the_token_brings_the_tenants_api_base() {
    let (stub, cache) = start(Fault::None).await;
    let token = cache.token().await.unwrap();
    assert_eq!(token.api_base(), Some("https://api-na1.example.test"));
    assert_eq!(stub.tenant_asked.lock().unwrap().as_deref(), Some("tenant-42"), "the tenant id came from the token's claims");
    let (headers, body) = stub.token_request.lock().unwrap().clone().unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("app-1:{CLIENT_SECRET}"));
    assert_eq!(headers.get("authorization").unwrap(), &format!("Basic {basic}"));
    assert_eq!(String::from_utf8_lossy(&body), "grant_type=password&username=AK-1&password=k3y-s3cret-ends-with%3D%3D", "URL-encoded");
}

#[tokio::test]
async fn each_discovery_failure_says_what_and_leaks_nothing() {
    for (fault, words) in [
        (Fault::OpenidDown, "OpenID configuration discovery failed"),
        (Fault::NoTokenEndpoint, "no token_endpoint"),
        (Fault::OpaqueToken, "not a JWT with a tenantId claim; set target.api_base (CXRELAY_API_BASE)"),
        (Fault::UnknownTenant, "CXone tenant configuration discovery failed"),
    ] {
        let (_stub, cache) = start(fault).await;
        let e = cache.token().await.unwrap_err();
        assert!(matches!(e, AuthError::Discovery { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains(words), "{text}");
        if fault == Fault::OpenidDown {
            assert!(text.contains("HTTP 500"), "{text}");
        }
        if fault == Fault::UnknownTenant {
            assert!(text.contains("404") && text.contains("tenantId=tenant-42"), "{text}");
        }
        assert!(!text.contains(KEY_SECRET) && !text.contains(CLIENT_SECRET) && !text.contains("opaque-token"), "{text}");
    }
}
