//! OAuth side of the simulator: `POST /oauth/token` (client credentials via form + HTTP Basic or a
//! JSON body) and the token store the execute handler checks bearer tokens against.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::config::DEFAULT_SCOPES;
use crate::reply;
use crate::reqlog::RequestRoute;
use crate::state::SimState;

/// Expired tokens are swept from the store when it grows past this many entries.
const PRUNE_ABOVE: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct TokenInfo {
    expires_at: Instant,
    can_execute: bool,
}

/// Result of checking a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenCheck {
    Valid,
    Unknown,
    Expired,
    MissingScope,
}

/// Issued tokens; lookups take a read lock for one hash probe.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    tokens: RwLock<HashMap<Box<str>, TokenInfo>>,
}

impl TokenStore {
    /// Issues a fresh random token valid for `lifetime`.
    pub fn issue(&self, lifetime: Duration, can_execute: bool) -> String {
        let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        self.register(token.clone(), lifetime, can_execute);
        token
    }

    /// Accepts `token` (minted elsewhere, e.g. a JWT) for `lifetime` from now.
    pub fn register(&self, token: String, lifetime: Duration, can_execute: bool) {
        let now = Instant::now();
        let info = TokenInfo { expires_at: now + lifetime, can_execute };
        let mut map = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PRUNE_ABOVE {
            map.retain(|_, t| t.expires_at > now);
        }
        map.insert(token.into_boxed_str(), info);
    }

    /// Every token issued and not yet swept (for tests that prove no token leaks).
    pub fn issued(&self) -> Vec<String> {
        self.tokens.read().unwrap_or_else(|e| e.into_inner()).keys().map(|k| k.to_string()).collect()
    }

    /// Checks a token at `now`.
    pub fn check(&self, token: &str, now: Instant) -> TokenCheck {
        let info = self.tokens.read().unwrap_or_else(|e| e.into_inner()).get(token).copied();
        match info {
            None => TokenCheck::Unknown,
            Some(t) if now >= t.expires_at => TokenCheck::Expired,
            Some(t) if !t.can_execute => TokenCheck::MissingScope,
            Some(_) => TokenCheck::Valid,
        }
    }
}

/// The bearer token of an `Authorization` header, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Fields of a token request, from either a form or a JSON body.
#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

#[derive(Debug, Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    scope: &'a str,
}

/// `POST /oauth/token`; with the `echo_headers` fault on, error answers echo the request headers.
pub(crate) async fn token(State(sim): State<Arc<SimState>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response<Body> {
    logged_token_request(&sim, RequestRoute::SeedToken, (&method, &uri, &headers, &body), answer).await
}

/// Answers a token request with `answer`, logging it under `route`; with the `echo_headers`
/// fault on, error answers echo the request headers. Shared by every token endpoint.
pub(crate) async fn logged_token_request(
    sim: &SimState,
    route: RequestRoute,
    (method, uri, headers, body): (&Method, &Uri, &HeaderMap, &Bytes),
    answer: fn(&SimState, &HeaderMap, &[u8]) -> Response<Body>,
) -> Response<Body> {
    let capture = sim.requests.capture(route, method, uri, headers, sim.clock.millis_now());
    let res = answer(sim, headers, body);
    // Faults are read only for errors, so issuing a token stays one lock lighter.
    let res = if !res.status().is_success() && sim.faults().echo_headers { reply::with_request_headers(res, headers).await } else { res };
    if let Some(capture) = capture {
        sim.requests.push(capture, Some(body), res.status().as_u16());
    }
    res
}

/// The answer to one token request.
fn answer(sim: &SimState, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    sim.counters.token_requests.fetch_add(1, Relaxed);
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    let parsed: Result<TokenRequest, String> =
        if is_json { serde_json::from_slice(body).map_err(|e| e.to_string()) } else { serde_urlencoded::from_bytes(body).map_err(|e| e.to_string()) };
    let req = match parsed {
        Ok(r) => r,
        Err(_) => {
            return reply::static_json(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request","error_description":"malformed token request body"}"#)
        }
    };

    let basic = basic_credentials(headers);
    let (id, secret) = match &basic {
        Some((id, secret)) => (Some(id.as_str()), Some(secret.as_str())),
        None => (req.client_id.as_deref(), req.client_secret.as_deref()),
    };
    let authenticated = matches!((id, secret), (Some(id), Some(secret))
        if ct_eq(id, &sim.config.client_id) & ct_eq(secret, sim.config.client_secret.expose()));
    if !authenticated {
        let mut res = reply::static_json(StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#);
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="cxrelay-sim""#));
        return res;
    }
    match req.grant_type.as_deref() {
        Some("client_credentials") => {}
        None => return reply::static_json(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request","error_description":"grant_type is required"}"#),
        Some(_) => return reply::static_json(StatusCode::BAD_REQUEST, r#"{"error":"unsupported_grant_type"}"#),
    }

    let scope = match req.scope.as_deref().map(normalize_scopes) {
        Some(s) if !s.is_empty() => s,
        _ => DEFAULT_SCOPES.to_owned(),
    };
    let can_execute = scope.split(' ').any(|s| s == sim.config.required_scope);
    let lifetime = sim.config.token_lifetime;
    let access_token = sim.tokens.issue(lifetime, can_execute);
    sim.counters.tokens_issued.fetch_add(1, Relaxed);
    let expires_in = lifetime.as_secs().max(1);
    reply::json(StatusCode::OK, &TokenResponse { access_token: &access_token, token_type: "Bearer", expires_in, scope: &scope })
}

/// Collapses runs of whitespace between scopes into single spaces.
fn normalize_scopes(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Client id and secret from an `Authorization: Basic` header.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Comparison whose time does not depend on where the strings differ.
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_checks_expiry_and_scope() {
        let store = TokenStore::default();
        let now = Instant::now();
        let t = store.issue(Duration::from_secs(10), true);
        let r = store.issue(Duration::from_secs(10), false);
        assert_eq!(store.check(&t, now), TokenCheck::Valid);
        assert_eq!(store.check(&r, now), TokenCheck::MissingScope);
        assert_eq!(store.check(&t, now + Duration::from_secs(11)), TokenCheck::Expired);
        assert_eq!(store.check("nope", now), TokenCheck::Unknown);
    }

    #[test]
    fn parses_auth_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0"));
        assert_eq!(bearer(&h), None);
        assert_eq!(basic_credentials(&h), Some(("sim-client".into(), "sim-secret".into())));
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq("sim-secret", "sim-secret"));
        assert!(!ct_eq("sim-secret", "sim-secreT"));
        assert!(!ct_eq("sim", "sim-secret"));
        assert!(!ct_eq("", "x"));
    }
}
