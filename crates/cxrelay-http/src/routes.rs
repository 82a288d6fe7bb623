//! The handlers: each parses its request, calls one [`App`](cxrelay_app::App) operation and
//! answers JSON; parameters are read by hand so a bad one gets the API's error shape naming it.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use cxrelay_app::{Control, FailedFilter, NewRun, Replay, RunsFilter, Selection, StatusFilter};
use cxrelay_core::input::InputFormat;
use cxrelay_core::oncall::{parse_indexes, parse_since};
use cxrelay_core::report::RunStatus;
use futures::TryStreamExt;
use serde::Deserialize;

use crate::error::ApiError;
use crate::Shared;

type Params = Query<HashMap<String, String>>;
type ApiResult = Result<Response, ApiError>;

/// A page of runs.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RunsPage {
    /// Reports, newest first.
    pub runs: Vec<cxrelay_core::report::RunReport>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// A page of failed items.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct FailedPage {
    /// Failed items by index.
    pub items: Vec<cxrelay_app::FailedRow>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// A page of audit events.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Events, oldest first.
    pub events: Vec<cxrelay_app::AuditEvent>,
    /// Pass as `cursor` for the next page; absent when this page was not full.
    pub next_cursor: Option<String>,
}

/// What a run control did.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ControlAnswer {
    /// The run.
    pub run_id: String,
    /// Its status before.
    pub from: RunStatus,
    /// Its status after.
    pub to: RunStatus,
}

/// Largest page a listing returns.
const MAX_PAGE: usize = 1000;

pub(crate) fn page_size(p: &HashMap<String, String>, default: usize) -> Result<usize, ApiError> {
    match p.get("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::bad("invalid_parameter", format!("limit {v:?}: expected 1 to {MAX_PAGE}"))),
    }
}

pub(crate) fn encode_cursor(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

pub(crate) fn decode_cursor(p: &HashMap<String, String>, prefix: &str) -> Result<Option<String>, ApiError> {
    let Some(c) = p.get("cursor").filter(|c| !c.is_empty()) else { return Ok(None) };
    let bad = || ApiError::bad("invalid_cursor", format!("cursor {c:?} is not one this API gave out"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix(prefix).map(|s| Some(s.to_owned())).ok_or_else(bad)
}

fn filter_of(p: &HashMap<String, String>, reason_key: &str) -> Result<FailedFilter, ApiError> {
    let arg = |e: cxrelay_core::oncall::ArgError| ApiError::bad("invalid_parameter", e.to_string().replacen("--", "", 1));
    Ok(FailedFilter {
        status: p.get("status").map(|s| StatusFilter::parse(s)).transpose().map_err(arg)?,
        reason: p.get(reason_key).filter(|r| !r.is_empty()).cloned(),
        since_ms: p.get("since").filter(|s| !s.is_empty()).map(|s| parse_since(s, cxrelay_core::now_ms())).transpose().map_err(arg)?,
    })
}

pub(crate) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(|e| match e {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "expected Content-Type: application/json")
        }
        e if e.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        e => ApiError::bad("invalid_body", e.body_text()),
    })
}

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is larger than serve.max_body_bytes (CXRELAY_SERVE_MAX_BODY_BYTES)")
}

/// A small body, or the API's error for one that is too large or unreadable.
pub(crate) fn small_body(body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|e| if e.status() == StatusCode::PAYLOAD_TOO_LARGE { too_large() } else { ApiError::bad("invalid_body", e.body_text()) })
}

/// `GET /healthz`: 200 while the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Up", body = String)))]
pub async fn health() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when Redis answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "Redis answers", body = String), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)))]
pub async fn ready(State(s): State<Shared>) -> ApiResult {
    s.app.ping().await?;
    Ok("ready".into_response())
}

/// `POST /v1/runs?action=…[&tenant=…][&run_id=…][&max_items=…]`: the body (JSON array or NDJSON
/// by `Content-Type`) is streamed through the same producer and validation as `cxrelay enqueue`.
/// An `Idempotency-Key` header names the run, so a retried submission finds the same run and
/// enqueues nothing twice.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", params(("action" = String, Query, description = "Target action id"), ("tenant" = Option<String>, Query, description = "Tenant"), ("run_id" = Option<String>, Query, description = "Run id (resumes that run)"), ("max_items" = Option<u64>, Query, description = "Enqueue only items below this index"), ("idempotency_field" = Option<String>, Query, description = "Key items on this field"), ("pause_on_failure_rate" = Option<String>, Query, description = "Failure-rate guard, e.g. 20%"), ("window" = Option<u32>, Query, description = "Finished items the guard looks at"), ("delimiter" = Option<String>, Query, description = "CSV delimiter: , ; tab or pipe"), ("Idempotency-Key" = Option<String>, Header, description = "Names the run: a retried submission finds it")), request_body(description = "The items: a JSON array of objects, or NDJSON; streamed", content((Vec<serde_json::Map<String, serde_json::Value>> = "application/json"), (String = "application/x-ndjson"), (String = "text/csv"))), responses((status = 201, description = "The run was created or extended", body = cxrelay_queue::EnqueueSummary), (status = 200, description = "A retried submission: nothing new", body = cxrelay_queue::EnqueueSummary), (status = 409, description = "The run id belongs to another tenant or action", body = crate::openapi::ErrorBody), (status = 415, description = "Unsupported Content-Type", body = crate::openapi::ErrorBody), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn create_run(State(s): State<Shared>, Query(p): Params, headers: HeaderMap, body: Body) -> ApiResult {
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let format = match content_type.split(';').next().unwrap_or("").trim() {
        "application/json" => InputFormat::JsonArray,
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines" => InputFormat::Ndjson,
        "text/csv" => match p.get("delimiter").map(String::as_str) {
            None => InputFormat::Csv { delimiter: b',' },
            Some(d) => InputFormat::Csv {
                delimiter: InputFormat::csv_delimiter(d)
                    .ok_or_else(|| ApiError::bad("invalid_parameter", format!("delimiter {d:?}: expected , ; tab or pipe")))?,
            },
        },
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type {other:?}: expected application/json (an array), application/x-ndjson or text/csv"),
            ))
        }
    };
    let action = p.get("action").cloned().ok_or_else(|| ApiError::bad("invalid_parameter", "action is required: POST /v1/runs?action=ID"))?;
    let max_items = match p.get("max_items") {
        Some(v) => Some(v.parse::<u64>().map_err(|_| ApiError::bad("invalid_parameter", format!("max_items {v:?}: expected a whole number")))?),
        None => None,
    };
    let key = headers.get("idempotency-key").map(|v| v.to_str().map(str::to_owned));
    let run_id = match (p.get("run_id"), key) {
        (Some(id), _) => Some(id.clone()),
        (None, Some(Ok(key))) if !key.trim().is_empty() && key.len() <= 200 => Some(run_id_for_key(p.get("tenant").map_or("", |t| t.as_str()), &key)),
        (None, Some(_)) => return Err(ApiError::bad("invalid_header", "Idempotency-Key: expected 1 to 200 visible characters")),
        (None, None) => None,
    };
    let new = NewRun {
        run_id,
        action,
        tenant: p.get("tenant").cloned(),
        idempotency_field: p.get("idempotency_field").cloned(),
        source: "http".into(),
        format,
        max_items,
        pause_on_failure_rate: p.get("pause_on_failure_rate").cloned(),
        failure_window: match p.get("window") {
            Some(v) => Some(v.parse().map_err(|_| ApiError::bad("invalid_parameter", format!("window {v:?}: expected a whole number")))?),
            None => None,
        },
    };
    let run = s.app.check(new)?;
    // The body stream becomes a blocking reader for the producer's parser thread.
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let summary = s.app.enqueue(run, reader, |_| {}).await?;
    let status = if summary.accepted == 0 && summary.already_enqueued > 0 { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(summary)).into_response())
}

/// The run id an `Idempotency-Key` stands for (per tenant): `k-` and 20 hex digits of a hash.
fn run_id_for_key(tenant: &str, key: &str) -> String {
    // FNV-1a over tenant and key, twice with different seeds for 80 bits.
    use cxrelay_core::ids::{fnv1a, FNV_OFFSET};
    let parts: [&[u8]; 2] = [tenant.as_bytes(), key.as_bytes()];
    format!("k-{:016x}{:04x}", fnv1a(FNV_OFFSET, &parts), fnv1a(0x84222325cbf29ce4, &parts) & 0xffff)
}

/// `GET /v1/runs?status=…&tenant=…&limit=…&cursor=…`: runs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(("status" = Option<String>, Query, description = "loading, active, paused, finished or cancelled"), ("tenant" = Option<String>, Query, description = "Tenant"), ("limit" = Option<usize>, Query, description = "1 to 1000, default 50"), ("cursor" = Option<String>, Query, description = "From the previous page")), responses((status = 200, description = "Runs, newest first", body = RunsPage), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn list_runs(State(s): State<Shared>, Query(p): Params) -> ApiResult {
    let status =
        match p.get("status") {
            Some(v) => Some(RunStatus::parse(v).ok_or_else(|| {
                ApiError::bad("invalid_parameter", format!("status {v:?}: expected loading, active, paused, finished or cancelled"))
            })?),
            None => None,
        };
    let limit = page_size(&p, 50)?;
    let offset: usize = match decode_cursor(&p, "o:")? {
        Some(o) => o.parse().map_err(|_| ApiError::bad("invalid_cursor", "cursor is not one this API gave out"))?,
        None => 0,
    };
    let runs = s.app.runs(&RunsFilter { status, tenant: p.get("tenant").cloned() }).await?;
    let page: Vec<_> = runs.iter().skip(offset).take(limit).collect();
    let next = (offset + page.len() < runs.len()).then(|| encode_cursor(&format!("o:{}", offset + page.len())));
    Ok(Json(RunsPage { runs: page.into_iter().cloned().collect(), next_cursor: next }).into_response())
}

/// `GET /v1/runs/{id}`: the report.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "Run id")), responses((status = 200, description = "The report", body = cxrelay_core::report::RunReport), (status = 404, description = "No such run", body = crate::openapi::ErrorBody), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn report(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(s.app.report(&id).await?).into_response())
}

/// `GET /v1/runs/{id}/failed?status=…&reason=…&since=…&limit=…&cursor=…`: failed items by index.
#[utoipa::path(get, path = "/v1/runs/{id}/failed", tag = "on-call", params(("id" = String, Path, description = "Run id"), ("status" = Option<String>, Query, description = "Class or HTTP status"), ("reason" = Option<String>, Query, description = "Text the reason contains"), ("since" = Option<String>, Query, description = "RFC 3339 or a duration back from now"), ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"), ("cursor" = Option<String>, Query, description = "From the previous page")), responses((status = 200, description = "Failed items by index", body = FailedPage), (status = 404, description = "No such run", body = crate::openapi::ErrorBody), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn failed(State(s): State<Shared>, Path(id): Path<String>, Query(p): Params) -> ApiResult {
    let filter = filter_of(&p, "reason")?;
    let limit = page_size(&p, 100)?;
    let after = match decode_cursor(&p, "i:")? {
        Some(i) => Some(i.parse::<u64>().map_err(|_| ApiError::bad("invalid_cursor", "cursor is not one this API gave out"))?),
        None => None,
    };
    // One more than the page, to know whether there is a next one.
    let mut pages = s.app.failed(&id, filter, Some(limit + 1), after).await?;
    let mut items = Vec::new();
    while let Some(rows) = pages.next_page().await? {
        items.extend(rows);
    }
    let more = items.len() > limit;
    items.truncate(limit);
    let next = more.then(|| encode_cursor(&format!("i:{}", items.last().map_or(0, |r| r.index))));
    Ok(Json(FailedPage { items, next_cursor: next }).into_response())
}

/// `GET /v1/runs/{id}/items/{index}`: one item and its whole history.
#[utoipa::path(get, path = "/v1/runs/{id}/items/{index}", tag = "on-call", params(("id" = String, Path, description = "Run id"), ("index" = u64, Path, description = "Item index")), responses((status = 200, description = "The item", body = cxrelay_app::ItemView), (status = 404, description = "No such run", body = crate::openapi::ErrorBody), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn item(State(s): State<Shared>, Path((id, index)): Path<(String, String)>) -> ApiResult {
    let index: u64 = index.parse().map_err(|_| ApiError::bad("invalid_parameter", format!("index {index:?}: expected a whole number")))?;
    Ok(Json(s.app.item(&id, index).await?).into_response())
}

/// Body of `POST /v1/runs/{id}/replay`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// `3,7,10-20`.
    index: Option<String>,
    /// Failure class or HTTP status.
    status: Option<String>,
    /// Text the failure reason contains.
    failed_reason: Option<String>,
    /// Every failed item.
    #[serde(default)]
    all_failed: bool,
    /// RFC 3339 or a duration back from now.
    since: Option<String>,
    /// At most this many.
    limit: Option<usize>,
    /// Change nothing.
    #[serde(default)]
    dry_run: bool,
    /// A new Idempotency-Key for the items.
    #[serde(default)]
    new_idempotency_key: bool,
    /// Why (required).
    reason: String,
    /// Who (default `api`).
    by: Option<String>,
}

/// `POST /v1/runs/{id}/replay`: `{"replayed": [...], "refused": [{"index", "why"}], "dry_run"}`.
#[utoipa::path(post, path = "/v1/runs/{id}/replay", tag = "on-call", params(("id" = String, Path, description = "Run id")), request_body = ReplayBody, responses((status = 200, description = "What was replayed and refused", body = cxrelay_app::ReplayOutcome), (status = 404, description = "No such run", body = crate::openapi::ErrorBody), (status = 409, description = "Not allowed in the run's state", body = crate::openapi::ErrorBody), (status = 415, description = "Not JSON", body = crate::openapi::ErrorBody), (status = 413, description = "Body larger than serve.max_body_bytes", body = crate::openapi::ErrorBody), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn replay(State(s): State<Shared>, Path(id): Path<String>, body: Result<Json<ReplayBody>, JsonRejection>) -> ApiResult {
    let b = json_body(body)?;
    let selection = match (&b.index, b.all_failed || b.status.is_some() || b.failed_reason.is_some()) {
        (Some(_), true) => return Err(ApiError::bad("invalid_body", "index cannot be combined with status, failed_reason or all_failed")),
        (Some(list), false) => {
            Selection::Indexes(parse_indexes(list).map_err(|e| ApiError::bad("invalid_body", e.to_string().replacen("--", "", 1)))?)
        }
        (None, true) => {
            let mut p = HashMap::new();
            for (k, v) in [("status", &b.status), ("failed_reason", &b.failed_reason), ("since", &b.since)] {
                if let Some(v) = v {
                    p.insert(k.to_owned(), v.clone());
                }
            }
            Selection::Failed(filter_of(&p, "failed_reason")?)
        }
        (None, false) => return Err(ApiError::bad("invalid_body", "say which items: index, status, failed_reason or all_failed")),
    };
    let replay = Replay {
        selection,
        limit: b.limit,
        by: b.by.filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "api".into()),
        reason: b.reason,
        new_idempotency_key: b.new_idempotency_key,
        dry_run: b.dry_run,
    };
    Ok(Json(s.app.replay(&id, replay).await?).into_response())
}

/// Body of the run controls (all fields optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlBody {
    /// Why.
    reason: Option<String>,
    /// Who (default `api`).
    by: Option<String>,
}

async fn control(s: Shared, id: String, action: Control, body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>) -> ApiResult {
    let body = small_body(body)?;
    // The body is optional: empty means no reason given.
    let b: ControlBody = if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        ControlBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad("invalid_body", format!("expected {{\"reason\", \"by\"}}: {e}")))?
    };
    let word = action.past_tense();
    let reason = b.reason.unwrap_or_else(|| format!("{word} through the API"));
    let (from, to) = s.app.control(&id, action, b.by.as_deref().unwrap_or("api"), &reason).await?;
    Ok(Json(ControlAnswer { run_id: id, from, to }).into_response())
}

/// `POST /v1/runs/{id}/pause`.
#[utoipa::path(post, path = "/v1/runs/{id}/pause", tag = "on-call", params(("id" = String, Path, description = "Run id")), request_body(content = Option<ControlBody>, description = "Optional reason and operator"), responses((status = 200, description = "Paused", body = ControlAnswer), (status = 413, description = "Body larger than serve.max_body_bytes", body = crate::openapi::ErrorBody), (status = 404, description = "No such run", body = crate::openapi::ErrorBody), (status = 409, description = "Not allowed in the run's state", body = crate::openapi::ErrorBody), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn pause(
    State(s): State<Shared>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    control(s, id, Control::Pause, body).await
}

/// `POST /v1/runs/{id}/resume`.
#[utoipa::path(post, path = "/v1/runs/{id}/resume", tag = "on-call", params(("id" = String, Path, description = "Run id")), request_body(content = Option<ControlBody>, description = "Optional reason and operator"), responses((status = 200, description = "Resumed", body = ControlAnswer), (status = 413, description = "Body larger than serve.max_body_bytes", body = crate::openapi::ErrorBody), (status = 404, description = "No such run", body = crate::openapi::ErrorBody), (status = 409, description = "Not allowed in the run's state", body = crate::openapi::ErrorBody), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn resume(
    State(s): State<Shared>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    control(s, id, Control::Resume, body).await
}

/// `POST /v1/runs/{id}/cancel`.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "on-call", params(("id" = String, Path, description = "Run id")), request_body(content = Option<ControlBody>, description = "Optional reason and operator"), responses((status = 200, description = "Cancelled", body = ControlAnswer), (status = 413, description = "Body larger than serve.max_body_bytes", body = crate::openapi::ErrorBody), (status = 404, description = "No such run", body = crate::openapi::ErrorBody), (status = 409, description = "Not allowed in the run's state", body = crate::openapi::ErrorBody), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn cancel(
    State(s): State<Shared>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    control(s, id, Control::Cancel, body).await
}

/// `DELETE /v1/runs/{id}`: purge a finished or cancelled run.
#[utoipa::path(delete, path = "/v1/runs/{id}", tag = "on-call", params(("id" = String, Path, description = "Run id")), responses((status = 204, description = "Purged"), (status = 404, description = "No such run", body = crate::openapi::ErrorBody), (status = 409, description = "Not finished or cancelled", body = crate::openapi::ErrorBody), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn purge(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult {
    s.app.purge(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/runs/{id}/audit?limit=…&cursor=…`: audit events, oldest first.
#[utoipa::path(get, path = "/v1/runs/{id}/audit", tag = "on-call", params(("id" = String, Path, description = "Run id"), ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"), ("cursor" = Option<String>, Query, description = "From the previous page")), responses((status = 200, description = "Audit events", body = AuditPage), (status = 404, description = "No such run", body = crate::openapi::ErrorBody), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn audit(State(s): State<Shared>, Path(id): Path<String>, Query(p): Params) -> ApiResult {
    let limit = page_size(&p, 100)?;
    let after = decode_cursor(&p, "a:")?.unwrap_or_else(|| "0".into());
    if after != "0" && !after.split_once('-').is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok()) {
        return Err(ApiError::bad("invalid_cursor", "cursor is not one this API gave out"));
    }
    let events = s.app.audit(&id, &after, limit).await?;
    let next = (events.len() == limit).then(|| encode_cursor(&format!("a:{}", events.last().map_or("0", |e| e.id.as_str()))));
    Ok(Json(AuditPage { events, next_cursor: next }).into_response())
}

/// `GET /v1/workers?tenant=…`: live worker processes.
#[utoipa::path(get, path = "/v1/workers", tag = "on-call", params(("tenant" = Option<String>, Query, description = "Tenant")), responses((status = 200, description = "Live workers", body = Vec<cxrelay_app::WorkerInfo>), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn workers(State(s): State<Shared>, Query(p): Params) -> ApiResult {
    Ok(Json(s.app.workers(p.get("tenant").map(String::as_str)).await?).into_response())
}

/// `GET /v1/webhooks`: each endpoint's delivery status.
#[utoipa::path(get, path = "/v1/webhooks", tag = "on-call", responses((status = 200, description = "Webhook endpoints' status", body = Vec<cxrelay_app::WebhookStatus>), (status = 400, description = "A bad parameter or body", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn webhooks(State(s): State<Shared>) -> ApiResult {
    Ok(Json(s.app.webhooks_status().await?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_name_runs_per_tenant() {
        let a = run_id_for_key("t1", "order-42");
        assert_eq!(a, run_id_for_key("t1", "order-42"));
        assert_ne!(a, run_id_for_key("t2", "order-42"));
        assert_ne!(a, run_id_for_key("t1", "order-43"));
        assert!(cxrelay_core::RunId::parse(&a).is_ok(), "{a}");
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let mut p = HashMap::new();
        p.insert("cursor".to_owned(), encode_cursor("o:50"));
        assert_eq!(decode_cursor(&p, "o:").unwrap().as_deref(), Some("50"));
        assert!(decode_cursor(&p, "i:").is_err());
        p.insert("cursor".to_owned(), "!!".to_owned());
        assert!(decode_cursor(&p, "o:").is_err());
    }
}
