//! The execute shapes and what differs between them; the pipeline itself is [`crate::execute`].
//!
//! - `Seed`: the tutorials' envelope `{index, action, inputs, metadata?}`; `Idempotency-Key` required;
//!   `Retry-After` on 429 as configured.
//! - `Cxone`: `POST /incontactapi/services/{version}/data-actions/{actionId}/execute`; the item as a
//!   flat JSON object; `Accept: application/json` required (406 otherwise); 429 answers never carry
//!   `Retry-After` (real CXone does not promise it).
//! - `Genesys`: `POST /api/v2/integrations/actions/{actionId}/execute`; the item as a flat JSON
//!   object; 429 answers always carry `Retry-After` in whole seconds (1 when nothing better is known).
//!
//! The flat shapes apply through the same idempotency ledger by `Idempotency-Key`; since the real
//! APIs do not require the header, a request without one is applied and counted but not put in the
//! ledger (the request log shows whether a client sent it).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use axum::Extension;
use serde::de::IgnoredAny;
use serde::Serialize;

use crate::envelope;
use crate::execute::{self, Request};
use crate::reply;
use crate::reqlog::RequestRoute;
use crate::server::ConnHandle;
use crate::state::SimState;

/// Which API an execute request arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Seed,
    Cxone,
    Genesys,
}

#[derive(Serialize)]
struct NotAcceptable {
    error: &'static str,
    header: &'static str,
    message: &'static str,
}

impl Shape {
    /// The request log's name of the route.
    pub fn route(self) -> RequestRoute {
        match self {
            Shape::Seed => RequestRoute::SeedExecute,
            Shape::Cxone => RequestRoute::CxoneExecute,
            Shape::Genesys => RequestRoute::GenesysExecute,
        }
    }

    /// A 406 when the shape needs `Accept: application/json` and the request does not list it.
    pub fn accept_rejection(self, headers: &HeaderMap) -> Option<Response<Body>> {
        if self != Shape::Cxone || accepts_json(headers) {
            return None;
        }
        let body = NotAcceptable { error: "not_acceptable", header: "Accept", message: "the Accept header must list application/json" };
        Some(reply::json(StatusCode::NOT_ACCEPTABLE, &body))
    }

    /// A 400 naming the field when the body is not this shape's.
    pub fn body_rejection(self, body: &[u8], action_id: &str) -> Option<Response<Body>> {
        match self {
            Shape::Seed => envelope::validate(body, action_id).err().map(|e| reply::bad_field("invalid_envelope", e.field, e.message)),
            Shape::Cxone | Shape::Genesys if is_json_object(body) => None,
            Shape::Cxone | Shape::Genesys => Some(reply::bad_field("invalid_body", "body", "body must be the item as a JSON object (no envelope)")),
        }
    }

    /// Whether a request without `Idempotency-Key` is refused.
    pub fn requires_idempotency_key(self) -> bool {
        self == Shape::Seed
    }

    /// Whether a rate-limited answer carries `Retry-After`, given the configured switch.
    pub fn retry_after_on_limit(self, configured: bool) -> bool {
        match self {
            Shape::Seed => configured,
            Shape::Cxone => false,
            Shape::Genesys => true,
        }
    }

    /// Applies the shape's `Retry-After` rule to any 429 (forced windows and item directives included).
    pub fn retry_after_rule(self, mut res: Response<Body>) -> Response<Body> {
        if res.status() != StatusCode::TOO_MANY_REQUESTS {
            return res;
        }
        match self {
            Shape::Seed => {}
            Shape::Cxone => {
                res.headers_mut().remove(header::RETRY_AFTER);
            }
            Shape::Genesys => {
                if !res.headers().contains_key(header::RETRY_AFTER) {
                    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                }
            }
        }
        res
    }
}

/// Whether an `Accept` header lists `application/json` (parameters such as `q` are ignored).
pub(crate) fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| range.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")))
}

/// Whether `body` is one JSON object (checked without building a tree).
pub(crate) fn is_json_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') && serde_json::from_slice::<IgnoredAny>(body).is_ok()
}

/// `POST /incontactapi/services/{version}/data-actions/{actionId}/execute`.
pub(crate) async fn cxone_execute(
    State(sim): State<Arc<SimState>>,
    Path((_version, action_id)): Path<(String, String)>,
    Extension(conn): Extension<ConnHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let req = Request { shape: Shape::Cxone, action_id: &action_id, conn: &conn, method: &method, uri: &uri, headers: &headers };
    execute::run(&sim, req, body).await
}

/// `POST /api/v2/integrations/actions/{actionId}/execute`.
pub(crate) async fn genesys_execute(
    State(sim): State<Arc<SimState>>,
    Path(action_id): Path<String>,
    Extension(conn): Extension<ConnHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let req = Request { shape: Shape::Genesys, action_id: &action_id, conn: &conn, method: &method, uri: &uri, headers: &headers };
    execute::run(&sim, req, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accept_must_list_json() {
        assert!(accepts_json(&accept(&["application/json"])));
        assert!(accepts_json(&accept(&["text/html, Application/JSON;q=0.9"])));
        assert!(accepts_json(&accept(&["text/plain", "application/json"])));
        assert!(!accepts_json(&accept(&[])));
        assert!(!accepts_json(&accept(&["*/*"])));
        assert!(!accepts_json(&accept(&["application/jsonx"])));
        assert!(Shape::Genesys.accept_rejection(&accept(&[])).is_none());
        assert_eq!(Shape::Cxone.accept_rejection(&accept(&["*/*"])).map(|r| r.status()), Some(StatusCode::NOT_ACCEPTABLE));
    }

    #[test]
    fn flat_bodies_must_be_objects() {
        assert!(is_json_object(br#" {"a": [1, {"b": null}]}"#));
        assert!(!is_json_object(b"[1]"));
        assert!(!is_json_object(br#"{"a":1"#));
        assert!(!is_json_object(br#"{"a":1} {}"#));
        assert!(Shape::Genesys.body_rejection(br#"{"index":0}"#, "x").is_none());
        assert!(Shape::Cxone.body_rejection(b"\"x\"", "x").is_some());
    }

    #[test]
    fn retry_after_rule_per_shape() {
        let limited = || reply::with_retry_after(reply::static_json(StatusCode::TOO_MANY_REQUESTS, "{}"), 3);
        assert!(!Shape::Cxone.retry_after_rule(limited()).headers().contains_key(header::RETRY_AFTER));
        assert_eq!(Shape::Seed.retry_after_rule(limited()).headers()[header::RETRY_AFTER], "3");
        let bare = reply::static_json(StatusCode::TOO_MANY_REQUESTS, "{}");
        assert_eq!(Shape::Genesys.retry_after_rule(bare).headers()[header::RETRY_AFTER], "1");
        assert_eq!(Shape::Genesys.retry_after_rule(limited()).headers()[header::RETRY_AFTER], "3");
    }
}
