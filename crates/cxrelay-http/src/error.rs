//! The one error shape of the API, `{"error": {"code", "message", "details"}}`, and how each
//! application error maps to a status: what the caller must change is a 4xx naming it; only
//! Redis being unavailable is a 503.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cxrelay_app::AppError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: serde_json::Value,
}

impl ApiError {
    /// An error with `status`, a stable `code` and a message for people.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: serde_json::Value::Null }
    }

    /// 400 naming a bad parameter.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Adds machine-readable details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let message = e.to_string();
        match e {
            AppError::InvalidArgument { what, value, .. } => {
                ApiError::bad("invalid_argument", message).with_details(serde_json::json!({"parameter": what, "value": value}))
            }
            AppError::Input(_) => ApiError::bad("invalid_input", message),
            AppError::Empty => ApiError::bad("empty_input", message),
            AppError::RunNotFound(run) => {
                ApiError::new(StatusCode::NOT_FOUND, "run_not_found", format!("run {run} not found; GET /v1/runs lists runs"))
            }
            AppError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            AppError::InvalidExport(e) => ApiError::bad("invalid_export", message).with_details(serde_json::json!({"parameter": e.field})),
            AppError::Unauthorized(_) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message),
            AppError::BadCallback(_) => ApiError::bad("invalid_callback", message),
            AppError::UnknownExecution(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_execution", message),
            AppError::NotAllowed(_) => ApiError::new(StatusCode::CONFLICT, "not_allowed", message),
            AppError::Queue(cxrelay_queue::QueueError::Corrupt(_)) => {
                tracing::error!(error = %message, "unexpected data in redis");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt_data", message)
            }
            AppError::Unreachable { .. } | AppError::Queue(_) => {
                tracing::warn!(error = %message, "redis failed during a request");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable", "redis is unavailable; retry later")
            }
        }
    }
}
