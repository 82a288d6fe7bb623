//! The CSV export routes of the seed's second tutorial and their `/_sim` controls:
//!
//! - `POST /api/v2/dataprep/dataactions/{dataActionId}/executions`: bearer checked like execute
//!   (401/403), then the forced-status window and the rate limiter, then the body (see
//!   [`crate::export_validate`]), then the fixed latency fault (so that concurrent submits overlap
//!   measurably); `201 {executionId, status: "submitted", createdAt}`. A repeated `Idempotency-Key`
//!   for the same data action answers the same execution again (201, nothing new).
//! - `GET /api/v2/dataprep/dataactions/{dataActionId}/executions/{executionId}`: the state, in every
//!   completion mode.
//! - `GET /_sim/exports`: the [`crate::Exports`] snapshot; `GET`/`POST /_sim/exports/settings`: the
//!   completion settings at runtime ([`crate::ExportSettingsUpdate`], for later submissions);
//!   `POST /_sim/exports/{executionId}/callback`: re-sends a finished execution's callback now (same
//!   `webhook-id`) and answers the receiver's status.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use serde::Serialize;

use crate::callback;
use crate::execute::{forced_or_limited, token_rejection, IDEMPOTENCY_KEY};
use crate::export_settings::ExportSettingsUpdate;
use crate::export_store::{ExecutionState, NoCallback};
use crate::export_validate;
use crate::reply;
use crate::reqlog::RequestRoute;
use crate::state::SimState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Submitted<'a> {
    execution_id: &'a str,
    status: &'static str,
    created_at: &'a str,
}

/// The status answer of one execution.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionStatus<'a> {
    execution_id: &'a str,
    data_action_id: &'a str,
    status: ExecutionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows_exported: Option<u64>,
    start_time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resent<'a> {
    execution_id: &'a str,
    receiver_status: u16,
}

/// `POST /api/v2/dataprep/dataactions/{dataActionId}/executions`.
pub(crate) async fn submit(
    State(sim): State<Arc<SimState>>,
    Path(action_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let arrived = Instant::now();
    let arrived_ms = sim.clock.micros_at(arrived) / 1000;
    let capture = sim.requests.capture(RequestRoute::ExportSubmit, &method, &uri, &headers, arrived_ms);
    let res = {
        let _in_flight = sim.exports.enter(&action_id);
        submit_answer(&sim, &action_id, &headers, &body, arrived, arrived_ms).await
    };
    if let Some(capture) = capture {
        sim.requests.push(capture, Some(&body), res.status().as_u16());
    }
    res
}

async fn submit_answer(sim: &Arc<SimState>, action_id: &str, headers: &HeaderMap, body: &[u8], arrived: Instant, arrived_ms: u64) -> Response<Body> {
    if let Some(res) = token_rejection(sim, headers, arrived) {
        return res;
    }
    let faults = sim.faults();
    if let Some(res) = forced_or_limited(&faults, faults.retry_after) {
        return res;
    }
    let submission = match export_validate::validate(body, action_id) {
        Ok(s) => s,
        Err(e) => return reply::bad_field("invalid_export", e.field, &e.message),
    };
    let key = match headers.get(IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.trim().is_empty() => Some(k),
        Some(_) => {
            return reply::bad_field("invalid_idempotency_key", "Idempotency-Key", "the Idempotency-Key header must be non-empty visible ASCII")
        }
    };
    if !faults.latency.is_zero() {
        crate::timer::sleep_until(arrived + faults.latency).await;
    }
    let created = sim.exports.create(action_id, submission, key, arrived_ms, arrived);
    if !created.new {
        tracing::debug!(execution = %created.execution_id, "export submission repeated an idempotency key");
    }
    if let Some(due) = created.callback_due {
        callback::schedule(sim.clone(), created.execution_id.clone(), due);
    }
    let mut res =
        reply::json(StatusCode::CREATED, &Submitted { execution_id: &created.execution_id, status: "submitted", created_at: &created.created_at });
    let location = format!("/api/v2/dataprep/dataactions/{action_id}/executions/{}", created.execution_id);
    if let Ok(location) = HeaderValue::try_from(location) {
        res.headers_mut().insert(header::LOCATION, location);
    }
    res
}

/// `GET /api/v2/dataprep/dataactions/{dataActionId}/executions/{executionId}`.
pub(crate) async fn status(
    State(sim): State<Arc<SimState>>,
    Path((action_id, execution_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let now = Instant::now();
    let capture = sim.requests.capture(RequestRoute::ExportStatus, &method, &uri, &headers, sim.clock.micros_at(now) / 1000);
    let res = match token_rejection(&sim, &headers, now) {
        Some(res) => res,
        None => match sim.exports.get(&action_id, &execution_id, now) {
            None => reply::static_json(StatusCode::NOT_FOUND, r#"{"error":"execution_not_found"}"#),
            Some(e) => reply::json(
                StatusCode::OK,
                &ExecutionStatus {
                    execution_id: &e.execution_id,
                    data_action_id: &e.data_action_id,
                    status: e.state,
                    rows_exported: e.rows_exported,
                    start_time: &e.start_time,
                    end_time: e.end_time.as_deref(),
                },
            ),
        },
    };
    if let Some(capture) = capture {
        sim.requests.push(capture, None, res.status().as_u16());
    }
    res
}

/// `GET /_sim/exports`.
pub(crate) async fn snapshot(State(sim): State<Arc<SimState>>) -> Response<Body> {
    reply::json(StatusCode::OK, &sim.exports.snapshot(Instant::now()))
}

/// `GET /_sim/exports/settings`.
pub(crate) async fn get_settings(State(sim): State<Arc<SimState>>) -> Response<Body> {
    reply::json(StatusCode::OK, &sim.exports.settings())
}

/// `POST /_sim/exports/settings`: applies an [`ExportSettingsUpdate`] and answers the new settings.
pub(crate) async fn set_settings(State(sim): State<Arc<SimState>>, body: Bytes) -> Response<Body> {
    let update: ExportSettingsUpdate = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return reply::bad_field("invalid_export_settings", "body", &e.to_string()),
    };
    match sim.exports.update_settings(&update) {
        Ok(settings) => {
            tracing::info!(?settings, "export settings updated");
            reply::json(StatusCode::OK, &settings)
        }
        Err(crate::SimError::InvalidSetting { field, reason }) => reply::bad_field("invalid_export_settings", field, &reason),
        Err(e) => reply::bad_field("invalid_export_settings", "body", &e.to_string()),
    }
}

/// `POST /_sim/exports/{executionId}/callback`: re-sends the callback now and answers with the
/// receiver's status (502 when it did not answer; 404/409 when there is nothing to send).
pub(crate) async fn resend(State(sim): State<Arc<SimState>>, Path(execution_id): Path<String>) -> Response<Body> {
    if let Err(why) = sim.exports.callback(&execution_id, Instant::now()) {
        let (status, body) = match why {
            NoCallback::UnknownExecution => (StatusCode::NOT_FOUND, r#"{"error":"execution_not_found"}"#),
            NoCallback::NoUrl => (StatusCode::CONFLICT, r#"{"error":"no_callback_url"}"#),
            NoCallback::NotCallbackMode => (StatusCode::CONFLICT, r#"{"error":"not_callback_mode"}"#),
            NoCallback::Running => (StatusCode::CONFLICT, r#"{"error":"still_running"}"#),
        };
        return reply::static_json(status, body);
    }
    match callback::deliver(&sim, &execution_id).await {
        None => reply::static_json(StatusCode::NOT_FOUND, r#"{"error":"execution_not_found"}"#),
        // No answer, or none this server could pass on as a final status.
        Some(code) if code < 200 => reply::static_json(StatusCode::BAD_GATEWAY, r#"{"error":"callback_failed"}"#),
        Some(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            if matches!(code, 204 | 304) {
                let mut res = Response::new(Body::empty());
                *res.status_mut() = status;
                return res;
            }
            reply::json(status, &Resent { execution_id: &execution_id, receiver_status: code })
        }
    }
}
