//! Small helpers that build JSON answers without re-serializing request data.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

/// An answer whose JSON body is a compile-time constant.
pub(crate) fn static_json(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// An answer with a serialized JSON body.
pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    (status, Json(body)).into_response()
}

/// Adds `Retry-After: <secs>`.
pub(crate) fn with_retry_after(mut res: Response<Body>, secs: u64) -> Response<Body> {
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
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
    json(
        StatusCode::BAD_REQUEST,
        &FieldError {
            error,
            field,
            message,
        },
    )
}
