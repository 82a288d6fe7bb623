//! The request log behind `GET /_sim/requests` and [`crate::SimServer::requests`]: the last
//! [`MAX_LOGGED_REQUESTS`] requests to a token, discovery, execute or export route, each with its path
//! and query as received, the few headers tests check, its body and the status answered.
//!
//! Nothing credential-like is kept: of `Authorization` only the scheme, and token request bodies have
//! `password`, `client_secret` (and the like) replaced by `"[redacted]"`. Recording is cheap enough for
//! the execute hot path (a few small copies and one short lock); bodies are parsed only when the log
//! is read.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::http::{header, HeaderMap, Method, Uri};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::execute::IDEMPOTENCY_KEY;

/// Most requests kept; the oldest are dropped first.
pub const MAX_LOGGED_REQUESTS: usize = 10_000;

/// Bodies longer than this are not kept (the record shows `body: null` and the length).
const BODY_LIMIT: usize = 32 * 1024;

/// What replaces a secret in a logged body.
const REDACTED: &str = "[redacted]";

/// Fields of token requests whose values are credentials.
const SECRET_FIELDS: [&str; 6] = ["password", "client_secret", "refresh_token", "assertion", "client_assertion", "code"];

/// The route a logged request was answered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestRoute {
    /// `POST /api/v1/datapoint/actions/{actionId}/execute` (the tutorials' envelope).
    SeedExecute,
    /// `POST /incontactapi/services/{version}/data-actions/{actionId}/execute`.
    CxoneExecute,
    /// `POST /api/v2/integrations/actions/{actionId}/execute`.
    GenesysExecute,
    /// `POST /oauth/token` (client credentials).
    SeedToken,
    /// `POST /auth/token` (CXone password grant with an access key).
    CxoneToken,
    /// `GET /.well-known/openid-configuration`.
    OpenidConfiguration,
    /// `GET /.well-known/cxone-configuration`.
    CxoneConfiguration,
    /// `POST /api/v2/dataprep/dataactions/{id}/executions`.
    ExportSubmit,
    /// `GET /api/v2/dataprep/dataactions/{id}/executions/{executionId}`.
    ExportStatus,
    /// `POST /incontactapi/services/{version}/report-jobs/{reportId}`.
    ReportJobSubmit,
    /// `GET /incontactapi/services/{version}/report-jobs/{jobId}`.
    ReportJobStatus,
}

impl RequestRoute {
    /// Whether the route's bodies carry credentials that must be redacted.
    fn carries_credentials(self) -> bool {
        matches!(self, RequestRoute::SeedToken | RequestRoute::CxoneToken)
    }
}

/// One logged request (an element of `GET /_sim/requests`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The route that answered it.
    pub route: RequestRoute,
    /// HTTP method.
    pub method: String,
    /// Path exactly as received (percent-encoding preserved).
    pub path: String,
    /// Query string as received, without the `?`.
    pub query: Option<String>,
    /// The headers tests check.
    pub headers: RecordedHeaders,
    /// The body: parsed JSON, a form's fields as an object (credentials redacted), the raw text when
    /// neither parses, or `null` when empty, unread or longer than 32 KiB.
    pub body: Value,
    /// Length of the body in bytes (0 when it was not read, e.g. refused as too large).
    pub body_bytes: u64,
    /// Status answered; 0 when the connection was reset instead.
    pub status: u16,
    /// Milliseconds since simulator start when the request arrived.
    pub at_ms: u64,
}

/// The logged request headers; never a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedHeaders {
    /// `Accept`.
    pub accept: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Scheme of `Authorization`: `Bearer`, `Basic` or `other`; never the credential.
    pub authorization_scheme: Option<String>,
}

/// What is known of a request on arrival; completed into a record with its body and status.
#[derive(Clone)]
pub(crate) struct Capture {
    route: RequestRoute,
    method: Method,
    path: Box<str>,
    query: Option<Box<str>>,
    headers: RecordedHeaders,
    at_ms: u64,
}

/// A stored request; its body is rendered when the log is read.
#[derive(Clone)]
struct Entry {
    capture: Capture,
    body: Option<Bytes>,
    body_bytes: u64,
    status: u16,
}

/// The bounded log.
pub(crate) struct RequestLog {
    seed_execute: bool,
    entries: Mutex<VecDeque<Entry>>,
}

impl RequestLog {
    /// A log that records seed execute requests only when `seed_execute` is on.
    pub fn new(seed_execute: bool) -> RequestLog {
        RequestLog { seed_execute, entries: Mutex::new(VecDeque::new()) }
    }

    /// What to log of a request that arrived at `at_ms`, or `None` when its route is not logged.
    pub fn capture(&self, route: RequestRoute, method: &Method, uri: &Uri, headers: &HeaderMap, at_ms: u64) -> Option<Capture> {
        if route == RequestRoute::SeedExecute && !self.seed_execute {
            return None;
        }
        let text = |name| headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        Some(Capture {
            route,
            method: method.clone(),
            path: uri.path().into(),
            query: uri.query().map(Into::into),
            headers: RecordedHeaders {
                accept: text(header::ACCEPT.as_str()),
                content_type: text(header::CONTENT_TYPE.as_str()),
                idempotency_key: text(IDEMPOTENCY_KEY),
                authorization_scheme: headers.get(header::AUTHORIZATION).map(|v| auth_scheme(v.as_bytes()).to_owned()),
            },
            at_ms,
        })
    }

    /// Appends a captured request with its body (if read) and the status answered.
    pub fn push(&self, capture: Capture, body: Option<&[u8]>, status: u16) {
        let body_bytes = body.map_or(0, |b| b.len() as u64);
        // A copy, so that the log never pins the connection's read buffer the body was sliced from.
        let body = body.filter(|b| b.len() <= BODY_LIMIT).map(Bytes::copy_from_slice);
        let entry = Entry { capture, body, body_bytes, status };
        let evicted = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let evicted = if entries.len() >= MAX_LOGGED_REQUESTS { entries.pop_front() } else { None };
            entries.push_back(entry);
            evicted
        };
        // Freed outside the lock.
        drop(evicted);
    }

    /// Every logged request, oldest first.
    pub fn snapshot(&self) -> Vec<RequestRecord> {
        // Cloned under the lock (bodies are reference-counted), rendered after it.
        let entries: Vec<Entry> = self.entries.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
        entries
            .into_iter()
            .map(|Entry { capture: c, body, body_bytes, status }| RequestRecord {
                route: c.route,
                method: c.method.as_str().to_owned(),
                path: c.path.into(),
                query: c.query.map(Into::into),
                body: render_body(c.route, c.headers.content_type.as_deref(), body.as_deref()),
                headers: c.headers,
                body_bytes,
                status,
                at_ms: c.at_ms,
            })
            .collect()
    }

    /// Forgets every logged request.
    pub fn clear(&self) {
        let old = std::mem::take(&mut *self.entries.lock().unwrap_or_else(|e| e.into_inner()));
        drop(old);
    }
}

/// `Bearer`, `Basic` or `other` for an `Authorization` value; a value without a scheme is `other`
/// (it may be a bare credential).
fn auth_scheme(value: &[u8]) -> &'static str {
    let value = String::from_utf8_lossy(value);
    let mut words = value.split_whitespace();
    match (words.next(), words.next()) {
        (Some(s), _) if s.eq_ignore_ascii_case("bearer") => "Bearer",
        (Some(s), _) if s.eq_ignore_ascii_case("basic") => "Basic",
        _ => "other",
    }
}

/// The logged form of a body (see [`RequestRecord::body`]).
fn render_body(route: RequestRoute, content_type: Option<&str>, body: Option<&[u8]>) -> Value {
    let Some(body) = body.filter(|b| !b.is_empty()) else {
        return Value::Null;
    };
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let is_form = ct.contains("x-www-form-urlencoded");
    if route.carries_credentials() {
        return render_token_body(body, is_form || !ct.contains("json"));
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return v;
    }
    if is_form {
        if let Some(fields) = form_fields(body) {
            return Value::Object(fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect());
        }
    }
    Value::String(String::from_utf8_lossy(body).into_owned())
}

/// A token request body with its credentials redacted. Anything that does not parse as the expected
/// form or JSON object is replaced as a whole, since its text may be a credential.
fn render_token_body(body: &[u8], is_form: bool) -> Value {
    const UNREADABLE: &str = "[redacted: unparseable token request]";
    if is_form {
        let Some(fields) = form_fields(body).filter(|f| f.iter().all(|(k, _)| is_field_name(k))) else {
            return Value::String(UNREADABLE.to_owned());
        };
        return Value::Object(fields.into_iter().map(|(k, v)| redacted(k, Value::String(v))).collect());
    }
    match serde_json::from_slice::<Map<String, Value>>(body) {
        Ok(map) => Value::Object(map.into_iter().map(|(k, v)| redacted(k, v)).collect()),
        Err(_) => Value::String(UNREADABLE.to_owned()),
    }
}

/// The field with its value replaced by `"[redacted]"` when `key` names a credential.
fn redacted(key: String, value: Value) -> (String, Value) {
    if SECRET_FIELDS.iter().any(|s| key.eq_ignore_ascii_case(s)) {
        (key, Value::String(REDACTED.to_owned()))
    } else {
        (key, value)
    }
}

/// The fields of a form body in order (a repeated name keeps its last value).
fn form_fields(body: &[u8]) -> Option<Vec<(String, String)>> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).ok()
}

/// Whether `k` looks like a form field name rather than stray text.
fn is_field_name(k: &str) -> bool {
    !k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde_json::json;

    use super::*;

    fn headers(ct: &str, auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn token_bodies_are_redacted_and_schemes_only_kept() {
        let log = RequestLog::new(true);
        let uri: Uri = "/auth/token?x=%3D".parse().unwrap();
        let c =
            log.capture(RequestRoute::CxoneToken, &Method::POST, &uri, &headers("application/x-www-form-urlencoded", "Basic c2VjcmV0"), 5).unwrap();
        log.push(c, Some(b"grant_type=password&username=key&password=abc%3D%3D"), 200);
        let c = log.capture(RequestRoute::SeedToken, &Method::POST, &uri, &headers("application/json", "bearer tok"), 6).unwrap();
        log.push(c, Some(br#"{"grant_type":"client_credentials","client_secret":"s3cret"}"#), 401);
        let c = log.capture(RequestRoute::SeedToken, &Method::POST, &uri, &headers("application/json", "rawcredential"), 7).unwrap();
        log.push(c, Some(br#"{"client_secret":"s3cret""#), 400);
        let records = log.snapshot();
        let text = serde_json::to_string(&records).unwrap();
        assert!(!text.contains("abc") && !text.contains("s3cret") && !text.contains("c2VjcmV0") && !text.contains("rawcredential"), "{text}");
        assert_eq!(records[0].body, json!({"grant_type": "password", "username": "key", "password": "[redacted]"}));
        assert_eq!((records[0].path.as_str(), records[0].query.as_deref()), ("/auth/token", Some("x=%3D")));
        assert_eq!(records[0].headers.authorization_scheme.as_deref(), Some("Basic"));
        assert_eq!(records[1].headers.authorization_scheme.as_deref(), Some("Bearer"));
        assert_eq!(records[2].headers.authorization_scheme.as_deref(), Some("other"));
        assert_eq!(records[2].body, json!("[redacted: unparseable token request]"));
    }

    #[test]
    fn bodies_render_by_kind_and_the_log_is_bounded() {
        let log = RequestLog::new(false);
        let uri: Uri = "/x".parse().unwrap();
        let h = headers("application/json", "Bearer t");
        assert!(log.capture(RequestRoute::SeedExecute, &Method::POST, &uri, &h, 0).is_none());
        for body in [&br#"{"a":1}"#[..], b"not json", b""] {
            let c = log.capture(RequestRoute::GenesysExecute, &Method::POST, &uri, &h, 0).unwrap();
            log.push(c, Some(body), 200);
        }
        let big = vec![b' '; BODY_LIMIT + 1];
        let c = log.capture(RequestRoute::GenesysExecute, &Method::POST, &uri, &h, 0).unwrap();
        log.push(c, Some(&big), 413);
        let bodies: Vec<Value> = log.snapshot().into_iter().map(|r| r.body).collect();
        assert_eq!(bodies, vec![json!({"a": 1}), json!("not json"), Value::Null, Value::Null]);
        assert_eq!(log.snapshot()[3].body_bytes, (BODY_LIMIT + 1) as u64);
        for i in 0..MAX_LOGGED_REQUESTS as u64 {
            let c = log.capture(RequestRoute::ExportStatus, &Method::GET, &uri, &h, i).unwrap();
            log.push(c, None, 200);
        }
        let records = log.snapshot();
        assert_eq!(records.len(), MAX_LOGGED_REQUESTS);
        assert_eq!(records[0].route, RequestRoute::ExportStatus);
        log.clear();
        assert!(log.snapshot().is_empty());
    }
}
