//! `POST /api/v1/datapoint/actions/{actionId}/execute`: the hot path, and the pipeline the flat-body
//! routes of [`crate::shape`] share. Checks run in the documented order (token, scope, `Accept` where
//! the shape needs it, size, forced fault, rate limit, body, idempotency key), then the item's `_sim`
//! directive (see [`crate::directive`]), then latency, random 5xx or connection reset, then the
//! idempotency ledger. Answers are decorated last (the shape's `Retry-After` rule, rate-limit
//! headers, echoed request headers) and logged (see [`crate::reqlog`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use axum::Extension;
use bytes::BytesMut;
use governor::clock::Clock as _;
use http_body_util::BodyExt as _;
use serde::Serialize;

use crate::auth::{bearer, TokenCheck};
use crate::config::Faults;
use crate::directive;
use crate::ledger::Recorded;
use crate::reply;
use crate::server::ConnHandle;
use crate::shape::Shape;
use crate::state::SimState;
use crate::stats::Arrival;

/// Header that keys the idempotency ledger.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Oversized bodies are drained (so the client can read the 413) up to this many bytes.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

#[derive(Serialize)]
struct Executed<'a> {
    /// The idempotency key; absent for a flat-shape request sent without one.
    #[serde(rename = "executionId", skip_serializing_if = "Option::is_none")]
    execution_id: Option<&'a str>,
    status: &'static str,
    duplicate: bool,
}

#[derive(Serialize)]
struct Faulted {
    error: &'static str,
    status: u16,
}

/// What the request turns into after the cheap checks.
enum Outcome {
    Apply,
    /// An error answer instead of applying: a random fault or an item directive.
    Error {
        status: StatusCode,
        error: &'static str,
        retry_after_secs: Option<u64>,
    },
    Reset,
}

/// An answer, or the decision to drop the connection without one.
enum Answer {
    Respond(Response<Body>),
    Reset,
}

/// What identifies one execute request to the pipeline.
pub(crate) struct Request<'a> {
    pub shape: Shape,
    pub action_id: &'a str,
    pub conn: &'a ConnHandle,
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

/// The seed's execute handler.
pub(crate) async fn execute(
    State(sim): State<Arc<SimState>>,
    Path(action_id): Path<String>,
    Extension(conn): Extension<ConnHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let req = Request { shape: Shape::Seed, action_id: &action_id, conn: &conn, method: &method, uri: &uri, headers: &headers };
    run(&sim, req, body).await
}

/// Answers one execute request of any shape, counting it in the stats, the arrivals and the request log.
pub(crate) async fn run(sim: &SimState, req: Request<'_>, body: Body) -> Response<Body> {
    let arrived = Instant::now();
    let _in_flight = sim.counters.enter();
    sim.counters.requests.fetch_add(1, Relaxed);
    let capture = sim.requests.capture(req.shape.route(), req.method, req.uri, req.headers, sim.clock.micros_at(arrived) / 1000);
    // One snapshot serves both the checks and the decoration of the answer.
    let faults = sim.faults();
    let body = read_body(body, sim.config.max_payload_bytes).await;
    // Cheap: a reference-counted handle on the bytes just read.
    let logged = match &body {
        Ok(Some(b)) => Some(b.clone()),
        _ => None,
    };
    match answer(sim, &faults, &req, body, arrived).await {
        Answer::Respond(res) => {
            let res = req.shape.retry_after_rule(res);
            let res = decorate(res, &faults, req.headers).await;
            if let Some(capture) = capture {
                sim.requests.push(capture, logged.as_deref(), res.status().as_u16());
            }
            res
        }
        Answer::Reset => {
            if let Some(capture) = capture {
                sim.requests.push(capture, logged.as_deref(), 0);
            }
            req.conn.reset();
            // The connection task drops the socket; this future is dropped with it.
            std::future::pending().await
        }
    }
}

/// The answer to one execute request, counted in the stats and the arrival log.
async fn answer(sim: &SimState, faults: &Faults, req: &Request<'_>, body: Result<Option<Bytes>, axum::Error>, arrived: Instant) -> Answer {
    let t_us = sim.clock.micros_at(arrived);
    let finish = |res: Response<Body>| {
        sim.counters.count_status(res.status());
        sim.arrivals.push(Arrival { t_us, status: res.status().as_u16() });
        Answer::Respond(res)
    };
    let (shape, headers) = (req.shape, req.headers);

    let body = match body {
        Ok(b) => b,
        Err(_) => return finish(reply::static_json(StatusCode::BAD_REQUEST, r#"{"error":"body_read_failed"}"#)),
    };
    if let Some(res) = token_rejection(sim, headers, arrived) {
        return finish(res);
    }
    if let Some(res) = shape.accept_rejection(headers) {
        return finish(res);
    }
    let Some(body) = body else {
        return finish(reply::static_json(StatusCode::PAYLOAD_TOO_LARGE, r#"{"error":"payload_too_large"}"#));
    };
    if let Some(res) = forced_or_limited(faults, shape.retry_after_on_limit(faults.retry_after)) {
        return finish(res);
    }
    if let Some(res) = shape.body_rejection(&body, req.action_id) {
        return finish(res);
    }
    let key = match headers.get(IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        Some(Ok(k)) if !k.trim().is_empty() => Some(k),
        None if !shape.requires_idempotency_key() => None,
        _ => return finish(reply::bad_field("missing_idempotency_key", "Idempotency-Key", "the Idempotency-Key header is required")),
    };
    let directive = match directive::find(&body) {
        Ok(d) => d,
        Err(e) => return finish(reply::bad_field("invalid_directive", e.field, &e.message)),
    };

    // A directive's failure pre-empts the random faults; it never reaches the ledger. Requests without
    // a key share one `fail_times` count.
    let failure = directive.as_ref().and_then(|d| Some((d.failure(key.unwrap_or(""), &sim.fail_counts)?, d.retry_after_secs)));
    let outcome = match failure {
        Some((status, retry_after_secs)) => Outcome::Error { status, error: "item_directive", retry_after_secs },
        None => roll(faults),
    };
    let mut delay = pick_latency(faults);
    if let Some(d) = &directive {
        delay = delay.saturating_add(d.delay);
    }
    let arrival_status = match &outcome {
        Outcome::Apply => 200,
        Outcome::Error { status, .. } => status.as_u16(),
        Outcome::Reset => 0,
    };
    sim.arrivals.push(Arrival { t_us, status: arrival_status });
    if !delay.is_zero() {
        // Measured from arrival, so the simulator's own parsing and checks are not added on top.
        crate::timer::sleep_until(arrived + delay).await;
    }

    match outcome {
        Outcome::Reset => {
            sim.counters.resets.fetch_add(1, Relaxed);
            tracing::debug!("simulated connection reset");
            Answer::Reset
        }
        Outcome::Error { status, error, retry_after_secs } => {
            sim.counters.count_status(status);
            let res = reply::json(status, &Faulted { error, status: status.as_u16() });
            Answer::Respond(match retry_after_secs {
                Some(secs) => reply::with_retry_after(res, secs),
                None => res,
            })
        }
        Outcome::Apply => {
            // Without a key there is nothing to de-duplicate by: applied, but not in the ledger.
            let recorded = key.map_or(Recorded::Applied, |k| sim.ledger.record(k, sim.clock.millis_now()));
            let duplicate = match recorded {
                Recorded::Applied => {
                    sim.counters.applied.fetch_add(1, Relaxed);
                    false
                }
                Recorded::Duplicate => {
                    sim.counters.duplicates.fetch_add(1, Relaxed);
                    true
                }
            };
            sim.counters.count_status(StatusCode::OK);
            Answer::Respond(reply::json(StatusCode::OK, &Executed { execution_id: key, status: "completed", duplicate }))
        }
    }
}

/// Adds what the header faults ask for: rate-limit headers on 2xx and 429 answers while a limit is
/// configured, and the echoed request headers on every non-2xx answer.
async fn decorate(res: Response<Body>, faults: &Faults, headers: &HeaderMap) -> Response<Body> {
    let status = res.status();
    let res = match &faults.limit_headers {
        Some(h) if status.is_success() || status == StatusCode::TOO_MANY_REQUESTS => reply::with_limit_headers(res, h),
        _ => res,
    };
    if faults.echo_headers && !status.is_success() {
        return reply::with_request_headers(res, headers).await;
    }
    res
}

/// 401 for a missing, unknown or expired token; 403 for a token without the required scope.
pub(crate) fn token_rejection(sim: &SimState, headers: &HeaderMap, now: Instant) -> Option<Response<Body>> {
    let Some(token) = bearer(headers) else {
        return Some(reply::static_json(StatusCode::UNAUTHORIZED, r#"{"error":"missing_token"}"#));
    };
    let (status, body) = match sim.tokens.check(token, now) {
        TokenCheck::Valid => return None,
        TokenCheck::Unknown => (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_token"}"#),
        TokenCheck::Expired => (StatusCode::UNAUTHORIZED, r#"{"error":"token_expired"}"#),
        TokenCheck::MissingScope => (StatusCode::FORBIDDEN, r#"{"error":"insufficient_scope"}"#),
    };
    Some(reply::static_json(status, body))
}

/// The forced-status answer while a window runs, else a 429 when the rate limiter refuses (with
/// `Retry-After` when `retry_after`).
pub(crate) fn forced_or_limited(faults: &Faults, retry_after: bool) -> Option<Response<Body>> {
    if let Some(f) = faults.active_force(Instant::now()) {
        let res = reply::json(f.status, &Faulted { error: "forced_fault", status: f.status.as_u16() });
        return Some(match f.retry_after_secs {
            Some(secs) => reply::with_retry_after(res, secs),
            None => res,
        });
    }
    let limiter = faults.limiter.as_ref()?;
    let not_until = limiter.check().err()?;
    let wait = not_until.wait_time_from(limiter.clock().now());
    let res = reply::static_json(StatusCode::TOO_MANY_REQUESTS, r#"{"error":"rate_limited"}"#);
    Some(if retry_after { reply::with_retry_after(res, ceil_secs(wait)) } else { res })
}

/// Whole seconds to wait, rounded up, at least 1.
fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

fn chance(p: f64) -> bool {
    p > 0.0 && rand::random::<f64>() < p
}

fn roll(f: &Faults) -> Outcome {
    if chance(f.error_rate) {
        const STATUSES: [StatusCode; 3] = [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE];
        Outcome::Error { status: STATUSES[rand::random_range(0..STATUSES.len())], error: "simulated_fault", retry_after_secs: None }
    } else if chance(f.reset_rate) {
        Outcome::Reset
    } else {
        Outcome::Apply
    }
}

fn pick_latency(f: &Faults) -> Duration {
    if chance(f.spike_probability) {
        f.spike
    } else {
        f.latency
    }
}

/// Reads the body; `Ok(None)` when it exceeds `max` (the excess is drained, not kept).
pub(crate) async fn read_body(mut body: Body, max: usize) -> Result<Option<Bytes>, axum::Error> {
    let mut single: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > max {
            single = None;
            buf = BytesMut::new();
            if total > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        match single.take() {
            None if buf.is_empty() => single = Some(data),
            None => buf.extend_from_slice(&data),
            Some(first) => {
                buf.reserve(first.len() + data.len());
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&data);
            }
        }
    }
    if total > max {
        return Ok(None);
    }
    Ok(Some(single.unwrap_or_else(|| buf.freeze())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1000)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1001)), 2);
        assert_eq!(ceil_secs(Duration::ZERO), 1);
    }

    #[tokio::test]
    async fn read_body_joins_chunks_and_flags_oversize() {
        let chunks = || {
            let parts = [&b"ab"[..], b"", b"cd"];
            futures::stream::iter(parts.map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))))
        };
        assert_eq!(read_body(Body::from_stream(chunks()), 4).await.unwrap().unwrap(), Bytes::from_static(b"abcd"));
        let body = Body::from_stream(chunks());
        assert!(read_body(body, 3).await.unwrap().is_none());
    }
}
