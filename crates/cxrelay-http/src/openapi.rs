//! The OpenAPI 3.1 document of the API (`GET /openapi.json`), generated from the handlers'
//! annotations and the types they answer with, so it cannot drift from the code.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

/// The error shape of every non-2xx answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code (`invalid_parameter`, `run_not_found`, `unauthorized`, …).
    pub code: String,
    /// For people: names what is wrong.
    pub message: String,
    /// Machine-readable details, or null.
    pub details: Option<serde_json::Value>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "cxrelay", description = "Durable, rate-limited delivery of records to a contact-center API: runs, failed items, replay, run controls."),
    paths(
        routes::health,
        routes::ready,
        routes::create_run,
        routes::list_runs,
        routes::report,
        routes::failed,
        routes::item,
        routes::replay,
        routes::pause,
        routes::resume,
        routes::cancel,
        routes::purge,
        routes::audit,
        routes::workers,
        routes::webhooks,
        crate::exports::create,
        crate::exports::list,
        crate::exports::get_one,
        crate::exports::callback,
        crate::exports::callback_at_secret_path
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;
