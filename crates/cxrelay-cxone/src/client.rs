//! The target API client ([`TargetClient`]): one shared connection pool, and executing one item
//! as one `POST` ([`TargetClient::execute`]) whose outcome is always an [`Attempt`].
//!
//! This module owns the execute request (URL template, headers, body), the 401 → invalidate →
//! refresh → retry-once rule, reading the response within bounds, and classifying transport
//! failures ([`TransportError`]). It does not retry anything else or interpret statuses: that is
//! the caller's policy.
//!
//! Every text taken from the network — a non-2xx body, a transport error — is scrubbed of
//! secrets before it reaches an [`Attempt`] (see `text::scrub`): targets echo requests back.
//!
//! Hot path (≈ 15k executes/s on 2 cores is the target): the token comes from the cache without
//! allocating, the URL for an action is cloned from a small cache, the four headers are
//! pre-built or cloned, the body `Bytes` is shared (refcount) between the request and a possible
//! retry, and a 2xx body is drained chunk by chunk without buffering.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};

use crate::auth::{AuthConfig, AuthError};
use crate::text;
use crate::token::{AccessToken, TokenCache, DEFAULT_REFRESH_MARGIN};
use cxrelay_core::redact::redact;

/// Default execute path template; `{action}` is replaced by the (percent-encoded) action id.
pub const DEFAULT_EXECUTE_PATH: &str = "/api/v1/datapoint/actions/{action}/execute";

/// Default whole-request timeout (connect, send, response and body).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Default connect timeout (TCP + TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default number of idle connections kept per host.
pub const DEFAULT_POOL_MAX_IDLE_PER_HOST: usize = 256;

/// Placeholder for the action id in [`ClientConfig::execute_path`].
const ACTION_PLACEHOLDER: &str = "{action}";

/// Most distinct actions whose URL is cached (further ones are built per call).
const URL_CACHE_MAX: usize = 1024;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Largest 2xx body [`TargetClient::call`] returns.
const MAX_REPLY_BODY: usize = 64 * 1024;

/// Settings of a [`TargetClient`]. `Debug` prints no secret.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Scheme, host and optional path prefix of the API, e.g. `https://api.example.com`;
    /// empty when the auth method discovers it with each token (CXone).
    pub api_base: String,
    /// Extra headers sent with every request (the profile's, e.g. CXone's `Accept`).
    pub headers: Vec<(String, String)>,
    /// Path template appended to `api_base`; must contain `{action}` exactly once.
    pub execute_path: String,
    /// How to authenticate.
    pub auth: AuthConfig,
    /// Whole-request timeout, per HTTP request (the 401 retry gets its own).
    pub request_timeout: Duration,
    /// Connect timeout (TCP + TLS).
    pub connect_timeout: Duration,
    /// Idle connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// Refresh a token this long before it expires.
    pub refresh_margin: Duration,
}

impl ClientConfig {
    /// A configuration with the defaults for everything but the API base and auth.
    pub fn new(api_base: impl Into<String>, auth: AuthConfig) -> Self {
        ClientConfig {
            api_base: api_base.into(),
            headers: Vec::new(),
            execute_path: DEFAULT_EXECUTE_PATH.to_owned(),
            auth,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pool_max_idle_per_host: DEFAULT_POOL_MAX_IDLE_PER_HOST,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
        }
    }
}

/// Why a [`TargetClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `api_base` is not an http(s) URL.
    #[error("invalid api_base {url:?}: {reason}")]
    InvalidApiBase {
        /// The configured value, credentials redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An extra header is not a valid HTTP header.
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `execute_path` is not a usable template.
    #[error("invalid execute_path {template:?}: {reason}")]
    InvalidExecutePath {
        /// The configured value.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The auth configuration is invalid.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The HTTP client could not be built (e.g. TLS backend initialisation).
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Why no HTTP response was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportError {
    /// No connection could be established (refused, DNS, TLS handshake, connect timeout):
    /// the request was certainly not processed.
    Connect,
    /// The request timed out after the connection was made (it may have been processed).
    Timeout,
    /// The connection was reset or closed before the response completed.
    Reset,
    /// Any other failure (protocol error, request body error, …).
    Other,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportError::Connect => "connect",
            TransportError::Timeout => "timeout",
            TransportError::Reset => "reset",
            TransportError::Other => "other",
        })
    }
}

/// Classifies a reqwest error: connect first (a connect timeout is `Connect`: nothing was
/// sent), then timeout, then reset-like causes found in the error chain.
pub(crate) fn classify(err: &reqwest::Error) -> TransportError {
    if err.is_connect() {
        return TransportError::Connect;
    }
    if err.is_timeout() {
        return TransportError::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof) {
                return TransportError::Reset;
            }
        }
        // hyper and h2 errors are not nameable without depending on them; their messages are
        // stable: "connection closed before message completed", "stream error received: …".
        let msg = e.to_string().to_ascii_lowercase();
        if msg.contains("connection closed before message completed")
            || msg.contains("connection reset")
            || msg.contains("broken pipe")
            || msg.contains("refused_stream")
            || msg.contains("refused stream")
        {
            return TransportError::Reset;
        }
        source = e.source();
    }
    TransportError::Other
}

/// The outcome of one [`TargetClient::execute`] call (including its 401 retry, if any).
///
/// How to read it: `auth_failed` first (no usable token; `status`/`transport` then describe the
/// token endpoint), then `status` (the target's answer), then `transport` (no answer). All of
/// `status`, `transport` and `auth_failed` empty means the request was refused locally before
/// sending (invalid action id or idempotency key; retrying cannot help); `error` says why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attempt {
    /// HTTP status of the (last) response; `None` when no HTTP response was received.
    pub status: Option<u16>,
    /// Duration of the whole call: token wait, request, body, and the 401 retry if any.
    pub latency: Duration,
    /// The raw `Retry-After` header of the (last) response, if present.
    pub retry_after: Option<String>,
    /// The raw `RateLimit-Policy` header of the (last) response, if present: the target's own
    /// statement of its limit, which rate discovery starts from.
    pub rate_policy: Option<String>,
    /// Bounded (≤ 300 chars) body excerpt for a non-2xx answer, or the failure description;
    /// secrets redacted.
    pub error: Option<String>,
    /// Classification of the transport failure when no HTTP response was received.
    pub transport: Option<TransportError>,
    /// True when no token could be obtained ("token request failed: …" in `error`).
    pub auth_failed: bool,
    /// True when a 401 made the call refresh its token and send the request a second time.
    pub reauthenticated: bool,
}

impl Attempt {
    /// True for a 2xx answer.
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(200..=299)) && !self.auth_failed
    }

    fn refused(start: Instant, why: &str) -> Attempt {
        Attempt { latency: start.elapsed(), error: Some(format!("invalid request: {why}")), ..Attempt::default() }
    }

    fn auth(start: Instant, err: &AuthError, reauthenticated: bool) -> Attempt {
        Attempt {
            status: err.status(),
            latency: start.elapsed(),
            retry_after: None,
            rate_policy: None,
            error: Some(text::excerpt(&format!("token request failed: {err}"))),
            transport: err.transport(),
            auth_failed: true,
            reauthenticated,
        }
    }

    fn transport(start: Instant, err: &reqwest::Error, reauthenticated: bool) -> Attempt {
        Attempt {
            status: None,
            latency: start.elapsed(),
            retry_after: None,
            rate_policy: None,
            error: Some(text::excerpt(&text::scrub(&text::describe(err), &[]))),
            transport: Some(classify(err)),
            auth_failed: false,
            reauthenticated,
        }
    }

    /// `sent` is the token the request carried: a body echoing it is redacted even where the
    /// token has no recognisable shape. With `keep`, a 2xx body (≤ 64 KB) is returned.
    async fn response(start: Instant, resp: reqwest::Response, reauthenticated: bool, sent: &AccessToken, keep: bool) -> (Attempt, Bytes) {
        let status = resp.status();
        let retry_after = resp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let rate_policy = resp.headers().get("ratelimit-policy").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut kept = Bytes::new();
        let error = if status.is_success() && keep {
            kept = Bytes::from(text::read_prefix(resp, MAX_REPLY_BODY).await);
            None
        } else if status.is_success() {
            text::drain(resp).await;
            None
        } else {
            let body = text::read_prefix(resp, text::EXCERPT_BYTES).await;
            let body = String::from_utf8_lossy(&body);
            Some(if body.trim().is_empty() {
                format!("HTTP {status}")
            } else {
                // Scrubbed before the cut, so a secret straddling the cut is still recognised.
                text::excerpt(&text::scrub(&body, &[sent.secret().expose()]))
            })
        };
        let attempt = Attempt {
            status: Some(status.as_u16()),
            latency: start.elapsed(),
            retry_after,
            rate_policy,
            error,
            transport: None,
            auth_failed: false,
            reauthenticated,
        };
        (attempt, kept)
    }
}

/// Client for the target API: shared connection pool and token cache. Cheap to clone.
#[derive(Clone)]
pub struct TargetClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    http: reqwest::Client,
    tokens: TokenCache,
    /// The configured API base without a trailing `/`; `None` when it comes with the token.
    api_base: Option<String>,
    /// The execute template up to `{action}` (starting with `/`).
    path_prefix: String,
    /// The template after `{action}`.
    url_suffix: String,
    /// Execute URL per action id (configured API base only).
    urls: RwLock<HashMap<Box<str>, Url>>,
    /// Extra headers of every request.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for TargetClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = self.inner.api_base.as_deref().unwrap_or("{discovered}");
        f.debug_struct("TargetClient")
            .field("execute_url", &format_args!("{}{}{ACTION_PLACEHOLDER}{}", redact(base), self.inner.path_prefix, self.inner.url_suffix))
            .field("tokens", &self.inner.tokens)
            .finish()
    }
}

impl TargetClient {
    /// Builds the client: validates the configuration and creates the shared connection pool.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let ClientConfig { api_base, headers, execute_path, auth, request_timeout, connect_timeout, pool_max_idle_per_host, refresh_margin } = config;
        // The URL may carry credentials (userinfo, a query): errors show it redacted.
        let bad_base = |reason: String| ClientError::InvalidApiBase { url: redact(&api_base).into_owned(), reason };
        let discovered = api_base.trim().is_empty();
        if discovered && !auth.discovers_api_base() {
            return Err(bad_base("is empty (only CXone access-key auth discovers it)".into()));
        }
        // A discovered base is checked when it arrives; the template is checked against a stand-in.
        let checked_base = if discovered { "http://discovered.invalid" } else { api_base.as_str() };
        let base = Url::parse(checked_base).map_err(|e| bad_base(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad_base("not an http(s) URL".into()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad_base("must not have a query or fragment".into()));
        }
        let bad_path = |reason: &str| ClientError::InvalidExecutePath { template: execute_path.clone(), reason: reason.to_owned() };
        let (before, after) = execute_path.split_once(ACTION_PLACEHOLDER).ok_or_else(|| bad_path("must contain {action}"))?;
        if after.contains(ACTION_PLACEHOLDER) {
            return Err(bad_path("must contain {action} only once"));
        }
        let mut path_prefix = String::new();
        if !before.starts_with('/') {
            path_prefix.push('/');
        }
        path_prefix.push_str(before);
        let url_suffix = after.to_owned();
        match Url::parse(&format!("{}{path_prefix}action{url_suffix}", checked_base.trim_end_matches('/'))) {
            Ok(u) if u.host_str() == base.host_str() => {}
            Ok(_) => return Err(bad_path("changes the host of api_base")),
            Err(e) => return Err(bad_path(&e.to_string())),
        }

        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(pool_max_idle_per_host)
            .tcp_nodelay(true)
            // A redirect would re-send the body elsewhere; surface it as a status instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cxrelay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Http(text::excerpt(&text::scrub(&text::describe(&e), &[]))))?;
        let headers = headers
            .iter()
            .map(|(name, value)| {
                let bad = |reason: &str| ClientError::InvalidHeader { name: name.clone(), reason: reason.to_owned() };
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("not a valid header name"))?;
                let value = HeaderValue::from_str(value).map_err(|_| bad("the value has characters not allowed in a header"))?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        let tokens = TokenCache::new(http.clone(), auth, refresh_margin)?;
        let api_base = (!discovered).then(|| api_base.trim_end_matches('/').to_owned());
        Ok(TargetClient {
            inner: Arc::new(ClientInner { http, tokens, api_base, path_prefix, url_suffix, urls: RwLock::new(HashMap::new()), headers }),
        })
    }

    /// The process-wide token cache used by this client.
    pub fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// The shared HTTP client (connection pool), for other calls to the same target.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The execute URL for an action id with the configured API base (`None` for an empty,
    /// `.` or `..` id, or when the base is discovered with the token).
    pub fn execute_url(&self, action: &str) -> Option<Url> {
        let inner = &*self.inner;
        let base = inner.api_base.as_deref()?;
        if action.is_empty() || action == "." || action == ".." {
            return None;
        }
        if let Some(url) = inner.urls.read().unwrap_or_else(PoisonError::into_inner).get(action) {
            return Some(url.clone());
        }
        let url = self.build_execute_url(base, action)?;
        let mut urls = inner.urls.write().unwrap_or_else(PoisonError::into_inner);
        if urls.len() < URL_CACHE_MAX {
            urls.insert(action.into(), url.clone());
        }
        Some(url)
    }

    fn build_execute_url(&self, base: &str, action: &str) -> Option<Url> {
        let inner = &*self.inner;
        let mut s = String::with_capacity(base.len() + inner.path_prefix.len() + action.len() * 3 + inner.url_suffix.len());
        s.push_str(base.trim_end_matches('/'));
        s.push_str(&inner.path_prefix);
        push_path_segment(&mut s, action);
        s.push_str(&inner.url_suffix);
        Url::parse(&s).ok()
    }

    /// The execute URL for `action` with the API base that goes with `token`.
    fn execute_url_for(&self, token: &AccessToken, action: &str) -> Option<Url> {
        match token.api_base() {
            Some(base) if self.inner.api_base.is_none() => self.build_execute_url(base, action),
            _ => self.execute_url(action),
        }
    }

    /// The API base requests go to with `token`: the configured one, else the discovered one.
    fn base_for<'t>(&'t self, token: &'t AccessToken) -> Option<&'t str> {
        self.inner.api_base.as_deref().or_else(|| token.api_base())
    }

    /// POSTs one item (`body`, already-serialized JSON) to the action's execute endpoint.
    ///
    /// Sends `Authorization: Bearer …`, `Content-Type`/`Accept: application/json`,
    /// `Idempotency-Key` and the configured extra headers. On a 401 the token is invalidated, a
    /// fresh one obtained and the request sent exactly once more; a second 401 is returned as is
    /// (with a static bearer token there is nothing to refresh, so the first 401 is returned).
    /// Never fails or panics: every outcome is an [`Attempt`].
    pub async fn execute(&self, action: &str, idempotency_key: &str, body: Bytes) -> Attempt {
        let start = Instant::now();
        if action.is_empty() || action == "." || action == ".." {
            return Attempt::refused(start, "action id is empty, \".\" or \"..\"");
        }
        let Ok(key) = HeaderValue::from_str(idempotency_key) else {
            return Attempt::refused(start, "Idempotency-Key contains characters not allowed in a header");
        };
        let build = |token: &AccessToken| {
            let url = self.execute_url_for(token, action)?;
            Some(self.request(Method::POST, url, token, Some(key.clone()), Some(body.clone())))
        };
        self.exchange(start, build, false).await.0
    }

    /// Sends one request to `path` (already filled, see [`fill_path`]) under the API base, with
    /// the same token handling as [`execute`](Self::execute), and returns the attempt and the
    /// 2xx body (≤ 64 KB; empty otherwise). For export submissions and status polls.
    pub async fn call(&self, method: Method, path: &str, idempotency_key: Option<&str>, body: Option<Bytes>) -> (Attempt, Bytes) {
        let start = Instant::now();
        if !path.starts_with('/') {
            return (Attempt::refused(start, "path must start with /"), Bytes::new());
        }
        let key = match idempotency_key.map(HeaderValue::from_str) {
            None => None,
            Some(Ok(k)) => Some(k),
            Some(Err(_)) => return (Attempt::refused(start, "Idempotency-Key contains characters not allowed in a header"), Bytes::new()),
        };
        let build = |token: &AccessToken| {
            let base = self.base_for(token)?;
            let url = Url::parse(&format!("{base}{path}")).ok()?;
            Some(self.request(method.clone(), url, token, key.clone(), body.clone()))
        };
        self.exchange(start, build, true).await
    }

    /// One request with the 401 → refresh → retry-once rule; `build` makes the request for a
    /// token (`None`: no usable URL for it).
    async fn exchange(&self, start: Instant, build: impl Fn(&AccessToken) -> Option<reqwest::Request>, keep: bool) -> (Attempt, Bytes) {
        let tokens = &self.inner.tokens;
        let no_url = |start| (Attempt::refused(start, "no usable URL (is the API base known?)"), Bytes::new());
        let token = match tokens.token().await {
            Ok(t) => t,
            Err(e) => return (Attempt::auth(start, &e, false), Bytes::new()),
        };
        let Some(request) = build(&token) else { return no_url(start) };
        let resp = match self.inner.http.execute(request).await {
            Ok(resp) => resp,
            Err(e) => return (Attempt::transport(start, &e, false), Bytes::new()),
        };
        if resp.status() != StatusCode::UNAUTHORIZED || !tokens.can_refresh() {
            return Attempt::response(start, resp, false, &token, keep).await;
        }

        // 401: the token was rejected. Drop it (unless someone already replaced it), get a
        // fresh one (single-flight across all callers) and try exactly once more.
        text::drain(resp).await;
        tokens.invalidate(&token);
        drop(token);
        let token = match tokens.token().await {
            Ok(t) => t,
            Err(e) => return (Attempt::auth(start, &e, true), Bytes::new()),
        };
        let Some(request) = build(&token) else { return no_url(start) };
        match self.inner.http.execute(request).await {
            Ok(resp) => Attempt::response(start, resp, true, &token, keep).await,
            Err(e) => (Attempt::transport(start, &e, true), Bytes::new()),
        }
    }

    fn request(&self, method: Method, url: Url, token: &AccessToken, key: Option<HeaderValue>, body: Option<Bytes>) -> reqwest::Request {
        let mut req = reqwest::Request::new(method, url);
        let headers = req.headers_mut();
        headers.insert(AUTHORIZATION, token.authorization().clone());
        headers.insert(ACCEPT, APPLICATION_JSON);
        if body.is_some() {
            headers.insert(CONTENT_TYPE, APPLICATION_JSON);
        }
        if let Some(key) = key {
            headers.insert(IDEMPOTENCY_KEY, key);
        }
        for (name, value) in &self.inner.headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(body) = body {
            *req.body_mut() = Some(body.into());
        }
        req
    }
}

/// Fills a path template: each `{name}` of `values` is replaced by its value percent-encoded as
/// one path segment (so an id cannot change the path's shape).
pub fn fill_path(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        let placeholder = format!("{{{name}}}");
        if out.contains(&placeholder) {
            let mut encoded = String::with_capacity(value.len() * 3);
            push_path_segment(&mut encoded, value);
            out = out.replace(&placeholder, &encoded);
        }
    }
    out
}

/// Appends `segment` percent-encoded as one URL path segment (RFC 3986 `pchar`).
fn push_path_segment(out: &mut String, segment: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in segment.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@');
        if keep {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xF) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cxrelay_core::Secret;

    fn client(base: &str, path: &str) -> Result<TargetClient, ClientError> {
        let mut cfg = ClientConfig::new(base, AuthConfig::StaticBearer { token: Secret::new("t") });
        cfg.execute_path = path.into();
        TargetClient::new(cfg)
    }

    #[test]
    fn segment_encoding() {
        let mut s = String::new();
        push_path_segment(&mut s, "a b/c?d#e%f-g.h_i~é");
        assert_eq!(s, "a%20b%2Fc%3Fd%23e%25f-g.h_i~%C3%A9");
    }

    #[tokio::test]
    async fn execute_urls() {
        let c = client("https://api.example.com/", DEFAULT_EXECUTE_PATH).unwrap();
        assert_eq!(c.execute_url("act-1").unwrap().as_str(), "https://api.example.com/api/v1/datapoint/actions/act-1/execute");
        assert_eq!(c.execute_url("a/../b").unwrap().as_str(), "https://api.example.com/api/v1/datapoint/actions/a%2F..%2Fb/execute");
        // cached
        assert_eq!(c.execute_url("act-1"), c.execute_url("act-1"));
        assert!(c.execute_url("").is_none());
        assert!(c.execute_url("..").is_none());

        let c = client("https://api.example.com/base", "api/v2/integrations/actions/{action}/execute").unwrap();
        assert_eq!(c.execute_url("x").unwrap().as_str(), "https://api.example.com/base/api/v2/integrations/actions/x/execute");
    }

    #[tokio::test]
    async fn bad_configs() {
        assert!(matches!(client("ftp://x", DEFAULT_EXECUTE_PATH), Err(ClientError::InvalidApiBase { .. })));
        assert!(matches!(client("not a url", DEFAULT_EXECUTE_PATH), Err(ClientError::InvalidApiBase { .. })));
        assert!(matches!(client("http://x", "/no/placeholder"), Err(ClientError::InvalidExecutePath { .. })));
        assert!(matches!(client("http://x", "/{action}/{action}"), Err(ClientError::InvalidExecutePath { .. })));
        // A template cannot move the request to another host.
        let c = client("http://x", "@evil.com/{action}").unwrap();
        assert_eq!(c.execute_url("a").unwrap().host_str(), Some("x"));
    }

    #[tokio::test]
    async fn refused_locally() {
        let c = client("http://127.0.0.1:9", DEFAULT_EXECUTE_PATH).unwrap();
        let a = c.execute("act", "bad\nkey", Bytes::from_static(b"{}")).await;
        assert_eq!((a.status, a.transport, a.auth_failed), (None, None, false));
        assert!(a.error.unwrap().starts_with("invalid request"));
        let a = c.execute("", "k", Bytes::from_static(b"{}")).await;
        assert!(a.error.unwrap().starts_with("invalid request"));
    }
}
