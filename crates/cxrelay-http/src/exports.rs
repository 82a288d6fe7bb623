//! The export endpoints: ask for a CSV export execution (`POST /v1/exports`), list them, and the
//! completion callback the target calls (`POST /v1/callbacks/export`, verified by its Standard
//! Webhooks signature; or, opted in, `POST /v1/callbacks/export/{secret}` for targets that
//! cannot sign). Thin handlers over [`App`](cxrelay_app::App).

use std::collections::HashMap;

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cxrelay_app::{CallbackDelivery, ExportRequest};
use serde::Deserialize;

use crate::error::ApiError;
use crate::routes::{json_body, page_size, small_body};
use crate::Shared;

type ApiResult = Result<Response, ApiError>;

/// An export as asked for; left-out fields take the CLI's defaults.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    /// The data action that runs the export.
    data_action: String,
    /// The dataset to export.
    dataset: String,
    /// `,` `|` `;` or a tab (or `comma`, `pipe`, `semicolon`, `tab`); default `,`.
    delimiter: Option<String>,
    /// Quote character, exactly one; default `"`.
    quote: Option<String>,
    /// Escape character, exactly one; default `"`.
    escape: Option<String>,
    /// 1 to 5,000,000; default 5,000,000.
    max_rows: Option<u64>,
    /// Align columns.
    #[serde(default)]
    column_alignment: bool,
    /// Sanitize special characters.
    #[serde(default)]
    sanitize: bool,
    /// Where the target calls back (default: `exports.callback_url`).
    callback_url: Option<String>,
}

/// A list of exports.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ExportsPage {
    /// Newest first.
    pub exports: Vec<cxrelay_app::ExportRow>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// `POST /v1/exports`: validates by the seed's rules and queues the submission.
#[utoipa::path(post, path = "/v1/exports", tag = "exports", request_body = ExportBody, responses((status = 201, description = "Queued", body = cxrelay_app::ExportRow), (status = 400, description = "A parameter breaks an export rule (the message names it and what is allowed)", body = crate::openapi::ErrorBody), (status = 415, description = "Not JSON", body = crate::openapi::ErrorBody), (status = 413, description = "Body larger than serve.max_body_bytes", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 409, description = "Exports are not configured", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn create(State(s): State<Shared>, body: Result<Json<ExportBody>, JsonRejection>) -> ApiResult {
    let b = json_body(body)?;
    let mut request = ExportRequest::new(b.data_action, b.dataset);
    if let Some(d) = b.delimiter {
        request.delimiter = d;
    }
    if let Some(q) = b.quote {
        request.quote = q;
    }
    if let Some(e) = b.escape {
        request.escape = e;
    }
    if let Some(m) = b.max_rows {
        request.max_rows = m;
    }
    request.column_alignment = b.column_alignment;
    request.sanitize = b.sanitize;
    request.callback_url = b.callback_url;
    let row = s.app.export(request).await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// `GET /v1/exports?limit=N&cursor=…`: the tenant's exports with state, rows and latency, a
/// page at a time.
#[utoipa::path(get, path = "/v1/exports", tag = "exports", params(("limit" = Option<usize>, Query, description = "At most this many (1 to 1000, default 100)"), ("cursor" = Option<String>, Query, description = "From the previous page")), responses((status = 200, description = "Exports, newest first", body = ExportsPage), (status = 400, description = "A bad parameter", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn list(State(s): State<Shared>, Query(p): Query<HashMap<String, String>>) -> ApiResult {
    let limit = page_size(&p, 100)?;
    let after = crate::routes::decode_cursor(&p, "x:")?;
    let (exports, next) = s.app.exports_page(limit, after.as_deref()).await.map_err(|e| match e {
        cxrelay_app::AppError::InvalidArgument { what: "cursor", .. } => ApiError::bad("invalid_cursor", "cursor is not one this API gave out"),
        e => e.into(),
    })?;
    Ok(Json(ExportsPage { exports, next_cursor: next.map(|c| crate::routes::encode_cursor(&format!("x:{c}"))) }).into_response())
}

/// `GET /v1/exports/{id}`: one export.
#[utoipa::path(get, path = "/v1/exports/{id}", tag = "exports", params(("id" = String, Path, description = "Export id")), responses((status = 200, description = "The export", body = cxrelay_app::ExportRow), (status = 400, description = "A bad id", body = crate::openapi::ErrorBody), (status = 404, description = "No such export", body = crate::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::openapi::ErrorBody), (status = 403, description = "The token's role does not allow it", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn get_one(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(s.app.export_status(&id).await?).into_response())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /v1/callbacks/export`: the target's completion callback, signed per Standard Webhooks
/// with `exports.callback_secret`. Idempotent: a repeated callback changes nothing.
#[utoipa::path(post, path = "/v1/callbacks/export", tag = "exports", request_body(content = String, description = "{executionId, status, rowsExported, startTime, endTime}", content_type = "application/json"), params(("webhook-id" = String, Header, description = "Message id"), ("webhook-timestamp" = String, Header, description = "Unix seconds"), ("webhook-signature" = String, Header, description = "v1,<base64 HMAC-SHA256>")), responses((status = 200, description = "Recorded, or a duplicate", body = cxrelay_app::CallbackOutcome), (status = 400, description = "Malformed body, unknown status, bad times", body = crate::openapi::ErrorBody), (status = 401, description = "Unsigned, forged or stale", body = crate::openapi::ErrorBody), (status = 404, description = "Unknown execution id", body = crate::openapi::ErrorBody), (status = 413, description = "Body larger than serve.max_body_bytes", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)))]
pub async fn callback(State(s): State<Shared>, headers: HeaderMap, body: Result<axum::body::Bytes, BytesRejection>) -> ApiResult {
    let body = small_body(body)?;
    let delivery = CallbackDelivery {
        id: header(&headers, "webhook-id"),
        timestamp: header(&headers, "webhook-timestamp"),
        signature: header(&headers, "webhook-signature"),
        path_secret: None,
        body: &body,
    };
    Ok(Json(s.app.export_callback(delivery).await?).into_response())
}

/// `POST /v1/callbacks/export/{secret}`: the same callback, unsigned, for targets that cannot
/// sign; only with `exports.callback_path_secret` set.
#[utoipa::path(post, path = "/v1/callbacks/export/{secret}", tag = "exports", params(("secret" = String, Path, description = "exports.callback_path_secret")), request_body(content = String, description = "{executionId, status, rowsExported, startTime, endTime}", content_type = "application/json"), responses((status = 200, description = "Recorded, or a duplicate", body = cxrelay_app::CallbackOutcome), (status = 400, description = "Malformed body, unknown status, bad times", body = crate::openapi::ErrorBody), (status = 401, description = "Unknown callback path", body = crate::openapi::ErrorBody), (status = 404, description = "Unknown execution id", body = crate::openapi::ErrorBody), (status = 413, description = "Body larger than serve.max_body_bytes", body = crate::openapi::ErrorBody), (status = 503, description = "Redis unavailable", body = crate::openapi::ErrorBody)))]
pub async fn callback_at_secret_path(
    State(s): State<Shared>,
    Path(secret): Path<String>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> ApiResult {
    let body = small_body(body)?;
    let delivery = CallbackDelivery { path_secret: Some(&secret), body: &body, ..CallbackDelivery::default() };
    Ok(Json(s.app.export_callback(delivery).await?).into_response())
}
