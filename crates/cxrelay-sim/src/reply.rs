//! Small helpers that build JSON answers without re-serializing request data, and the optional
//! decorations faults add to them (echoed request headers, rate-limit headers).

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use http_body_util::BodyExt as _;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::LimitHeaders;

/// `X-RateLimit-Limit`, the older de-facto header.
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `RateLimit-Limit` from the IETF RateLimit header fields draft.
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Policy` from the same draft.
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// An answer whose JSON body is a compile-time constant.
pub(crate) fn static_json(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// An answer with a serialized JSON body.
pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    (status, Json(body)).into_response()
}

/// Adds `Retry-After: <secs>`.
pub(crate) fn with_retry_after(mut res: Response<Body>, secs: u64) -> Response<Body> {
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// JSON body of a validation failure naming the offending field.
#[derive(Debug, Serialize)]
pub(crate) struct FieldError<'a> {
    pub error: &'static str,
    pub field: &'a str,
    pub message: &'a str,
}

/// A 400 naming `field`.
pub(crate) fn bad_field(error: &'static str, field: &str, message: &str) -> Response<Body> {
    json(StatusCode::BAD_REQUEST, &FieldError { error, field, message })
}

/// Adds the rate-limit headers for the configured rate.
pub(crate) fn with_limit_headers(mut res: Response<Body>, h: &LimitHeaders) -> Response<Body> {
    let headers = res.headers_mut();
    headers.insert(X_RATELIMIT_LIMIT, h.limit.clone());
    headers.insert(RATELIMIT_LIMIT, h.limit.clone());
    headers.insert(RATELIMIT_POLICY, h.policy.clone());
    res
}

/// Adds `"request_headers": {name: value, ...}` with every request header, verbatim and secrets
/// included, to a JSON object body; other bodies are returned unchanged.
///
/// Only the `echo_headers` fault calls this, and only for error answers, so re-reading the
/// (already complete, in-memory) body here costs the hot path nothing.
pub(crate) async fn with_request_headers(res: Response<Body>, headers: &HeaderMap) -> Response<Body> {
    let (mut parts, body) = res.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot re-read an answer to echo request headers");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let Ok(mut object) = serde_json::from_slice::<Map<String, Value>>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    object.insert("request_headers".to_owned(), headers_json(headers));
    let out = serde_json::to_vec(&object).expect("a JSON map always serializes");
    // The body changed length; let hyper compute it again.
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

/// Request headers as a JSON object; repeated headers are joined with `", "` like an HTTP list.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for name in headers.keys() {
        let joined = headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes())).collect::<Vec<_>>().join(", ");
        out.insert(name.as_str().to_owned(), Value::String(joined));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echo_adds_every_header_to_json_objects_only() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        h.append("x-multi", HeaderValue::from_static("a"));
        h.append("x-multi", HeaderValue::from_static("b"));
        let res = with_request_headers(static_json(StatusCode::UNAUTHORIZED, r#"{"error":"invalid_token"}"#), &h).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "error": "invalid_token",
                "request_headers": {"authorization": "Bearer s3cret", "x-multi": "a, b"}
            })
        );
        let mut plain = Response::new(Body::from("not json"));
        *plain.status_mut() = StatusCode::BAD_GATEWAY;
        let res = with_request_headers(plain, &h).await;
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"not json");
    }
}
